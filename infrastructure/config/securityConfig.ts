/**
 * The `[security]` settings: read from $ASTRID_HOME/config.toml (the user's, set by an administrator),
 * then tightened, never loosened, by the workspace's `.astrid/config.toml`.
 *
 *   [security]
 *   workspace_mode = "guided"           # safe | guided | autonomous
 *   escape_policy = "ask"               # ask | deny | allow: actions outside the workspace
 *   approval_timeout_secs = 300         # then the action is deferred to the approval queue
 *   allow_always_ttl_secs = 3600        # lifetime of an Allow Always token
 *   pre_approved = []                   # resource globs that pass without asking, e.g. "mcp://docs:search"
 *   pass_env = []                       # credential-looking variables `bash` still gets: "GITHUB_TOKEN", "GH_*"
 *
 *   [security.policy]                   # hard limits; leaving a list out keeps the built-in defaults
 *   blocked_commands = [...]  denied_paths = [...]  allowed_paths = []  denied_hosts = []
 *   allowed_hosts = []  max_argument_bytes = 1048576  always_ask_tools = []
 *
 *   [security.budget]                   # integer micro-dollars (1 USD = 1000000)
 *   per_action_micros = 1000000  per_session_micros = 10000000  per_workspace_micros = 100000000
 *   warn_at_percent = 80
 *
 *   [security.tokens]
 *   trusted_issuers = []                # hex ed25519 public keys; empty = the local runtime keys
 *   clock_skew_secs = 30
 *
 * `bash` runs with the environment scrubbed: no `ASTRID_*` variable and no provider key variable, ever, and
 * no variable whose name looks like a credential (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`,
 * `*_CREDENTIALS`, `*_KEY`, ...) unless `pass_env` names it or, with a trailing `*`, a prefix of it. A
 * workspace's `pass_env` can only drop entries of the user's.
 */
import { Effect, Schema } from "effect"
import { realpathSync } from "node:fs"
import { homedir } from "node:os"
import { join, resolve } from "node:path"
import type { SecuritySettings } from "../../application/security/securityInterceptor.js"
import { DEFAULT_POLICY, type SecurityPolicy } from "../../domain/security/policy.js"
import type { ProtectedState } from "../../domain/security/protectedState.js"
import { tighten, type WorkspaceSecuritySettings } from "../../domain/security/workspaceBoundary.js"
import { type ConfigError, readTomlFile } from "./astridConfig.js"

const Strings = Schema.Array(Schema.String)
const Mode = Schema.Literal("safe", "guided", "autonomous")
const Escape = Schema.Literal("ask", "deny", "allow")

const PolicySection = Schema.Struct({
  blocked_commands: Schema.optional(Strings),
  denied_paths: Schema.optional(Strings),
  allowed_paths: Schema.optional(Strings),
  denied_hosts: Schema.optional(Strings),
  allowed_hosts: Schema.optional(Strings),
  max_argument_bytes: Schema.optional(Schema.NonNegativeInt),
  always_ask_tools: Schema.optional(Strings)
})

const SecuritySection = Schema.Struct({
  workspace_mode: Schema.optional(Mode),
  escape_policy: Schema.optional(Escape),
  approval_timeout_secs: Schema.optional(Schema.Int.pipe(Schema.between(1, 86_400))),
  allow_always_ttl_secs: Schema.optional(Schema.Int.pipe(Schema.between(1, 30 * 86_400))),
  pre_approved: Schema.optional(Strings),
  pass_env: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*\*?$/, { message: () => "expected a variable name, or a name prefix ending in *" })))
  ),
  policy: Schema.optional(PolicySection),
  budget: Schema.optional(
    Schema.Struct({
      per_action_micros: Schema.optional(Schema.NonNegativeInt),
      per_session_micros: Schema.optional(Schema.NonNegativeInt),
      per_workspace_micros: Schema.optional(Schema.NonNegativeInt),
      warn_at_percent: Schema.optional(Schema.Int.pipe(Schema.between(0, 100)))
    })
  ),
  tokens: Schema.optional(
    Schema.Struct({
      trusted_issuers: Schema.optional(Schema.Array(Schema.String.pipe(Schema.pattern(/^[0-9a-fA-F]{64}$/, { message: () => "expected a 64-hex-digit ed25519 public key" })))),
      clock_skew_secs: Schema.optional(Schema.Int.pipe(Schema.between(0, 600)))
    })
  )
})

const File = Schema.Struct({ security: Schema.optional(SecuritySection) })
type Section = typeof SecuritySection.Type

export const DEFAULT_BUDGET = { perActionMicros: 1_000_000, perSessionMicros: 10_000_000, perWorkspaceMicros: 100_000_000, warnAtPercent: 80 }

const policyOf = (p: Section["policy"], base: SecurityPolicy): SecurityPolicy => ({
  blockedCommands: p?.blocked_commands ?? base.blockedCommands,
  deniedPaths: p?.denied_paths ?? base.deniedPaths,
  allowedPaths: p?.allowed_paths ?? base.allowedPaths,
  deniedHosts: p?.denied_hosts ?? base.deniedHosts,
  allowedHosts: p?.allowed_hosts ?? base.allowedHosts,
  maxArgumentBytes: p?.max_argument_bytes ?? base.maxArgumentBytes,
  alwaysAskTools: p?.always_ask_tools ?? base.alwaysAskTools,
  protectedState: base.protectedState
})

