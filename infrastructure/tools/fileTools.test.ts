import { existsSync, linkSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { editFileTool } from "./editFile.js"
import { readFileTool } from "./readFile.js"
import { writeFileTool } from "./writeFile.js"
import { context, judge, leftOf, rightOf, runDirect, tempDir } from "./toolTestKit.js"

describe("read_file", () => {
  it("numbers lines like cat -n and honours offset and limit", async () => {
    const root = tempDir()
    writeFileSync(join(root, "a.txt"), "one\ntwo\nthree\nfour\n")
    const ctx = await context(root)
    expect(rightOf(await runDirect(readFileTool, { path: "a.txt" }, ctx))).toBe("     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour")
    const part = rightOf(await runDirect(readFileTool, { path: "a.txt", offset: 2, limit: 2 }, ctx))
    expect(part).toBe("     2\ttwo\n     3\tthree\n[lines 2-3 of 4; read on with offset 4]")
  })

  it("a limit beyond the end shows what there is; an offset beyond the end is a clear error", async () => {
    const root = tempDir()
    writeFileSync(join(root, "a.txt"), "x\ny")
    const ctx = await context(root)
    expect(rightOf(await runDirect(readFileTool, { path: "a.txt", offset: 2, limit: 50 }, ctx))).toBe("     2\ty")
    expect(leftOf(await runDirect(readFileTool, { path: "a.txt", offset: 9 }, ctx))).toMatch(/offset 9 is past the end .* 2 lines/)
  })

  it("refuses to dump binary files, reports missing files and bad input", async () => {
    const root = tempDir()
    writeFileSync(join(root, "b.bin"), Buffer.from([0x89, 0x50, 0x00, 0x01, 0x02]))
    const ctx = await context(root)
    expect(rightOf(await runDirect(readFileTool, { path: "b.bin" }, ctx))).toMatch(/binary file \(5 bytes\)/)
    expect(leftOf(await runDirect(readFileTool, { path: "nope.txt" }, ctx))).toMatch(/does not exist/)
    expect(leftOf(await runDirect(readFileTool, { path: "a", offset: 0 }, ctx))).toMatch(/^decode:/)
    expect(leftOf(await runDirect(readFileTool, { path: "a", extra: 1 }, ctx))).toMatch(/^decode:/)
  })

  it("asks the interceptor for a file_read of the absolute path", () => {
    expect(readFileTool.request({ path: "src/x.ts" }, { workspaceRoot: "/ws", cwd: "/ws" })).toEqual({ _tag: "file_read", path: "/ws/src/x.ts" })
  })
})

describe("write_file", () => {
  it("creates parent directories and reports the byte count", async () => {
    const root = tempDir()
    const ctx = await context(root)
    expect(rightOf(await runDirect(writeFileTool, { path: "deep/er/f.txt", content: "héllo" }, ctx))).toMatch(/wrote 6 bytes/)
    expect(readFileSync(join(root, "deep/er/f.txt"), "utf8")).toBe("héllo")
    expect(writeFileTool.request({ path: "f", content: "héllo" }, { workspaceRoot: "/ws", cwd: "/ws" })).toEqual({ _tag: "file_write", path: "/ws/f", bytes: 6 })
  })

  it("cannot write where a file stands in for a directory", async () => {
    const root = tempDir()
    writeFileSync(join(root, "file"), "")
    expect(leftOf(await runDirect(writeFileTool, { path: "file/x.txt", content: "" }, await context(root)))).toMatch(/file/)
    expect(existsSync(join(root, "file/x.txt"))).toBe(false)
  })

  it("a link at the final component is judged as its target: the write goes to that judged file or is refused, never through the name", async () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "kept.txt"), "original")
    symlinkSync(join(outside, "kept.txt"), join(root, "notes.txt"))
    symlinkSync(join(outside, "new.txt"), join(root, "dangling.txt"))
    const ctx = await context(root)
    // The interceptor saw the target, outside the workspace (so it asked): that file is what is written.
    expect(judge(root, "notes.txt")).toEqual({ path: join(outside, "kept.txt"), insideWorkspace: false })
    expect(rightOf(await runDirect(writeFileTool, { path: "notes.txt", content: "approved" }, ctx))).toBe(`wrote 8 bytes to ${join(outside, "kept.txt")}`)
    expect(readFileSync(join(outside, "kept.txt"), "utf8")).toBe("approved")
    // A judgment of the names themselves (made before the links appeared) does not follow them.
    const stale = (name: string) => ({ path: join(root, name), insideWorkspace: true })
    expect(leftOf(await runDirect(writeFileTool, { path: "notes.txt", content: "redirected" }, ctx, stale("notes.txt")))).toMatch(/notes\.txt changed between the check and the open \(it is now a symbolic link\)/)
    expect(leftOf(await runDirect(writeFileTool, { path: "dangling.txt", content: "redirected" }, ctx, stale("dangling.txt")))).toMatch(/changed between the check and the open/)
    expect(readFileSync(join(outside, "kept.txt"), "utf8")).toBe("approved")
    expect(existsSync(join(outside, "new.txt"))).toBe(false)
    expect(lstatSync(join(root, "notes.txt")).isSymbolicLink()).toBe(true)
  })

  it("replaces an existing file's content entirely, also when the new content is shorter", async () => {
    const root = tempDir()
    writeFileSync(join(root, "f.txt"), "a much longer original text")
    expect(rightOf(await runDirect(writeFileTool, { path: "f.txt", content: "short" }, await context(root)))).toMatch(/wrote 5 bytes/)
    expect(readFileSync(join(root, "f.txt"), "utf8")).toBe("short")
  })
})

