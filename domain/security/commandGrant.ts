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
 *                              may have written) and no variable is set for it (`PATH=. git`,
 *                              `GIT_SSH_COMMAND=… git`), since either changes what runs.
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
  if (parsed._tag === "Unparseable" || parsed.commands.length === 0) return false
  return parsed.commands.every(
    (cmd) => !cmd.dynamic && cmd.assigns !== true && !cmd.path.includes("/") && programsOf(cmd).every((program) => match(pattern, `exec://${program}`))
  )
}

/** One program, named bare, with no operator, wrapper, substitution, expansion or assignment around it. */
export const runsOneProgramPlainly = (command: string): boolean => {
  if (hasShellMetacharacters(command)) return false
  const parsed = parseCommandLine(command)
  if (parsed._tag === "Unparseable" || parsed.commands.length !== 1) return false
  const only = parsed.commands[0]
  return only !== undefined && !only.dynamic && only.assigns !== true && only.wrappers.length === 0 && !only.path.includes("/")
}
