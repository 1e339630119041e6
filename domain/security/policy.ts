/**
 * Stage 1 of the security flow: the administrator's hard limits (`[security.policy]` in config). A block is
 * final (I3): no token, allowance or human can override it, so everything here fails closed: a command that
 * does not parse, a program computed at run time, a path that is not canonical or a host that cannot be
 * determined is blocked, not waved through.
 *
 *   blocked_commands  entries matched on each parsed simple command (commandLine.ts), never on a string
 *                     prefix. An entry is a program, optionally with arguments:
 *                     - "sudo" blocks the program sudo wherever it runs: `/usr/bin/sudo x`, `env sudo x`,
 *                       `sh -c "sudo x"`, `echo hi; sudo x`, `$(sudo x)`, and also as a wrapper
 *                       (`sudo` found in `sudo -u root rm`), but not `sum`, `sudoku` or `ddrescue`;
 *                     - a glob in the program ("mkfs.*") matches program names;
 *                     - with arguments ("rm -rf /"), the command must carry every flag of the entry (short
 *                       flags compared one by one, so -rf = -fr = -r -f; --recursive, -R = -r and --force = -f
 *                       for rm; --recursive = -R for chmod, chown, chgrp) and every operand (absolute paths
 *                       compared after removing `.`, `..` and repeated slashes, so `//` and `/tmp/..` are `/`).
 *                     Program names are compared without case, as a case-insensitive file system runs
 *                     `SUDO` as sudo.
 *   denied_paths      globs on the canonical path; denied wins over allowed.
 *   allowed_paths     globs; empty means no allow-list, otherwise a file action must match one.
 *   denied_hosts      `example.com` or `*.example.com` (subdomains) or `*`.
 *   allowed_hosts     same forms; empty means no allow-list.
 *   max_argument_bytes  the size of the proposal (its JSON, UTF-8), e.g. a huge MCP argument or command.
 *   always_ask_tools  globs on MCP `server:tool` names that always need a human, whatever tokens say.
 *
 * Not a setting: the runtime's own state ($ASTRID_HOME and every `.astrid` folder) is blocked for every file
 * action and every command whose words reach it (protectedState.ts, I10), before anything else is looked at.
 */
import type { ActionRequest, ClassifiedAction } from "./action.js"
import { runsLater, show } from "./classify.js"
import { parseCommandLine, programName, type SimpleCommand } from "./commandLine.js"
import { globMatch, hostPatternMatches } from "./glob.js"
import { networkTargetsOf } from "./commandHosts.js"
import { asPath, commandTouchesProtected, globOptionsOf, protectedPath, type ProtectedHit, type ProtectedState, workingFolders } from "./protectedState.js"

export interface SecurityPolicy {
  readonly blockedCommands: ReadonlyArray<string>
  readonly deniedPaths: ReadonlyArray<string>
  readonly allowedPaths: ReadonlyArray<string>
  readonly deniedHosts: ReadonlyArray<string>
  readonly allowedHosts: ReadonlyArray<string>
  readonly maxArgumentBytes: number
  readonly alwaysAskTools: ReadonlyArray<string>
  /**
   * The runtime's own state, off limits to agent tools in every mode (I10; protectedState.ts). Set by the
   * runtime from where it keeps its state ($ASTRID_HOME), never read from a config file; every `.astrid`
   * folder is protected even when this is empty.
   */
  readonly protectedState: ProtectedState
}

export const DEFAULT_MAX_ARGUMENT_BYTES = 1024 * 1024

export const DEFAULT_POLICY: SecurityPolicy = {
  blockedCommands: [
    "sudo",
    "sudoedit",
    "su",
    "doas",
    "pkexec",
    "run0",
    "runuser",
    "setpriv",
    "capsh",
    "mkfs",
    "mkfs.*",
    "dd",
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init",
    "rm -rf /",
    "rm -rf /*",
    "chmod 777 /",
    "chmod 777 /*",
    "chmod 0777 /",
    "chmod 0777 /*"
  ],
  // /private/etc: on macOS /etc is a symbolic link to it, and the policy only ever sees canonical paths.
  deniedPaths: ["/etc/**", "/boot/**", "/sys/**", "/proc/**", "/dev/**", "/private/etc/**"],
  allowedPaths: [],
  deniedHosts: [],
  allowedHosts: [],
  maxArgumentBytes: DEFAULT_MAX_ARGUMENT_BYTES,
  alwaysAskTools: [],
  protectedState: { roots: [] }
}

