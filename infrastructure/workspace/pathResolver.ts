/**
 * The file-system implementation of the PathResolver port: path confinement for the workspace boundary.
 *
 * The requested path is walked one component at a time, as the kernel walks it: each existing component is
 * replaced by its realpath (so a symbolic link is followed, and on a case-insensitive file system the name
 * takes its on-disk case), `..` goes to the parent of the already resolved directory (so `link/..` is the
 * parent of the link's target, not the directory holding the link), and a dangling symbolic link is followed
 * by reading it, because writing through it would create its target. The first component that does not
 * exist ends the walk: the rest is appended as written, and a `..` in that rest is refused.
 *
 * A regular file with more than one hard link is flagged (`hardLinked`): another of its names may lie
 * outside the workspace, and no walk can tell which name is the "real" one.
 *
 * The result holds at the moment of the check; a tool opens exactly the canonical path and checks that
 * what it opened is still that file (infrastructure/workspace/confinedFs.ts). POSIX paths only.
 */
import { Effect, Either, Layer } from "effect"
import { lstatSync, readlinkSync, realpathSync } from "node:fs"
import { PathResolutionError, PathResolver, type ResolvedPath } from "../../application/ports/pathResolver.js"
import { messageOf } from "../../domain/errorMessage.js"

// As Linux's MAXSYMLINKS: more links than this on one walk is a loop.
const MAX_SYMLINKS = 40

const errorCode = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined


const join = (dir: string, name: string): string => (dir === "/" ? `/${name}` : `${dir}/${name}`)

const parent = (dir: string): string => {
  const at = dir.lastIndexOf("/")
  return at <= 0 ? "/" : dir.slice(0, at)
}

/** Is `path` the root or below it? Both are canonical. */
export const isWithin = (root: string, path: string): boolean => path === root || path.startsWith(root === "/" ? "/" : `${root}/`)

/** Resolves `requested` against `workspaceRoot` on the real file system; never throws. */
export const resolveWorkspacePath = (workspaceRoot: string, requested: string): Either.Either<ResolvedPath, PathResolutionError> => {
  const fail = (message: string) => Either.left(new PathResolutionError({ path: requested, message }))
  if (requested === "") return fail("the path is empty")
  if (requested.includes("\u0000") || workspaceRoot.includes("\u0000")) return fail("the path contains a NUL byte")
  let root: string
  try {
    root = realpathSync.native(workspaceRoot)
  } catch (e) {
    return fail(`the workspace root ${workspaceRoot} cannot be resolved (${errorCode(e) ?? messageOf(e)}); check that it exists`)
  }
  try {
    const walked = walk(requested.startsWith("/") ? "/" : root, requested.split("/"))
    if (walked._tag === "Left") return fail(walked.left)
    return Either.right({ canonical: walked.right, root, insideWorkspace: isWithin(root, walked.right), hardLinked: isHardLinked(walked.right) })
  } catch (e) {
    return fail(`${requested} cannot be resolved: ${errorCode(e) ?? messageOf(e)}`)
  }
}

/** A regular file at `canonical` (which holds no symbolic link) with more than one link; false when absent. */
const isHardLinked = (canonical: string): boolean => {
  const s = lstatSync(canonical, { throwIfNoEntry: false })
  return s !== undefined && s.isFile() && s.nlink > 1
}

const walk = (start: string, components: ReadonlyArray<string>): Either.Either<string, string> => {
  let current = start
  const queue = [...components]
  let links = 0
  for (;;) {
    const name = queue.shift()
    if (name === undefined) return Either.right(current)
    if (name === "" || name === ".") continue
    if (name === "..") {
      // `current` holds no symbolic links, so its textual parent is its real parent.
      current = parent(current)
      continue
    }
    const next = join(current, name)
    let real: string | null = null
    try {
      real = realpathSync.native(next)
    } catch (e) {
      const code = errorCode(e)
      if (code === "ELOOP") return Either.left(`${next}: too many levels of symbolic links`)
      if (code === "ENOTDIR") return Either.left(`${current} is not a directory`)
      if (code !== "ENOENT") return Either.left(`${next} cannot be resolved (${code ?? messageOf(e)})`)
    }
    if (real !== null) {
      current = real
      continue
    }
    // ENOENT: either `next` does not exist, or it is a symbolic link whose target does not (yet) exist.
    let isLink = false
    try {
      isLink = lstatSync(next).isSymbolicLink()
    } catch (e) {
      if (errorCode(e) !== "ENOENT") return Either.left(`${next} cannot be inspected (${errorCode(e) ?? messageOf(e)})`)
    }
    if (isLink) {
      links++
      if (links > MAX_SYMLINKS) return Either.left(`${next}: too many levels of symbolic links`)
      const target = readlinkSync(next)
      if (target.startsWith("/")) current = "/"
      queue.unshift(...target.split("/"))
      continue
    }
    const rest = [name, ...queue].filter((c) => c !== "" && c !== ".")
    if (rest.includes("..")) {
      return Either.left(`'..' follows ${next}, which does not exist, so where the path leads cannot be known; request the path without '..'`)
    }
    return Either.right(rest.reduce(join, current))
  }
}

export const PathResolverLive: Layer.Layer<PathResolver> = Layer.succeed(PathResolver, {
  // Synchronous realpath/lstat: a handful of cached metadata lookups, cheaper than a hop through the
  // thread pool on the interceptor's hot path.
  resolve: (workspaceRoot, requested) => Effect.suspend(() => resolveWorkspacePath(workspaceRoot, requested))
})
