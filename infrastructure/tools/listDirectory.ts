/** `list_directory`: a directory's entries, directories first, then files with their sizes. */
import { Effect, Schema } from "effect"
import { readdir, stat } from "node:fs/promises"
import { join } from "node:path"
import { decodeWith, eraseTool, type Tool } from "../../application/tools/tool.js"
import { toolPath, tryFs } from "./workspaceFiles.js"

const Input = Schema.Struct({ path: Schema.optional(Schema.String) })
type Input = typeof Input.Type

export const MAX_LIST_ENTRIES = 1000

export const listDirectoryTool: Tool<Input> = {
  name: "list_directory",
  description: "List a directory: subdirectories first (with a trailing /), then files with their sizes in bytes.",
  inputSchema: {
    type: "object",
    properties: { path: { type: "string", description: "Directory, absolute or relative to the workspace root (default: the root)" } },
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_read", path: toolPath(ctx.workspaceRoot, input.path) }),
  run: (input, ctx) =>
    Effect.gen(function* () {
      const dir = toolPath(ctx.workspaceRoot, input.path)
      const entries = yield* tryFs("list_directory", dir, () => readdir(dir, { withFileTypes: true }))
      const dirs = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort()
      const others = entries.filter((e) => !e.isDirectory()).map((e) => e.name).sort()
      const files = yield* Effect.forEach(others, (name) =>
        Effect.map(Effect.either(tryFs("list_directory", dir, () => stat(join(dir, name)))), (s) =>
          s._tag === "Right" ? `${name}  (${s.right.size} bytes)` : `${name}  (unreadable)`
        )
      )
      const lines = [...dirs.map((d) => `${d}/`), ...files]
      if (lines.length === 0) return `${dir} is empty`
      return lines.length > MAX_LIST_ENTRIES
        ? `${lines.slice(0, MAX_LIST_ENTRIES).join("\n")}\n[${lines.length - MAX_LIST_ENTRIES} more entries]`
        : lines.join("\n")
    })
}

export const listDirectoryToolErased = eraseTool(listDirectoryTool)