export type PolicyVerdict =
  | { readonly _tag: "Blocked"; readonly rule: string; readonly reason: string; readonly remedy: string }
  | {
      readonly _tag: "AskRequired"
      readonly reason: string
      /**
       * Only a grant for this exact command line (a `cmdline://` token, an allowance recorded from the same
       * line) may stand in for the person: they saw the whole line. Absent: a person decides every time.
       */
      readonly exactGrants?: true
    }
  | { readonly _tag: "NoObjection" }

const CONFIG = "[security.policy]"
const WHERE = "in $ASTRID_HOME/config.toml (a workspace's .astrid/config.toml can only tighten it)"

const blocked = (rule: string, reason: string, remedy: string): PolicyVerdict => ({ _tag: "Blocked", rule, reason, remedy })

export const evaluatePolicy = (policy: SecurityPolicy, action: ClassifiedAction): PolicyVerdict => {
  const measured = argumentBytes(action.request)
  // A write's content travels beside the request (only its size is recorded): it counts all the same.
  const size = measured === null ? null : measured + (action.request._tag === "file_write" ? (action.request.bytes ?? 0) : 0)
  // A limit that is not a number (NaN) must not switch the check off: it counts as 0.
  const limit = policy.maxArgumentBytes >= 0 ? policy.maxArgumentBytes : 0
  if (size === null) {
    return blocked("max_argument_bytes", `the arguments of ${show(action.summary)} cannot be measured (not serialisable)`, "send plain JSON data as arguments")
  }
  if (size > limit) {
    return blocked(
      `max_argument_bytes: ${limit}`,
      `the proposal is ${size} bytes, over the limit of ${limit} bytes`,
      `send less data in one action, or an administrator can raise ${CONFIG} max_argument_bytes ${WHERE}`
    )
  }

  const request = action.request
  switch (request._tag) {
    case "command_exec": {
      const verdict = checkCommand(policy, request.command, request.cwd)
      if (verdict !== null) return verdict
      break
    }
    case "capsule_process": {
      const verdict = checkCommand(policy, request.command, undefined)
      if (verdict !== null) return verdict
      break
    }
    case "file_read":
    case "file_write":
    case "file_delete":
    case "capsule_file": {
      const verdict = checkPath(policy, action)
      if (verdict !== null) return verdict
      break
    }
    case "network_request":
    case "capsule_http":
    case "data_transmission": {
      const verdict = checkHost(policy, action)
      if (verdict !== null) return verdict
      break
    }
    case "mcp_tool_call": {
      const name = `${request.server}:${request.tool}`
      const pattern = policy.alwaysAskTools.find((p) => globMatch(p, name))
      if (pattern !== undefined) return { _tag: "AskRequired", reason: `MCP tool ${show(name)} always needs approval (always_ask_tools: "${pattern}")` }
      break
    }
    case "financial_transaction":
    case "access_control_change":
    case "capability_grant":
    case "subagent_spawn":
    case "agent_identity":
      break
  }

  if (action.alwaysAsk) return { _tag: "AskRequired", reason: `${ALWAYS_ASK_REASON[action.kind] ?? "this kind of action"} always needs a human approver` }
  return { _tag: "NoObjection" }
}

const ALWAYS_ASK_REASON: Partial<Record<ClassifiedAction["kind"], string>> = {
  financial_transaction: "a financial transaction",
  access_control_change: "an access-control change",
  capability_grant: "granting a capability",
  agent_identity: "changing the agent's identity (it shapes every later session)"
}

const PROTECTED_REMEDY =
  "the runtime's own state is changed only with astrid commands (astrid config, astrid keys, astrid tokens) or by a person outside the agent; no setting, grant or approval lets an agent tool reach it"

