import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { commandPatternMatches, escapeCommandPattern, escapeGlob, globMatch, hasDotDotSegment, hostPatternMatches, validateGlobPattern } from "./glob.js"

describe("globMatch", () => {
  it.each([
    ["/etc/**", "/etc", true],
    ["/etc/**", "/etc/passwd", true],
    ["/etc/**", "/etc/ssl/certs/a.pem", true],
    ["/etc/**", "/etcetera/x", false],
    ["/etc/**", "/home/etc/x", false],
    ["/home/*/x", "/home/me/x", true],
    ["/home/*/x", "/home/me/y/x", false],
    ["/home/**/x", "/home/x", true],
    ["/home/**/x", "/home/a/b/c/x", true],
    ["/home/**/x", "/home/a/b/c/y", false],
    ["/src/*.ts", "/src/a.ts", true],
    ["/src/*.ts", "/src/.hidden.ts", true],
    ["/src/*.ts", "/src/a/b.ts", false],
    ["/src/?.ts", "/src/a.ts", true],
    ["/src/?.ts", "/src/ab.ts", false],
    ["/src/[abc].ts", "/src/b.ts", true],
    ["/src/[a-c].ts", "/src/d.ts", false],
    ["/src/[!a-c].ts", "/src/d.ts", true],
    ["/src/[^a-c].ts", "/src/a.ts", false],
    ["/a[/]b", "/a/b", false],
    ["/a\\*b", "/a*b", true],
    ["/a\\*b", "/axb", false],
    ["/a[b", "/a[b", true],
    ["**", "anything/at/all", true],
    ["/**", "/x/y", true],
    ["/**", "relative", false],
    ["file:///home/me/**", "file:///home/me/project/a.txt", true],
    ["mcp://github:*", "mcp://github:create_issue", true],
    ["mcp://github:*", "mcp://gitlab:create_issue", false],
    ["exec://cargo", "exec://cargo", true],
    ["exec://cargo", "exec://cargo-x", false],
    ["net://*.example.com/**", "net://api.example.com/v1/x", true],
    ["a**b", "a/x/y/b", true],
    ["**/**", "a/b", true],
    ["**/**", "", true],
    ["/a/**/**", "/a/b/c", true],
    ["", "", true],
    ["", "x", false]
  ])("%j vs %j -> %s", (pattern, subject, expected) => {
    expect(globMatch(pattern, subject)).toBe(expected)
  })

  // An independent reading of the same rules, as a regular expression, to compare against on random input.
  const oracle = (pattern: string): RegExp => {
    let re = ""
    let literalSlash = false
    for (let i = 0; i < pattern.length; ) {
      const atSegmentStart = i === 0 || pattern[i - 1] === "/"
      const afterLiteralSlash = literalSlash
      literalSlash = false
      if (pattern.startsWith("**/", i) && atSegmentStart) {
        re += "(?:.*/)?"
        i += 3
      } else if (pattern.startsWith("**", i) && atSegmentStart && i + 2 === pattern.length && afterLiteralSlash) {
        re = re.slice(0, -1) + "(?:/.*)?"
        i += 2
      } else if (pattern.startsWith("**", i)) {
        re += ".*"
        i += 2
        while (pattern[i] === "*") i++
      } else if (pattern[i] === "*") {
        re += "[^/]*"
        i++
      } else if (pattern[i] === "?") {
        re += "[^/]"
        i++
      } else {
        literalSlash = pattern[i] === "/"
        re += (pattern[i] ?? "").replace(/[.+^${}()|[\]\\]/g, "\\$&")
        i++
      }
    }
    return new RegExp(`^${re}$`, "s")
  }

  it("agrees with a regular-expression reading of the rules on random patterns and paths", () => {
    const pattern = fc.string({ unit: fc.constantFrom("a", "b", ".", "/", "*", "**", "?", "**/", "/**"), maxLength: 8 })
    const subject = fc.string({ unit: fc.constantFrom("a", "b", ".", "/", "ab", "/a/"), maxLength: 10 })
    fc.assert(
      fc.property(pattern, subject, (p, s) => {
        expect(globMatch(p, s)).toBe(oracle(p).test(s))
      }),
      { numRuns: 5000 }
    )
  })

  it("a pattern with no glob characters matches exactly itself", () => {
    const literal = fc.string({ unit: fc.constantFrom("a", "/", ".", "-", "é", " "), maxLength: 12 })
    fc.assert(fc.property(literal, literal, (p, s) => globMatch(p, s) === (p === s)), { numRuns: 2000 })
  })

  it("P/** matches P and everything below it, and nothing that only shares a prefix", () => {
    const seg = fc.stringMatching(/^[a-z]{1,4}$/)
    fc.assert(
      fc.property(fc.array(seg, { minLength: 1, maxLength: 3 }), fc.array(seg, { maxLength: 3 }), seg, (base, below, suffix) => {
        const p = `/${base.join("/")}`
        expect(globMatch(`${p}/**`, [p, ...below].join("/"))).toBe(true)
        expect(globMatch(`${p}/**`, `${p}${suffix}`)).toBe(false)
      })
    )
  })

  it("stays fast on hostile patterns", () => {
    const start = performance.now()
    expect(globMatch("*a*a*a*a*a*a*a*a*a*a*a*b", "a".repeat(4000))).toBe(false)
    expect(globMatch("**a**a**a**a**a**a**b", `${"a/".repeat(2000)}c`)).toBe(false)
    // Generous: this is a guard against exponential backtracking, not a benchmark.
    expect(performance.now() - start).toBeLessThan(2000)
  })
})

