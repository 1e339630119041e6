/**
 * Action classification: turns a proposed `ActionRequest` into what the rest of the security flow reasons
 * about: a resource URI (what tokens and allowances match), the permission it needs, a risk level and a
 * one-line summary for the approver, and whether a file action stays inside the workspace.
 *
 * Resource URIs:
 *   file_read / file_write / file_delete   file:///canonical/path
 *   command_exec                           exec://program        (the first program the line runs)
 *   network_request                        net://host[:port]/path
 *   data_transmission                      net://host[:port]/path (or net://destination if it is not a URL)
 *   mcp_tool_call                          mcp://server:tool
 *   capsule_http / _file / _process        capsule://id:http, capsule://id:file, capsule://id:process
 *   financial_transaction                  fin://counterparty
 *   access_control_change                  acl://target
 *   capability_grant                       grant://resource
 *   subagent_spawn                         agent://spawn
 *   agent_identity                         identity://principal
 *
 * Risk, shown to the approver (the policy and the workspace boundary decide; risk only informs):
 *   kind                      inside workspace   outside    permission
 *   file_read                 low                medium     read
 *   file_write                medium             high       write
 *   file_delete               high               high       delete
 *   capsule_file              as file_read / file_write     read / write
 *   command_exec              high, critical when the line runs a privilege or disk-wiping program
 *                             (sudo, su, doas, pkexec, run0, mkfs*, dd, shred, wipefs, fdisk, parted,
 *                             shutdown/reboot/halt/poweroff/init), `rm` with both -r and -f,
 *                             chmod/chown/chgrp -R, a program computed at run time, or does not parse
 *                                                                   execute
 *   capsule_process           as command_exec                       execute
 *   network_request           medium                                connect
 *   capsule_http              medium                                connect
 *   data_transmission         high (data leaves the machine)        transmit
 *   mcp_tool_call             medium                                invoke
 *   subagent_spawn            medium, Allow Once only               spawn
 *   agent_identity            read low; evolve high, always asks a  read / write
 *                             human, Allow Once only (it shapes the
 *                             system prompt of every later session)
 *   financial_transaction     critical, always asks a human         transact
 *   access_control_change     critical, always asks a human         admin
 *   capability_grant          critical, always asks a human         grant
 *
 * Allow Once only (`onceOnly`): what a standing allowance or token matches is the resource, and for a
 * spawn (`agent://spawn`) or an identity change (`identity://principal`) the resource says nothing of what
 * was approved: the child's tools, paths, budget and task, or the new identity. An Allow Session there
 * would pass every later spawn or identity change unasked, whatever it contains; so every such action is
 * approved on its own. The kinds that always ask are once-only too: no standing grant is ever consulted
 * for them, so none is recorded.
 *
 * The domain does no I/O: the caller resolves file paths (realpath, PathResolver) and passes the canonical
 * path and the canonical workspace root. Without a canonical path the path is joined to the root as written
 * (`..` included, so the policy refuses it) and counted as outside the workspace.
 */
import type { ActionRequest, ClassifiedAction, Permission, Risk } from "./action.js"
import { commandLineResource } from "./commandGrant.js"
import { parseCommandLine, type CommandLine } from "./commandLine.js"

export interface ClassifyContext {
  /** Canonical (realpath'd) workspace root. */
  readonly workspaceRoot: string
  /** Canonical form of the request's path, for the kinds that have one. */
  readonly canonicalPath?: string
  /**
   * The path is a regular file with more than one hard link: another name of it may lie outside the
   * workspace, so it is not counted as inside.
   */
  readonly hardLinked?: boolean
}