const protectedBlock = (subject: string, hit: ProtectedHit): PolicyVerdict =>
  blocked(
    `protected_state: ${hit.setting}`,
    hit.setting === "ASTRID_HOME"
      ? `${subject} reaches ${show(hit.path)}, inside ASTRID_HOME (${show(hit.root)}), where the runtime keeps its keys, config and event log`
      : `${subject} reaches ${show(hit.path)}, in a .astrid folder, where a workspace keeps the settings that restrict it`,
    PROTECTED_REMEDY
  )

const checkCommand = (policy: SecurityPolicy, command: string, cwd: string | undefined): PolicyVerdict | null => {
  const parsed = parseCommandLine(command)
  if (parsed._tag === "Unparseable") {
    return blocked(
      "command_parse",
      `the command ${show(command)} cannot be checked: ${parsed.reason}`,
      "propose the command again with every quote, '$(', '(' and backquote closed"
    )
  }
  const entries = policy.blockedCommands.map(compileEntry)
  const globs = globOptionsOf(command)
  const folders = workingFolders(parsed.commands, policy.protectedState, cwd)
  let runsLaterWrite: string | undefined
  for (const [i, cmd] of parsed.commands.entries()) {
    const hit = commandTouchesProtected(policy.protectedState, cmd, folders[i], globs)
    if (hit !== undefined) return protectedBlock(`the command ${show(command)}`, hit)
    runsLaterWrite ??= writesRunsLater(cmd, policy.protectedState, folders[i])
    if (cmd.dynamic && entries.length > 0) {
      return blocked(
        "blocked_commands: unverifiable program",
        `the command ${show(command)} runs ${show(cmd.path)}, whose program is only known at run time (a variable, a substitution, a glob or a shell reading standard input), so it cannot be checked against blocked_commands`,
        "propose the command with the program name written out literally"
      )
    }
    for (const entry of entries) {
      const how = entryMatches(entry, cmd)
      if (how !== null) {
        const via = cmd.wrappers.length > 0 ? ` (inside ${cmd.wrappers.join(" > ")})` : ""
        return blocked(
          `blocked_commands: ${entry.text}`,
          `the command ${show(command)} runs ${how}${via}, which blocked_commands forbids ("${entry.text}")`,
          `an administrator can remove "${entry.text}" from ${CONFIG} blocked_commands ${WHERE}`
        )
      }
    }
  }
  const hosts = checkCommandHosts(policy, command, parsed.commands, parsed.assigned)
  if (hosts?._tag === "Blocked" || runsLaterWrite === undefined) return hosts
  return { _tag: "AskRequired", reason: `the command ${show(command)} writes ${runsLaterWrite}, whose code runs later outside any check` }
}

/**
 * A file the command writes whose content runs later (classify.ts `runsLater`), described, or undefined:
 * redirection targets, and the destinations of tee, cp, mv, install, ln, sed -i, chmod and `git config`.
 */
const writesRunsLater = (cmd: SimpleCommand, state: ProtectedState, cwd: string | undefined): string | undefined => {
  const operands = cmd.argv.filter((a) => !a.startsWith("-"))
  const program = cmd.program.toLowerCase()
  const targets: Array<string> = [...(cmd.redirects ?? [])]
  if (program === "tee" || program === "truncate") targets.push(...operands)
  else if (["cp", "mv", "install", "ln"].includes(program) && operands.length >= 2) targets.push(operands[operands.length - 1] ?? "")
  else if ((program === "sed" || program === "gsed") && cmd.argv.some((a) => a.startsWith("-i") || a.startsWith("--in-place"))) targets.push(...operands)
  else if (program === "chmod" || program === "chown") targets.push(...operands.slice(1))
  else if (program === "git") {
    if (cmd.argv.includes("config") && operands.length >= 3) targets.push(".git/config")
    // What git prints, written to a file the command names (`git log --output=.git/config`).
    for (const [i, a] of cmd.argv.entries()) {
      if (a.startsWith("--output=") || a.startsWith("--output-directory=")) targets.push(a.slice(a.indexOf("=") + 1))
      else if (a === "--output" || a === "--output-directory" || a === "-o") targets.push(cmd.argv[i + 1] ?? "")
    }
  }
  for (const target of targets) {
    const path = asPath(target, state, cwd) ?? target
    const kind = runsLater(path.startsWith("/") ? path : `/${path}`)
    if (kind !== undefined) return `${show(target)} (${kind})`
  }
  return undefined
}

