/**
 * `grep`: lines matching a regular expression in the files below a path, optionally only files matching a
 * glob, with context lines. Output follows grep's convention: `file:line:text` for a match,
 * `file-line-text` for context, `--` between separate groups.
 *
 * It searches the judged path only: the folder walk checks every folder's descriptor before listing it, and
 * every file is opened once and checked to be the file the walk listed before it is read (confinedFs). What
 * fails a check is skipped with a note; a hard-linked file is skipped unless the search root was judged as
 * outside the workspace.
 *
 * It never reads the runtime's own state (I10): the policy judges only the path the search starts from, so
 * files the walk finds inside a `$ASTRID_HOME` root (under whatever name it has there) or a `.astrid` folder
 * are dropped with a note, and a search that starts inside one is refused.
 */
import { Effect, Schema } from "effect"
import { lstat } from "node:fs/promises"
import { globMatch } from "../../domain/security/glob.js"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { defaultProtectedRoots, protectedRootOf } from "./protectedRoots.js"
import { openVerifiedForRead, readAll, walkVerified, type WalkedFile } from "../workspace/confinedFs.js"
import { confinementError, hardLinksAllowed, judgedPath, looksBinary, SKIPPED_DIRECTORIES, slashRelative, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({
  pattern: Schema.NonEmptyString,
  path: Schema.optional(Schema.String),
  glob: Schema.optional(Schema.String),
  context: Schema.optional(Schema.Int.pipe(Schema.between(0, 20))),
  case_insensitive: Schema.optional(Schema.Boolean),
  max_results: Schema.optional(Schema.Int.pipe(Schema.between(1, 2000)))
})
type Input = typeof Input.Type

export const DEFAULT_MAX_MATCHES = 200
const MAX_WALKED = 100_000
/** Files larger than this are skipped: they are data, not source. */
const MAX_FILE_BYTES = 5_000_000

/** What grep is built with where a session is set up. */
export interface GrepOptions {
  /** The `$ASTRID_HOME` folders (`SecurityPolicy.protectedState.roots`) no search reads. */
  readonly protectedRoots: ReadonlyArray<string>
}

const refusedInside = (root: string, at: string): ToolError =>
  new ToolError({
    tool: "grep",
    message: `${root} is inside ${at}, the runtime's own state, which no agent tool reads; nothing was searched. Search the workspace's own files instead`
  })

/** The grep tool that skips the given protected roots. */
export const makeGrepTool = (options: GrepOptions): Tool<Input> => ({
  name: "grep",
  description: "Search file contents with a regular expression. Optional glob filter on paths, context lines and case-insensitive matching.",
  inputSchema: {
    type: "object",
    properties: {
      pattern: { type: "string", description: "JavaScript regular expression" },
      path: { type: "string", description: "File or directory to search (default: the workspace root)" },
      glob: { type: "string", description: "Only search files whose relative path matches this glob, e.g. \"**/*.ts\"" },
      context: { type: "integer", minimum: 0, maximum: 20, description: "Lines of context before and after each match" },
      case_insensitive: { type: "boolean" },
      max_results: { type: "integer", minimum: 1, maximum: 2000, description: `Most matching lines to show (default ${DEFAULT_MAX_MATCHES})` }
    },
    required: ["pattern"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_read", path: toolPath(ctx.workspaceRoot, input.path) }),
  run: (input, _ctx, judged) =>
    Effect.gen(function* () {
      const root = yield* judgedPath("grep", judged)
      const rootProtected = protectedRootOf(options.protectedRoots, root)
      if (rootProtected !== undefined) return yield* Effect.fail(refusedInside(root, rootProtected))
      const regex = yield* Effect.try({
        try: () => new RegExp(input.pattern, input.case_insensitive === true ? "i" : ""),
        catch: (e) => new ToolError({ tool: "grep", message: `invalid regular expression ${input.pattern}: ${e instanceof Error ? e.message : String(e)}` })
      })
      // Only to choose between reading one file and walking a folder: both open what was judged and check it.
      const seen = yield* Effect.option(Effect.tryPromise(() => lstat(root)))
      const single = seen._tag === "Some" && !seen.value.isDirectory()
      const notes: Array<string> = []
      let files: ReadonlyArray<WalkedFile>
      if (single) {
        files = [{ path: root, mtimeMs: seen.value.mtimeMs, size: seen.value.size }]
      } else {
        const walk = yield* walkVerified(root, { limit: MAX_WALKED, skipNames: SKIPPED_DIRECTORIES }).pipe(Effect.mapError(confinementError("grep")))
        // The walk skips folders by name only; an ASTRID_HOME named otherwise is dropped here, before any read.
        const skippedRoots = new Set<string>()
        files = walk.files.filter((f) => {
          const at = protectedRootOf(options.protectedRoots, f.path)
          if (at !== undefined) skippedRoots.add(at)
          return at === undefined
        })
        notes.push(...walk.skipped, ...[...skippedRoots].sort().map((at) => `skipped ${at}: it holds the runtime's own state, which no agent tool reads`))
      }
      const filter = input.glob
      const candidates = files
        .filter((f) => f.size <= MAX_FILE_BYTES && (filter === undefined || single || globMatch(filter, slashRelative(root, f.path))))
        .sort((a, b) => a.path.localeCompare(b.path))
      const context = input.context ?? 0
      const max = input.max_results ?? DEFAULT_MAX_MATCHES
      const out: Array<string> = []
      let matches = 0
      let capped = false
      for (const file of candidates) {
        if (capped) break
        const bytes = yield* Effect.either(Effect.scoped(Effect.flatMap(openVerifiedForRead(file.path, { allowHardLinks: hardLinksAllowed(judged) }), readAll)))
        if (bytes._tag === "Left") {
          const e = bytes.left
          // The searched path itself is reported as an error, as read_file would; below it, a note.
          if (single) return yield* Effect.fail(confinementError("grep")(e))
          if (e._tag === "TargetChanged" || e._tag === "HardLinkRefused") notes.push(`skipped ${file.path}: ${e._tag === "HardLinkRefused" ? `it has ${e.links} hard links, so it may be a file outside the workspace` : "it changed during the search (a symbolic link or rename raced it)"}; it was not searched`)
          continue
        }
        if (looksBinary(bytes.right)) continue
        const lines = bytes.right.toString("utf8").split("\n")
        let lastPrinted = -1
        for (let i = 0; i < lines.length; i++) {
          if (!regex.test(lines[i] ?? "")) continue
          if (matches >= max) {
            capped = true
            break
          }
          matches++
          const from = Math.max(0, i - context, lastPrinted + 1)
          if (context > 0 && out.length > 0 && from > lastPrinted + 1) out.push("--")
          const to = Math.min(lines.length - 1, i + context)
          for (let j = from; j <= to; j++) {
            const line = lines[j] ?? ""
            const isMatch = j === i || regex.test(line)
            out.push(`${file.path}${isMatch ? ":" : "-"}${j + 1}${isMatch ? ":" : "-"}${line}`)
          }
          lastPrinted = Math.max(lastPrinted, to)
        }
      }
      const tail = notes.map((n) => `[${n}]`)
      if (matches === 0) return [`no matches for /${input.pattern}/ under ${root}`, ...tail].join("\n")
      return [...out, ...(capped ? [`[stopped after ${max} matches; narrow the pattern or the path]`] : []), ...tail].join("\n")
    })
})

/** grep skipping the default home's `$ASTRID_HOME` (and, as every grep, each `.astrid` folder). */
export const grepTool: Tool<Input> = makeGrepTool({ protectedRoots: defaultProtectedRoots })

export const grepToolErased = eraseTool(grepTool)