export const classify = (request: ActionRequest, ctx: ClassifyContext): ClassifiedAction => {
  const base = { request, kind: request._tag, insideWorkspace: null, alwaysAsk: false, onceOnly: false } as const
  const always = { alwaysAsk: true, onceOnly: true } as const
  switch (request._tag) {
    case "file_read":
    case "file_write":
    case "file_delete": {
      const file = fileTarget(request.path, ctx)
      const risk: Risk =
        request._tag === "file_read" ? (file.inside ? "low" : "medium") : request._tag === "file_write" ? (file.inside ? "medium" : "high") : "high"
      const permission: Permission = request._tag === "file_read" ? "read" : request._tag === "file_write" ? "write" : "delete"
      const verb = request._tag === "file_read" ? "read" : request._tag === "file_write" ? "write" : "delete"
      const size = request._tag === "file_write" && request.bytes !== undefined ? ` (${request.bytes} bytes)` : ""
      const later = runsLaterChange(request._tag !== "file_read", file.path)
      return {
        ...base,
        resource: `file://${file.path}`,
        permission,
        risk: later.risk ?? risk,
        summary: `${verb} ${show(file.path)}${size}${file.inside ? "" : " (outside the workspace)"}${later.note}`,
        insideWorkspace: file.inside,
        path: file.path,
        ...later.asks
      }
    }
    case "command_exec": {
      const exec = execTarget(request.command)
      const cwd = request.cwd === undefined ? "" : ` (in ${show(request.cwd)})`
      return { ...base, resource: `exec://${exec.program}`, permission: "execute", risk: exec.risk, summary: `run: ${show(request.command)}${cwd}` }
    }
    case "network_request": {
      const net = netTarget(request.url)
      return {
        ...base,
        resource: net.resource,
        permission: "connect",
        risk: "medium",
        summary: `${show(request.method.toUpperCase())} ${show(request.url)}`,
        ...(net.host === null ? {} : { host: net.host })
      }
    }
    case "data_transmission": {
      const net = netTarget(request.destination)
      return {
        ...base,
        resource: net.resource,
        permission: "transmit",
        risk: "high",
        summary: `send ${request.bytes} bytes to ${show(request.destination)}`,
        ...(net.host === null ? {} : { host: net.host })
      }
    }
    case "mcp_tool_call":
      return {
        ...base,
        resource: `mcp://${request.server}:${request.tool}`,
        permission: "invoke",
        risk: "medium",
        summary: `call MCP tool ${show(request.tool)} on server ${show(request.server)}`
      }
    case "capsule_http": {
      const net = netTarget(request.url)
      return {
        ...base,
        resource: `capsule://${request.capsule}:http`,
        permission: "connect",
        risk: "medium",
        summary: `capsule ${show(request.capsule)}: ${show(request.method.toUpperCase())} ${show(request.url)}`,
        ...(net.host === null ? {} : { host: net.host })
      }
    }
    case "capsule_file": {
      const file = fileTarget(request.path, ctx)
      const risk: Risk = request.write ? (file.inside ? "medium" : "high") : file.inside ? "low" : "medium"
      const later = runsLaterChange(request.write, file.path)
      return {
        ...base,
        resource: `capsule://${request.capsule}:file`,
        permission: request.write ? "write" : "read",
        risk: later.risk ?? risk,
        summary: `capsule ${show(request.capsule)}: ${request.write ? "write" : "read"} ${show(file.path)}${file.inside ? "" : " (outside the workspace)"}${later.note}`,
        insideWorkspace: file.inside,
        path: file.path,
        ...later.asks
      }
    }
    case "capsule_process": {
      const exec = execTarget(request.command)
      return {
        ...base,
        resource: `capsule://${request.capsule}:process`,
        permission: "execute",
        risk: exec.risk,
        summary: `capsule ${show(request.capsule)}: run ${show(request.command)}`
      }
    }
    case "financial_transaction":
      return {
        ...base,
        resource: `fin://${request.counterparty}`,
        permission: "transact",
        risk: "critical",
        ...always,
        summary: `pay ${formatMicros(request.amountMicros)} ${show(request.currency)} to ${show(request.counterparty)}`
      }
    case "access_control_change":
      return {
        ...base,
        resource: `acl://${request.target}`,
        permission: "admin",
        risk: "critical",
        ...always,
        summary: `change access control of ${show(request.target)}: ${show(request.change)}`
      }
    case "capability_grant":
      return {
        ...base,
        resource: `grant://${request.resource}`,
        permission: "grant",
        risk: "critical",
        ...always,
        summary: `grant ${show(request.permissions.join(", ") || "no permissions")} on ${show(request.resource)}`
      }
    case "subagent_spawn":
      return { ...base, onceOnly: true, resource: "agent://spawn", permission: "spawn", risk: "medium", summary: spawnSummary(request) }
    case "agent_identity": {
      const resource = `identity://${request.principal}`
      if (request.changes === undefined) return { ...base, resource, permission: "read", risk: "low", summary: `read the agent identity of ${show(request.principal)}` }
      const changes = Object.entries(request.changes).map(([field, value]) => `${field} = ${JSON.stringify(value)}`)
      // High and always asked: the identity is the principal's across every workspace and goes into the
      // system prompt of every later session, so one workspace's content must not plant it unreviewed.
      return {
        ...base,
        ...always,
        resource,
        permission: "write",
        risk: "high",
                // Shown whole (each value is bounded by the spark tool): a standing instruction must not hide past a cut.
        summary: `evolve the agent identity of ${show(request.principal)} (it goes into the system prompt of every later session): ${show(changes.join(", "), IDENTITY_SUMMARY_MAX)}`
      }
    }
  }
}

