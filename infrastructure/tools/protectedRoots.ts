/**
 * The runtime's own state as the built-in tools meet it (I10): the `$ASTRID_HOME` folders the policy protects
 * (`SecurityPolicy.protectedState.roots`), handed to the tools where a session is set up, so that a tool
 * walking a folder skips them and `bash` can hide them from its command.
 */
import { realpathSync } from "node:fs"
import { protectedPath } from "../../domain/security/protectedState.js"
import { resolveHome } from "../config/astridConfig.js"
import { protectedStateOf } from "../config/securityConfig.js"

/**
 * The roots of the home this process would use (`$ASTRID_HOME`, else `~/.astrid`), as written and as
 * resolved. Only for tools built without the session's settings (tests, the demo): a session passes its own.
 */
export const defaultProtectedRoots: ReadonlyArray<string> = protectedStateOf(resolveHome(process.env)).roots

/** Does the canonical `path` lie in a protected root or in a folder named `.astrid`? The root it falls under, or undefined. */
export const protectedRootOf = (roots: ReadonlyArray<string>, canonicalPath: string): string | undefined => protectedPath({ roots }, canonicalPath)?.root

/**
 * The roots that exist now, resolved, each only once and none inside another: what a command's mount
 * namespace covers. A root not there yet holds nothing to hide.
 */
export const existingRoots = (roots: ReadonlyArray<string>): ReadonlyArray<string> => {
  const real = new Set<string>()
  for (const root of roots) {
    try {
      real.add(realpathSync.native(root))
    } catch {
      // Not created (or not reachable): nothing of it to hide.
    }
  }
  // Once a root is covered, a root inside it is out of sight already (and could not be mounted over).
  const outermost: Array<string> = []
  for (const root of [...real].sort((a, b) => a.length - b.length)) {
    if (!outermost.some((o) => root.startsWith(o === "/" ? o : `${o}/`))) outermost.push(root)
  }
  return outermost
}
