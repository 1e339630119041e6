/**
 * What a standing grant (a capability token, a pre-approval, a session or workspace allowance) covers when the
 * action is a command line (I9): a grant covers a line only if it covers every program that line runs. A line
 * is read with the shell-aware parser (commandLine.ts), so `echo hi; cat ~/secret`, `echo $(curl x)`,
 * `xargs rm`, `find . -exec sh -c …` and `sh -c 'echo hi'` are each several programs, and a grant for
 * `echo` covers none of them.
 *
 * Two forms of grant pattern:
 *
 *   cmdline://<encoded line>   Exactly one command line, the one a person saw and approved ("Allow Always"
 *                              on a command mints this). The line is percent-encoded (`commandLineResource`)
 *                              so that no character of it acts as a glob: it matches that line and no other.
 *                              A pattern that a person wrote with a `*` in it (`cmdline://cargo%20build%20*`)
 *                              also covers lines that fill the star, but only lines that run exactly one
 *                              program, with no shell operator, wrapper, substitution or variable assignment.
 *   any other pattern          A program grant (`exec://git`, `exec://cargo`, `exec://*`): matched against
 *                              `exec://<program>` for every program the line runs, wrappers included (`env`,
 *                              `timeout`, `xargs`, `sh -c`...). A program grant covers a program only when it
 *                              is named bare (looked up on PATH, not `./git` or `/tmp/x/git`, which the agent
 *                              may have written), when the line assigns no variable anywhere (`PATH=. ; git`,
 *                              `GIT_SSH_COMMAND=… git`, `for PATH in .`), since that changes what runs, and
 *                              when the program is not told to run code it is given (`runsGivenCode`).
 *
 * A line that cannot be parsed, or that runs a program known only at run time (`$X`, `| sh`), is covered by
 * nothing but the exact line grant of that very text.
 */
import { parseCommandLine, hasShellMetacharacters, type SimpleCommand } from "./commandLine.js"

export const COMMAND_LINE_SCHEME = "cmdline://"

