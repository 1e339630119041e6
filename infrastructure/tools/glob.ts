/**
 * `glob`: files whose path relative to the search root matches a pattern, newest first.
 *
 * It walks the judged folder through descriptors checked at every level (confinedFs), so a folder swapped
 * for a link during the walk is skipped with a note, never entered.
 */
import { Effect, Schema } from "effect"
import { globMatch } from "../../domain/security/glob.js"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { walkVerified } from "../workspace/confinedFs.js"
import { confinementError, judgedPath, SKIPPED_DIRECTORIES, slashRelative, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({ pattern: Schema.NonEmptyString, path: Schema.optional(Schema.String) })
type Input = typeof Input.Type

/** More files than this are not listed: the model should narrow the pattern. */
export const MAX_GLOB_RESULTS = 1000
const MAX_WALKED = 100_000

export const globTool: Tool<Input> = {
  name: "glob",
  description: "Find files by glob pattern (e.g. \"**/*.ts\", \"src/*.json\"), relative to the workspace root or `path`. Newest first.",
  inputSchema: {
    type: "object",
    properties: {
      pattern: { type: "string", description: "Glob pattern: * within a segment, ** across segments, ? one character" },
      path: { type: "string", description: "Directory to search (default: the workspace root)" }
    },
    required: ["pattern"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_read", path: toolPath(ctx.workspaceRoot, input.path) }),
  run: (input, _ctx, judged) =>
    Effect.gen(function* () {
      const root = yield* judgedPath("glob", judged)
      const walk = yield* walkVerified(root, { limit: MAX_WALKED, skipNames: SKIPPED_DIRECTORIES }).pipe(
        Effect.mapError((e) =>
          e._tag === "WrongFileType" ? new ToolError({ tool: "glob", message: `${root} is not a directory; give a directory as path` }) : confinementError("glob")(e)
        )
      )
      const notes = walk.skipped.map((s) => `[${s}]`)
      const matched = walk.files.filter((f) => globMatch(input.pattern, slashRelative(root, f.path)))
      if (matched.length === 0) return [`no files match ${input.pattern} under ${root}`, ...notes].join("\n")
      const sorted = [...matched].sort((a, b) => b.mtimeMs - a.mtimeMs || a.path.localeCompare(b.path))
      const shown = sorted.slice(0, MAX_GLOB_RESULTS).map((f) => f.path)
      const more = sorted.length > MAX_GLOB_RESULTS ? [`[${sorted.length - MAX_GLOB_RESULTS} more files match; narrow the pattern]`] : []
      return [...shown, ...more, ...notes].join("\n")
    })
}

export const globToolErased = eraseTool(globTool)