const partialPolicy = (p: Section["policy"]): Partial<SecurityPolicy> => ({
  ...(p?.blocked_commands === undefined ? {} : { blockedCommands: p.blocked_commands }),
  ...(p?.denied_paths === undefined ? {} : { deniedPaths: p.denied_paths }),
  ...(p?.allowed_paths === undefined ? {} : { allowedPaths: p.allowed_paths }),
  ...(p?.denied_hosts === undefined ? {} : { deniedHosts: p.denied_hosts }),
  ...(p?.allowed_hosts === undefined ? {} : { allowedHosts: p.allowed_hosts }),
  ...(p?.max_argument_bytes === undefined ? {} : { maxArgumentBytes: p.max_argument_bytes }),
  ...(p?.always_ask_tools === undefined ? {} : { alwaysAskTools: p.always_ask_tools })
})

/**
 * The runtime's own state as the policy protects it: $ASTRID_HOME as written and as resolved (a link to it
 * must not be a way in), and the user's home for reading `~` in commands.
 */
export const protectedStateOf = (home: string): ProtectedState => {
  const written = resolve(home)
  let real = written
  try {
    real = realpathSync.native(written)
  } catch {
    // Not created yet: what it will be is what is written.
  }
  return { roots: [...new Set([written, real])], home: homedir() }
}

const minOf = (a: number, b: number | undefined): number => (b === undefined ? a : Math.min(a, b))

export interface LoadedSecurity {
  readonly settings: SecuritySettings
  /** Hex public keys named in config; empty means "the local runtime keys". */
  readonly trustedIssuerKeys: ReadonlyArray<string>
  readonly clockSkewMs: number
  /** `pass_env`: the credential-looking variables `bash` keeps (names, or prefixes ending in `*`). */
  readonly passEnv: ReadonlyArray<string>
}

/**
 * The settings for `workspaceRoot` (or the user's alone when null): every workspace value can only make
 * things stricter; pre-approvals and the approval timeout can only shrink.
 */
export const loadSecuritySettings = (home: string, workspaceRoot: string | null): Effect.Effect<LoadedSecurity, ConfigError> =>
  Effect.gen(function* () {
    const user = (yield* readTomlFile(join(home, "config.toml"), File)).security ?? {}
    const ws: Section = workspaceRoot === null ? {} : ((yield* readTomlFile(join(workspaceRoot, ".astrid", "config.toml"), File)).security ?? {})
    const base = {
      mode: user.workspace_mode ?? "guided",
      escapePolicy: user.escape_policy ?? "ask",
      policy: policyOf(user.policy, { ...DEFAULT_POLICY, protectedState: protectedStateOf(home) })
    } as const
    const wsOverrides: WorkspaceSecuritySettings = {
      ...(ws.workspace_mode === undefined ? {} : { mode: ws.workspace_mode }),
      ...(ws.escape_policy === undefined ? {} : { escapePolicy: ws.escape_policy }),
      ...(ws.policy === undefined ? {} : { policy: partialPolicy(ws.policy) })
    }
    const tightened = tighten(base, wsOverrides)
    const userPre = user.pre_approved ?? []
    // A workspace may drop pre-approvals, never add them.
    const preApproved = ws.pre_approved === undefined ? userPre : userPre.filter((p) => ws.pre_approved?.includes(p) === true)
    const userPass = user.pass_env ?? []
    // Like pre-approvals: the repository the agent works in may keep fewer secrets from it, never more.
    const passEnv = ws.pass_env === undefined ? userPass : userPass.filter((p) => ws.pass_env?.includes(p) === true)
    const b = user.budget
    const wb = ws.budget
    return {
      settings: {
        policy: tightened.policy,
        workspaceMode: tightened.mode,
        escapePolicy: tightened.escapePolicy,
        approvalTimeoutMs: minOf(user.approval_timeout_secs ?? 300, ws.approval_timeout_secs) * 1000,
        allowAlwaysTtlMs: minOf(user.allow_always_ttl_secs ?? 3600, ws.allow_always_ttl_secs) * 1000,
        preApproved,
        budget: {
          perActionMicros: minOf(b?.per_action_micros ?? DEFAULT_BUDGET.perActionMicros, wb?.per_action_micros),
          perSessionMicros: minOf(b?.per_session_micros ?? DEFAULT_BUDGET.perSessionMicros, wb?.per_session_micros),
          perWorkspaceMicros: minOf(b?.per_workspace_micros ?? DEFAULT_BUDGET.perWorkspaceMicros, wb?.per_workspace_micros),
          warnAtPercent: minOf(b?.warn_at_percent ?? DEFAULT_BUDGET.warnAtPercent, wb?.warn_at_percent)
        }
      },
      trustedIssuerKeys: (user.tokens?.trusted_issuers ?? []).map((k) => k.toLowerCase()),
      clockSkewMs: (user.tokens?.clock_skew_secs ?? 30) * 1000,
      passEnv
    }
  })
