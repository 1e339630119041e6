/**
 * `list_directory`: a directory's entries, directories first, then files with their sizes.
 *
 * It lists the judged folder through a descriptor checked to be that folder (confinedFs), and looks at each
 * entry inside it without following links, so a folder swapped for a link after the judgment is refused.
 */
import { Effect, Schema } from "effect"
import { decodeWith, eraseTool, type Tool } from "../../application/tools/tool.js"
import { type ConfinedEntry, listVerifiedDirectory } from "../workspace/confinedFs.js"
import { confinementError, judgedPath, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({ path: Schema.optional(Schema.String) })
type Input = typeof Input.Type

export const MAX_LIST_ENTRIES = 1000

const describe = (e: ConfinedEntry): string =>
  e.kind === "file"
    ? `${e.name}  (${e.size} bytes)`
    : e.kind === "symlink"
      ? `${e.name} -> ${e.target ?? "?"}  (symbolic link)`
      : `${e.name}  (not a regular file)`

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
  run: (_input, _ctx, judged) =>
    Effect.gen(function* () {
      const dir = yield* judgedPath("list_directory", judged)
      const entries = yield* listVerifiedDirectory(dir).pipe(Effect.mapError(confinementError("list_directory")))
      const byName = (a: ConfinedEntry, b: ConfinedEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
      const dirs = entries.filter((e) => e.kind === "directory").sort(byName)
      const others = entries.filter((e) => e.kind !== "directory").sort(byName)
      const lines = [...dirs.map((d) => `${d.name}/`), ...others.map(describe)]
      if (lines.length === 0) return `${dir} is empty`
      return lines.length > MAX_LIST_ENTRIES
        ? `${lines.slice(0, MAX_LIST_ENTRIES).join("\n")}\n[${lines.length - MAX_LIST_ENTRIES} more entries]`
        : lines.join("\n")
    })
}

export const listDirectoryToolErased = eraseTool(listDirectoryTool)