/** Percent-encoding that leaves no glob or separator character: `*`, `?`, `[`, `/` and `\` are all escaped. */
const encodeExact = (text: string): string =>
  encodeURIComponent(text).replace(/[!'()*~.]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`)

/** The resource under which exactly `command` is matched by command-line grants. */
export const commandLineResource = (command: string): string => `${COMMAND_LINE_SCHEME}${encodeExact(command)}`

/** The command line a `cmdline://` resource names, or undefined when it is not one (or not decodable). */
export const commandOfResource = (resource: string): string | undefined => {
  if (!resource.startsWith(COMMAND_LINE_SCHEME)) return undefined
  try {
    return decodeURIComponent(resource.slice(COMMAND_LINE_SCHEME.length))
  } catch {
    return undefined
  }
}

/** A glob matcher over URIs: each kind of grant keeps its own (token URI globs, config globs). */
export type UriMatcher = (pattern: string, uri: string) => boolean

/** Every program a simple command runs: the wrappers it was found inside, then the program itself. */
const programsOf = (cmd: SimpleCommand): ReadonlyArray<string> => [...cmd.wrappers, cmd.program]

/**
 * Does the grant `pattern` cover the target: for a command line, the whole line (`grantCoversCommand`), for
 * anything else its resource URI? One rule for tokens, pre-approvals and the like, each with its own matcher.
 */
export const grantCovers = (pattern: string, target: { readonly resource: string; readonly command?: string }, match: UriMatcher): boolean =>
  target.command === undefined ? match(pattern, target.resource) : grantCoversCommand(pattern, target.command, match)

/**
 * Does the grant `pattern` cover the whole command line `command`? `match` is the glob matcher of the grant's
 * kind, applied to `exec://<program>` (program grants) or to `commandLineResource(command)` (line grants).
 */
export const grantCoversCommand = (pattern: string, command: string, match: UriMatcher): boolean => {
  if (pattern.startsWith(COMMAND_LINE_SCHEME)) {
    if (!match(pattern, commandLineResource(command))) return false
    // An exact line grant is the line itself: whatever it runs, a person saw all of it.
    if (pattern === commandLineResource(command)) return true
    return runsOneProgramPlainly(command)
  }
  const parsed = parseCommandLine(command)
  // A variable set anywhere on the line (`PATH=.; git`, `HOME=. ; git`) may change what a later program runs.
  if (parsed._tag === "Unparseable" || parsed.commands.length === 0 || parsed.assigned.length > 0) return false
  return parsed.commands.every(
    (cmd) =>
      !cmd.dynamic &&
      !cmd.path.includes("/") &&
      runsGivenCode(cmd) === undefined &&
      programsOf(cmd).every((program) => match(pattern, `exec://${program}`))
  )
}

// Subcommands that run or configure other programs, or read and write files outside the workspace's tree.
const GIT_CODE_SUBCOMMANDS = new Set([
  "submodule",
  "bisect",
  "filter-branch",
  "filter-repo",
  "difftool",
  "mergetool",
  "send-email",
  "daemon",
  "instaweb",
  "credential",
  "worktree",
  "bundle",
  "clone"
])
// `git config` only reads with one of these, or with a name alone.
const GIT_CONFIG_READS = ["--get", "--get-all", "--get-regexp", "--list", "-l", "--show-origin", "--show-scope"]
// Before the subcommand: options that load another configuration or another git.
const GIT_GLOBAL_CODE_OPTIONS = ["-c", "--config-env", "--exec-path", "-C", "--git-dir", "--work-tree"]
// After it: options that name a program or a template of hooks, per subcommand.
const GIT_SUBCOMMAND_CODE_OPTIONS: Readonly<Record<string, ReadonlyArray<string>>> = {
  fetch: ["--upload-pack"],
  // Options that write what git prints to a file of the command's choosing (`--output=.git/config`).
  log: ["--output"],
  show: ["--output"],
  diff: ["--output"],
  "format-patch": ["-o", "--output-directory", "--output"],
  "range-diff": ["--output"],
  pull: ["--upload-pack"],
  "ls-remote": ["--upload-pack"],
  push: ["--receive-pack", "--exec"],
  archive: ["--exec", "-o", "--output", "--remote"],
  rebase: ["-x", "--exec"],
  init: ["--template"]
}
const TAR_CODE_OPTIONS = ["--to-command", "--checkpoint-action", "--use-compress-program", "-I", "--info-script", "-F", "--new-volume-script", "--rsh-command", "--rmt-command"]
const RSYNC_CODE_OPTIONS = ["-e", "--rsh", "--rsync-path"]
const SSH_CODE_OPTIONS = /^(ProxyCommand|LocalCommand|PermitLocalCommand|KnownHostsCommand|Match)\b/i
const ZIP_CODE_OPTIONS = ["-TT", "--unzip-command"]
// A sed script that runs a command (`e`, the `e` flag of `s`) or writes a file (`w`, the `w` flag).
const SED_CODE = /(^|[;\n{}!0-9$\/])\s*[ew](\s|;|$)|\/[gpiImMe0-9]*[ew][gpiImM0-9]*\s*($|[;}\s])/

const hasOption = (argv: ReadonlyArray<string>, options: ReadonlyArray<string>): string | undefined =>
  argv.find((a) => options.some((o) => a === o || a.startsWith(`${o}=`) || (o.length === 2 && !o.startsWith("--") && a.startsWith(o) && !a.startsWith("--"))))

/**
 * Why a program, as called, runs code that its arguments or a configuration name (git's `-c core.fsmonitor=…`,
 * `tar --to-command`, `rsync -e`, ssh's ProxyCommand, sed's `e`), or undefined. A program grant is for the
 * program doing its own work; such a call is another program in disguise and needs a person.
 */
export const runsGivenCode = (cmd: SimpleCommand): string | undefined => {
  const argv = cmd.argv
  switch (cmd.program.toLowerCase()) {
    case "git": {
      const at = argv.findIndex((a) => !a.startsWith("-"))
      const global = hasOption(at === -1 ? argv : argv.slice(0, at), GIT_GLOBAL_CODE_OPTIONS)
      if (global !== undefined) return `git ${global} can make git load another configuration or program`
      const sub = at === -1 ? undefined : argv[at]
      if (sub === undefined) return undefined
      if (GIT_CODE_SUBCOMMANDS.has(sub)) return `git ${sub} can run or configure other programs, or reach outside the workspace`
      if (sub === "config") {
        const rest = argv.slice(at + 1)
        const reads = rest.some((a) => GIT_CONFIG_READS.includes(a)) || rest.filter((a) => !a.startsWith("-")).length <= 1
        return reads ? undefined : "git config can set a program for git to run (core.fsmonitor, core.hooksPath, aliases)"
      }
      const option = hasOption(argv.slice(at + 1), GIT_SUBCOMMAND_CODE_OPTIONS[sub] ?? [])
      return option === undefined ? undefined : `git ${sub} ${option} names a program for git to run or a file for it to write`
    }
    case "tar":
    case "gtar":
    case "bsdtar": {
      const option = hasOption(argv, TAR_CODE_OPTIONS)
      return option === undefined ? undefined : `tar ${option} runs a program`
    }
    case "rsync": {
      const option = hasOption(argv, RSYNC_CODE_OPTIONS)
      return option === undefined ? undefined : `rsync ${option} runs a program`
    }
    case "ssh":
    case "scp":
    case "sftp": {
      for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? ""
        const value = a === "-o" ? argv[i + 1] : a.startsWith("-o") ? a.slice(2) : undefined
        if (value !== undefined && SSH_CODE_OPTIONS.test(value.trim())) return `${cmd.program} -o ${value} runs a program`
        if (a === "-S" || a === "-F") return `${cmd.program} ${a} reads connection settings from a file`
      }
      return undefined
    }
    case "zip": {
      const option = hasOption(argv, ZIP_CODE_OPTIONS)
      return option === undefined ? undefined : `zip ${option} runs a program`
    }
    case "sed":
    case "gsed": {
      const script = argv.find((a) => !a.startsWith("-") && SED_CODE.test(a)) ?? argv.find((a, i) => argv[i - 1] === "-e" && SED_CODE.test(a))
      return script === undefined ? undefined : `the sed script ${script} runs a command or writes a file`
    }
    default:
      return undefined
  }
}

/** One program, named bare, with no operator, wrapper, substitution, expansion or assignment around it. */
export const runsOneProgramPlainly = (command: string): boolean => {
  if (hasShellMetacharacters(command)) return false
  const parsed = parseCommandLine(command)
  if (parsed._tag === "Unparseable" || parsed.commands.length !== 1 || parsed.assigned.length > 0) return false
  const only = parsed.commands[0]
  return only !== undefined && !only.dynamic && only.wrappers.length === 0 && !only.path.includes("/")
}