/** Characters of a sub-agent's task text the approver sees in the one-line summary. */
export const SPAWN_PROMPT_EXCERPT = 200

/**
 * What the approver reads for a spawn: the description quoted (so it cannot pass for the other fields),
 * then what the child would get, and the start of what it will be told.
 */
const spawnSummary = (request: Extract<ActionRequest, { _tag: "subagent_spawn" }>): string => {
  // A request recorded before the structured fields existed carries its whole description in `task`.
  if (request.prompt === undefined) return `spawn a sub-agent: ${show(request.task)}`
  const parts = [
    `tools: ${request.tools === undefined ? "(the parent's)" : show(request.tools.join(", ") || "none")}`,
    ...(request.paths === undefined || request.paths.length === 0 ? [] : [`paths: ${show(request.paths.join(", "))}`]),
    `budget: ${request.budgetMicros === undefined ? "default share" : `${formatMicros(request.budgetMicros)} USD`}`,
    ...(request.timeoutSeconds === undefined ? [] : [`timeout: ${request.timeoutSeconds} s`]),
    `task: ${quoted(excerpt(request.prompt, SPAWN_PROMPT_EXCERPT), SPAWN_PROMPT_EXCERPT * 2)}`
  ]
  return `spawn a sub-agent ${quoted(request.task)}; ${parts.join("; ")}`
}

const quoted = (text: string, max?: number): string => `"${show(text, max).replace(/"/g, '\\"')}"`

/** The first `max` characters of `text` (code points), with a visible count of the rest. */
const excerpt = (text: string, max: number): string => {
  const chars = [...text]
  return chars.length <= max ? text : `${chars.slice(0, max).join("")}… (+${chars.length - max} more characters)`
}

/** Approval scopes an approver may be offered: all of them, or only once for a once-only action. */
export type OfferedScope = "once" | "session" | "workspace" | "always"

export const offeredScopes = (action: ClassifiedAction): ReadonlyArray<OfferedScope> =>
  action.onceOnly ? ["once"] : lineTooLongForToken(action) ? ["once", "session", "workspace"] : ["once", "session", "workspace", "always"]

// Allow Always mints a token for exactly the command line; a line whose encoded form is longer than a token's
// resource may be gets no token at all rather than a shorter, wider one.
const MAX_TOKEN_RESOURCE = 2048
const lineTooLongForToken = (action: ClassifiedAction): boolean =>
  action.request._tag === "command_exec" && commandLineResource(action.request.command).length > MAX_TOKEN_RESOURCE

/**
 * The scope an approval really gets: the one answered if it was offered, otherwise once. A wider answer
 * from a channel that ignored what was offered still approves the action the approver saw (a narrower
 * grant than the one given), but never leaves a standing allowance or token behind.
 */
export const effectiveScope = (action: ClassifiedAction, answered: OfferedScope): OfferedScope => (offeredScopes(action).includes(answered) ? answered : "once")

const stripTrailingSlash = (p: string): string => (p.length > 1 ? p.replace(/\/+$/, "") : p)

/** Is the canonical `path` the root or below it? */
export const isInside = (root: string, path: string): boolean => {
  const r = stripTrailingSlash(root)
  return path === r || path.startsWith(r === "/" ? "/" : `${r}/`)
}

const isCanonical = (p: string): boolean => p.startsWith("/") && (p === "/" || !p.slice(1).split("/").some((s) => s === "" || s === "." || s === ".."))

const fileTarget = (requested: string, ctx: ClassifyContext): { path: string; inside: boolean } => {
  if (ctx.canonicalPath !== undefined) {
    const path = ctx.canonicalPath
    return {
      path,
      inside: ctx.hardLinked !== true && isCanonical(path) && isCanonical(stripTrailingSlash(ctx.workspaceRoot)) && isInside(ctx.workspaceRoot, path)
    }
  }
  // Not resolved by the caller: keep it as written so that `..` stays visible to the policy, and never call it inside.
  const path = requested.startsWith("/") ? requested : `${stripTrailingSlash(ctx.workspaceRoot)}/${requested}`
  return { path, inside: false }
}

/**
 * What changing a file that runs later adds to its classification: high risk, a note for the approver, and a
 * person asked every time, whatever the mode or a standing grant. Nothing for a read or an ordinary file.
 */
const runsLaterChange = (
  changes: boolean,
  path: string
): { readonly risk?: Risk; readonly note: string; readonly asks: { readonly alwaysAsk?: true; readonly onceOnly?: true } } => {
  const later = changes ? runsLater(path) : undefined
  return later === undefined
    ? { note: "", asks: {} }
    : { risk: "high", note: ` (${later}: code in it runs later, outside any check)`, asks: { alwaysAsk: true, onceOnly: true } }
}

