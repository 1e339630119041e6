/**
 * Where a requested path really points, so that the policy and the workspace boundary judge the file the
 * operating system would open, not the text the agent wrote: symbolic links and `..` are resolved against the
 * file system, and a link inside the workspace that points to /etc is reported as /etc.
 */
import { Context, Data, type Effect } from "effect"

export interface ResolvedPath {
  /** Absolute path with every symbolic link and `..` resolved (components that do not exist yet appended). */
  readonly canonical: string
  /** The workspace root, resolved the same way. */
  readonly root: string
  /** `canonical` is the root or below it. */
  readonly insideWorkspace: boolean
  /**
   * `canonical` exists, is a regular file and has more than one hard link: the same file may also be
   * reachable by a name outside the workspace, so its place in the tree does not prove where it belongs.
   */
  readonly hardLinked: boolean
}

export class PathResolutionError extends Data.TaggedError("PathResolutionError")<{
  readonly path: string
  readonly message: string
}> {}

export interface PathResolverApi {
  /**
   * Resolves `requested` (absolute, or relative to `workspaceRoot`). Fails when the root does not exist,
   * when the path has a NUL byte, a symbolic-link loop, a file used as a directory, or a `..` below a
   * component that does not exist (which no one can place): callers must treat failure as refusal.
   */
  readonly resolve: (workspaceRoot: string, requested: string) => Effect.Effect<ResolvedPath, PathResolutionError>
}

export class PathResolver extends Context.Tag("astrid/PathResolver")<PathResolver, PathResolverApi>() {}
