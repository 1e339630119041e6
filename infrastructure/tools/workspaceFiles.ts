/**
 * File-system helpers the built-in tools share: where a tool's path points (for the request the
 * interceptor judges), the judged path a tool must open, telling text from binary, and the confined opens'
 * refusals as tool errors.
 */
import { Effect } from "effect"
import { isAbsolute, relative, resolve, sep } from "node:path"
import { type JudgedTarget, ToolError } from "../../application/tools/tool.js"
import type { ConfinementError } from "../workspace/confinedFs.js"

/** A tool's path, absolute or relative to the workspace root (the same base the interceptor judges). */
export const toolPath = (workspaceRoot: string, path: string | undefined): string =>
  path === undefined || path === "" ? resolve(workspaceRoot) : isAbsolute(path) ? resolve(path) : resolve(workspaceRoot, path)

/** `path` relative to `base` with `/` separators, as glob patterns are written. */
export const slashRelative = (base: string, path: string): string => relative(base, path).split(sep).join("/")

/** A confined open's refusal, as the model sees it: its message already says what happened and what to do. */
export const confinementError = (tool: string) => (e: ConfinementError): ToolError => new ToolError({ tool, message: e.message })

/**
 * The canonical path the interceptor judged for this call: the only path a file tool opens (I10). A call
 * that reaches a file tool without one did not go through the judgment, and is refused.
 */
export const judgedPath = (tool: string, judged: JudgedTarget): Effect.Effect<string, ToolError> =>
  judged.path === undefined
    ? Effect.fail(
        new ToolError({
          tool,
          message: `${tool} was given no judged path: it opens only the canonical path the security check resolved for the call, and this call came without one; nothing was opened. Propose the action again through the normal tool call`
        })
      )
    : Effect.succeed(judged.path)

/**
 * A file with several hard links may be another name of a file outside the workspace; it is opened only
 * when the judgment already placed it outside (and the action was allowed as such).
 */
export const hardLinksAllowed = (judged: JudgedTarget): boolean => judged.insideWorkspace === false

/** A NUL byte in the first 8 KiB is how git and grep tell binary from text too. */
export const looksBinary = (bytes: Uint8Array): boolean => bytes.subarray(0, 8192).includes(0)

/**
 * Directories no search descends into: version control and dependency trees, and the runtime's own state
 * in a workspace (`.astrid/`), which is never the agent's (I10).
 */
export const SKIPPED_DIRECTORIES: ReadonlySet<string> = new Set([".git", "node_modules", ".astrid"])
