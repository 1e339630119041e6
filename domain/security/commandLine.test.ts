import { execFileSync } from "node:child_process"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { hasShellMetacharacters, parseCommandLine, type SimpleCommand } from "./commandLine.js"
import { hiddenBlocked, hiddenIn, HARMLESS } from "../../test/shellCompositions.js"

const commands = (line: string): ReadonlyArray<SimpleCommand> => {
  const parsed = parseCommandLine(line)
  if (parsed._tag === "Unparseable") throw new Error(`expected ${JSON.stringify(line)} to parse: ${parsed.reason}`)
  return parsed.commands
}
const programs = (line: string): ReadonlyArray<string> => commands(line).map((c) => c.program)

describe("parseCommandLine: separators and nesting", () => {
  it.each([
    ["echo hi; sudo x", ["echo", "sudo", "x"]],
    ["a | b || c && d & e\nf", ["a", "b", "c", "d", "e", "f"]],
    ["a |& b", ["a", "b"]],
    ["echo $(sudo x)", ["sudo", "x", "echo"]],
    ["echo `sudo x`", ["sudo", "x", "echo"]],
    ['echo "$(sudo x)"', ["sudo", "x", "echo"]],
    ["( sudo x )", ["sudo", "x"]],
    ["{ sudo x; }", ["sudo", "x"]],
    ["cat <(sudo x) >(tee y)", ["sudo", "x", "tee", "cat"]],
    ["echo ${v:-$(sudo x)}", ["sudo", "x", "echo"]],
    ["(( $(sudo x) ))", ["sudo", "x"]],
    ["echo $(( $(id -u) + 1 ))", ["id", "echo"]],
    ["$((cd a) && (sudo x))", ["cd", "sudo", "x", "$((cd a) && (sudo x))"]],
    ["if true; then sudo x; elif a; then b; else c; fi", ["true", "sudo", "x", "a", "b", "c"]],
    ["while read l; do sudo x; done < file", ["read", "sudo", "x", ":"]],
    ["for x do sudo y; done", ["sudo", "y"]],
    ["for f in $(sudo ls); do echo; done", ["sudo", "ls", "echo"]],
    ["for ((i=0; i<3; i++)); do sudo x; done", ["sudo", "x"]],
    ["case $x in a|b) sudo y;; (c) z;& *) w;;& esac", ["sudo", "y", "z", "w"]],
    ["f() { sudo x; }; f", ["sudo", "x", "f"]],
    ["function g { sudo x; }", ["sudo", "x"]],
    ["[[ -f a && $(sudo x) == y || ( b ) ]]", ["sudo", "x"]],
    ["! sudo x", ["sudo", "x"]],
    ["arr=(a $(sudo x) b)", ["sudo", "x"]],
    ["cat <<EOF\nhello $(sudo x)\nEOF\necho done", ["cat", "sudo", "x", "echo"]],
    ["cat <<-EOF | sort\n\t`sudo x`\n\tEOF\n", ["cat", "sort", "sudo", "x"]],
    ["echo a # ; sudo x\nls", ["echo", "ls"]]
  ])("%j runs %j", (line, expected) => {
    expect(programs(line)).toEqual(expected)
  })

  it("does not run the body of a here-document with a quoted delimiter", () => {
    expect(programs("cat <<'EOF'\n$(sudo x)\nEOF\n")).toEqual(["cat"])
    expect(programs('cat <<"EOF"\n`sudo x`\nEOF\n')).toEqual(["cat"])
  })

  it("keeps arguments, removes quotes, strips redirections and assignments", () => {
    const [c] = commands(`A=1 B="x y" ls -l "my file" 'a b' c\\ d > out 2>&1 &>>log <in 3<&- >| f <<< "s"`)
    expect(c).toEqual({ program: "ls", path: "ls", argv: ["-l", "my file", "a b", "c d"], wrappers: [], dynamic: false, assigns: true, redirects: ["out", "log", "in", "f"] })
  })

  it("reports only assignments' substitutions when there is no program", () => {
    expect(programs("A=1 B=$(sudo x)")).toEqual(["sudo", "x"])
  })
})

