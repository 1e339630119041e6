/**
 * Random shell command lines for property tests of the command-line reader and the policy: a command hidden
 * in compositions with `;`, `|`, `&&`, `||`, `&`, newlines, `$(...)`, backquotes, `sh -c`, `bash -c`, eval,
 * subshells, groups, if/while/case, functions, here-documents, xargs, find -exec and program wrappers.
 * Every string is valid bash (a test checks a sample with `bash -n`). Substitutions get a space after `$(`:
 * `$((` would start arithmetic, where bash runs nothing.
 */
import fc from "fast-check"

export interface Hidden {
  /** A simple command line, e.g. "sudo rm x". */
  readonly command: string
  /** The program the reader must report, e.g. "sudo". */
  readonly program: string
}

export const BLOCKED_BY_DEFAULT: ReadonlyArray<Hidden> = [
  { command: "sudo rm x", program: "sudo" },
  { command: "/usr/bin/sudo -u root id", program: "sudo" },
  { command: "su -", program: "su" },
  { command: "doas ls", program: "doas" },
  { command: "mkfs /dev/sda1", program: "mkfs" },
  { command: "mkfs.ext4 /dev/sda1", program: "mkfs.ext4" },
  { command: "dd if=/dev/zero of=/dev/sda", program: "dd" },
  { command: "shutdown -h now", program: "shutdown" },
  { command: "reboot", program: "reboot" },
  { command: "halt", program: "halt" },
  { command: "poweroff", program: "poweroff" },
  { command: "init 0", program: "init" },
  { command: "rm -rf /", program: "rm" },
  { command: "rm -fr /*", program: "rm" },
  { command: "rm -r -f /", program: "rm" },
  { command: "rm --recursive --force /", program: "rm" },
  { command: "chmod 777 /", program: "chmod" },
  { command: "chmod -R 777 /", program: "chmod" }
]

/** Commands the default policy must let through, including near-misses of blocked names. */
export const HARMLESS: ReadonlyArray<string> = [
  "ls -la",
  "echo hi",
  "git status",
  "cat README.md",
  "sum file.txt",
  "sudoku",
  "ddrescue in.img out.img",
  "cargo build --release",
  "grep -r foo .",
  "rm -rf ./build",
  "rm -r /tmp/x",
  "chmod 644 file",
  "initdb data",
  "mkfsx",
  "suspend",
  "echo sudo"
]

const singleQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`
const doubleQuoteBody = (s: string): string => s.replace(/[\\"$`]/g, "\\$&")
const backquoteBody = (s: string): string => s.replace(/[\\`$]/g, "\\$&")

/** Wrappers that take a simple command. */
const simpleWrappers: ReadonlyArray<(c: string) => string> = [
  (c) => c,
  (c) => `env FOO=1 ${c}`,
  (c) => `env -i PATH=/usr/bin ${c}`,
  (c) => `nohup ${c}`,
  (c) => `timeout -s KILL 5 ${c}`,
  (c) => `nice -n 10 ${c}`,
  (c) => `time ${c}`,
  (c) => `command ${c}`,
  (c) => `X=1 Y="a b" ${c}`,
  (c) => `${c} > /tmp/out 2>&1`,
  (c) => `echo x | xargs ${c}`,
  (c) => `find . -name x -exec ${c} {} \\;`,
  (c) => `busybox ${c}`,
  (c) => `exec ${c}`
]

/** Compositions of a command line `s` with another command line `o`. */
const compositions: ReadonlyArray<(s: string, o: string) => string> = [
  (s, o) => `${o}; ${s}`,
  (s, o) => `${s} | ${o}`,
  (s, o) => `${o} | ${s}`,
  (s, o) => `${o} && ${s}`,
  (s, o) => `${o} || ${s}`,
  (s, o) => `${o} & ${s}`,
  (s, o) => `${o}\n${s}`,
  (s) => `echo $( ${s} )`,
  (s) => `echo "$( ${s} )"`,
  (s) => `echo \`${backquoteBody(s)}\``,
  (s) => `sh -c ${singleQuote(s)}`,
  (s) => `bash -lc "${doubleQuoteBody(s)}"`,
  (s) => `eval ${singleQuote(s)}`,
  (s) => `( ${s} )`,
  (s) => `{ ${s}; }`,
  (s) => `if true; then ${s}; fi`,
  (s) => `while false; do ${s}; done`,
  (s) => `for i in 1 2; do ${s}; done`,
  (s) => `case x in x) ${s};; esac`,
  (s) => `f() { ${s}; }; f`,
  (s) => `V=$( ${s} ) true`,
  (s) => `[[ -n "$( ${s} )" ]]`,
  (s) => `cat <( ${s} )`
]

const leaf = (command: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(command, fc.constantFrom(...simpleWrappers)).map(([c, wrap]) => wrap(c))

/** `target` hidden at a random depth (up to `depth` compositions) among harmless commands. */
export const hiddenIn = (target: fc.Arbitrary<string>, depth = 4): fc.Arbitrary<string> => {
  const other = leaf(fc.constantFrom(...HARMLESS))
  const go = (d: number): fc.Arbitrary<string> =>
    d === 0
      ? leaf(target)
      : fc.oneof(
          { arbitrary: leaf(target), weight: 1 },
          { arbitrary: fc.tuple(go(d - 1), other, fc.constantFrom(...compositions)).map(([s, o, compose]) => compose(s, o)), weight: 3 }
        )
  return go(depth)
}

export const hiddenBlocked: fc.Arbitrary<{ readonly line: string; readonly hidden: Hidden }> = fc
  .constantFrom(...BLOCKED_BY_DEFAULT)
  .chain((hidden) => hiddenIn(fc.constant(hidden.command)).map((line) => ({ line, hidden })))

export const harmlessLine: fc.Arbitrary<string> = hiddenIn(fc.constantFrom(...HARMLESS))