/**
 * Files whose content runs later, outside any interceptor: git hooks and config (core.hooksPath,
 * core.fsmonitor, aliases), shell startup files, package-manager scripts and settings, CI workflows, editor
 * tasks, direnv, ssh keys and config, user services and autostart entries. What kind it is, or undefined.
 */
export const runsLater = (canonicalPath: string): string | undefined => {
  const segments = canonicalPath.split("/").filter((s) => s !== "")
  const name = segments[segments.length - 1] ?? ""
  const parent = segments[segments.length - 2] ?? ""
  const has = (dir: string, sub?: string): boolean =>
    segments.some((s, i) => s === dir && (sub === undefined ? i < segments.length - 1 : segments[i + 1] === sub && i + 1 < segments.length - 1))
  const git = segments.indexOf(".git")
  if (git !== -1 && git < segments.length - 1) {
    // Inside a git folder only the object store, refs, logs and a few state files are plain data; hooks,
    // config (core.hooksPath, core.fsmonitor, aliases), info/attributes, modules and worktrees run code.
    const next = segments[git + 1] ?? ""
    const below = segments.length - git - 1
    const plain = below === 1 ? GIT_DATA.has(next) : GIT_DATA_DIRS.has(next)
    if (!plain) return segments.includes("hooks") ? "a git hook" : "git configuration"
  }
  // A file named .git points git at another folder (`gitdir: …`) with its own config and hooks.
  if (name === ".git") return "a git folder pointer"
  if (has(".husky")) return "a git hook (husky)"
  if (name === ".gitconfig" || has(".config", "git")) return "git configuration"
  if (SHELL_STARTUP.has(name)) return "a shell startup file"
  if (parent === "fish" && name === "config.fish") return "a shell startup file"
  if (PACKAGE_FILES.has(name)) return "package scripts or settings"
  if (BUILD_FILES.has(name) || (parent === ".cargo" && (name === "config" || name === "config.toml"))) return "a build or test script"
  if (has(".github", "workflows") || name === ".gitlab-ci.yml" || name === "Jenkinsfile" || has(".circleci")) return "a CI workflow"
  if (parent === ".vscode" && (name === "tasks.json" || name === "settings.json" || name === "launch.json")) return "editor tasks or settings"
  if (name === "devcontainer.json" || name === ".devcontainer.json") return "a dev container definition"
  if (parent === ".ssh" && SSH_FILES.has(name)) return "ssh configuration"
  if (NETWORK_SETTINGS.has(name)) return "network client settings"
  if (has(".local", "bin")) return "a program on PATH"
  if (has("autostart") || has("systemd", "user")) return "a service or autostart entry"
  return undefined
}

// Plain data inside a git folder: the first segment below `.git`, and the files directly in it.
const GIT_DATA_DIRS = new Set(["objects", "refs", "logs", "lfs", "rr-cache"])
const GIT_DATA = new Set([
  ...GIT_DATA_DIRS,
  "HEAD",
  "ORIG_HEAD",
  "FETCH_HEAD",
  "MERGE_HEAD",
  "CHERRY_PICK_HEAD",
  "index",
  "COMMIT_EDITMSG",
  "packed-refs",
  "description",
  "MERGE_MSG",
  "TAG_EDITMSG"
])
const BUILD_FILES = new Set(["setup.py", "conftest.py", "build.rs", "Justfile", "justfile", "Taskfile.yml", "Taskfile.yaml", ".mise.toml", "mise.toml", "noxfile.py"])
const NETWORK_SETTINGS = new Set([".curlrc", ".wgetrc", "pip.conf", ".pypirc", ".netrc"])

const SHELL_STARTUP = new Set([
  ".bashrc",
  ".bash_profile",
  ".bash_login",
  ".bash_logout",
  ".profile",
  ".zshrc",
  ".zshenv",
  ".zprofile",
  ".zlogin",
  ".zlogout",
  ".kshrc",
  ".mkshrc",
  ".cshrc",
  ".tcshrc",
  ".login",
  ".xprofile",
  ".xinitrc",
  ".envrc",
  ".pam_environment",
  ".bash_aliases"
])
const PACKAGE_FILES = new Set([
  "package.json",
  ".npmrc",
  ".yarnrc",
  ".yarnrc.yml",
  ".pnpmfile.cjs",
  ".pre-commit-config.yaml",
  ".gitmodules",
  ".gitattributes",
  "Makefile",
  "makefile",
  "GNUmakefile"
])
const SSH_FILES = new Set(["authorized_keys", "authorized_keys2", "config", "rc", "environment"])

