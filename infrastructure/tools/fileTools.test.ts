import { existsSync, lstatSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { editFileTool } from "./editFile.js"
import { readFileTool } from "./readFile.js"
import { writeFileTool } from "./writeFile.js"
import { context, leftOf, rightOf, runDirect, tempDir } from "./toolTestKit.js"

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

  it("refuses to write through a symbolic link at the final component, to an existing or a missing target", async () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "kept.txt"), "original")
    symlinkSync(join(outside, "kept.txt"), join(root, "notes.txt"))
    symlinkSync(join(outside, "new.txt"), join(root, "dangling.txt"))
    const ctx = await context(root)
    expect(leftOf(await runDirect(writeFileTool, { path: "notes.txt", content: "redirected" }, ctx))).toMatch(/notes\.txt is a symbolic link; write_file does not write through links/)
    expect(leftOf(await runDirect(writeFileTool, { path: "dangling.txt", content: "redirected" }, ctx))).toMatch(/is a symbolic link/)
    expect(readFileSync(join(outside, "kept.txt"), "utf8")).toBe("original")
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

  it("refuses to edit through a symbolic link at the final component", async () => {
    const root = tempDir()
    const outside = tempDir()
    writeFileSync(join(outside, "target.ts"), "const secret = 1\n")
    symlinkSync(join(outside, "target.ts"), join(root, "e.ts"))
    const ctx = await context(root)
    expect(leftOf(await runDirect(editFileTool, { path: "e.ts", old_string: "1", new_string: "2" }, ctx))).toMatch(/e\.ts is a symbolic link; edit_file does not write through links/)
    expect(readFileSync(join(outside, "target.ts"), "utf8")).toBe("const secret = 1\n")
  })

  it("a shorter replacement leaves no trailing bytes of the old text", async () => {
    const root = tempDir()
    writeFileSync(join(root, "e.ts"), "const value = 'a long string here'\n")
    expect(rightOf(await runDirect(editFileTool, { path: "e.ts", old_string: "'a long string here'", new_string: "1" }, await context(root)))).toMatch(/replaced 1/)
    expect(readFileSync(join(root, "e.ts"), "utf8")).toBe("const value = 1\n")
  })
})