describe("validateGlobPattern", () => {
  it.each(["/home/me/../../**", "..", "../x", "file:///a/../etc/**", "a/.."])("refuses %j", (p) => {
    expect(Either.isLeft(validateGlobPattern(p))).toBe(true)
  })
  it.each(["/home/me/**", "file:///home/me/project/**", "mcp://server:*", "/a/..b/c", "/a/b../c"])("accepts %j", (p) => {
    expect(validateGlobPattern(p)).toEqual(Either.right(p))
  })
  it("refuses empty patterns and NUL", () => {
    expect(Either.isLeft(validateGlobPattern(""))).toBe(true)
    expect(Either.isLeft(validateGlobPattern("/a\u0000"))).toBe(true)
  })
  it("hasDotDotSegment only counts whole segments", () => {
    expect(hasDotDotSegment("/a/../b")).toBe(true)
    expect(hasDotDotSegment("/a/..b")).toBe(false)
  })
})

describe("commandPatternMatches", () => {
  it("`cargo` matches only `cargo`; `cargo *` matches `cargo build`", () => {
    expect(commandPatternMatches("cargo", "cargo")).toBe(true)
    expect(commandPatternMatches("cargo", "cargo build")).toBe(false)
    expect(commandPatternMatches("cargo *", "cargo build")).toBe(true)
    expect(commandPatternMatches("cargo *", "cargo build --release -p x")).toBe(true)
    expect(commandPatternMatches("cargo *", "cargo")).toBe(true)
    expect(commandPatternMatches("cargo *", "cargox build")).toBe(false)
    expect(commandPatternMatches("cargo *", "rustup run cargo build")).toBe(false)
  })

  it("a middle `*` is one argument, a `*` inside a word any characters of it", () => {
    expect(commandPatternMatches("npm run * --silent", "npm run build --silent")).toBe(true)
    expect(commandPatternMatches("npm run * --silent", "npm run build x --silent")).toBe(false)
    expect(commandPatternMatches("git log --since=*", "git log --since=2/weeks")).toBe(true)
  })

  it("no pattern covers every program", () => {
    expect(commandPatternMatches("*", "sudo x")).toBe(false)
    expect(commandPatternMatches("* *", "rm -rf /")).toBe(false)
  })

  it.each(["cargo build; sudo x", "cargo build | sh", "cargo build && rm -rf /", "cargo $(sudo x)", "cargo `sudo x`", "cargo build > /etc/passwd", "cargo < x", "cargo build\nsudo x", "cargo build & sudo x"])(
    "`cargo *` does not match %j",
    (command) => {
      expect(commandPatternMatches("cargo *", command)).toBe(false)
      expect(commandPatternMatches(command, command)).toBe(true)
    }
  )

  it("never matches across metacharacters unless the pattern is the very same string", () => {
    const word = fc.stringMatching(/^[a-z*]{1,5}$/)
    const meta = fc.constantFrom(";", "|", "&&", "&", "$(x)", "`x`", ">", "<", "\n")
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 4 }), fc.array(word, { minLength: 1, maxLength: 4 }), meta, fc.array(word, { maxLength: 3 }), (pattern, before, m, after) => {
        const command = `${before.join(" ")} ${m} ${after.join(" ")}`
        const p = pattern.join(" ")
        expect(commandPatternMatches(p, command)).toBe(p === command)
      }),
      { numRuns: 2000 }
    )
  })
})

describe("escaping", () => {
  it("an escaped glob matches exactly its literal", () => {
    expect(globMatch(escapeGlob("/home/a/*[x]?.txt"), "/home/a/*[x]?.txt")).toBe(true)
    expect(globMatch(escapeGlob("/home/a/*"), "/home/a/b")).toBe(false)
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("a", "/", "*", "?", "[", "]", "\\", "!"), maxLength: 10 }), fc.string({ unit: fc.constantFrom("a", "/", "*", "?", "[", "]", "\\"), maxLength: 10 }), (literal, other) => {
        expect(globMatch(escapeGlob(literal), literal)).toBe(true)
        expect(globMatch(escapeGlob(literal), other)).toBe(other === literal)
      }),
      { numRuns: 2000 }
    )
  })

  it("an approved command with a literal `*` does not cover other arguments", () => {
    const pattern = escapeCommandPattern("rm *")
    expect(commandPatternMatches(pattern, "rm *")).toBe(true)
    expect(commandPatternMatches(pattern, "rm -rf ~")).toBe(false)
    expect(commandPatternMatches(escapeCommandPattern("find . -name \\*.o"), "find . -name \\*.o")).toBe(true)
    expect(commandPatternMatches(escapeCommandPattern("ls *; echo"), "ls *; echo")).toBe(true)
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z*?\\[\]-]{1,4}$/), { minLength: 1, maxLength: 4 }), fc.array(fc.stringMatching(/^[a-z*-]{1,4}$/), { minLength: 1, maxLength: 4 }), (a, b) => {
        const command = a.join(" ")
        const other = b.join(" ")
        expect(commandPatternMatches(escapeCommandPattern(command), command)).toBe(true)
        expect(commandPatternMatches(escapeCommandPattern(command), other)).toBe(other === command)
      }),
      { numRuns: 2000 }
    )
  })
})

describe("hostPatternMatches", () => {
  it.each([
    ["example.com", "example.com", true],
    ["example.com", "EXAMPLE.com.", true],
    ["example.com", "api.example.com", false],
    ["*.example.com", "api.example.com", true],
    ["*.example.com", "a.b.example.com", true],
    ["*.example.com", "example.com", false],
    ["*.example.com", "evilexample.com", false],
    ["*.example.com", "example.com.evil.org", false],
    ["*", "anything.org", true],
    ["[::1]", "[::1]", true]
  ])("%j vs %j -> %s", (pattern, host, expected) => {
    expect(hostPatternMatches(pattern, host)).toBe(expected)
  })
})
