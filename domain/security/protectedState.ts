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
const asPath = (word: string, state: ProtectedState, cwd: string | undefined): string | undefined => {
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

// Programs that walk a folder given to them, and the flag that makes them do so (null: they always do).
const RECURSIVE: Readonly<Record<string, ReadonlyArray<string> | null>> = {
  find: null,
  tar: null,
  rsync: null,
  du: null,
  tree: null,
  rg: null,
  ag: null,
  ack: null,
  fd: null,
  fdfind: null,
  zip: ["-r", "--recurse-paths"],
  grep: ["-r", "-R", "--recursive", "--dereference-recursive"],
  egrep: ["-r", "-R", "--recursive"],
  fgrep: ["-r", "-R", "--recursive"],
  cp: ["-r", "-R", "-a", "--recursive", "--archive"],
  scp: ["-r"],
  rm: ["-r", "-R", "--recursive"],
  chmod: ["-R", "--recursive"],
  chown: ["-R", "--recursive"],
  chgrp: ["-R", "--recursive"],
}

const walksFolders = (cmd: SimpleCommand): boolean => {
  const flags = RECURSIVE[cmd.program.toLowerCase()]
  if (flags === undefined) return false
  if (flags === null) return true
  // A flag alone (`-r`) or in a cluster of short flags (`-rf`).
  const short = flags.filter((f) => /^-[A-Za-z]$/.test(f)).map((f) => f.slice(1))
  return cmd.argv.some((a) => flags.includes(a) || (/^-[A-Za-z]+$/.test(a) && short.some((ch) => a.includes(ch))))
}

/** The candidate paths in one word: the word itself, an option's `=value`, and each part of a `:` list. */
const candidatesOf = (word: string): ReadonlyArray<string> => {
  const out = new Set<string>([word])
  const eq = word.indexOf("=")
  if (eq !== -1) out.add(word.slice(eq + 1))
  for (const w of [...out]) for (const part of w.split(":")) if (part !== "") out.add(part)
  return [...out]
}

/**
 * The protected place a simple command's words reach, or undefined. `cwd` is the folder the command runs in
 * (relative words are read against it); `dotGlob` is set when the line turns on globbing of dot files.
 */
export const commandTouchesProtected = (
  state: ProtectedState,
  cmd: SimpleCommand,
  cwd: string | undefined,
  dotGlob: boolean
): ProtectedHit | undefined => {
  const words = [cmd.path, ...cmd.argv, ...(cmd.redirects ?? [])]
  const walks = walksFolders(cmd)
  for (const word of words) {
    for (const candidate of candidatesOf(word)) {
      // A `.astrid` segment, written or matched by a glob, is protected wherever it is.
      for (const seg of segmentsOf(candidate)) {
        if (seg === ASTRID_DIR || (GLOB.test(seg) && (seg.startsWith(".") || dotGlob) && globMatch(seg, ASTRID_DIR))) {
          return { setting: ".astrid", path: candidate, root: ASTRID_DIR }
        }
      }
      const path = asPath(candidate, state, cwd)
      if (path === undefined) continue
      for (const root of state.roots) {
        if (GLOB.test(path) ? globReaches(path, root, dotGlob) : within(root, path)) return { setting: "ASTRID_HOME", path, root }
        // A folder that holds the root, given to a program that walks it.
        if (walks && !GLOB.test(path) && within(path, root)) return { setting: "ASTRID_HOME", path, root }
      }
    }
  }
  if (cwd !== undefined) {
    const inside = protectedPath(state, fold(cwd))
    if (inside !== undefined) return inside
  }
  return undefined
}

/** Does the command line turn on globbing of dot files (so `*` matches `.astrid`)? */
export const enablesDotGlob = (command: string): boolean => /dotglob|GLOBIGNORE|globdots/.test(command)
