/**
 * File-system helpers the built-in tools share: where a tool's path points, walking a tree for glob and
 * grep, telling text from binary, and turning Node's errors into messages a model can act on.
 */
import { Effect } from "effect"
import { readdir, stat } from "node:fs/promises"
import { isAbsolute, join, relative, resolve, sep } from "node:path"
import { ToolError } from "../../application/tools/tool.js"

/** A tool's path, absolute or relative to the workspace root (the same base the interceptor judges). */
export const toolPath = (workspaceRoot: string, path: string | undefined): string =>
  path === undefined || path === "" ? resolve(workspaceRoot) : isAbsolute(path) ? resolve(path) : resolve(workspaceRoot, path)

/** `path` relative to `base` with `/` separators, as glob patterns are written. */
export const slashRelative = (base: string, path: string): string => relative(base, path).split(sep).join("/")

const codeOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

export const fsError = (tool: string, path: string) => (e: unknown): ToolError => {
  const code = codeOf(e)
  const message =
    code === "ENOENT"
      ? `${path} does not exist; check the path with list_directory or glob`
      : code === "EISDIR"
        ? `${path} is a directory; use list_directory to see what it holds`
        : code === "ENOTDIR"
          ? `${path}: a component of the path is a file, not a directory`
          : code === "EACCES" || code === "EPERM"
            ? `${path}: permission denied by the operating system`
            : `${path}: ${e instanceof Error ? e.message : String(e)}`
  return new ToolError({ tool, message })
}

export const tryFs = <A>(tool: string, path: string, f: () => Promise<A>): Effect.Effect<A, ToolError> =>
  Effect.tryPromise({ try: f, catch: fsError(tool, path) })

/** A NUL byte in the first 8 KiB is how git and grep tell binary from text too. */
export const looksBinary = (bytes: Uint8Array): boolean => bytes.subarray(0, 8192).includes(0)

/** Directories no search should descend into: version control and dependency trees. */
const SKIPPED = new Set([".git", "node_modules"])

export interface WalkedFile {
  readonly path: string
  readonly mtimeMs: number
  readonly size: number
}

/** Every regular file below `root` (symbolic links are not followed), up to `limit` files. */
export const walkFiles = async (root: string, limit: number): Promise<ReadonlyArray<WalkedFile>> => {
  const found: Array<WalkedFile> = []
  const pending: Array<string> = [root]
  while (pending.length > 0 && found.length < limit) {
    const dir = pending.pop()
    if (dir === undefined) break
    let entries
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch {
      continue
    }
    for (const entry of entries) {
      const full = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (!SKIPPED.has(entry.name)) pending.push(full)
      } else if (entry.isFile()) {
        try {
          const s = await stat(full)
          found.push({ path: full, mtimeMs: s.mtimeMs, size: s.size })
        } catch {
          // Deleted while walking: nothing to report.
        }
        if (found.length >= limit) break
      }
    }
  }
  return found
}
