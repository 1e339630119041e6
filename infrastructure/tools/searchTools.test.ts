import { Effect, Either } from "effect"
import { linkSync, mkdirSync, renameSync, symlinkSync, utimesSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { globTool, makeGlobTool } from "./glob.js"
import { makeBuiltinTools } from "./builtinTools.js"
import { grepTool, makeGrepTool } from "./grep.js"
import { listDirectoryTool } from "./listDirectory.js"
import { context, judge, leftOf, rightOf, runDirect, tempDir } from "./toolTestKit.js"

const touch = (path: string, secondsAgo: number): void => {
  const t = new Date(Date.now() - secondsAgo * 1000)
  utimesSync(path, t, t)
}

const tree = (): string => {
  const root = tempDir()
  mkdirSync(join(root, "src/deep"), { recursive: true })
  mkdirSync(join(root, "node_modules/pkg"), { recursive: true })
  writeFileSync(join(root, "src/old.ts"), "export const Alpha = 1\n")
  writeFileSync(join(root, "src/deep/new.ts"), "line1\nline2\nconst alpha = 2\nline4\nline5\n")
  writeFileSync(join(root, "src/mid.ts"), "nothing here\n")
  writeFileSync(join(root, "readme.md"), "alpha in markdown\n")
  writeFileSync(join(root, "node_modules/pkg/index.ts"), "alpha\n")
  writeFileSync(join(root, "blob.bin"), Buffer.from([0x61, 0x6c, 0x70, 0x68, 0x61, 0x00]))
  touch(join(root, "src/old.ts"), 300)
  touch(join(root, "src/mid.ts"), 200)
  touch(join(root, "src/deep/new.ts"), 100)
  return root
}

describe("glob", () => {
  it("lists matches newest first by mtime, skipping node_modules", async () => {
    const root = tree()
    const out = rightOf(await runDirect(globTool, { pattern: "**/*.ts" }, await context(root)))
    expect(out.split("\n")).toEqual([join(root, "src/deep/new.ts"), join(root, "src/mid.ts"), join(root, "src/old.ts")])
  })

  it("matches within one segment with *, under a given path, and says when nothing matches", async () => {
    const root = tree()
    const ctx = await context(root)
    expect(rightOf(await runDirect(globTool, { pattern: "*.ts", path: "src" }, ctx)).split("\n")).toEqual([join(root, "src/mid.ts"), join(root, "src/old.ts")])
    expect(rightOf(await runDirect(globTool, { pattern: "*.py" }, ctx))).toMatch(/no files match/)
    expect(leftOf(await runDirect(globTool, { pattern: "*", path: "missing" }, ctx))).toMatch(/does not exist/)
  })
})

describe("grep", () => {
  it("finds matches case-sensitively by default, with file:line:text", async () => {
    const root = tree()
    const out = rightOf(await runDirect(grepTool, { pattern: "alpha", glob: "**/*.ts" }, await context(root)))
    expect(out).toBe(`${join(root, "src/deep/new.ts")}:3:const alpha = 2`)
  })

  it("case_insensitive finds both spellings and skips binary files", async () => {
    const root = tree()
    const out = rightOf(await runDirect(grepTool, { pattern: "^.*alpha", case_insensitive: true }, await context(root)))
    expect(out.split("\n")).toEqual([
      `${join(root, "readme.md")}:1:alpha in markdown`,
      `${join(root, "src/deep/new.ts")}:3:const alpha = 2`,
      `${join(root, "src/old.ts")}:1:export const Alpha = 1`
    ])
  })

  it("shows context lines with - and separates groups with --", async () => {
    const root = tempDir()
    writeFileSync(join(root, "f.txt"), ["a", "b", "HIT1", "c", "d", "e", "f", "HIT2", "g"].join("\n"))
    const out = rightOf(await runDirect(grepTool, { pattern: "HIT", context: 1 }, await context(root)))
    const f = join(root, "f.txt")
    expect(out.split("\n")).toEqual([`${f}-2-b`, `${f}:3:HIT1`, `${f}-4-c`, "--", `${f}-7-f`, `${f}:8:HIT2`, `${f}-9-g`])
  })

  it("caps results, and reports an invalid regex", async () => {
    const root = tempDir()
    writeFileSync(join(root, "many.txt"), Array.from({ length: 50 }, (_, i) => `hit ${i}`).join("\n"))
    const ctx = await context(root)
    const out = rightOf(await runDirect(grepTool, { pattern: "hit", max_results: 5 }, ctx))
    expect(out.split("\n")).toHaveLength(6)
    expect(out).toMatch(/stopped after 5 matches/)
    expect(leftOf(await runDirect(grepTool, { pattern: "(" }, ctx))).toMatch(/invalid regular expression/)
  })
})

describe("list_directory", () => {
  it("lists directories first, then files with sizes", async () => {
    const root = tempDir()
    mkdirSync(join(root, "zdir"))
    mkdirSync(join(root, "adir"))
    writeFileSync(join(root, "b.txt"), "12345")
    writeFileSync(join(root, "a.txt"), "")
    const out = rightOf(await runDirect(listDirectoryTool, {}, await context(root)))
    expect(out.split("\n")).toEqual(["adir/", "zdir/", "a.txt  (0 bytes)", "b.txt  (5 bytes)"])
  })

  it("says when a directory is empty or missing", async () => {
    const root = tempDir()
    const ctx = await context(root)
    expect(rightOf(await runDirect(listDirectoryTool, { path: "." }, ctx))).toMatch(/is empty/)
    expect(leftOf(await runDirect(listDirectoryTool, { path: "gone" }, ctx))).toMatch(/does not exist/)
  })
})

describe("a folder swapped for a link after the judgment", () => {
  const setup = () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "secret.txt"), "SECRET\n")
    mkdirSync(join(root, "d", "sub"), { recursive: true })
    writeFileSync(join(root, "d", "sub", "a.txt"), "public\n")
    return { root, outside }
  }
  const swap = (from: string, to: string): void => {
    renameSync(from, `${from}.old`)
    symlinkSync(to, from)
  }

  it("list_directory does not list the link's target", async () => {
    const { root, outside } = setup()
    const judged = judge(root, "d")
    swap(join(root, "d"), outside)
    const err = leftOf(await runDirect(listDirectoryTool, { path: "d" }, await context(root), judged))
    expect(err).not.toMatch(/secret/)
    expect(err).toMatch(/changed between the check and the open/)
  })

  it("grep and glob refuse a swapped root", async () => {
    const { root, outside } = setup()
    const judged = judge(root, "d")
    swap(join(root, "d"), outside)
    const ctx = await context(root)
    expect(leftOf(await runDirect(grepTool, { pattern: "SECRET", path: "d" }, ctx, judged))).toMatch(/changed between the check and the open/)
    expect(leftOf(await runDirect(globTool, { pattern: "**", path: "d" }, ctx, judged))).toMatch(/changed between the check and the open/)
  })

  it("grep and glob never enter a folder below the root that is now a link", async () => {
    const { root, outside } = setup()
    const judged = judge(root, "d")
    // A folder swapped between the walk's listing and its open is refused in confinedFs.test.ts and under a
    // racing process there; here the swap comes first, so the walk lists a link and does not follow it.
    swap(join(root, "d", "sub"), outside)
    const ctx = await context(root)
    const grep = rightOf(await runDirect(grepTool, { pattern: "S[E]CRET|public", path: "d" }, ctx, judged))
    expect(grep).not.toMatch(/SECRET/)
    expect(grep).toMatch(/sub\.old\/a\.txt:1:public/)
    const glob = rightOf(await runDirect(globTool, { pattern: "**", path: "d" }, ctx, judged))
    expect(glob).not.toMatch(/secret\.txt/)
    expect(glob).toMatch(/sub\.old\/a\.txt/)
  })

  it("grep skips, with a note, a hard-linked file inside the judged folder", async () => {
    const { root, outside } = setup()
    linkSync(join(outside, "secret.txt"), join(root, "d", "h.txt"))
    const out = rightOf(await runDirect(grepTool, { pattern: "S[E]CRET|public", path: "d" }, await context(root)))
    expect(out).not.toMatch(/:SECRET/)
    expect(out).toMatch(/a\.txt:1:public/)
    expect(out).toMatch(/skipped .*h\.txt.*hard link/)
  })
})

