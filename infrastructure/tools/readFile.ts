/**
 * `read_file`: a text file's lines, numbered like `cat -n`, from `offset` for `limit` lines.
 *
 * It reads the judged path through one descriptor checked to be that file (confinedFs), so a link flipped
 * after the judgment cannot make it read another.
 */
import { Effect, Schema } from "effect"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { openVerifiedForRead, readAll } from "../workspace/confinedFs.js"
import { confinementError, hardLinksAllowed, judgedPath, looksBinary, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({
  path: Schema.String,
  offset: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))),
  limit: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)))
})
type Input = typeof Input.Type

export const DEFAULT_READ_LIMIT = 2000

export const readFileTool: Tool<Input> = {
  name: "read_file",
  description: "Read a text file. Lines are numbered from 1; use offset (first line) and limit (line count) for large files.",
  inputSchema: {
    type: "object",
    properties: {
      path: { type: "string", description: "File path, absolute or relative to the workspace root" },
      offset: { type: "integer", minimum: 1, description: "First line to read (1-based)" },
      limit: { type: "integer", minimum: 1, description: `Number of lines to read (default ${DEFAULT_READ_LIMIT})` }
    },
    required: ["path"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_read", path: toolPath(ctx.workspaceRoot, input.path) }),
  run: (input, _ctx, judged) =>
    Effect.gen(function* () {
      const path = yield* judgedPath("read_file", judged)
      const bytes = yield* Effect.scoped(
        Effect.flatMap(openVerifiedForRead(path, { allowHardLinks: hardLinksAllowed(judged) }), readAll)
      ).pipe(Effect.mapError(confinementError("read_file")))
      if (looksBinary(bytes)) return `${path} is a binary file (${bytes.length} bytes); it is not shown as text`
      const text = bytes.toString("utf8")
      if (text === "") return `${path} is empty`
      const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n")
      const offset = input.offset ?? 1
      if (offset > lines.length) {
        return yield* Effect.fail(
          new ToolError({ tool: "read_file", message: `offset ${offset} is past the end of ${path}, which has ${lines.length} lines; use an offset from 1 to ${lines.length}` })
        )
      }
      const limit = input.limit ?? DEFAULT_READ_LIMIT
      const shown = lines.slice(offset - 1, offset - 1 + limit)
      const body = shown.map((line, i) => `${String(offset + i).padStart(6)}\t${line}`).join("\n")
      const last = offset - 1 + shown.length
      return last < lines.length ? `${body}\n[lines ${offset}-${last} of ${lines.length}; read on with offset ${last + 1}]` : body
    })
}

export const readFileToolErased = eraseTool(readFileTool)
