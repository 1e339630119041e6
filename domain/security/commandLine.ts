/**
 * A shell-aware reader of command lines: it finds every simple command a POSIX shell (bash, dash, zsh in
 * their common syntax) would run for a given string, without running anything. The policy checks blocked
 * commands against this list, so the reader errs on the side of reporting too much: a construct it cannot
 * see through is either reported as `dynamic` or makes the whole line `Unparseable`, and the policy fails
 * closed on both. What it reports:
 *
 * - commands separated by `;`, `|`, `||`, `&&`, `&`, `|&`, newlines, and those inside `$(...)`, backticks,
 *   `<(...)`, `>(...)`, `( ... )`, `{ ...; }`, `$((...))`, `${...}`, here-documents with an unquoted
 *   delimiter, `if/while/until/for/select/case` bodies and function bodies;
 * - with quotes and backslashes removed (`s'u'do`, `\sudo` and `$'\x73udo'` are all `sudo`), redirections
 *   stripped and leading `VAR=value` assignments skipped;
 * - through wrappers that run another program: env, sudo, doas, pkexec, run0, nice, ionice, nohup, setsid,
 *   stdbuf, timeout, time, command, exec, builtin, chroot, xargs, busybox, eval, watch, flock, taskset, chrt,
 *   numactl, unshare, strace, fakeroot, unbuffer, find -exec and
 *   `sh|bash|zsh|dash|ksh|... -c SCRIPT` (SCRIPT is read again, recursively). The privilege wrappers (sudo,
 *   doas, pkexec, run0, chroot) are reported as commands of their own too; every command carries the wrappers
 *   it was found in, so a policy can block a wrapper by name.
 *
 * Known blind spots (the approver sees the full command line for these): scripts run from files
 * (`bash x.sh`, `source x`; a script or sourced file that is itself computed, `bash <(curl ...)`, is
 * dynamic), interpreters other than shells (`python -c`, `awk 'BEGIN{system(...)}'`), wrappers not listed
 * above, operands fed through standard input (`echo / | xargs rm -rf`), and aliases or functions defined
 * earlier in a session.
 */

/** One program the command line would start. */
export interface SimpleCommand {
  /** Basename of the program as written, e.g. "sudo" for "/usr/bin/sudo". */
  readonly program: string
  /** The program word as written, after quote removal. */
  readonly path: string
  /** The arguments after the program (argv[1..]), after quote removal; expansions are kept as written. */
  readonly argv: ReadonlyArray<string>
  /** The wrappers this command was found inside, outermost first, e.g. ["sudo", "env"] for `sudo env rm x`. */
  readonly wrappers: ReadonlyArray<string>
  /**
   * What runs cannot be known before it runs: the program word is computed (`$X`, `$(...)`, a glob, a brace
   * expansion), or a shell reads its commands from standard input (`curl ... | sh`).
   */
  readonly dynamic: boolean
  /**
   * Variables are set for this program alone (`PATH=. git`, `env https_proxy=x curl`): what the program does
   * then depends on them. (Every variable the line assigns is also in `CommandLine.assigned`.)
   */
  readonly assigns?: boolean
  /** Files the command's redirections name (`> out`, `< in`, `2>> log`), quote-removed; absent when none. */
  readonly redirects?: ReadonlyArray<string>
}

export type CommandLine =
  | {
      readonly _tag: "Parsed"
      readonly commands: ReadonlyArray<SimpleCommand>
      /**
       * Every variable the line assigns, before a program (`PATH=. git`) or on its own (`PATH=.; git`,
       * `HOME=.` on a line of its own): what later programs on the line do may depend on them.
       */
      readonly assigned: ReadonlyArray<string>
    }
  | { readonly _tag: "Unparseable"; readonly reason: string }

/**
 * True when `s` contains anything that lets one shell word start or feed another command: `;`, `|`, `&`,
 * `$(`, a backquote, `>`, `<` or a line break. Command patterns never match across these.
 */
