/**
 * `edit_file`: replaces an exact string in a file. The old string must occur exactly once unless
 * `replace_all` is set, so an edit never lands somewhere the model did not mean.
 *
 * It opens the judged path once through its checked parent folder, checks the descriptor is that file, and
 * reads and writes through that one handle (confinedFs), so a link swapped in after the action was judged
 * cannot redirect the edit.
 */
import { Effect, Schema } from "effect"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { openVerifiedForWrite, readAll, replaceContent } from "../workspace/confinedFs.js"
import { confinementError, hardLinksAllowed, judgedPath, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({
  path: Schema.String,
  old_string: Schema.String,
  new_string: Schema.String,
  replace_all: Schema.optional(Schema.Boolean)
})
type Input = typeof Input.Type

const countOf = (text: string, needle: string): number => {
  let n = 0
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++
  return n
}

export const editFileTool: Tool<Input> = {
  name: "edit_file",
  description: "Replace old_string with new_string in a file. old_string must be unique in the file unless replace_all is true.",
  inputSchema: {
    type: "object",
    properties: {
      path: { type: "string", description: "File path, absolute or relative to the workspace root" },
      old_string: { type: "string", description: "The exact text to replace" },
      new_string: { type: "string", description: "The text to put in its place" },
      replace_all: { type: "boolean", description: "Replace every occurrence (default false)" }
    },
    required: ["path", "old_string", "new_string"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_write", path: toolPath(ctx.workspaceRoot, input.path) }),
  run: (input, _ctx, judged) =>
    Effect.gen(function* () {
      const fail = (message: string) => Effect.fail(new ToolError({ tool: "edit_file", message }))
      if (input.old_string === "") return yield* fail("old_string is empty; give the exact text to replace, or use write_file to write a whole file")
      if (input.old_string === input.new_string) return yield* fail("old_string and new_string are the same; nothing would change")
      const path = yield* judgedPath("edit_file", judged)
      const confined = confinementError("edit_file")
      return yield* Effect.scoped(
        Effect.gen(function* () {
          const file = yield* openVerifiedForWrite(path, { createParents: false, mode: "update", allowHardLinks: hardLinksAllowed(judged) }).pipe(Effect.mapError(confined))
          const text = (yield* readAll(file).pipe(Effect.mapError(confined))).toString("utf8")
          const count = countOf(text, input.old_string)
          if (count === 0) return yield* fail(`old_string was not found in ${path}; read the file again and copy the text exactly, whitespace included`)
          const all = input.replace_all === true
          if (count > 1 && !all) {
            return yield* fail(`old_string occurs ${count} times in ${path}; add surrounding lines to make it unique, or set replace_all to replace every occurrence`)
          }
          const at = text.indexOf(input.old_string)
          const next = all ? text.split(input.old_string).join(input.new_string) : text.slice(0, at) + input.new_string + text.slice(at + input.old_string.length)
          yield* replaceContent(file, Buffer.from(next, "utf8")).pipe(Effect.mapError(confined))
          return `replaced ${all ? count : 1} occurrence${(all ? count : 1) === 1 ? "" : "s"} in ${path}`
        })
      )
    })
}

export const editFileToolErased = eraseTool(editFileTool)
