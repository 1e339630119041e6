/**
 * The workspace boundary: how much an agent may do without asking, by where a file action lands, and how a
 * workspace's own config may only tighten the user's security settings.
 *
 * `boundaryVerdict` (after the policy found no block; "ask" still lets a token or a standing allowance
 * cover the action before a human is asked, "pass" needs no approval, "deny" refuses):
 *
 *   action                             safe    guided   autonomous
 *   file read inside the workspace     ask     pass     pass
 *   file write/delete inside           ask     ask      pass
 *   file action outside, escape=deny   deny    deny     deny
 *   file action outside, escape=ask    ask     ask      ask
 *   file action outside, escape=allow  ask     as inside (read pass, write/delete ask)   pass
 *   agent identity read (spark)        ask     pass     pass
 *   agent identity evolve (spark)      ask     ask      ask   (alwaysAsk: no token, allowance or pre-approval)
 *   anything else (exec, network, MCP, capsule http/process, transmission, spawn)
 *                                      ask     ask      ask
 *   financial, access control, capability grant: always ask (they are alwaysAsk)
 *
 * Autonomous mode passes only file actions inside the workspace: running programs, reaching the network or
 * calling tools has effects beyond the workspace that the boundary cannot see, so those need a token, an
 * allowance or a human. A file action whose path could not be placed (insideWorkspace null) is outside.
 * The agent's identity is not the workspace's: it belongs to the principal across every workspace and
 * shapes every later session's system prompt, so no workspace's mode can let a change to it pass (one
 * autonomous workspace with a hostile README must not plant a standing instruction).
 */
import type { ClassifiedAction } from "./action.js"
import { hasDotDotSegment } from "./glob.js"
import type { SecurityPolicy } from "./policy.js"

export type WorkspaceMode = "safe" | "guided" | "autonomous"
export type EscapePolicy = "ask" | "deny" | "allow"
export type BoundaryVerdict = "pass" | "ask" | "deny"

type FileAccess = "read" | "modify"

const fileAccess = (action: ClassifiedAction): FileAccess | null => {
  const request = action.request
  switch (request._tag) {
    case "file_read":
      return "read"
    case "file_write":
    case "file_delete":
      return "modify"
    case "capsule_file":
      return request.write ? "modify" : "read"
    case "agent_identity":
      return request.changes === undefined ? "read" : "modify"
    default:
      return null
  }
}

const insideVerdict = (mode: WorkspaceMode, access: FileAccess): BoundaryVerdict => {
  switch (mode) {
    case "safe":
      return "ask"
    case "guided":
      return access === "read" ? "pass" : "ask"
    case "autonomous":
      return "pass"
  }
}

export const boundaryVerdict = (mode: WorkspaceMode, escapePolicy: EscapePolicy, action: ClassifiedAction): BoundaryVerdict => {
  const access = fileAccess(action)
  if (access === null || action.alwaysAsk) return "ask"
  // A read of the agent's identity is judged like a file read inside the workspace; a change always asks
  // (it is alwaysAsk too; this holds even for a classification that forgot to say so).
  if (action.kind === "agent_identity") return access === "read" ? insideVerdict(mode, access) : "ask"
  if (action.insideWorkspace === true) return insideVerdict(mode, access)
  switch (escapePolicy) {
    case "deny":
      return "deny"
    case "ask":
      return "ask"
    case "allow":
      return insideVerdict(mode, access)
  }
}

/** Security settings as they apply to one workspace. */
export interface SecuritySettings {
  readonly mode: WorkspaceMode
  readonly escapePolicy: EscapePolicy
  readonly policy: SecurityPolicy
}

/** What a workspace's `.astrid/config.toml` may say; every field only tightens. */
export interface WorkspaceSecuritySettings {
  readonly mode?: WorkspaceMode
  readonly escapePolicy?: EscapePolicy
  readonly policy?: Partial<SecurityPolicy>
}

const MODE_STRICTNESS: Readonly<Record<WorkspaceMode, number>> = { safe: 2, guided: 1, autonomous: 0 }
const ESCAPE_STRICTNESS: Readonly<Record<EscapePolicy, number>> = { deny: 2, ask: 1, allow: 0 }

/** The stricter of two modes: safe > guided > autonomous. */
export const stricterMode = (a: WorkspaceMode, b: WorkspaceMode): WorkspaceMode => (MODE_STRICTNESS[b] > MODE_STRICTNESS[a] ? b : a)

/** The stricter of two escape policies: deny > ask > allow. */
export const stricterEscape = (a: EscapePolicy, b: EscapePolicy): EscapePolicy => (ESCAPE_STRICTNESS[b] > ESCAPE_STRICTNESS[a] ? b : a)

