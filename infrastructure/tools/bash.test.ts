import { Effect, Fiber, Ref } from "effect"
import { existsSync, mkdirSync, readFileSync, realpathSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { bashTool, parseCwd } from "./bash.js"
import { context, leftOf, rightOf, runDirect, tempDir } from "./toolTestKit.js"

const sleepUntil = async (check: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (check()) return true
    await new Promise((r) => setTimeout(r, 25))
  }
  return check()
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("bash", () => {
  it("combines stdout and stderr and reports the exit code", async () => {
    const root = tempDir()
    const out = rightOf(await runDirect(bashTool, { command: "echo out; echo err >&2; exit 3" }, await context(root)))
    expect(out).toContain("out")
    expect(out).toContain("err")
    expect(out).toMatch(/\[exit code: 3\]$/)
  })

  it("keeps the working directory between calls of one session, and only that session", async () => {
    const root = tempDir()
    mkdirSync(join(root, "sub/inner"), { recursive: true })
    const ctx = await context(root)
    rightOf(await runDirect(bashTool, { command: "cd sub" }, ctx))
    expect(rightOf(await runDirect(bashTool, { command: "cd inner && pwd" }, ctx))).toBe(`${realpathSync(join(root, "sub/inner"))}\n[exit code: 0]`)
    expect(rightOf(await runDirect(bashTool, { command: "pwd # a trailing comment" }, ctx))).toBe(`${join(root, "sub/inner")}\n[exit code: 0]`)
    expect(await Effect.runPromise(Ref.get(ctx.cwd))).toBe(join(root, "sub/inner"))
    const other = await context(root)
    expect(rightOf(await runDirect(bashTool, { command: "pwd" }, other))).toBe(`${root}\n[exit code: 0]`)
  })

  it("a failed command still records where it ended", async () => {
    const root = tempDir()
    mkdirSync(join(root, "d"))
    const ctx = await context(root)
    expect(rightOf(await runDirect(bashTool, { command: "cd d; false" }, ctx))).toBe("[exit code: 1]")
    expect(await Effect.runPromise(Ref.get(ctx.cwd))).toBe(join(root, "d"))
  })

  it("kills the whole process group on timeout", async () => {
    const root = tempDir()
    const pidFile = join(root, "child.pid")
    const started = Date.now()
    const err = leftOf(await runDirect(bashTool, { command: `sleep 30 & echo $! > ${pidFile}; echo started; wait`, timeout_ms: 400 }, await context(root)))
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(err).toMatch(/timed out after 400 ms.*process group was killed/s)
    expect(err).toContain("started")
    const pid = Number(readFileSync(pidFile, "utf8").trim())
    expect(await sleepUntil(() => !alive(pid), 3000)).toBe(true)
  })

  it("cancelling the call kills the process group too", async () => {
    const root = tempDir()
    const marker = join(root, "late")
    const ctx = await context(root)
    const decoded = bashTool.decode({ command: `sleep 1; touch ${marker}` })
    if (decoded._tag === "Left") throw new Error(decoded.left)
    await Effect.runPromise(
      Effect.gen(function* () {
        const fiber = yield* Effect.fork(Effect.either(bashTool.run(decoded.right, ctx)))
        yield* Effect.sleep("200 millis")
        yield* Fiber.interrupt(fiber)
      })
    )
    await new Promise((r) => setTimeout(r, 1300))
    expect(existsSync(marker)).toBe(false)
  })

  it("returns when bash exits even if a background job holds the output open, and kills that job", async () => {
    const root = tempDir()
    const pidFile = join(root, "bg.pid")
    const started = Date.now()
    const out = rightOf(await runDirect(bashTool, { command: `sleep 30 & echo $! > ${pidFile}; echo done`, timeout_ms: 20_000 }, await context(root)))
    expect(out).toBe("done\n[exit code: 0]")
    expect(Date.now() - started).toBeLessThan(5_000)
    const pid = Number(readFileSync(pidFile, "utf8").trim())
    expect(await sleepUntil(() => !alive(pid), 3000)).toBe(true)
  })

  it("refuses timeouts over 600 s and maps to command_exec with the session cwd", () => {
    expect(bashTool.decode({ command: "ls", timeout_ms: 600_001 })._tag).toBe("Left")
    expect(bashTool.request({ command: "ls -la" }, { workspaceRoot: "/ws", cwd: "/ws/sub" })).toEqual({ _tag: "command_exec", command: "ls -la", cwd: "/ws/sub" })
  })

  it("parseCwd takes the last marker and leaves output without one alone", () => {
    expect(parseCwd("a\n__ASTRID_CWD__/x\n__ASTRID_CWD__/y")).toEqual({ output: "a\n__ASTRID_CWD__/x", cwd: "/y" })
    expect(parseCwd("plain")).toEqual({ output: "plain", cwd: null })
  })
})