describe("list_directory without following links", () => {
  it("shows a link as a link, with the text it holds, not its target's size", async () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "big.txt"), "x".repeat(100))
    symlinkSync(join(outside, "big.txt"), join(root, "l"))
    expect(rightOf(await runDirect(listDirectoryTool, {}, await context(root)))).toBe(`l -> ${join(outside, "big.txt")}  (symbolic link)`)
  })
})

describe("grep and the runtime's own state (I10)", () => {
  const KEY = "KEY-9a8b7c"
  /** The workspace is the user's home, and ASTRID_HOME a folder in it under another name than `.astrid`. */
  const homeAsWorkspace = () => {
    const home = tempDir()
    const state = join(home, "astrid-state")
    mkdirSync(join(state, "keys"), { recursive: true })
    writeFileSync(join(state, "keys", "runtime.key"), `${KEY}\n`)
    mkdirSync(join(home, "project", ".astrid"), { recursive: true })
    writeFileSync(join(home, "project", ".astrid", "config.toml"), `# ${KEY} in a workspace's restrictions\n`)
    writeFileSync(join(home, "notes.txt"), "no key here\n")
    return { home, state }
  }

  it("does not read a file below ASTRID_HOME when searching a folder that holds it, and says it skipped it", async () => {
    const { home, state } = homeAsWorkspace()
    const out = rightOf(await runDirect(makeGrepTool({ protectedRoots: [state] }), { pattern: "KEY-|no key" }, await context(home)))
    expect(out).not.toContain(KEY)
    expect(out).toContain(`${join(home, "notes.txt")}:1:no key here`)
    expect(out).toMatch(new RegExp(`skipped ${state}.*runtime's own state`))
  })

  it("refuses a search rooted inside ASTRID_HOME, or at a file there", async () => {
    const { home, state } = homeAsWorkspace()
    const tool = makeGrepTool({ protectedRoots: [state] })
    const ctx = await context(home)
    expect(leftOf(await runDirect(tool, { pattern: "KEY" }, ctx, judge(home, "astrid-state")))).toMatch(/runtime's own state.*nothing was searched/s)
    expect(leftOf(await runDirect(tool, { pattern: "KEY" }, ctx, judge(home, "astrid-state/keys/runtime.key")))).not.toContain(KEY)
  })

  it("glob lists no file below ASTRID_HOME or in a .astrid folder, and says how many it left out", async () => {
    const { home, state } = homeAsWorkspace()
    const out = rightOf(await runDirect(makeGlobTool({ protectedRoots: [state] }), { pattern: "**/*" }, await context(home)))
    expect(out).not.toContain("runtime.key")
    expect(out).not.toContain("config.toml")
    expect(out).toContain(join(home, "notes.txt"))
    expect(out).toMatch(/files inside the runtime's own state .* are not listed/)
  })

  it("the tools makeBuiltinTools builds get the roots; the default grep still skips every .astrid folder", async () => {
    const { home, state } = homeAsWorkspace()
    const grep = makeBuiltinTools({ protectedRoots: [state] }).find((t) => t.name === "grep")
    if (grep === undefined) throw new Error("no grep among the built-in tools")
    const call = grep.prepare({ pattern: "KEY-|no key" })
    if (Either.isLeft(call)) throw new Error(call.left)
    const ctx = await context(home)
    const out = await Effect.runPromise(Effect.either(call.right.run(ctx, judge(home, "."))))
    if (Either.isLeft(out)) throw new Error(out.left.message)
    expect(out.right).not.toContain(KEY)
    expect(out.right).toContain("no key here")
    expect(rightOf(await runDirect(grepTool, { pattern: "KEY-", path: "project" }, ctx))).not.toContain(KEY)
  })
})