export const hasShellMetacharacters = (s: string): boolean => /[;|&<>`\n\r]|\$\(/.test(s)

// The last line read and what it gave: one intercept reads the same line in classification, policy and every
// grant it tries, and the result is immutable, so it is read once.
let lastInput: string | undefined
let lastResult: CommandLine | undefined

/** Reads `input` as a shell would; never throws. */
export const parseCommandLine = (input: string): CommandLine => {
  if (input === lastInput && lastResult !== undefined) return lastResult
  const result = parseFresh(input)
  lastInput = input
  lastResult = result
  return result
}

const parseFresh = (input: string): CommandLine => {
  if (input.includes("\u0000")) return { _tag: "Unparseable", reason: "the command contains a NUL character" }
  const out: Array<SimpleCommand> = []
  const assigned: Array<string> = []
  ASSIGNED.set(out, assigned)
  try {
    const parser = new Parser(input, out, 0, [])
    parser.parseList("eof")
    return { _tag: "Parsed", commands: out, assigned: [...new Set(assigned)] }
  } catch (e) {
    if (e instanceof ParseFailure) return { _tag: "Unparseable", reason: e.reason }
    // A stack overflow on hostile input must still fail closed, not crash the interceptor.
    if (e instanceof RangeError) return { _tag: "Unparseable", reason: "the command is nested too deeply to check" }
    throw e
  }
}

// The variables assigned anywhere in one parse, shared by the nested parsers of one line through its output.
const ASSIGNED = new WeakMap<Array<SimpleCommand>, Array<string>>()

/** Basename of a program word: what the shell looks up or the kernel executes. */
export const programName = (word: string): string => {
  const trimmed = word.replace(/\/+$/, "")
  const slash = trimmed.lastIndexOf("/")
  return slash === -1 ? trimmed : trimmed.slice(slash + 1)
}

class ParseFailure {
  constructor(readonly reason: string) {}
}

// Deep enough for any real command line; shallow enough that hostile nesting fails closed instead of
// exhausting the stack.
const MAX_NESTING = 48

interface Word {
  /** Quote-removed text; expansions are kept as written. */
  readonly text: string
  /** Text as it appears in the source. */
  readonly raw: string
  readonly quoted: boolean
  /** Contains an expansion, an unquoted glob or a brace expansion: its value is only known at run time. */
  readonly dynamic: boolean
}

interface Heredoc {
  readonly delimiter: string
  readonly expands: boolean
  readonly stripTabs: boolean
}

/** Collects the pieces of one word while it is read. */
class WordBuilder {
  text = ""
  /** Unquoted characters as they are, quoted ones as "_": used to find globs and brace expansions. */
  shape = ""
  quoted = false
  dynamic = false
  literal(s: string): void {
    this.text += s
    this.shape += s
  }
  quotedText(s: string): void {
    this.text += s
    this.shape += "_".repeat(s.length)
    this.quoted = true
  }
  expansion(raw: string): void {
    this.text += raw
    this.shape += "_".repeat(raw.length)
    this.dynamic = true
  }
}

const BLANK = new Set([" ", "\t"])
const WORD_BREAK = new Set([" ", "\t", "\n", ";", "&", "|", "(", ")", "<", ">"])
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/
const ARRAY_ASSIGNMENT_PREFIX = /^[A-Za-z_][A-Za-z0-9_]*\+?=$/
// Reserved words that only introduce or close a compound command; the next word is again a command.
const TRANSPARENT_RESERVED = new Set(["{", "}", "!", "if", "then", "else", "elif", "fi", "while", "until", "do", "done", "esac", "coproc"])
const SHELLS = new Set(["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "posh", "fish", "rbash"])

class Parser {
  pos = 0
  private nesting: number
  private pending: Array<Heredoc> = []
  /** Set while the words of one simple command are unwrapped: some variable is assigned for it. */
  private assigning = false
  /** The redirection targets of the simple command being unwrapped. */
  private redirecting: ReadonlyArray<string> = []

  constructor(
    private readonly src: string,
    private readonly out: Array<SimpleCommand>,
    nesting: number,
    private readonly baseWrappers: ReadonlyArray<string>
  ) {
    if (nesting > MAX_NESTING) throw new ParseFailure(`the command is nested more than ${MAX_NESTING} levels deep`)
    this.nesting = nesting
  }

  private peek(offset = 0): string | undefined {
    return this.src[this.pos + offset]
  }

  private enter(): void {
    this.nesting++
    if (this.nesting > MAX_NESTING) throw new ParseFailure(`the command is nested more than ${MAX_NESTING} levels deep`)
  }

  private leave(): void {
    this.nesting--
  }

  private sub(text: string, wrappers: ReadonlyArray<string>): void {
    const parser = new Parser(text, this.out, this.nesting + 1, wrappers)
    parser.parseList("eof")
  }

  /** Spaces, tabs and line continuations. */
  private skipBlanks(): void {
    for (;;) {
      const c = this.peek()
      if (c !== undefined && BLANK.has(c)) this.pos++
      else if (c === "\\" && this.peek(1) === "\n") this.pos += 2
      else return
    }
  }

  private skipBlanksAndNewlines(): void {
    for (;;) {
      this.skipBlanks()
      const c = this.peek()
      if (c === "\n") this.consumeNewline()
      else if (c === "#") this.skipComment()
      else return
    }
  }

  private skipComment(): void {
    while (this.pos < this.src.length && this.src[this.pos] !== "\n") this.pos++
  }

  private atPlainWord(word: string): boolean {
    if (!this.src.startsWith(word, this.pos)) return false
    const after = this.src[this.pos + word.length]
    return after === undefined || WORD_BREAK.has(after)
  }

  /** A newline ends a command, and the bodies of here-documents opened on that line follow it. */
  private consumeNewline(): void {
    this.pos++
    const docs = this.pending
    this.pending = []
    for (const doc of docs) {
      let body = ""
      while (this.pos < this.src.length) {
        const end = this.src.indexOf("\n", this.pos)
        const line = end === -1 ? this.src.slice(this.pos) : this.src.slice(this.pos, end)
        this.pos = end === -1 ? this.src.length : end + 1
        if ((doc.stripTabs ? line.replace(/^\t+/, "") : line) === doc.delimiter) break
        body += line + "\n"
      }
      // With an unquoted delimiter the shell expands $(...) and backquotes inside the body.
      if (doc.expands) new Parser(body, this.out, this.nesting + 1, this.baseWrappers).scanExpansions()
    }
  }

  /** Finds command substitutions in text that is not split into words (here-document bodies). */
  scanExpansions(): void {
    const scratch = new WordBuilder()
    while (this.pos < this.src.length) {
      const c = this.src[this.pos]
      if (c === "\\") this.pos += 2
      else if (c === "$") this.readDollar(scratch, true)
      else if (c === "`") this.readBackquote(scratch)
      else this.pos++
    }
  }

  /** A list of pipelines, up to the end of input, a closing `)`, or the end of a `case` branch. */
  parseList(until: "eof" | ")" | "case"): void {
    this.enter()
    for (;;) {
      this.skipBlanks()
      const c = this.peek()
      if (c === undefined) {
        if (until === ")") throw new ParseFailure("a '(' or '$(' is never closed with ')'")
        if (until === "case") throw new ParseFailure("a 'case' is never closed with 'esac'")
        break
      }
      if (c === "\n") {
        this.consumeNewline()
        continue
      }
      if (c === "#") {
        this.skipComment()
        continue
      }
      if (until === "case" && (this.src.startsWith(";;", this.pos) || this.src.startsWith(";&", this.pos) || this.atPlainWord("esac"))) break
      if (c === ")") {
        if (until === ")") {
          this.pos++
          break
        }
        throw new ParseFailure("unexpected ')' without a matching '('")
      }
      if (c === ";" || c === "|" || (c === "&" && this.peek(1) !== ">")) {
        this.pos++
        continue
      }
      this.parseCommand()
    }
    this.leave()
  }

  /** One simple or compound command, up to the next operator. */
  private parseCommand(): void {
    const words: Array<Word> = []
    const redirects: Array<string> = []
    const redirect = (): void => {
      const target = this.readRedirection()
      if (target !== undefined) redirects.push(target)
    }
    // After `( ... )`, `(( ... ))`, `[[ ... ]]` or `case ... esac` only redirections may follow.
    let closed = false
    for (;;) {
      this.skipBlanks()
      const c = this.peek()
      if (c === undefined || c === "\n" || c === ";" || c === "|" || c === ")") break
      if (c === "&") {
        if (this.peek(1) === ">") {
          redirect()
          continue
        }
        break
      }
      if (c === "#") {
        this.skipComment()
        continue
      }
      if ((c === "<" || c === ">") && this.peek(1) === "(") {
        if (closed) throw new ParseFailure("unexpected process substitution after a compound command")
        words.push(this.readProcessSubstitution())
        continue
      }
      if (c === "<" || c === ">" || this.atFdRedirection()) {
        redirect()
        continue
      }
      if (c === "(") {
        if (words.length === 0 && !closed) {
          if (this.peek(1) === "(") this.readArithmeticOr(() => {
            this.pos++
            this.parseList(")")
          })
          else {
            this.pos++
            this.parseList(")")
          }
          closed = true
          continue
        }
        if (words.length === 1 && !closed && this.atFunctionParens()) {
          // `name () body`: what follows is the body, a command again.
          words.length = 0
          continue
        }
        throw new ParseFailure("unexpected '(' in the middle of a command")
      }
      if (closed) throw new ParseFailure("unexpected word after a closing ')' , ']]' or 'esac'")
      const word = this.readWord()
      if (words.length === 0 && !word.quoted && !word.dynamic) {
        const w = word.text
        if (w === "time") {
          // `time` is a reserved word before a pipeline: what follows may be a compound command (`time { …; }`).
          this.skipTimeOptions()
          continue
        }
        if (w === "coproc") {
          this.skipCoprocName()
          continue
        }
        if (TRANSPARENT_RESERVED.has(w)) continue
        if (w === "for" || w === "select") {
          this.readForHeader()
          continue
        }
        if (w === "case") {
          this.readCase()
          closed = true
          continue
        }
        if (w === "function") {
          this.skipBlanks()
          this.readWord()
          this.skipBlanks()
          if (this.peek() === "(") this.atFunctionParens()
          continue
        }
        if (w === "[[") {
          this.readConditional()
          closed = true
          continue
        }
      }
      words.push(word)
    }
    this.emit(words, redirects)
  }

  /** After `time`: its own `-p` and `--`. */
  private skipTimeOptions(): void {
    for (;;) {
      this.skipBlanks()
      if (this.atPlainWord("-p") || this.atPlainWord("--")) this.readWord()
      else return
    }
  }

  /** After `coproc`: a NAME that is followed by a compound command is a name, not a program. */
  private skipCoprocName(): void {
    const start = this.pos
    this.skipBlanks()
    const c = this.peek()
    if (c === undefined || WORD_BREAK.has(c) || c === "{") {
      this.pos = start
      return
    }
    const name = this.readWord()
    this.skipBlanks()
    const next = this.peek()
    const compound = next === "{" || next === "(" || ["while", "until", "if", "for", "select", "case", "[["].some((k) => this.atPlainWord(k))
    if (name.quoted || name.dynamic || !compound) this.pos = start
  }

  /** At `(` after a function name: consumes `( )` and returns true if that is what follows. */
  private atFunctionParens(): boolean {
    let p = this.pos + 1
    while (p < this.src.length && BLANK.has(this.src[p] ?? "")) p++
    if (this.src[p] !== ")") return false
    this.pos = p + 1
    return true
  }

  private atFdRedirection(): boolean {
    let p = this.pos
    while (p < this.src.length && /[0-9]/.test(this.src[p] ?? "")) p++
    if (p === this.pos) return false
    const next = this.src[p]
    return next === "<" || next === ">"
  }

  /** Reads one redirection; returns the file it names (not for here-documents, `>&2` or process substitutions). */
  private readRedirection(): string | undefined {
    if (this.peek() === "&") this.pos++
    else while (/[0-9]/.test(this.peek() ?? "")) this.pos++
    const rest = this.src.slice(this.pos, this.pos + 3)
    let heredoc: "plain" | "strip" | null = null
    if (rest.startsWith("<<<")) this.pos += 3
    else if (rest.startsWith("<<-")) {
      heredoc = "strip"
      this.pos += 3
    } else if (rest.startsWith("<<")) {
      heredoc = "plain"
      this.pos += 2
    } else if (/^(<>|>>|>\||>&|<&)/.test(rest)) this.pos += 2
    else this.pos += 1
    this.skipBlanks()
    const c = this.peek()
    if ((c === "<" || c === ">") && this.peek(1) === "(") {
      this.readProcessSubstitution()
      return undefined
    }
    if (c === undefined || WORD_BREAK.has(c)) throw new ParseFailure("a redirection ('>', '<', '>>', '<<') has no target")
    const target = this.readWord()
    if (heredoc !== null) {
      if (target.text === "") throw new ParseFailure("a here-document ('<<') has an empty delimiter")
      this.pending.push({ delimiter: target.text, expands: !target.quoted, stripTabs: heredoc === "strip" })
      return undefined
    }
    // `<<<` is a here-string, and `>&2` / `<&-` duplicate or close a descriptor: no file.
    if (rest.startsWith("<<<") || (/^[<>]&/.test(rest) && /^(\d+|-)$/.test(target.text))) return undefined
    return target.text
  }

  private readProcessSubstitution(): Word {
    const start = this.pos
    this.pos += 2
    this.parseList(")")
    const raw = this.src.slice(start, this.pos)
    return { text: raw, raw, quoted: false, dynamic: true }
  }

  /** `for NAME in WORDS` or `for ((...))` up to the `;`, newline or `do` that ends the header. */
  private readForHeader(): void {
    this.skipBlanks()
    if (this.src.startsWith("((", this.pos)) {
      // `for ((i = 0; …))` assigns, whatever it names.
      ASSIGNED.get(this.out)?.push("((arithmetic for))")
      this.readArithmetic()
      return
    }
    let first = true
    for (;;) {
      this.skipBlanks()
      const c = this.peek()
      if (c === undefined || WORD_BREAK.has(c) || this.atPlainWord("do")) return
      const word = this.readWord()
      // The loop variable is assigned for every pass (`for PATH in .; do git; done`).
      if (first) ASSIGNED.get(this.out)?.push(word.text)
      first = false
    }
  }

  /** `case WORD in [(]PATTERN[|PATTERN]...) LIST ;; ... esac` */
  private readCase(): void {
    this.skipBlanks()
    this.readWord()
    this.skipBlanksAndNewlines()
    if (!this.atPlainWord("in")) throw new ParseFailure("'case' without 'in'")
    this.pos += 2
    for (;;) {
      this.skipBlanksAndNewlines()
      if (this.peek() === undefined) throw new ParseFailure("a 'case' is never closed with 'esac'")
      if (this.atPlainWord("esac")) {
        this.pos += 4
        return
      }
      if (this.peek() === "(") this.pos++
      for (;;) {
        this.skipBlanks()
        const c = this.peek()
        if (c === ")") {
          this.pos++
          break
        }
        if (c === "|") {
          this.pos++
          continue
        }
        if (c === undefined || WORD_BREAK.has(c)) throw new ParseFailure("a 'case' pattern is not closed with ')'")
        this.readWord()
      }
      this.parseList("case")
      if (this.src.startsWith(";;&", this.pos)) this.pos += 3
      else if (this.src.startsWith(";;", this.pos) || this.src.startsWith(";&", this.pos)) this.pos += 2
    }
  }

  /** `[[ ... ]]`: operators inside are part of the test, but substitutions in it still run. */
  private readConditional(): void {
    for (;;) {
      this.skipBlanksAndNewlines()
      const c = this.peek()
      if (c === undefined) throw new ParseFailure("a '[[' is never closed with ']]'")
      if (this.atPlainWord("]]")) {
        this.pos += 2
        return
      }
      if (c === "&" || c === "|" || c === "(" || c === ")" || c === "<" || c === ">" || c === ";") {
        this.pos++
        continue
      }
      this.readWord()
    }
  }

  /**
   * At `((`: arithmetic if it closes with `))`; otherwise, as bash does, the same text read again as a
   * subshell inside a subshell or a command substitution (`$((cd a) && (cd b))`), by `otherwise`, which
   * starts at the first `(`.
   */
  private readArithmeticOr(otherwise: () => void): void {
    const start = this.pos
    const nesting = this.nesting
    const found = this.out.length
    const pending = [...this.pending]
    try {
      this.readArithmetic()
    } catch (e) {
      if (!(e instanceof ParseFailure)) throw e
      this.pos = start
      this.nesting = nesting
      this.out.length = found
      this.pending = pending
      otherwise()
    }
  }

  /** At `((`: an arithmetic expression up to the matching `))`. */
  private readArithmetic(): void {
    this.enter()
    this.pos += 2
    const scratch = new WordBuilder()
    let depth = 0
    for (;;) {
      const c = this.peek()
      if (c === undefined) throw new ParseFailure("an arithmetic '((' is never closed with '))'")
      if (c === ")" && depth === 0) {
        if (this.peek(1) !== ")") throw new ParseFailure("an arithmetic '((' is closed with ')' instead of '))'")
        this.pos += 2
        break
      }
      if (c === "(") {
        depth++
        this.pos++
      } else if (c === ")") {
        depth--
        this.pos++
      } else if (c === "$") this.readDollar(scratch, false)
      else if (c === "`") this.readBackquote(scratch)
      else if (c === "'") this.readSingleQuoted(scratch)
      else if (c === '"') this.readDoubleQuoted(scratch)
      else if (c === "\\") this.pos += 2
      else this.pos++
    }
    this.leave()
  }

  private readWord(): Word {
    const start = this.pos
    const b = new WordBuilder()
    for (;;) {
      const c = this.peek()
      if (c === undefined) break
      if (c === "(" && !b.quoted && !b.dynamic && ARRAY_ASSIGNMENT_PREFIX.test(b.text)) {
        this.readArrayLiteral(b)
        continue
      }
      if (WORD_BREAK.has(c)) break
      if (c === "\\") {
        const n = this.peek(1)
        if (n === undefined) {
          b.literal("\\")
          this.pos++
        } else if (n === "\n") this.pos += 2
        else {
          b.quotedText(n)
          this.pos += 2
        }
      } else if (c === "'") this.readSingleQuoted(b)
      else if (c === '"') this.readDoubleQuoted(b)
      else if (c === "$") this.readDollar(b, false)
      else if (c === "`") this.readBackquote(b)
      else {
        b.literal(c)
        this.pos++
      }
    }
    // Globs and brace expansions make the word's value depend on the file system or expand to several words.
    const glob = /[*?]|\[[^\]]*\]/.test(b.shape)
    const brace = /\{[^{}]*(,|\.\.)[^{}]*\}/.test(b.shape)
    return { text: b.text, raw: this.src.slice(start, this.pos), quoted: b.quoted, dynamic: b.dynamic || glob || brace }
  }

  /** `NAME=(a b c)` */
  private readArrayLiteral(b: WordBuilder): void {
    const start = this.pos
    this.pos++
    for (;;) {
      this.skipBlanksAndNewlines()
      const c = this.peek()
      if (c === undefined) throw new ParseFailure("an array assignment '(' is never closed with ')'")
      if (c === ")") {
        this.pos++
        break
      }
      if (WORD_BREAK.has(c)) throw new ParseFailure(`unexpected '${c}' in an array assignment`)
      this.readWord()
    }
    b.literal(this.src.slice(start, this.pos))
  }

  private readSingleQuoted(b: WordBuilder): void {
    const end = this.src.indexOf("'", this.pos + 1)
    if (end === -1) throw new ParseFailure("a single quote (') is never closed")
    b.quotedText(this.src.slice(this.pos + 1, end))
    this.pos = end + 1
  }

  private readDoubleQuoted(b: WordBuilder): void {
    this.pos++
    b.quoted = true
    for (;;) {
      const c = this.peek()
      if (c === undefined) throw new ParseFailure('a double quote (") is never closed')
      if (c === '"') {
        this.pos++
        return
      }
      if (c === "\\") {
        const n = this.peek(1)
        if (n === "\n") this.pos += 2
        else if (n === "$" || n === "`" || n === '"' || n === "\\") {
          b.quotedText(n)
          this.pos += 2
        } else {
          b.quotedText("\\")
          this.pos++
        }
      } else if (c === "$") this.readDollar(b, true)
      else if (c === "`") this.readBackquote(b)
      else {
        b.quotedText(c)
        this.pos++
      }
    }
  }

  /** At `$`: a parameter, command substitution, arithmetic, or ANSI-C / locale quoting. */
  private readDollar(b: WordBuilder, inDoubleQuotes: boolean): void {
    const start = this.pos
    const n = this.peek(1)
    if (n === "'" && !inDoubleQuotes) {
      this.pos++
      b.quotedText(this.readAnsiC())
      return
    }
    if (n === '"' && !inDoubleQuotes) {
      this.pos++
      this.readDoubleQuoted(b)
      return
    }
    if (n === "(") {
      if (this.peek(2) === "(") {
        this.pos++
        this.readArithmeticOr(() => {
          this.pos++
          this.parseList(")")
        })
      } else {
        this.pos += 2
        this.parseList(")")
      }
      b.expansion(this.src.slice(start, this.pos))
      return
    }
    if (n === "[") {
      // Old-style arithmetic `$[ ... ]`.
      this.pos += 2
      this.readBracketed("[", "]")
      b.expansion(this.src.slice(start, this.pos))
      return
    }
    if (n === "{") {
      this.pos += 2
      this.readBracketed("{", "}")
      b.expansion(this.src.slice(start, this.pos))
      return
    }
    if (n !== undefined && /[A-Za-z_]/.test(n)) {
      this.pos += 2
      while (/[A-Za-z0-9_]/.test(this.peek() ?? "")) this.pos++
      b.expansion(this.src.slice(start, this.pos))
      return
    }
    if (n !== undefined && /[0-9@*#?$!-]/.test(n)) {
      this.pos += 2
      b.expansion(this.src.slice(start, this.pos))
      return
    }
    this.pos++
    if (inDoubleQuotes) b.quotedText("$")
    else b.literal("$")
  }

  /** After an opening `${` or `$[`: up to the matching close, running any substitutions inside. */
  private readBracketed(open: string, close: string): void {
    this.enter()
    const scratch = new WordBuilder()
    let depth = 1
    for (;;) {
      const c = this.peek()
      if (c === undefined) throw new ParseFailure(`a '$${open}' is never closed with '${close}'`)
      if (c === close) {
        depth--
        this.pos++
        if (depth === 0) break
      } else if (c === open) {
        depth++
        this.pos++
      } else if (c === "\\") this.pos += 2
      else if (c === "'") this.readSingleQuoted(scratch)
      else if (c === '"') this.readDoubleQuoted(scratch)
      else if (c === "$") this.readDollar(scratch, false)
      else if (c === "`") this.readBackquote(scratch)
      else this.pos++
    }
    this.leave()
  }

  /** At the `'` of `$'...'`: decodes the escapes bash decodes, so `$'\x73udo'` reads as `sudo`. */
  private readAnsiC(): string {
    this.pos++
    let text = ""
    for (;;) {
      const c = this.peek()
      if (c === undefined) throw new ParseFailure("a $'...' quote is never closed")
      if (c === "'") {
        this.pos++
        return text
      }
      if (c !== "\\") {
        text += c
        this.pos++
        continue
      }
      const e = this.peek(1)
      this.pos += 2
      switch (e) {
        case undefined:
          throw new ParseFailure("a $'...' quote is never closed")
        case "a":
          text += "\u0007"
          break
        case "b":
          text += "\b"
          break
        case "e":
        case "E":
          text += "\u001b"
          break
        case "f":
          text += "\f"
          break
        case "n":
          text += "\n"
          break
        case "r":
          text += "\r"
          break
        case "t":
          text += "\t"
          break
        case "v":
          text += "\v"
          break
        case "x":
          text += this.readCodeDigits(/[0-9A-Fa-f]/, 2, 16)
          break
        case "u":
          text += this.readCodeDigits(/[0-9A-Fa-f]/, 4, 16)
          break
        case "U":
          text += this.readCodeDigits(/[0-9A-Fa-f]/, 8, 16)
          break
        case "c": {
          const ctl = this.peek()
          if (ctl !== undefined) {
            text += String.fromCharCode(ctl.charCodeAt(0) & 0x1f)
            this.pos++
          }
          break
        }
        default:
          if (/[0-7]/.test(e)) {
            this.pos--
            text += this.readCodeDigits(/[0-7]/, 3, 8)
          } else text += e
      }
    }
  }

  private readCodeDigits(digit: RegExp, max: number, radix: number): string {
    let digits = ""
    while (digits.length < max && digit.test(this.peek() ?? "")) {
      digits += this.peek() ?? ""
      this.pos++
    }
    if (digits === "") return ""
    const code = parseInt(digits, radix)
    return code <= 0x10ffff ? String.fromCodePoint(code) : ""
  }

  /** At a backquote: the old form of command substitution, whose text is read again as a command line. */
  private readBackquote(b: WordBuilder): void {
    const start = this.pos
    this.pos++
    let inner = ""
    for (;;) {
      const c = this.peek()
      if (c === undefined) throw new ParseFailure("a backquote (`) is never closed")
      if (c === "`") {
        this.pos++
        break
      }
      const n = this.peek(1)
      if (c === "\\" && (n === "$" || n === "`" || n === "\\")) {
        inner += n
        this.pos += 2
      } else {
        inner += c
        this.pos++
      }
    }
    this.sub(inner, this.baseWrappers)
    b.expansion(this.src.slice(start, this.pos))
  }

  /** Records the command formed by `words`, after assignments, looking through wrappers. */
  private emit(words: ReadonlyArray<Word>, redirects: ReadonlyArray<string>): void {
    let i = 0
    while (i < words.length && isAssignment(words[i])) i++
    this.noteAssigned(words.slice(0, i))
    this.assigning = i > 0
    this.redirecting = redirects
    // Redirections with no program (`> f`, `x=1 >/dev/tcp/h/80`, or those of a compound command such as
    // `{ …; } > f`) still open their files: reported as the null command `:` that carries them.
    if (i === words.length && redirects.length > 0) this.out.push({ program: ":", path: ":", argv: [], wrappers: this.baseWrappers, dynamic: false, redirects })
    this.unwrap(words.slice(i), this.baseWrappers)
    this.assigning = false
    this.redirecting = []
  }

  private noteAssigned(words: ReadonlyArray<Word>): void {
    const names = ASSIGNED.get(this.out)
    for (const w of words) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(w.raw)?.[0]
      if (name !== undefined) names?.push(name)
    }
  }

  private push(head: Word, args: ReadonlyArray<Word>, wrappers: ReadonlyArray<string>, dynamic = false): void {
    this.out.push({
      program: head.dynamic ? head.text : programName(head.text),
      path: head.text,
      argv: args.map((a) => a.text),
      wrappers,
      dynamic: dynamic || head.dynamic,
      ...(this.assigning ? { assigns: true } : {}),
      ...(this.redirecting.length > 0 ? { redirects: this.redirecting } : {})
    })
  }

  private unwrap(initial: ReadonlyArray<Word>, initialWrappers: ReadonlyArray<string>): void {
    let words = initial
    let wrappers = initialWrappers
    for (;;) {
      const head = words[0]
      if (head === undefined) return
      const args = words.slice(1)
      if (head.dynamic) {
        this.push(head, args, wrappers)
        return
      }
      const prog = programName(head.text)
      const inner = [...wrappers, prog]
      const spec = WRAPPERS[prog]
      if (spec !== undefined) {
        if (spec.reportSelf) this.push(head, args, wrappers)
        let i = skipOptions(args, spec)
        if (prog === "env") {
          const split = envSplitString(args)
          if (split !== null) {
            this.sub(split, inner)
            return
          }
        }
        if (prog === "command" && args.slice(0, i).some((a) => /^-[a-zA-Z]*[vV]/.test(a.text))) {
          // `command -v x` only looks x up.
          if (!spec.reportSelf) this.push(head, args, wrappers)
          return
        }
        if (spec.operandsBeforeProgram !== undefined) i += spec.operandsBeforeProgram
        if (spec.assignments === true) {
          const before = i
          while (i < args.length && isAssignment(args[i])) i++
          this.noteAssigned(args.slice(before, i))
          if (i > before) this.assigning = true
        }
        if (i >= args.length) {
          if (!spec.reportSelf) this.push(head, args, wrappers)
          return
        }
        words = args.slice(i)
        wrappers = inner
        continue
      }
      if (SHELLS.has(prog)) {
        this.unwrapShell(head, args, wrappers)
        return
      }
      if (prog === "eval") {
        this.sub(args.map((a) => a.text).join(" "), inner)
        return
      }
      if (prog === "busybox" && args[0] !== undefined && !args[0].text.startsWith("-")) {
        words = args
        wrappers = inner
        continue
      }
      if (prog === "watch") {
        this.unwrapWatch(head, args, wrappers)
        return
      }
      if (prog === "flock") {
        this.unwrapFlock(head, args, wrappers)
        return
      }
      if ((prog === "source" || prog === ".") && args[0]?.dynamic === true) {
        // `source <(curl ...)` runs whatever the substitution prints.
        this.push(head, args, wrappers, true)
        return
      }
      this.push(head, args, wrappers)
      if (prog === "find") this.unwrapFindExec(args, inner)
      return
    }
  }

  private unwrapShell(head: Word, args: ReadonlyArray<Word>, wrappers: ReadonlyArray<string>): void {
    const inner = [...wrappers, programName(head.text)]
    let commandString = false
    let fromStdin = false
    let i = 0
    for (; i < args.length; i++) {
      const a = args[i]?.text ?? ""
      if (a === "--" || a === "-") {
        i++
        break
      }
      if (a.startsWith("--")) {
        if (a.startsWith("--command=")) {
          this.sub(a.slice("--command=".length), inner)
          return
        }
        if (a === "--command") commandString = true
        if (a === "--rcfile" || a === "--init-file") i++
        continue
      }
      if ((a.startsWith("-") || a.startsWith("+")) && a.length > 1) {
        if (a.includes("c")) commandString = true
        if (a.includes("s") || a.includes("i")) fromStdin = true
        if (/[oO]/.test(a)) i++
        continue
      }
      break
    }
    const first = args[i]
    if (commandString && first !== undefined) {
      this.sub(first.text, inner)
      return
    }
    // No script operand (or -s): the shell reads its commands from standard input, which no one can see here;
    // nor can anyone see a script that is itself computed (`bash <(curl ...)`).
    this.push(head, args, wrappers, first === undefined || commandString || fromStdin || first.dynamic)
  }

  private unwrapWatch(head: Word, args: ReadonlyArray<Word>, wrappers: ReadonlyArray<string>): void {
    this.push(head, args, wrappers)
    const i = skipOptions(args, WATCH)
    const execDirect = args.slice(0, i).some((a) => a.text === "--exec" || /^-[a-zA-Z]*x/.test(a.text))
    const rest = args.slice(i)
    if (rest.length === 0) return
    const inner = [...wrappers, "watch"]
    // Without -x, watch hands its arguments, joined by spaces, to `sh -c`.
    if (execDirect) this.unwrap(rest, inner)
    else this.sub(rest.map((a) => a.text).join(" "), inner)
  }

  /** `flock [opts] FILE PROGRAM ARGS...` or `flock [opts] FILE -c COMMAND` (run by sh -c). */
  private unwrapFlock(head: Word, args: ReadonlyArray<Word>, wrappers: ReadonlyArray<string>): void {
    const inner = [...wrappers, "flock"]
    const c = args.findIndex((a) => a.text === "-c" || a.text === "--command")
    if (c !== -1) {
      const script = args[c + 1]
      if (script !== undefined) this.sub(script.text, inner)
      else this.push(head, args, wrappers)
      return
    }
    const i = skipOptions(args, FLOCK) + 1
    if (i >= args.length) this.push(head, args, wrappers)
    else this.unwrap(args.slice(i), inner)
  }

  private unwrapFindExec(args: ReadonlyArray<Word>, wrappers: ReadonlyArray<string>): void {
    for (let i = 0; i < args.length; i++) {
      const a = args[i]?.text
      if (a !== "-exec" && a !== "-execdir" && a !== "-ok" && a !== "-okdir") continue
      const start = i + 1
      let end = start
      while (end < args.length && args[end]?.text !== ";" && args[end]?.text !== "+") end++
      this.unwrap(args.slice(start, end), wrappers)
      i = end
    }
  }
}

