/**
 * Glob patterns for paths, resource URIs, hosts and command lines: what the policy, capability tokens and
 * standing allowances use to say which actions they cover.
 *
 * Path and URI globs (`globMatch`):
 *   `*`      any run of characters within one `/`-separated segment (dot-files included)
 *   `?`      one character other than `/`
 *   `[a-z]`  one character of a class, `[!a-z]` or `[^a-z]` one outside it (never `/`)
 *   `**`     any run of characters across segments; `a/**` also matches `a` itself, `a/** /b` (without the
 *            space) matches `a/b`, `a/x/b`, `a/x/y/b`
 *   `\c`     the character c literally
 * Matching is a dynamic programme over (pattern, subject): linear in their product, never exponential, so a
 * hostile pattern or path cannot stall the interceptor.
 */
import { Either } from "effect"
import { hasShellMetacharacters } from "./commandLine.js"

type Token =
  | { readonly _tag: "Char"; readonly c: string }
  | { readonly _tag: "One" }
  | { readonly _tag: "Class"; readonly negated: boolean; readonly ranges: ReadonlyArray<readonly [string, string]> }
  | { readonly _tag: "Star" }
  | { readonly _tag: "GlobStar" }
  /** `**` + `/` at the start of a segment: zero or more whole segments. */
  | { readonly _tag: "Segments" }
  /** `/` + `**` at the end: nothing, or `/` and anything. */
  | { readonly _tag: "Below" }

const isSlash = (t: Token | undefined): boolean => t !== undefined && t._tag === "Char" && t.c === "/"

const compile = (pattern: string): ReadonlyArray<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < pattern.length) {
    const c = pattern[i] ?? ""
    if (c === "\\" && i + 1 < pattern.length) {
      tokens.push({ _tag: "Char", c: pattern[i + 1] ?? "" })
      i += 2
    } else if (c === "*" && pattern[i + 1] === "*") {
      const segmentStart = i === 0 || pattern[i - 1] === "/"
      if (segmentStart && pattern[i + 2] === "/") {
        tokens.push({ _tag: "Segments" })
        i += 3
      } else if (segmentStart && i + 2 === pattern.length && isSlash(tokens[tokens.length - 1])) {
        // Replace the "/" just emitted: `a/**` matches `a`, `a/` and everything below.
        tokens.pop()
        tokens.push({ _tag: "Below" })
        i += 2
      } else {
        tokens.push({ _tag: "GlobStar" })
        i += 2
        while (pattern[i] === "*") i++
      }
    } else if (c === "*") {
      tokens.push({ _tag: "Star" })
      i++
    } else if (c === "?") {
      tokens.push({ _tag: "One" })
      i++
    } else if (c === "[") {
      const parsed = compileClass(pattern, i)
      if (parsed === null) {
        tokens.push({ _tag: "Char", c })
        i++
      } else {
        tokens.push(parsed.token)
        i = parsed.next
      }
    } else {
      tokens.push({ _tag: "Char", c })
      i++
    }
  }
  return tokens
}

const compileClass = (pattern: string, open: number): { token: Token; next: number } | null => {
  let i = open + 1
  const negated = pattern[i] === "!" || pattern[i] === "^"
  if (negated) i++
  const ranges: Array<readonly [string, string]> = []
  let first = true
  while (i < pattern.length) {
    const c = pattern[i] ?? ""
    if (c === "]" && !first) return { token: { _tag: "Class", negated, ranges }, next: i + 1 }
    first = false
    if (pattern[i + 1] === "-" && i + 2 < pattern.length && pattern[i + 2] !== "]") {
      ranges.push([c, pattern[i + 2] ?? c])
      i += 3
    } else {
      ranges.push([c, c])
      i++
    }
  }
  return null
}

const inClass = (token: Extract<Token, { _tag: "Class" }>, c: string): boolean =>
  token.ranges.some(([lo, hi]) => c >= lo && c <= hi) !== token.negated

/** Does the compiled pattern match all of `s`? `separator` is the character `*` and `?` do not cross. */
const run = (tokens: ReadonlyArray<Token>, s: string, separator: string | null): boolean => {
  const n = s.length
  // next[j]: do tokens[i+1..] match s[j..]? Filled from the last token backwards, one row at a time.
  let next = new Uint8Array(n + 1)
  next[n] = 1
  for (let i = tokens.length - 1; i >= 0; i--) {
    const t = tokens[i]
    if (t === undefined) continue
    const row = new Uint8Array(n + 1)
    switch (t._tag) {
      case "Char":
        for (let j = 0; j < n; j++) row[j] = s[j] === t.c && next[j + 1] === 1 ? 1 : 0
        break
      case "One":
        for (let j = 0; j < n; j++) row[j] = s[j] !== separator && next[j + 1] === 1 ? 1 : 0
        break
      case "Class":
        for (let j = 0; j < n; j++) row[j] = s[j] !== separator && inClass(t, s[j] ?? "") && next[j + 1] === 1 ? 1 : 0
        break
      case "Star":
        row[n] = next[n] ?? 0
        for (let j = n - 1; j >= 0; j--) row[j] = next[j] === 1 || (s[j] !== separator && row[j + 1] === 1) ? 1 : 0
        break
      case "GlobStar":
        row[n] = next[n] ?? 0
        for (let j = n - 1; j >= 0; j--) row[j] = next[j] === 1 || row[j + 1] === 1 ? 1 : 0
        break
      case "Segments": {
        // Either no segment, or any run that ends with "/" and is followed by a match of the rest.
        let endsWithSlash = 0
        row[n] = next[n] ?? 0
        for (let j = n - 1; j >= 0; j--) {
          if (s[j] === "/" && next[j + 1] === 1) endsWithSlash = 1
          row[j] = next[j] === 1 || endsWithSlash === 1 ? 1 : 0
        }
        break
      }
      case "Below":
        // Always the last token.
        for (let j = 0; j <= n; j++) row[j] = j === n || s[j] === "/" ? 1 : 0
        break
    }
    next = row
  }
  return next[0] === 1
}