// Programs whose mere presence makes a command line critical: they change privileges, wipe disks or stop
// the machine.
const CRITICAL_PROGRAMS = new Set([
  "sudo",
  "sudoedit",
  "su",
  "doas",
  "pkexec",
  "run0",
  "runuser",
  "setpriv",
  "capsh",
  "dd",
  "shred",
  "wipefs",
  "fdisk",
  "sfdisk",
  "parted",
  "shutdown",
  "reboot",
  "halt",
  "poweroff",
  "init"
])

const shortFlags = (argv: ReadonlyArray<string>): Set<string> => {
  const flags = new Set<string>()
  for (const a of argv) {
    if (a === "--") break
    if (a.startsWith("--")) flags.add(a)
    else if (a.startsWith("-")) for (const ch of a.slice(1)) flags.add(`-${ch}`)
  }
  return flags
}

const isCriticalCommand = (program: string, argv: ReadonlyArray<string>): boolean => {
  const p = program.toLowerCase()
  if (CRITICAL_PROGRAMS.has(p) || p === "mkfs" || p.startsWith("mkfs.")) return true
  const flags = shortFlags(argv)
  if (p === "rm") return (flags.has("-r") || flags.has("-R") || flags.has("--recursive")) && (flags.has("-f") || flags.has("--force"))
  if (p === "chmod" || p === "chown" || p === "chgrp") return flags.has("-R") || flags.has("--recursive")
  return false
}

const execTarget = (command: string): { program: string; risk: Risk; parsed: CommandLine } => {
  const parsed = parseCommandLine(command)
  if (parsed._tag === "Unparseable") return { program: "(unparseable)", risk: "critical", parsed }
  const first = parsed.commands[0]
  const critical = parsed.commands.some((c) => c.dynamic || isCriticalCommand(c.program, c.argv) || c.wrappers.some((w) => CRITICAL_PROGRAMS.has(w.toLowerCase())))
  return { program: first === undefined ? "(none)" : first.program, risk: critical ? "critical" : "high", parsed }
}

const normalizeHost = (host: string): string => host.toLowerCase().replace(/\.$/, "")

/** `net://host[:port]/path` for a URL; hosts are lower-cased (IDNs in punycode) by the WHATWG URL parser. */
const netTarget = (target: string): { resource: string; host: string | null } => {
  const url = parseUrl(target) ?? parseUrl(`net://${target}`)
  // A percent-escape survives in the host of a non-special scheme ("git://ex%61mple.com"); what a client
  // would connect to is then unclear, so no host is reported and the policy refuses the action.
  if (url === null || url.hostname === "" || url.hostname.includes("%")) return { resource: `net://${target}`, host: null }
  const host = normalizeHost(url.hostname)
  const port = url.port === "" ? "" : `:${url.port}`
  const path = url.pathname === "" ? "/" : url.pathname
  return { resource: `net://${host}${port}${path}`, host }
}

const parseUrl = (s: string): URL | null => {
  // Only absolute URLs with an authority: "localhost:8080" must not read as scheme "localhost".
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(s)) return null
  try {
    return new URL(s)
  } catch {
    return null
  }
}

const formatMicros = (micros: number): string => {
  const whole = Math.floor(micros / 1_000_000)
  const frac = String(micros % 1_000_000).padStart(6, "0").replace(/0{1,4}$/, "")
  return `${whole}.${frac.length < 2 ? frac.padEnd(2, "0") : frac}`
}

const SUMMARY_FIELD_MAX = 300
/** Room for every identity field at its longest (core 2000, the others 500 together), escaped. */
const IDENTITY_SUMMARY_MAX = 8000

/**
 * Makes untrusted text safe to show on one line: control characters, line breaks and bidirectional
 * overrides are shown as escapes (so a command cannot hide a second line or reorder what the approver
 * reads), and long text is cut with a visible count of what was left out.
 */
export const show = (text: string, max: number = SUMMARY_FIELD_MAX): string => {
  let out = ""
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0
    if (ch === "\n") out += "\\n"
    else if (ch === "\r") out += "\\r"
    else if (ch === "\t") out += "\\t"
    else if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) out += `\\x${code.toString(16).padStart(2, "0")}`
    else if ((code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069) || code === 0x200e || code === 0x200f || code === 0x061c)
      out += `\\u{${code.toString(16)}}`
    else out += ch
  }
  if (out.length <= max) return out
  return `${out.slice(0, max)}… (+${out.length - max} more characters)`
}
