import { existsSync, readFileSync, writeFileSync } from "node:fs"
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
})