/** Does `subject` (a path or a resource URI) match the glob `pattern`? */
export const globMatch = (pattern: string, subject: string): boolean => run(compile(pattern), subject, "/")

/** True if `s`, split on `/`, has a `..` segment. */
export const hasDotDotSegment = (s: string): boolean => s.split("/").includes("..")

/**
 * Checks a pattern before it is trusted in a token, an allowance or the policy: `..` segments are refused,
 * because a pattern like `/home/me/project/../../**` reads as confined to the project while it is not.
 * Returns the pattern, or why it is refused.
 */
export const validateGlobPattern = (pattern: string): Either.Either<string, string> => {
  if (pattern === "") return Either.left("the pattern is empty")
  if (pattern.includes("\u0000")) return Either.left("the pattern contains a NUL character")
  if (hasDotDotSegment(pattern)) return Either.left(`the pattern '${pattern}' has a '..' segment; write the path it means without '..'`)
  return Either.right(pattern)
}

/**
 * Does a command pattern (from an allowance: "cargo", "cargo *", "npm run *") cover `command`?
 * - A pattern without `*` covers only that command exactly: `cargo` covers `cargo`, not `cargo build`.
 * - Patterns and commands are compared word by word (words split on blanks); a `*` word at the end of the
 *   pattern covers any further arguments (also none), a `*` word elsewhere covers exactly one argument, and
 *   `*` inside a word covers any characters of that word.
 * - The program word is compared literally, so no pattern covers every program.
 * - `\*`, `\?`, `\[` and `\\` stand for the character itself (see `escapeCommandPattern`).
 * - No pattern matches across shell metacharacters: a command containing `;`, `|`, `&`, `$(`, a backquote,
 *   `>`, `<` or a line break is covered only by a pattern that is exactly the same string.
 */
export const commandPatternMatches = (pattern: string, command: string): boolean => {
  if (pattern === command) return true
  if (hasShellMetacharacters(command) || hasShellMetacharacters(pattern)) return false
  const p = splitWords(pattern)
  const c = splitWords(command)
  const program = p[0]
  if (program === undefined || unescape(program) !== c[0]) return false
  const trailingStar = p.length > 1 && p[p.length - 1] === "*"
  const fixed = trailingStar ? p.length - 1 : p.length
  if (trailingStar ? c.length < fixed : c.length !== fixed) return false
  for (let i = 1; i < fixed; i++) {
    const word = c[i]
    const glob = p[i]
    if (word === undefined || glob === undefined || !run(compile(glob), word, null)) return false
  }
  return true
}

const unescape = (s: string): string => s.replace(/\\(.)/g, "$1")

/** A glob that matches exactly `literal` (a path or URI with `*`, `?`, `[` or `\` in it). */
export const escapeGlob = (literal: string): string => literal.replace(/[\\*?[]/g, "\\$&")

/**
 * A command pattern that covers exactly `command` and nothing else: for allowances made from one approved
 * command line, so that approving `rm *` once does not cover `rm -rf ~` later. A command with shell
 * metacharacters is only ever matched exactly, so it is returned as it is.
 */
export const escapeCommandPattern = (command: string): string => (hasShellMetacharacters(command) ? command : escapeGlob(command))

const splitWords = (s: string): ReadonlyArray<string> => s.trim().split(/[ \t]+/).filter((w) => w !== "")

const normalizeHost = (h: string): string => h.trim().toLowerCase().replace(/\.$/, "")

/**
 * Host patterns: `example.com` matches that host only; `*.example.com` matches any subdomain at any depth
 * (`a.example.com`, `a.b.example.com`) but not `example.com` itself (list both to cover both); `*` matches
 * every host. Case and a trailing dot are ignored, as DNS ignores them.
 */
export const hostPatternMatches = (pattern: string, host: string): boolean => {
  const p = normalizeHost(pattern)
  const h = normalizeHost(host)
  if (p === "*") return h !== ""
  if (p.startsWith("*.")) {
    const suffix = p.slice(1)
    return h.length > suffix.length && h.endsWith(suffix)
  }
  return p === h
}