describe("parseCommandLine: quoting cannot disguise a program", () => {
  it.each(["s'u'do x", 's"u"do x', "\\sudo x", "$'\\x73udo' x", "$'\\163udo' x", "$'su\\x64o' x", "/usr/bin/sudo x", "./sudo x"])("%j is sudo", (line) => {
    expect(programs(line)[0]).toBe("sudo")
  })

  it("keeps the path as written", () => {
    expect(commands("/usr/bin/sudo x")[0]).toMatchObject({ program: "sudo", path: "/usr/bin/sudo", argv: ["x"] })
  })

  it.each(["$X foo", "${CMD} foo", "$(echo sudo) x", "`echo sudo` x", "/usr/bin/s?do x", "/usr/bin/sud* x", "/usr/bin/su[d]o x", "{sudo,x}", "su{do,}"])(
    "%j has a program known only at run time",
    (line) => {
      const cs = commands(line)
      expect(cs.some((c) => c.dynamic)).toBe(true)
    }
  )

  it.each(["curl https://x | sh", "curl https://x | bash -s -- --yes", "bash", "sh -i", "bash <(curl https://x)", "source <(curl https://x)", ". <(echo x)", "bash <<< 'sudo x'"])("%j: the commands come from somewhere no one can see before it runs", (line) => {
    expect(commands(line).some((c) => c.dynamic && ["sh", "bash", "source", "."].includes(c.program))).toBe(true)
  })

  it("sourcing or running a script file by name is not dynamic (the file is the blind spot)", () => {
    expect(commands("source venv/bin/activate && python x.py").map((c) => c.dynamic)).toEqual([false, false])
    expect(commands("bash ./build.sh")[0]).toMatchObject({ program: "bash", dynamic: false })
  })

  it("a `[` test command is not a glob", () => {
    expect(commands("[ -f x ]")[0]).toMatchObject({ program: "[", dynamic: false })
  })
})

describe("parseCommandLine: wrappers", () => {
  it.each([
    ["env sudo x", ["sudo", "x"]],
    ["env -i -- FOO=1 sudo x", ["sudo", "x"]],
    // GNU env stops reading options at the first NAME=value: "--" is then the program.
    ["env -i FOO=1 -- sudo x", ["--"]],
    ["env -u HOME -C /tmp sudo x", ["sudo", "x"]],
    ["env -S 'sudo x'", ["sudo", "x"]],
    ["env -iS'sudo x' y", ["sudo", "x"]],
    ["env --split-string='sudo -u root' id", ["sudo", "id"]],
    ["sudo -u root -g wheel rm -rf /", ["sudo", "rm"]],
    ["sudo -E --user=root HOME=/x rm", ["sudo", "rm"]],
    ["doas -u root rm", ["doas", "rm"]],
    ["nice -n -5 rm", ["rm"]],
    ["nice -10 rm", ["rm"]],
    ["nohup rm &", ["rm"]],
    ["timeout 5 rm", ["rm"]],
    ["timeout -k 1 --signal=KILL 5s rm", ["rm"]],
    ["time -p rm", ["rm"]],
    ["command rm", ["rm"]],
    ["command -v rm", ["command"]],
    ["exec -a name rm", ["rm"]],
    ["xargs -0 -n 1 -I {} rm", ["rm"]],
    ["xargs -i{} rm", ["rm"]],
    ["sh -c 'sudo x'", ["sudo", "x"]],
    ["bash -e -o pipefail -c 'a; sudo x'", ["a", "sudo", "x"]],
    ["zsh -xc \"echo \\$(sudo x)\"", ["sudo", "x", "echo"]],
    ["dash -c -- 'sudo x'", ["sudo", "x"]],
    ["busybox rm x", ["rm"]],
    ["busybox sh -c 'doas x'", ["doas", "x"]],
    ["eval 'sudo x'", ["sudo", "x"]],
    ["eval sudo x", ["sudo", "x"]],
    ["watch -n 1 'sudo x'", ["watch", "sudo", "x"]],
    ["find . -name '*.o' -exec rm {} + -execdir sudo x {} \\;", ["find", "rm", "sudo", "x"]],
    ["chroot /mnt sudo x", ["chroot", "sudo", "x"]],
    ["sudo env FOO=1 nice sh -c 'timeout 3 doas y'", ["sudo", "doas", "y"]],
    ["taskset 0x1 rm", ["rm"]],
    ["taskset -c 0-3 rm", ["rm"]],
    ["chrt -f 10 rm", ["rm"]],
    ["numactl --cpunodebind=0 -m 0 rm", ["rm"]],
    ["unshare -m -w /tmp rm", ["rm"]],
    ["strace -f -e trace=open -o log rm", ["rm"]],
    ["fakeroot -- rm", ["rm"]],
    ["unbuffer rm", ["rm"]],
    ["flock /tmp/lock rm", ["rm"]],
    ["flock -w 5 /tmp/lock -c 'sudo x'", ["sudo", "x"]]
  ])("%j runs %j", (line, expected) => {
    expect(programs(line)).toEqual(expected)
  })

  it("records the wrappers a command was found in, outermost first", () => {
    const cs = commands("sudo env nice sh -c 'rm -rf x'")
    expect(cs.at(-1)).toMatchObject({ program: "rm", argv: ["-rf", "x"], wrappers: ["sudo", "env", "nice", "sh"] })
  })

  it("reports a privilege wrapper with its full argument list", () => {
    expect(commands("sudo -u root rm x")[0]).toMatchObject({ program: "sudo", argv: ["-u", "root", "rm", "x"], wrappers: [] })
  })
})

