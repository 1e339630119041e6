/**
 * `write_file`: writes a whole file, creating missing parent directories.
 *
 * It writes the judged path only: the parent folder is opened and checked to be the judged one, missing
 * folders are made through it one by one, and the file is created through that checked folder and checked
 * in turn before anything is truncated or written (confinedFs). A link put anywhere on the path after the
 * judgment makes the write refuse, never land elsewhere.
 */
import { Effect, Schema } from "effect"
import { decodeWith, eraseTool, type Tool } from "../../application/tools/tool.js"
import { openVerifiedForWrite, replaceContent } from "../workspace/confinedFs.js"
import { confinementError, hardLinksAllowed, judgedPath, toolPath } from "./workspaceFiles.js"

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
  run: (input, _ctx, judged) =>
    Effect.gen(function* () {
      const path = yield* judgedPath("write_file", judged)
      const bytes = Buffer.from(input.content, "utf8")
      yield* Effect.scoped(
        Effect.flatMap(openVerifiedForWrite(path, { createParents: true, mode: "create", allowHardLinks: hardLinksAllowed(judged) }), (file) =>
          replaceContent(file, bytes)
        )
      ).pipe(Effect.mapError(confinementError("write_file")))
      return `wrote ${bytes.length} bytes to ${path}`
    })
}

export const writeFileToolErased = eraseTool(writeFileTool)
