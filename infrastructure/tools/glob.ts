/** `glob`: files whose path relative to the search root matches a pattern, newest first. */
import { Effect, Schema } from "effect"
import { stat } from "node:fs/promises"
import { globMatch } from "../../domain/security/glob.js"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { slashRelative, toolPath, tryFs, walkFiles } from "./workspaceFiles.js"

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
  run: (input, ctx) =>
    Effect.gen(function* () {
      const root = toolPath(ctx.workspaceRoot, input.path)
      const info = yield* tryFs("glob", root, () => stat(root))
      if (!info.isDirectory()) return yield* Effect.fail(new ToolError({ tool: "glob", message: `${root} is not a directory; give a directory as path` }))
      const files = yield* tryFs("glob", root, () => walkFiles(root, MAX_WALKED))
      const matched = files.filter((f) => globMatch(input.pattern, slashRelative(root, f.path)))
      if (matched.length === 0) return `no files match ${input.pattern} under ${root}`
      const sorted = [...matched].sort((a, b) => b.mtimeMs - a.mtimeMs || a.path.localeCompare(b.path))
      const shown = sorted.slice(0, MAX_GLOB_RESULTS).map((f) => f.path)
      return sorted.length > MAX_GLOB_RESULTS
        ? `${shown.join("\n")}\n[${sorted.length - MAX_GLOB_RESULTS} more files match; narrow the pattern]`
        : shown.join("\n")
    })
}

export const globToolErased = eraseTool(globTool)