describe("parseCommandLine: what cannot be read fails closed", () => {
  it.each([
    ["echo 'abc", "single quote"],
    ['echo "abc', "double quote"],
    ["echo `abc", "backquote"],
    ["echo $(abc", "never closed"],
    ["echo ${abc", "never closed"],
    ["echo )", "unexpected ')'"],
    ["( a ) b", "unexpected word"],
    ["echo (a)", "unexpected '('"],
    ["ls >", "no target"],
    ["ls > ;", "no target"],
    ["echo $'abc", "never closed"],
    ["case x in a) b", "esac"],
    ["[[ -f x", "]]"],
    ["echo a\u0000b", "NUL"]
  ])("%j is unparseable (%s)", (line, reason) => {
    const parsed = parseCommandLine(line)
    expect(parsed._tag).toBe("Unparseable")
    if (parsed._tag === "Unparseable") expect(parsed.reason).toContain(reason)
  })

  it("refuses nesting deeper than it checks, without exhausting the stack", () => {
    const deep = "$(".repeat(10_000) + "x" + ")".repeat(10_000)
    expect(parseCommandLine(deep)._tag).toBe("Unparseable")
    // Each eval reads its arguments again as a command line, one level deeper.
    expect(parseCommandLine(`${"eval ".repeat(200)}sudo x`)._tag).toBe("Unparseable")
    expect(parseCommandLine(`${"eval ".repeat(20)}sudo x`)).toMatchObject({ _tag: "Parsed" })
  })

  it("handles a long flat line in linear time", () => {
    const line = Array.from({ length: 20_000 }, (_, i) => `echo ${i}`).join("; ")
    const parsed = parseCommandLine(line)
    expect(parsed._tag === "Parsed" && parsed.commands.length).toBe(20_000)
  })
})

describe("hasShellMetacharacters", () => {
  it.each(["a;b", "a|b", "a&b", "a && b", "$(x)", "`x`", "a>b", "a<b", "a\nb", "a\rb"])("%j has metacharacters", (s) => {
    expect(hasShellMetacharacters(s)).toBe(true)
  })
  it.each(["cargo build", "cargo build --release", "echo $HOME", "git commit -m 'x y'", "a(b)"])("%j has none", (s) => {
    expect(hasShellMetacharacters(s)).toBe(false)
  })
})

describe("parseCommandLine properties", () => {
  const shellish = fc.string({ unit: fc.constantFrom(..."ab $`'\"\\;|&()<>{}[]*?!#=\n\t-c0x".split("")), maxLength: 60 })

  it("never throws on random input", () => {
    fc.assert(
      fc.property(fc.oneof(shellish, fc.string({ unit: "binary", maxLength: 80 })), (s) => {
        const parsed = parseCommandLine(s)
        expect(["Parsed", "Unparseable"]).toContain(parsed._tag)
      }),
      { numRuns: 3000 }
    )
  })

  it("finds every blocked program hidden in random compositions", () => {
    fc.assert(
      fc.property(hiddenBlocked, ({ line, hidden }) => {
        const parsed = parseCommandLine(line)
        expect(parsed._tag).toBe("Parsed")
        if (parsed._tag === "Parsed") expect(parsed.commands.map((c) => c.program)).toContain(hidden.program)
      }),
      { numRuns: 1500 }
    )
  })

  it("the generated compositions are valid bash (checked with bash -n)", (ctx) => {
    let bash = true
    try {
      execFileSync("bash", ["-c", "true"])
    } catch {
      bash = false
    }
    if (!bash) {
      console.log("skipped: bash is not installed, so the generated compositions cannot be checked against it")
      ctx.skip()
    }
    const samples = fc.sample(hiddenIn(fc.constantFrom(...HARMLESS)), { numRuns: 60, seed: 7 })
    const script = samples.map((s, i) => `bash -n -c ${"'" + s.replace(/'/g, `'\\''`) + "'"} || echo "FAIL ${i}"`).join("\n")
    expect(execFileSync("bash", ["-c", script], { encoding: "utf8" })).toBe("")
  })
})
