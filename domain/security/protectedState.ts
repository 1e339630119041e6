/**
 * The runtime's own state is not the agent's (I10). Two kinds of place are off limits to agent tools in
 * every mode, whatever a token, an allowance or a person says:
 *
 * - `$ASTRID_HOME` (keys, config, the event database, projections, logs, capsules): the runtime names it,
 *   as configured and as resolved, in `ProtectedState.roots`;
 * - every folder named `.astrid`, wherever it is: a workspace's `.astrid/config.toml` holds the settings
 *   that tighten that workspace, and the agent must not be able to erase them for the next run.
 *
 * A file action is judged on its canonical path. A command line is judged on the words its parsed simple
 * commands carry (arguments, `--opt=value` values, redirection targets, the program path) and its working
 * directory: a word names protected state when, read as a path (`~` and `$HOME` expanded, relative words
 * joined to the working directory, `.` and `..` folded), it lies inside a protected root or has a `.astrid`
 * segment, or when it is a glob that could match such a path, or when a program that walks folders
 * recursively (`grep -r`, `find`, `tar`, `cp -r`, `rsync`, `rm -r`...) is pointed at a folder that holds a
 * protected root. This reading is textual: a path built at run time (`$(…)`, variables other than HOME, a
 * script file, an interpreter) is not seen. The docs say so; commands are asked about, not understood.
 */
import type { SimpleCommand } from "./commandLine.js"
import { globMatch } from "./glob.js"

export interface ProtectedState {
  /** Canonical absolute folders of the runtime's own state ($ASTRID_HOME, resolved and as written). */
  readonly roots: ReadonlyArray<string>
  /** The user's home folder, to read `~` and `$HOME` in command words; absent when unknown. */
  readonly home?: string
}

/** Why a place is protected, for the message that refuses it. */
export interface ProtectedHit {
  /** The setting or convention that protects it: "ASTRID_HOME" or ".astrid". */
  readonly setting: "ASTRID_HOME" | ".astrid"
  /** What was found, e.g. "/home/me/.astrid/keys/runtime.key". */
  readonly path: string
  /** The protected root it lies in (for ASTRID_HOME), or the `.astrid` folder. */
  readonly root: string
}

const segmentsOf = (path: string): Array<string> => path.split("/").filter((s) => s !== "")

/** Is the canonical `path` the root or below it? */
const within = (root: string, path: string): boolean => {
  const r = root.length > 1 ? root.replace(/\/+$/, "") : root
  return path === r || path.startsWith(r === "/" ? "/" : `${r}/`)
}

const ASTRID_DIR = ".astrid"

/** The protection a canonical file path falls under, or undefined. */
export const protectedPath = (state: ProtectedState, canonicalPath: string): ProtectedHit | undefined => {
  const root = state.roots.find((r) => within(r, canonicalPath))
  if (root !== undefined) return { setting: "ASTRID_HOME", path: canonicalPath, root }
  const segments = segmentsOf(canonicalPath)
  const at = segments.indexOf(ASTRID_DIR)
  if (at !== -1) return { setting: ".astrid", path: canonicalPath, root: `/${segments.slice(0, at + 1).join("/")}` }
  return undefined
}