/** Combines the user's settings with a workspace's, keeping the stricter value of every setting. */
export const tighten = (user: SecuritySettings, workspace: WorkspaceSecuritySettings): SecuritySettings => ({
  mode: workspace.mode === undefined ? user.mode : stricterMode(user.mode, workspace.mode),
  escapePolicy: workspace.escapePolicy === undefined ? user.escapePolicy : stricterEscape(user.escapePolicy, workspace.escapePolicy),
  policy: workspace.policy === undefined ? user.policy : tightenPolicy(user.policy, workspace.policy)
})

const union = (a: ReadonlyArray<string>, b: ReadonlyArray<string> | undefined): ReadonlyArray<string> => (b === undefined ? a : [...new Set([...a, ...b])])

/**
 * The user's policy narrowed by a workspace's: blocked commands, denied paths and hosts and always-ask tools
 * are unioned, the argument limit is the smaller one, and allowed lists can only shrink.
 *
 * Allowed lists: an empty list means "no allow-list", so a workspace list replaces an empty user list, and
 * against a non-empty user list each workspace entry is kept only if it provably lies inside a user entry
 * (the same entry, or under a user entry `P/**` with a literal P; for hosts, under `*` or `*.domain`).
 * Entries that cannot be shown to lie inside are dropped, and if none is left, nothing is allowed: the
 * result then denies `/**` (or every host `*`) rather than produce an empty list, which would allow all.
 */
export const tightenPolicy = (user: SecurityPolicy, workspace: Partial<SecurityPolicy>): SecurityPolicy => {
  const paths = narrowAllowed(user.allowedPaths, workspace.allowedPaths, pathPatternCovers)
  const hosts = narrowAllowed(user.allowedHosts, workspace.allowedHosts, hostPatternCovers)
  const wsMax = workspace.maxArgumentBytes
  // A workspace value that is not a non-negative number cannot be trusted to mean anything looser: 0.
  const maxArgumentBytes = wsMax === undefined ? user.maxArgumentBytes : Math.min(user.maxArgumentBytes, wsMax >= 0 ? wsMax : 0)
  return {
    blockedCommands: union(user.blockedCommands, workspace.blockedCommands),
    deniedPaths: union(union(user.deniedPaths, workspace.deniedPaths), paths.nothing ? ["/**"] : []),
    allowedPaths: paths.allowed,
    deniedHosts: union(union(user.deniedHosts, workspace.deniedHosts), hosts.nothing ? ["*"] : []),
    allowedHosts: hosts.allowed,
    maxArgumentBytes,
    alwaysAskTools: union(user.alwaysAskTools, workspace.alwaysAskTools),
    // Protected state comes from the runtime, never from a workspace: a workspace can add nothing to it and
    // take nothing from it.
    protectedState: user.protectedState
  }
}

const narrowAllowed = (
  user: ReadonlyArray<string>,
  workspace: ReadonlyArray<string> | undefined,
  covers: (outer: string, inner: string) => boolean
): { readonly allowed: ReadonlyArray<string>; readonly nothing: boolean } => {
  if (workspace === undefined || workspace.length === 0) return { allowed: user, nothing: false }
  if (user.length === 0) return { allowed: [...new Set(workspace)], nothing: false }
  const kept = [...new Set(workspace.filter((w) => user.some((u) => covers(u, w))))]
  return kept.length === 0 ? { allowed: user, nothing: true } : { allowed: kept, nothing: false }
}

const GLOB_CHARS = /[*?[\\]/

/** Does every path matched by `inner` also match `outer`? Only answers yes when that is certain. */
export const pathPatternCovers = (outer: string, inner: string): boolean => {
  if (hasDotDotSegment(inner)) return false
  if (outer === inner || outer === "**" || outer === "/**") return outer !== "/**" || inner.startsWith("/")
  if (!outer.endsWith("/**")) return false
  const base = outer.slice(0, -3)
  if (GLOB_CHARS.test(base)) return false
  const firstGlob = inner.search(GLOB_CHARS)
  if (firstGlob === -1) return inner === base || inner.startsWith(`${base}/`)
  // Every match of `inner` starts with its literal prefix (up to the first glob character); the prefix must
  // already be below `base/`, or "/home/me*" would pass for "/home/me/**" while matching "/home/mex".
  return inner.slice(0, firstGlob).startsWith(`${base}/`)
}

/** Does every host matched by `inner` also match `outer`? */
export const hostPatternCovers = (outer: string, inner: string): boolean => {
  const o = outer.trim().toLowerCase().replace(/\.$/, "")
  const i = inner.trim().toLowerCase().replace(/\.$/, "")
  if (o === "*") return true
  if (o === i) return true
  if (!o.startsWith("*.")) return false
  const suffix = o.slice(1)
  // "*.a.com" covers "x.a.com", "*.x.a.com" and "*.a.com", never "a.com" itself.
  const bare = i.startsWith("*.") ? i.slice(2) : i
  return i !== "*" && (bare.endsWith(suffix) || (i.startsWith("*.") && `.${bare}` === suffix))
}
