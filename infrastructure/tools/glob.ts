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
import { defaultProtectedRoots, protectedRootOf } from "./protectedRoots.js"
import { confinementError, judgedPath, SKIPPED_DIRECTORIES, slashRelative, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({ pattern: Schema.NonEmptyString, path: Schema.optional(Schema.String) })
type Input = typeof Input.Type

/** More files than this are not listed: the model should narrow the pattern. */
export const MAX_GLOB_RESULTS = 1000
const MAX_WALKED = 100_000

/** What glob is built with where a session is set up. */
export interface GlobOptions {
  /** The `$ASTRID_HOME` folders (`SecurityPolicy.protectedState.roots`): no name below them is listed. */
  readonly protectedRoots: ReadonlyArray<string>
}

/** The glob tool that lists nothing inside the given protected roots. */
export const makeGlobTool = (options: GlobOptions): Tool<Input> => ({
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
      // The runtime's own state is not listed, under whatever name it sits in the workspace (I10).
      const hidden = walk.files.filter((f) => protectedRootOf(options.protectedRoots, f.path) !== undefined).length
      const notes = [...walk.skipped.map((s) => `[${s}]`), ...(hidden === 0 ? [] : [`[${hidden} files inside the runtime's own state (ASTRID_HOME or .astrid) are not listed]`])]
      const matched = walk.files.filter((f) => protectedRootOf(options.protectedRoots, f.path) === undefined && globMatch(input.pattern, slashRelative(root, f.path)))
      if (matched.length === 0) return [`no files match ${input.pattern} under ${root}`, ...notes].join("\n")
      const sorted = [...matched].sort((a, b) => b.mtimeMs - a.mtimeMs || a.path.localeCompare(b.path))
      const shown = sorted.slice(0, MAX_GLOB_RESULTS).map((f) => f.path)
      const more = sorted.length > MAX_GLOB_RESULTS ? [`[${sorted.length - MAX_GLOB_RESULTS} more files match; narrow the pattern]`] : []
      return [...shown, ...more, ...notes].join("\n")
    })
})

export const globTool: Tool<Input> = makeGlobTool({ protectedRoots: defaultProtectedRoots })
export const globToolErased = eraseTool(globTool)
