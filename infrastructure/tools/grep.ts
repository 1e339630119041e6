/**
 * `grep`: lines matching a regular expression in the files below a path, optionally only files matching a
 * glob, with context lines. Output follows grep's convention: `file:line:text` for a match,
 * `file-line-text` for context, `--` between separate groups.
 */
import { Effect, Schema } from "effect"
import { readFile, stat } from "node:fs/promises"
import { globMatch } from "../../domain/security/glob.js"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { looksBinary, slashRelative, toolPath, tryFs, walkFiles, type WalkedFile } from "./workspaceFiles.js"

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

export const grepTool: Tool<Input> = {
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
  run: (input, ctx) =>
    Effect.gen(function* () {
      const root = toolPath(ctx.workspaceRoot, input.path)
      const regex = yield* Effect.try({
        try: () => new RegExp(input.pattern, input.case_insensitive === true ? "i" : ""),
        catch: (e) => new ToolError({ tool: "grep", message: `invalid regular expression ${input.pattern}: ${e instanceof Error ? e.message : String(e)}` })
      })
      const info = yield* tryFs("grep", root, () => stat(root))
      const files: ReadonlyArray<WalkedFile> = info.isFile()
        ? [{ path: root, mtimeMs: info.mtimeMs, size: info.size }]
        : yield* tryFs("grep", root, () => walkFiles(root, MAX_WALKED))
      const filter = input.glob
      const candidates = files
        .filter((f) => f.size <= MAX_FILE_BYTES && (filter === undefined || info.isFile() || globMatch(filter, slashRelative(root, f.path))))
        .sort((a, b) => a.path.localeCompare(b.path))
      const context = input.context ?? 0
      const max = input.max_results ?? DEFAULT_MAX_MATCHES
      const out: Array<string> = []
      let matches = 0
      let capped = false
      for (const file of candidates) {
        if (capped) break
        const bytes = yield* Effect.either(tryFs("grep", file.path, () => readFile(file.path)))
        if (bytes._tag === "Left" || looksBinary(bytes.right)) continue
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
      if (matches === 0) return `no matches for /${input.pattern}/ under ${root}`
      return capped ? `${out.join("\n")}\n[stopped after ${max} matches; narrow the pattern or the path]` : out.join("\n")
    })
}

export const grepToolErased = eraseTool(grepTool)