describe("edit_file", () => {
  it("replaces a unique string", async () => {
    const root = tempDir()
    writeFileSync(join(root, "e.ts"), "const a = 1\nconst b = 2\n")
    expect(rightOf(await runDirect(editFileTool, { path: "e.ts", old_string: "b = 2", new_string: "b = $&3" }, await context(root)))).toMatch(/replaced 1 occurrence/)
    expect(readFileSync(join(root, "e.ts"), "utf8")).toBe("const a = 1\nconst b = $&3\n")
  })

  it("refuses a non-unique string unless replace_all, and says how many", async () => {
    const root = tempDir()
    writeFileSync(join(root, "e.ts"), "x x x")
    const ctx = await context(root)
    expect(leftOf(await runDirect(editFileTool, { path: "e.ts", old_string: "x", new_string: "y" }, ctx))).toMatch(/occurs 3 times.*replace_all/)
    expect(readFileSync(join(root, "e.ts"), "utf8")).toBe("x x x")
    expect(rightOf(await runDirect(editFileTool, { path: "e.ts", old_string: "x", new_string: "yy", replace_all: true }, ctx))).toMatch(/replaced 3 occurrences/)
    expect(readFileSync(join(root, "e.ts"), "utf8")).toBe("yy yy yy")
  })

  it("says so when the string is not found, the file is missing, or nothing would change", async () => {
    const root = tempDir()
    writeFileSync(join(root, "e.ts"), "abc")
    const ctx = await context(root)
    expect(leftOf(await runDirect(editFileTool, { path: "e.ts", old_string: "zzz", new_string: "y" }, ctx))).toMatch(/not found/)
    expect(leftOf(await runDirect(editFileTool, { path: "missing.ts", old_string: "a", new_string: "y" }, ctx))).toMatch(/does not exist/)
    expect(leftOf(await runDirect(editFileTool, { path: "e.ts", old_string: "a", new_string: "a" }, ctx))).toMatch(/the same/)
    expect(leftOf(await runDirect(editFileTool, { path: "e.ts", old_string: "", new_string: "a" }, ctx))).toMatch(/empty/)
  })

  it("does not edit through a link at the final component that the judgment did not see", async () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "target.ts"), "const secret = 1\n")
    symlinkSync(join(outside, "target.ts"), join(root, "e.ts"))
    const stale = { path: join(root, "e.ts"), insideWorkspace: true }
    expect(leftOf(await runDirect(editFileTool, { path: "e.ts", old_string: "1", new_string: "2" }, await context(root), stale))).toMatch(
      /e\.ts changed between the check and the open \(it is now a symbolic link\)/
    )
    expect(readFileSync(join(outside, "target.ts"), "utf8")).toBe("const secret = 1\n")
  })

  it("a shorter replacement leaves no trailing bytes of the old text", async () => {
    const root = tempDir()
    writeFileSync(join(root, "e.ts"), "const value = 'a long string here'\n")
    expect(rightOf(await runDirect(editFileTool, { path: "e.ts", old_string: "'a long string here'", new_string: "1" }, await context(root)))).toMatch(/replaced 1/)
    expect(readFileSync(join(root, "e.ts"), "utf8")).toBe("const value = 1\n")
  })
})

