/** `write_file`: writes a whole file, creating missing parent directories. */
import { Effect, Schema } from "effect"
import { mkdir, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import { decodeWith, eraseTool, type Tool } from "../../application/tools/tool.js"
import { toolPath, tryFs } from "./workspaceFiles.js"

const Input = Schema.Struct({ path: Schema.String, content: Schema.String })
type Input = typeof Input.Type

export const writeFileTool: Tool<Input> = {
  name: "write_file",
  description: "Write a file with the given content, replacing it if it exists and creating missing parent directories.",
  inputSchema: {
    type: "object",
    properties: {
      path: { type: "string", description: "File path, absolute or relative to the workspace root" },
      content: { type: "string", description: "The whole new content of the file" }
    },
    required: ["path", "content"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_write", path: toolPath(ctx.workspaceRoot, input.path), bytes: Buffer.byteLength(input.content, "utf8") }),
  run: (input, ctx) =>
    Effect.gen(function* () {
      const path = toolPath(ctx.workspaceRoot, input.path)
      yield* tryFs("write_file", path, () => mkdir(dirname(path), { recursive: true }))
      yield* tryFs("write_file", path, () => writeFile(path, input.content, "utf8"))
      return `wrote ${Buffer.byteLength(input.content, "utf8")} bytes to ${path}`
    })
}

export const writeFileToolErased = eraseTool(writeFileTool)