interface BlockedEntry {
  readonly text: string
  readonly program: string
  readonly args: ArgShape | null
}

interface ArgShape {
  readonly flags: ReadonlySet<string>
  readonly operands: ReadonlySet<string>
}

const compileEntry = (text: string): BlockedEntry => {
  const words = text.trim().split(/\s+/).filter((w) => w !== "")
  const program = programName(words[0] ?? "").toLowerCase()
  return { text, program, args: words.length > 1 ? argShape(program, words.slice(1)) : null }
}

/** What the entry matched ("sudo", "rm -rf /"), or null. */
const entryMatches = (entry: BlockedEntry, cmd: SimpleCommand): string | null => {
  const program = cmd.program.toLowerCase()
  if (entry.args === null) {
    if (globMatch(entry.program, program)) return `'${cmd.program}'`
    const wrapper = cmd.wrappers.find((w) => globMatch(entry.program, w.toLowerCase()))
    return wrapper === undefined ? null : `'${wrapper}'`
  }
  if (!globMatch(entry.program, program)) return null
  const shape = argShape(program, cmd.argv)
  for (const f of entry.args.flags) if (!shape.flags.has(f)) return null
  for (const o of entry.args.operands) if (!shape.operands.has(o)) return null
  return `'${show([cmd.program, ...cmd.argv].join(" "))}'`
}

// Spellings of the same option, per program, for the options the default entries use.
const OPTION_ALIASES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  rm: { "-R": "-r", "--recursive": "-r", "--force": "-f" },
  chmod: { "--recursive": "-R" },
  chown: { "--recursive": "-R" },
  chgrp: { "--recursive": "-R" }
}

const argShape = (program: string, args: ReadonlyArray<string>): ArgShape => {
  const aliases = OPTION_ALIASES[program] ?? {}
  const flags = new Set<string>()
  const operands = new Set<string>()
  let options = true
  for (const a of args) {
    if (options && a === "--") options = false
    else if (options && a.startsWith("--")) {
      const name = a.split("=")[0] ?? a
      flags.add(aliases[name] ?? name)
    } else if (options && a.startsWith("-") && a.length > 1) {
      for (const ch of a.slice(1)) flags.add(aliases[`-${ch}`] ?? `-${ch}`)
    } else operands.add(normalizeOperand(a))
  }
  return { flags, operands }
}

/** `//`, `/./`, `/tmp/..` and `/` are all the root: compare absolute operands by what they name. */
const normalizeOperand = (a: string): string => {
  if (!a.startsWith("/")) return a
  const parts: Array<string> = []
  for (const seg of a.split("/")) {
    if (seg === "" || seg === ".") continue
    if (seg === "..") parts.pop()
    else parts.push(seg)
  }
  return `/${parts.join("/")}`
}

const isCanonicalPath = (p: string): boolean => p.startsWith("/") && (p === "/" || !p.slice(1).split("/").some((s) => s === "" || s === "." || s === ".."))