const isAssignment = (w: Word | undefined): boolean => w !== undefined && ASSIGNMENT.test(w.raw)

/** How a wrapper's own options are laid out, so that the program it runs can be found. */
interface WrapperSpec {
  /** Short options that take an argument (attached, `-uroot`, or as the next word, `-u root`). */
  readonly shortArg: string
  /** Short options whose argument can only be attached (`-i{}`): the rest of the cluster is the argument. */
  readonly shortOptionalArg?: string
  /** Long options that take an argument (`--user root` or `--user=root`). */
  readonly longArg: ReadonlyArray<string>
  /** `env -` means `env -i`. */
  readonly dashAlone?: boolean
  /** Words between the options and the program (timeout's DURATION, chroot's NEWROOT). */
  readonly operandsBeforeProgram?: number
  /** NAME=value words allowed before the program. */
  readonly assignments?: boolean
  /** Privilege-changing wrappers are also reported as commands of their own. */
  readonly reportSelf?: boolean
}

// Option lists follow the manuals of GNU coreutils, findutils, sudo 1.9, OpenBSD doas and util-linux. They
// must be exact for options that take an argument: treating an argument as the program, or the program as an
// argument, would hide the real program.
const WRAPPERS: Readonly<Record<string, WrapperSpec>> = {
  env: { shortArg: "uCS", longArg: ["unset", "chdir", "split-string"], dashAlone: true, assignments: true },
  sudo: {
    shortArg: "CDgpRrTtUu",
    longArg: ["close-from", "chdir", "group", "host", "prompt", "chroot", "role", "type", "command-timeout", "other-user", "user"],
    assignments: true,
    reportSelf: true
  },
  doas: { shortArg: "uC", longArg: [], reportSelf: true },
  pkexec: { shortArg: "", longArg: ["user"], reportSelf: true },
  run0: {
    shortArg: "ug",
    longArg: ["user", "group", "nice", "chdir", "setenv", "property", "description", "slice", "unit", "machine", "background"],
    reportSelf: true
  },
  chroot: { shortArg: "", longArg: ["userspec", "groups"], operandsBeforeProgram: 1, reportSelf: true },
  nice: { shortArg: "n", longArg: ["adjustment"] },
  ionice: { shortArg: "cnp", longArg: ["class", "classdata", "pid", "pgid", "uid"] },
  nohup: { shortArg: "", longArg: [] },
  setsid: { shortArg: "", longArg: [] },
  stdbuf: { shortArg: "ioe", longArg: ["input", "output", "error"] },
  timeout: { shortArg: "ks", longArg: ["kill-after", "signal"], operandsBeforeProgram: 1 },
  time: { shortArg: "fo", longArg: ["format", "output"] },
  command: { shortArg: "", longArg: [] },
  exec: { shortArg: "a", longArg: [] },
  builtin: { shortArg: "", longArg: [] },
  taskset: { shortArg: "", longArg: [], operandsBeforeProgram: 1 },
  chrt: { shortArg: "TPD", longArg: ["sched-runtime", "sched-period", "sched-deadline"], operandsBeforeProgram: 1 },
  numactl: {
    shortArg: "imNCpPw",
    longArg: ["interleave", "preferred", "membind", "cpunodebind", "physcpubind", "preferred-many", "weighted-interleave"]
  },
  unshare: { shortArg: "SGRw", longArg: ["setuid", "setgid", "root", "wd", "propagation", "setgroups"] },
  strace: { shortArg: "abeEIoOpPsSuUX", longArg: [] },
  fakeroot: { shortArg: "lisb", longArg: ["faked", "lib"] },
  unbuffer: { shortArg: "", longArg: [] },
  xargs: {
    shortArg: "adEILnPs",
    shortOptionalArg: "eil",
    longArg: ["arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"]
  }
}