/**
 * Issue 9, item 3: the interceptor judges a path, then the tool opens it. Each case below judges the path
 * first, changes the file system the way a concurrent process could, and only then runs the tool with
 * the judgment: the tool must act on what was judged or refuse, never follow the change.
 */
describe("the file a tool opens is the file that was judged", () => {
  const setup = () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "secret.txt"), "SECRET\n")
    mkdirSync(join(outside, "dir"))
    writeFileSync(join(outside, "dir", "a.txt"), "SECRET\n")
    return { root, outside }
  }

  it("read_file: a symbolic link swapped in at the last component after the judgment is not followed", async () => {
    const { root, outside } = setup()
    writeFileSync(join(root, "a.txt"), "public\n")
    const judged = judge(root, "a.txt")
    expect(judged).toEqual({ path: join(root, "a.txt"), insideWorkspace: true })
    rmSync(join(root, "a.txt"))
    symlinkSync(join(outside, "secret.txt"), join(root, "a.txt"))
    const err = leftOf(await runDirect(readFileTool, { path: "a.txt" }, await context(root), judged))
    expect(err).not.toMatch(/SECRET/)
    expect(err).toMatch(/changed between the check and the open/)
    expect(err).toMatch(/Propose the action again/)
  })

  it("read_file: a parent folder swapped for a link after the judgment is not followed", async () => {
    const { root, outside } = setup()
    mkdirSync(join(root, "dir"))
    writeFileSync(join(root, "dir", "a.txt"), "public\n")
    const judged = judge(root, "dir/a.txt")
    renameSync(join(root, "dir"), join(root, "dir.old"))
    symlinkSync(join(outside, "dir"), join(root, "dir"))
    const err = leftOf(await runDirect(readFileTool, { path: "dir/a.txt" }, await context(root), judged))
    expect(err).not.toMatch(/SECRET/)
    expect(err).toMatch(/changed between the check and the open/)
  })

  it("write_file: a parent folder replaced by a link before the write does not carry it outside", async () => {
    const { root, outside } = setup()
    mkdirSync(join(root, "dir"))
    const judged = judge(root, "dir/new.txt")
    rmSync(join(root, "dir"), { recursive: true })
    symlinkSync(join(outside, "dir"), join(root, "dir"))
    const err = leftOf(await runDirect(writeFileTool, { path: "dir/new.txt", content: "leak" }, await context(root), judged))
    expect(err).toMatch(/changed between the check and the open/)
    expect(existsSync(join(outside, "dir", "new.txt"))).toBe(false)
  })

  it("write_file: a missing parent created as a link to outside before the write does not carry it outside", async () => {
    const { root, outside } = setup()
    const judged = judge(root, "made/deeper/new.txt")
    symlinkSync(join(outside, "dir"), join(root, "made"))
    const err = leftOf(await runDirect(writeFileTool, { path: "made/deeper/new.txt", content: "leak" }, await context(root), judged))
    expect(err).toMatch(/changed between the check and the open/)
    expect(existsSync(join(outside, "dir", "deeper"))).toBe(false)
  })

  it("write_file: an existing file swapped for a link is neither followed nor truncated", async () => {
    const { root, outside } = setup()
    writeFileSync(join(root, "f.txt"), "old")
    const judged = judge(root, "f.txt")
    rmSync(join(root, "f.txt"))
    symlinkSync(join(outside, "secret.txt"), join(root, "f.txt"))
    expect(leftOf(await runDirect(writeFileTool, { path: "f.txt", content: "x" }, await context(root), judged))).toMatch(/changed between the check and the open/)
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("SECRET\n")
  })

  it("edit_file: a parent folder swapped for a link after the judgment is not followed", async () => {
    const { root, outside } = setup()
    mkdirSync(join(root, "dir"))
    writeFileSync(join(root, "dir", "a.txt"), "SECRET\n")
    const judged = judge(root, "dir/a.txt")
    renameSync(join(root, "dir"), join(root, "dir.old"))
    symlinkSync(join(outside, "dir"), join(root, "dir"))
    expect(leftOf(await runDirect(editFileTool, { path: "dir/a.txt", old_string: "SECRET", new_string: "gone" }, await context(root), judged))).toMatch(
      /changed between the check and the open/
    )
    expect(readFileSync(join(outside, "dir", "a.txt"), "utf8")).toBe("SECRET\n")
  })

  it("a hard link inside the workspace to a file outside is refused for reading, writing and editing", async () => {
    const { root, outside } = setup()
    linkSync(join(outside, "secret.txt"), join(root, "h.txt"))
    // As the interceptor judged it before the classifier knew about hard links: inside.
    const judged = { path: join(root, "h.txt"), insideWorkspace: true }
    const ctx = await context(root)
    const read = leftOf(await runDirect(readFileTool, { path: "h.txt" }, ctx, judged))
    expect(read).not.toMatch(/SECRET/)
    expect(read).toMatch(/hard link/)
    expect(leftOf(await runDirect(writeFileTool, { path: "h.txt", content: "x" }, ctx, judged))).toMatch(/hard link/)
    expect(leftOf(await runDirect(editFileTool, { path: "h.txt", old_string: "SECRET", new_string: "x" }, ctx, judged))).toMatch(/hard link/)
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("SECRET\n")
  })

  it("a hard-linked file judged as outside the workspace (and so approved as such) is read", async () => {
    const { root, outside } = setup()
    linkSync(join(outside, "secret.txt"), join(root, "h.txt"))
    const judged = judge(root, "h.txt")
    expect(judged).toEqual({ path: join(root, "h.txt"), insideWorkspace: false })
    expect(rightOf(await runDirect(readFileTool, { path: "h.txt" }, await context(root), judged))).toBe("     1\tSECRET")
  })

  it("a file tool given no judged path refuses to run", async () => {
    const root = tempDir()
    writeFileSync(join(root, "a.txt"), "x")
    const ctx = await context(root)
    const none = { insideWorkspace: null }
    expect(leftOf(await runDirect(readFileTool, { path: "a.txt" }, ctx, none))).toMatch(/no judged path/)
    expect(leftOf(await runDirect(writeFileTool, { path: "a.txt", content: "y" }, ctx, none))).toMatch(/no judged path/)
    expect(leftOf(await runDirect(editFileTool, { path: "a.txt", old_string: "x", new_string: "y" }, ctx, none))).toMatch(/no judged path/)
    expect(readFileSync(join(root, "a.txt"), "utf8")).toBe("x")
  })

  it("opens the judged path, not the one the input names", async () => {
    const root = tempDir()
    writeFileSync(join(root, "judged.txt"), "judged\n")
    writeFileSync(join(root, "named.txt"), "named\n")
    expect(rightOf(await runDirect(readFileTool, { path: "named.txt" }, await context(root), judge(root, "judged.txt")))).toBe("     1\tjudged")
  })
})