const checkPath = (policy: SecurityPolicy, action: ClassifiedAction): PolicyVerdict | null => {
  const path = action.path
  if (path === undefined) {
    return blocked("canonical_path", `${show(action.summary)}: no canonical path was resolved for this file action`, "resolve the path with the workspace PathResolver before policy evaluation")
  }
  if (!isCanonicalPath(path)) {
    const why = path.split("/").includes("..") ? "it contains a '..' segment" : "it is not an absolute path without '.', '..' or empty segments"
    return blocked("canonical_path", `the path ${show(path)} is refused because ${why}`, "request the path as an absolute path without '..' segments")
  }
  const hit = protectedPath(policy.protectedState, path)
  if (hit !== undefined) return protectedBlock(show(action.summary), hit)
  const denied = policy.deniedPaths.find((p) => globMatch(p, path))
  if (denied !== undefined) {
    return blocked(
      `denied_paths: ${denied}`,
      `${show(path)} is in a denied area ("${denied}")`,
      `choose a path outside "${denied}", or an administrator can change ${CONFIG} denied_paths ${WHERE}`
    )
  }
  if (policy.allowedPaths.length > 0 && !policy.allowedPaths.some((p) => globMatch(p, path))) {
    return blocked(
      "allowed_paths",
      `${show(path)} matches none of the allowed paths (${policy.allowedPaths.map((p) => `"${p}"`).join(", ")})`,
      `an administrator can add a pattern for it to ${CONFIG} allowed_paths ${WHERE}`
    )
  }
  return null
}

const checkHost = (policy: SecurityPolicy, action: ClassifiedAction): PolicyVerdict | null => {
  const host = action.host
  if (host === undefined) {
    return blocked("network_host", `${show(action.summary)}: the destination has no host that can be checked`, "propose an absolute URL such as https://example.com/path")
  }
  return hostVerdict(policy, host, "")
}

/** denied_hosts, then allowed_hosts, for one host; `via` says where in a command it was found. */
const hostVerdict = (policy: SecurityPolicy, host: string, via: string): PolicyVerdict | null => {
  const denied = policy.deniedHosts.find((p) => hostPatternMatches(p, host))
  if (denied !== undefined) {
    return blocked(`denied_hosts: ${denied}`, `the host ${show(host)}${via} is denied ("${denied}")`, `an administrator can change ${CONFIG} denied_hosts ${WHERE}`)
  }
  if (policy.allowedHosts.length > 0 && !policy.allowedHosts.some((p) => hostPatternMatches(p, host))) {
    return blocked(
      "allowed_hosts",
      `the host ${show(host)}${via} matches none of the allowed hosts (${policy.allowedHosts.map((p) => `"${p}"`).join(", ")})`,
      `an administrator can add it to ${CONFIG} allowed_hosts ${WHERE}`
    )
  }
  return null
}

/**
 * Host policy for the network programs a command line runs (commandHosts.ts): a known host is checked like a
 * network_request's; a target that cannot be known before the command runs makes the line ask a person.
 */
const checkCommandHosts = (
  policy: SecurityPolicy,
  command: string,
  commands: ReadonlyArray<SimpleCommand>,
  assigned: ReadonlyArray<string>
): PolicyVerdict | null => {
  // A proxy variable set on the line (exported before, or by `set -a`, it reaches every later program).
  const proxy = assigned.find((name) => /(^|_)proxy$/i.test(name) && name.toLowerCase() !== "no_proxy")
  let unknown: string | undefined = proxy === undefined ? undefined : `the line sets ${proxy}, which can send later connections through another host`
  for (const cmd of commands) {
    const targets = networkTargetsOf(cmd)
    if (targets === null) continue
    for (const target of targets) {
      if (target._tag === "Unknown") {
        unknown ??= target.reason
        continue
      }
      const verdict = hostVerdict(policy, target.host, ` (from ${show(target.via)} in ${show(command)})`)
      if (verdict !== null) return verdict
    }
  }
  // A person who approved this very line saw the target as written (`git push origin main`): their grant for
  // the line stands; a grant for the program does not.
  return unknown === undefined
    ? null
    : { _tag: "AskRequired", reason: `the command reaches the network at a target that cannot be checked before it runs: ${unknown}`, exactGrants: true }
}

/** UTF-8 size of the request as JSON, or null if it cannot be serialised (cycles, BigInt). */
const argumentBytes = (request: ActionRequest): number | null => {
  let json: string | undefined
  try {
    json = JSON.stringify(request)
  } catch {
    return null
  }
  if (json === undefined) return 0
  let bytes = 0
  for (let i = 0; i < json.length; i++) {
    const code = json.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff) {
      // A surrogate pair is one 4-byte code point.
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}