const WATCH: WrapperSpec = { shortArg: "nq", longArg: ["interval", "equexit"] }
const FLOCK: WrapperSpec = { shortArg: "wE", longArg: ["timeout", "conflict-exit-code"] }

/** Index of the first word after the wrapper's options. */
const skipOptions = (args: ReadonlyArray<Word>, spec: WrapperSpec): number => {
  let i = 0
  while (i < args.length) {
    const a = args[i]?.text ?? ""
    if (a === "--") return i + 1
    if (a === "-") {
      if (spec.dashAlone === true) {
        i++
        continue
      }
      return i
    }
    if (a.startsWith("--")) {
      const name = a.slice(2).split("=")[0] ?? ""
      i += !a.includes("=") && spec.longArg.includes(name) ? 2 : 1
      continue
    }
    if (a.startsWith("-") && a.length > 1) {
      let step = 1
      for (let j = 1; j < a.length; j++) {
        const ch = a[j] ?? ""
        if (spec.shortOptionalArg?.includes(ch) === true) break
        if (spec.shortArg.includes(ch)) {
          if (j === a.length - 1) step = 2
          break
        }
      }
      i += step
      continue
    }
    return i
  }
  return i
}

/**
 * `env -S STRING` / `--split-string=STRING`: env splits STRING into a program and its arguments, followed by
 * env's remaining operands. Returns the command line that results, or null without -S.
 */
const envSplitString = (args: ReadonlyArray<Word>): string | null => {
  const rest = (from: number): Array<string> => args.slice(from).map((w) => quoteWord(w.text))
  for (let i = 0; i < args.length; i++) {
    const a = args[i]?.text ?? ""
    if (a === "--" || a === "-" || !a.startsWith("-")) return null
    if (a.startsWith("--")) {
      if (a === "--split-string") return [args[i + 1]?.text ?? "", ...rest(i + 2)].join(" ")
      if (a.startsWith("--split-string=")) return [a.slice("--split-string=".length), ...rest(i + 1)].join(" ")
      if (a === "--unset" || a === "--chdir") i++
      continue
    }
    for (let j = 1; j < a.length; j++) {
      const ch = a[j]
      if (ch === "S") {
        return j === a.length - 1 ? [args[i + 1]?.text ?? "", ...rest(i + 2)].join(" ") : [a.slice(j + 1), ...rest(i + 1)].join(" ")
      }
      if (ch === "u" || ch === "C") {
        if (j === a.length - 1) i++
        break
      }
    }
  }
  return null
}

const quoteWord = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`