const GLOB = /[*?[]/

/** `.` and `..` folded textually; `..` above the root stays at the root. */
const fold = (absolute: string): string => {
  const out: Array<string> = []
  for (const s of segmentsOf(absolute)) {
    if (s === ".") continue
    if (s === "..") out.pop()
    else out.push(s)
  }
  return `/${out.join("/")}`
}

/** A word read as a path: `~` and `$HOME` expanded, relative to `cwd`; undefined when that cannot be done. */
export const asPath = (word: string, state: Pick<ProtectedState, "home">, cwd: string | undefined): string | undefined => {
  let w = word
  if (state.home !== undefined) {
    if (w === "~" || w.startsWith("~/")) w = state.home + w.slice(1)
    w = w.replace(/^\$\{?HOME\}?(?=\/|$)/, state.home)
  }
  if (w.startsWith("~") || w.startsWith("$")) return undefined
  if (w.startsWith("/")) return fold(w)
  return cwd === undefined ? undefined : fold(`${cwd}/${w}`)
}

/**
 * Could the glob path `pattern` (absolute, segments may be globs) match `target` or something below it?
 * A segment pattern matches a name starting with `.` only when it starts with `.` itself, as the shell's
 * globbing does without `dotglob`; `dotGlob` lifts that.
 */
const globReaches = (pattern: string, target: string, dotGlob: boolean): boolean => {
  const p = segmentsOf(pattern)
  const t = segmentsOf(target)
  if (p.includes("**")) return true
  const n = Math.min(p.length, t.length)
  for (let i = 0; i < n; i++) {
    const seg = p[i] ?? ""
    const name = t[i] ?? ""
    if (!GLOB.test(seg)) {
      if (seg !== name) return false
      continue
    }
    if (name.startsWith(".") && !seg.startsWith(".") && !dotGlob) return false
    if (!globMatch(seg, name)) return false
  }
  // A pattern as deep as the target or deeper reaches into it; a shorter one names an ancestor.
  return p.length >= t.length
}

// Programs that read or change what is inside a folder given to them, and the flags that make them do so
// (null: they always do). Listing names or sizes (ls -R, du, tree) reads no content and is not counted.
const RECURSIVE: Readonly<Record<string, ReadonlyArray<string> | null>> = {
  find: null,
  tar: null,
  bsdtar: null,
  gtar: null,
  cpio: null,
  "7z": null,
  "7za": null,
  "7zz": null,
  rsync: null,
  rg: null,
  ag: null,
  ack: null,
  fd: null,
  fdfind: null,
  zip: ["-r", "-R", "--recurse-paths", "--recurse-patterns"],
  grep: ["-r", "-R", "--recursive", "--dereference-recursive", "recurse", "--directories=recurse"],
  egrep: ["-r", "-R", "--recursive", "recurse", "--directories=recurse"],
  fgrep: ["-r", "-R", "--recursive", "recurse", "--directories=recurse"],
  cp: ["-r", "-R", "-a", "--recursive", "--archive"],
  scp: ["-r"],
  rm: ["-r", "-R", "--recursive"],
  chmod: ["-R", "--recursive"],
  chown: ["-R", "--recursive"],
  chgrp: ["-R", "--recursive"],
  mv: null
}

// Programs that search the working folder when given no folder of their own.
const WALKS_CWD_BY_DEFAULT = new Set(["find", "rg", "ag", "ack", "fd", "fdfind", "grep", "egrep", "fgrep"])
// The first operand of these is a pattern, not a path.
const PATTERN_FIRST = new Set(["grep", "egrep", "fgrep", "rg", "ag", "ack", "fd", "fdfind"])

const walksFolders = (cmd: SimpleCommand): boolean => {
  const flags = RECURSIVE[cmd.program.toLowerCase()]
  if (flags === undefined) return false
  if (flags === null) return true
  // A flag alone (`-r`), in a cluster of short flags (`-rf`), or an option's value (`-d recurse`).
  const short = flags.filter((f) => /^-[A-Za-z]$/.test(f)).map((f) => f.slice(1))
  return cmd.argv.some((a) => flags.includes(a) || (/^-[A-Za-z]+$/.test(a) && short.some((ch) => a.includes(ch))))
}

/** The operands of a command that name files: not options, and not a search program's pattern. */
const pathOperands = (cmd: SimpleCommand): ReadonlyArray<string> => {
  if (cmd.program.toLowerCase() === "find") {
    // find's paths come first; its expression starts at the first `-`, `(` or `!`.
    const end = cmd.argv.findIndex((a) => a.startsWith("-") || a === "(" || a === "!")
    return end === -1 ? cmd.argv : cmd.argv.slice(0, end)
  }
  const operands = cmd.argv.filter((a) => a === "-" || !a.startsWith("-"))
  return PATTERN_FIRST.has(cmd.program.toLowerCase()) && !cmd.argv.some((a) => a === "-e" || a.startsWith("--regexp") || a === "-f") ? operands.slice(1) : operands
}

// Programs that only name or measure what they are given: a glob naming a `.astrid` folder as its last part
// reaches no content through them.
const NAMES_ONLY = new Set(["ls", "du", "stat", "file", "echo", "printf", "test", "[", "basename", "dirname", "realpath", "readlink", "wc"])

/**
 * `{a,b}` alternatives written out (nested), as bash expands them before anything else. Past LIMIT words the
 * brace groups still unexpanded become globs that match every alternative (`*`, or `**` when one holds a
 * `/`), so a word cannot hide a path behind more alternatives than are checked one by one.
 */
export const expandBraces = (word: string, limit = 64): ReadonlyArray<string> => {
  const out: Array<string> = []
  const pending = [word]
  while (pending.length > 0 && out.length + pending.length <= limit) {
    const w = pending.pop() ?? ""
    const open = w.indexOf("{")
    let depth = 0
    let close = -1
    const commas: Array<number> = []
    for (let i = open; open !== -1 && i < w.length; i++) {
      const c = w[i]
      if (c === "{") depth++
      else if (c === "}" && --depth === 0) {
        close = i
        break
      } else if (c === "," && depth === 1) commas.push(i)
    }
    if (open === -1 || close === -1 || commas.length === 0) {
      out.push(w)
      continue
    }
    const head = w.slice(0, open)
    const tail = w.slice(close + 1)
    let from = open + 1
    for (const at of [...commas, close]) {
      pending.push(head + w.slice(from, at) + tail)
      from = at + 1
    }
  }
  return [...out, ...pending.map(bracesAsGlobs)]
}

const bracesAsGlobs = (word: string): string => {
  let w = word
  for (let inner = /\{([^{}]*,[^{}]*)\}/.exec(w); inner !== null; inner = /\{([^{}]*,[^{}]*)\}/.exec(w)) {
    w = w.slice(0, inner.index) + ((inner[1] ?? "").includes("/") ? "**" : "*") + w.slice(inner.index + inner[0].length)
  }
  return w
}

/** The candidate paths in one word: its brace alternatives, an option's `=value`, each part of a `:` list. */
const candidatesOf = (word: string): ReadonlyArray<string> => {
  const out = new Set<string>(expandBraces(word))
  const eq = word.indexOf("=")
  if (eq !== -1) out.add(word.slice(eq + 1))
  for (const w of [...out]) for (const part of w.split(":")) if (part !== "") out.add(part)
  return [...out]
}

/**
 * The protected place a simple command's words reach, or undefined. `cwd` is the folder the command runs in
 * (relative words are read against it); `dotGlob` is set when the line turns on globbing of dot files.
 */
/** How the shell's globbing may have been changed earlier on the line. */
export interface GlobOptions {
  /** `*` matches names starting with `.` (`shopt -s dotglob`, GLOBIGNORE). */
  readonly dotGlob: boolean
  /** Globs ignore case (`shopt -s nocaseglob`). */
  readonly noCase: boolean
}

/** What a command line may have turned on, read from its text (a mention is enough to assume it). */
export const globOptionsOf = (command: string): GlobOptions => ({
  dotGlob: /dotglob|GLOBIGNORE|globdots/.test(command),
  noCase: /nocaseglob|nocasematch|globasciiranges/.test(command)
})

const globMatches = (pattern: string, name: string, options: GlobOptions): boolean =>
  options.noCase ? globMatch(pattern.toLowerCase(), name.toLowerCase()) : globMatch(pattern, name)

/** Does a segment name the `.astrid` folder, as written or as a glob that would match it? */
const namesAstridDir = (seg: string, options: GlobOptions): boolean => {
  if (seg === ASTRID_DIR || (options.noCase && seg.toLowerCase() === ASTRID_DIR)) return true
  return GLOB.test(seg) && (seg.startsWith(".") || options.dotGlob) && globMatches(seg, ASTRID_DIR, options)
}

/**
 * The protected place a simple command's words reach, or undefined. `cwd` is the folder the command runs in
 * (relative words are read against it); `options` are the glob settings the line may have turned on.
 */
export const commandTouchesProtected = (
  state: ProtectedState,
  cmd: SimpleCommand,
  cwd: string | undefined,
  options: GlobOptions
): ProtectedHit | undefined => {
  const words = [cmd.path, ...cmd.argv, ...(cmd.redirects ?? [])]
  const walks = walksFolders(cmd)
  const namesOnly = !walks && NAMES_ONLY.has(cmd.program.toLowerCase())
  for (const word of words) {
    for (const candidate of candidatesOf(word)) {
      const path = asPath(candidate, state, cwd)
      const rootHit = path === undefined ? undefined : rootReached(state, path, walks, namesOnly, options)
      if (rootHit !== undefined) return rootHit
      // A `.astrid` segment, written or matched by a glob, is protected wherever it is; a listing program may
      // name the folder itself (`ls -d .*`), never what is inside it.
      const segments = segmentsOf(candidate)
      const hit = segments.findIndex((seg) => namesAstridDir(seg, options))
      if (hit !== -1 && !(namesOnly && hit === segments.length - 1 && segments[hit] !== ASTRID_DIR)) {
        return { setting: ".astrid", path: candidate, root: ASTRID_DIR }
      }
    }
  }
  if (cwd !== undefined) {
    const here = fold(cwd)
    const inside = protectedPath(state, here)
    if (inside !== undefined) return inside
    // A search with no folder of its own walks the working folder.
    if (walks && WALKS_CWD_BY_DEFAULT.has(cmd.program.toLowerCase()) && pathOperands(cmd).length === 0) {
      const root = state.roots.find((r) => within(here, r))
      if (root !== undefined) return { setting: "ASTRID_HOME", path: here, root }
    }
  }
  return undefined
}

/** The protected root a word read as `path` reaches, as a file, a glob or a folder a walking program is given. */
const rootReached = (state: ProtectedState, path: string, walks: boolean, namesOnly: boolean, options: GlobOptions): ProtectedHit | undefined => {
  for (const root of state.roots) {
    const glob = GLOB.test(path)
    const reached = glob ? globReaches(options.noCase ? path.toLowerCase() : path, options.noCase ? root.toLowerCase() : root, options.dotGlob) : within(root, path)
    // A listing program may name what holds the root with a glob (`ls /srv/*`), never reach into it.
    if (reached && !(namesOnly && glob && segmentsOf(path).length <= segmentsOf(root).length)) return { setting: "ASTRID_HOME", path, root }
    // A folder that holds the root, given to a program that walks it.
    if (walks && !glob && within(path, root)) return { setting: "ASTRID_HOME", path, root }
  }
  return undefined
}

/**
 * Where each simple command of a line runs: `cd DIR` and `pushd DIR` move the rest of the line, as the shell
 * would (a folder that cannot be read from the text leaves the rest unplaced).
 */
export const workingFolders = (commands: ReadonlyArray<SimpleCommand>, state: Pick<ProtectedState, "home">, cwd: string | undefined): ReadonlyArray<string | undefined> => {
  let here = cwd
  return commands.map((cmd) => {
    const at = here
    const program = cmd.program.toLowerCase()
    if (program === "cd" || program === "pushd") {
      const operands = cmd.argv.filter((a) => !a.startsWith("-") || a === "-")
      const target = operands[0]
      here = target === undefined ? state.home : target === "-" ? undefined : asPath(target, state, here)
    } else if (program === "popd") here = undefined
    return at
  })
}
