import { Effect, Fiber, Ref } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { bashTool, makeBashTool, parseCwd } from "./bash.js"
import { context, leftOf, rightOf, runDirect, tempDir } from "./toolTestKit.js"

const sleepUntil = async (check: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (check()) return true
    await new Promise((r) => setTimeout(r, 25))
  }
  return check()
}

/** Is `pid` a live process? A zombie is dead, though `kill(pid, 0)` still reaches it until it is reaped. */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))
  } catch {
    return false
  }
}

/** A sleep whose command line no other process has: `sleep <tag>` with a unique fractional duration. */
let tagCounter = 0
const sleepTag = (): string => `300.${process.pid}${String(++tagCounter).padStart(3, "0")}`

/** Live processes (zombies have an empty command line) running `sleep <tag>`, seen from the host's /proc. */
const sleepersWith = (tag: string): ReadonlyArray<number> =>
  readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readFileSync(`/proc/${n}/cmdline`, "utf8") === `sleep\0${tag}\0`
      } catch {
        return false
      }
    })
    .map(Number)

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
    const tag = sleepTag()
    const started = Date.now()
    const err = leftOf(await runDirect(bashTool, { command: `sleep ${tag} & echo started; wait`, timeout_ms: 400 }, await context(root)))
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(err).toMatch(/timed out after 400 ms.*every process it started was killed/s)
    expect(err).toContain("started")
    expect(sleepersWith(tag)).toEqual([])
  })

  it("cancelling the call kills its processes too", async () => {
    const root = tempDir()
    const marker = join(root, "late")
    const ctx = await context(root)
    const decoded = bashTool.decode({ command: `sleep 1; touch ${marker}` })
    if (decoded._tag === "Left") throw new Error(decoded.left)
    await Effect.runPromise(
      Effect.gen(function* () {
        const fiber = yield* Effect.fork(Effect.either(bashTool.run(decoded.right, ctx, { insideWorkspace: null })))
        yield* Effect.sleep("200 millis")
        yield* Fiber.interrupt(fiber)
      })
    )
    await new Promise((r) => setTimeout(r, 1300))
    expect(existsSync(marker)).toBe(false)
  })

  it("returns when bash exits even if a background job holds the output open, and kills that job", async () => {
    const root = tempDir()
    const tag = sleepTag()
    const started = Date.now()
    const out = rightOf(await runDirect(bashTool, { command: `sleep ${tag} & echo done`, timeout_ms: 20_000 }, await context(root)))
    expect(out).toBe("done\n[exit code: 0]")
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(sleepersWith(tag)).toEqual([])
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

const escapes: ReadonlyArray<readonly [string, (tag: string) => string]> = [
  ["setsid", (tag) => `setsid sleep ${tag} > /dev/null 2>&1 &`],
  ["a double fork", (tag) => `( setsid sh -c 'sleep ${tag} > /dev/null 2>&1 &' & )`],
  ["nohup", (tag) => `nohup sleep ${tag} > /dev/null 2>&1 &`],
  ["a disowned job", (tag) => `sleep ${tag} > /dev/null 2>&1 & disown`],
  ["setsid holding the output open", (tag) => `setsid sleep ${tag} &`],
  ["a loop that keeps forking", (tag) => `setsid bash -c 'while :; do sleep ${tag} & sleep 0.01; done' > /dev/null 2>&1 &`]
]

describe.each(["auto", "pid-namespace", "scan"] as const)("bash containment (%s)", (containment) => {
  const tool = makeBashTool({ containment })

  for (const [name, commandFor] of escapes) {
    it(`no process started with ${name} outlives the call`, async () => {
      const tag = sleepTag()
      const started = Date.now()
      const out = rightOf(await runDirect(tool, { command: `${commandFor(tag)}\nsleep 0.2; echo started`, timeout_ms: 20_000 }, await context(tempDir())))
      expect(out).toBe("started\n[exit code: 0]")
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(sleepersWith(tag)).toEqual([])
    })
  }

  it("the pids a command printed are gone when it returns", async () => {
    const root = tempDir()
    // The pids are those of the command's own view: only where it shares the runtime's PID namespace are they the runtime's.
    const out = rightOf(await runDirect(tool, { command: `setsid sh -c 'echo $$; exec sleep 300' > pids 2>&1 &\nsleep 0.2; cat pids` }, await context(root)))
    const pid = Number(out.split("\n")[0])
    expect(pid).toBeGreaterThan(0)
    if (containment === "scan") expect(alive(pid)).toBe(false)
  })

  it("a timeout kills the processes that left the group", async () => {
    const tag = sleepTag()
    const err = leftOf(await runDirect(tool, { command: `setsid sleep ${tag} > /dev/null 2>&1 &\nsleep 30`, timeout_ms: 500 }, await context(tempDir())))
    expect(err).toContain("timed out after 500 ms")
    expect(sleepersWith(tag)).toEqual([])
  })

  it("cancellation kills the processes that left the group", async () => {
    const tag = sleepTag()
    const ctx = await context(tempDir())
    const decoded = tool.decode({ command: `( setsid sh -c 'sleep ${tag} > /dev/null 2>&1 &' & )\nsleep 30` })
    if (decoded._tag === "Left") throw new Error(decoded.left)
    await Effect.runPromise(
      Effect.gen(function* () {
        const fiber = yield* Effect.fork(Effect.either(tool.run(decoded.right, ctx, { insideWorkspace: null })))
        yield* Effect.sleep("400 millis")
        yield* Fiber.interrupt(fiber)
      })
    )
    expect(await sleepUntil(() => sleepersWith(tag).length === 0, 3000)).toBe(true)
  })
})

describe("bash environment", () => {
  const set: Record<string, string> = {
    OPENAI_API_KEY: "sk-openai",
    my_service_token: "tok-lower",
    GITHUB_TOKEN: "ghp-secret",
    GH_TOKEN: "gh-secret",
    DB_PASSWORD: "hunter2",
    AWS_SECRET_ACCESS_KEY: "aws-secret",
    GOOGLE_APPLICATION_CREDENTIALS: "/creds.json",
    ASTRID_HOME: "/secret/astrid-home",
    ASTRID_STORE_URL: "esdb://store",
    CORP_LLM_VAR: "sk-configured",
    PLAIN_SETTING: "visible"
  }
  afterEach(() => {
    for (const name of Object.keys(set)) delete process.env[name]
  })
  const envOf = async (tool: ReturnType<typeof makeBashTool>): Promise<string> => {
    Object.assign(process.env, set)
    return rightOf(await runDirect(tool, { command: "env" }, await context(tempDir())))
  }

  it("passes no credential, provider key or ASTRID_* variable to the command", async () => {
    const env = await envOf(makeBashTool({ secretNames: ["CORP_LLM_VAR"] }))
    for (const value of ["sk-openai", "tok-lower", "ghp-secret", "gh-secret", "hunter2", "aws-secret", "/creds.json", "/secret/astrid-home", "esdb://store", "sk-configured"]) {
      expect(env).not.toContain(value)
    }
    expect(env).not.toMatch(/^ASTRID_/m)
    expect(env).toContain("PLAIN_SETTING=visible")
    expect(env).toMatch(/^PATH=/m)
  })

  it("the default tool drops them too", async () => {
    const env = await envOf(bashTool)
    expect(env).not.toContain("sk-openai")
    expect(env).not.toContain("/secret/astrid-home")
  })

  it("pass_env keeps named variables and prefixes, but never an ASTRID_* variable or a provider key", async () => {
    const env = await envOf(makeBashTool({ passEnv: ["GITHUB_TOKEN", "GH_*", "ASTRID_HOME", "CORP_*"], secretNames: ["CORP_LLM_VAR"] }))
    expect(env).toContain("GITHUB_TOKEN=ghp-secret")
    expect(env).toContain("GH_TOKEN=gh-secret")
    expect(env).not.toContain("hunter2")
    expect(env).not.toContain("/secret/astrid-home")
    expect(env).not.toContain("sk-configured")
  })
})
