import { Effect, Either } from "effect"
import { existsSync, realpathSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { answer, type Harness, makeHarness, scriptedChannel } from "../../test/securityHarness.js"
import { SecurityInterceptor } from "../security/securityInterceptor.js"
import { sessionStream } from "../../domain/streams.js"
import { bashToolErased } from "../../infrastructure/tools/bash.js"
import { readFileToolErased } from "../../infrastructure/tools/readFile.js"
import { writeFileToolErased } from "../../infrastructure/tools/writeFile.js"
import { cutOutput, MAX_OUTPUT_CHARS, runTool } from "./runTool.js"
import type { ActionRequest } from "../../domain/security/action.js"
import { type AnyTool, eraseTool, type JudgedTarget, makeRunContext } from "./tool.js"

/** Runs `effect` with the harness's interceptor (and its approval channel, through `h.run`). */
const within = <A, E>(h: Harness, effect: Effect.Effect<A, E, SecurityInterceptor>): Promise<A> =>
  h.run(Effect.provideService(effect, SecurityInterceptor, h.interceptor))

const call = (workspace: string) => Effect.map(makeRunContext(workspace), (context) => ({ principal: "alice", sessionId: "s1", context }))

describe("cutOutput", () => {
  it("keeps output up to 30,000 characters and cuts the rest with a visible note", () => {
    expect(cutOutput("x".repeat(MAX_OUTPUT_CHARS))).toEqual({ output: "x".repeat(MAX_OUTPUT_CHARS), truncated: false })
    const cut = cutOutput("y".repeat(MAX_OUTPUT_CHARS + 123))
    expect(cut.truncated).toBe(true)
    expect(cut.output).toBe(`${"y".repeat(MAX_OUTPUT_CHARS)}\n[output truncated: 123 more characters]`)
  })
})

describe("runTool through the real interceptor", () => {
  it("a read inside the workspace runs in guided mode and its result is recorded", async () => {
    const h = await makeHarness()
    writeFileSync(join(h.workspace, "src/hello.txt"), "hi\n")
    const result = await within(h, Effect.flatMap(call(h.workspace), (c) => runTool(readFileToolErased, { path: "src/hello.txt" }, c)))
    expect(result).toMatchObject({ ok: true, output: "     1\thi", truncated: false, decision: { _tag: "Allowed" } })
    const recorded = (await h.events(sessionStream("s1"))).filter((e) => e._tag === "ToolResultRecorded")
    expect(recorded).toEqual([expect.objectContaining({ tool: "read_file", ok: true, output: "     1\thi", truncated: false })])
    expect(sessionStream("s1")).toBe("astrid-session-s1")
  })

  it("sudo is denied by policy and never runs", async () => {
    const channel = scriptedChannel(answer({ _tag: "AllowOnce" }))
    const h = await makeHarness({ channel })
    const marker = join(h.workspace, "ran")
    const result = await within(h, Effect.flatMap(call(h.workspace), (c) => runTool(bashToolErased, { command: `sudo touch ${marker}` }, c)))
    expect(result.ok).toBe(false)
    expect(result.output).toMatch(/^denied by policy: /)
    expect(result.decision?._tag).toBe("Denied")
    expect(existsSync(marker)).toBe(false)
    expect(channel.prompts).toHaveLength(0)
    const events = await h.events("astrid-session-s1")
    expect(events.some((e) => e._tag === "ToolResultRecorded")).toBe(false)
    expect(events.some((e) => e._tag === "ActionDenied")).toBe(true)
  })

  it("a write with no approval channel is deferred and does not run", async () => {
    const h = await makeHarness()
    const result = await within(h, Effect.flatMap(call(h.workspace), (c) => runTool(writeFileToolErased, { path: "src/new.txt", content: "x" }, c)))
    expect(result.ok).toBe(false)
    expect(result.output).toMatch(/^deferred for approval: request \S+ \(no channel\)/)
    expect(result.decision?._tag).toBe("Deferred")
    expect(existsSync(join(h.workspace, "src/new.txt"))).toBe(false)
    const events = await h.events("astrid-session-s1")
    expect(events.some((e) => e._tag === "ActionDeferred")).toBe(true)
    expect(events.some((e) => e._tag === "ToolResultRecorded")).toBe(false)
  })

  it("an approved bash call runs, keeps its cwd, and long output is cut at 30,000 characters in the result and the event", async () => {
    const h = await makeHarness({ channel: scriptedChannel(answer({ _tag: "AllowOnce" })) })
    const results = await within(h, 
      Effect.gen(function* () {
        const c = yield* call(h.workspace)
        const first = yield* runTool(bashToolErased, { command: "cd src && head -c 40000 /dev/zero | tr '\\0' a" }, c)
        const second = yield* runTool(bashToolErased, { command: "pwd" }, c)
        return [first, second] as const
      })
    )
    const [first, second] = results
    expect(first.ok).toBe(true)
    expect(first.truncated).toBe(true)
    expect(first.output.length).toBeLessThan(MAX_OUTPUT_CHARS + 100)
    expect(first.output).toMatch(/\[output truncated: \d+ more characters\]$/)
    expect(second.output).toBe(`${join(h.workspace, "src")}\n[exit code: 0]`)
    const recorded = (await h.events("astrid-session-s1")).filter((e) => e._tag === "ToolResultRecorded")
    expect(recorded).toHaveLength(2)
    expect(recorded[0]).toMatchObject({ tool: "bash", ok: true, truncated: true })
  })

  it("a tool error is an ok:false result the model can read, and is recorded", async () => {
    const h = await makeHarness()
    const result = await within(h, Effect.flatMap(call(h.workspace), (c) => runTool(readFileToolErased, { path: "src/missing.txt" }, c)))
    expect(result).toMatchObject({ ok: false, decision: { _tag: "Allowed" } })
    expect(result.output).toMatch(/^error: .*does not exist/)
    const recorded = (await h.events("astrid-session-s1")).filter((e) => e._tag === "ToolResultRecorded")
    expect(recorded).toEqual([expect.objectContaining({ ok: false, tool: "read_file" })])
  })

  it("invalid input is refused before anything is proposed", async () => {
    const h = await makeHarness()
    const result = await within(h, Effect.flatMap(call(h.workspace), (c) => runTool(readFileToolErased, { file: "x" }, c)))
    expect(result).toMatchObject({ ok: false, decision: null })
    expect(result.output).toMatch(/^invalid input for read_file/)
    expect(await h.events("astrid-session-s1")).toEqual([])
  })

  it("hands the tool what the interceptor judged: the canonical path behind a link, and no path for other kinds", async () => {
    const h = await makeHarness({ channel: scriptedChannel(answer({ _tag: "AllowOnce" })) })
    writeFileSync(join(h.workspace, "src/real.txt"), "x")
    symlinkSync("real.txt", join(h.workspace, "src/alias.txt"))
    const seen: Array<JudgedTarget> = []
    const probe = (request: (input: string) => ActionRequest): AnyTool =>
      eraseTool<string>({
        name: "probe",
        description: "records its judgment",
        inputSchema: { type: "object" },
        decode: (raw) => (typeof raw === "string" ? Either.right(raw) : Either.left("a string")),
        request,
        run: (_input, _ctx, judged) => Effect.sync(() => (seen.push(judged), "ok"))
      })
    await within(
      h,
      Effect.gen(function* () {
        const c = yield* call(h.workspace)
        yield* runTool(probe((path) => ({ _tag: "file_read", path })), "src/alias.txt", c)
        yield* runTool(probe((command) => ({ _tag: "command_exec", command })), "true", c)
      })
    )
    expect(seen).toEqual([{ path: realpathSync(join(h.workspace, "src/real.txt")), insideWorkspace: true }, { insideWorkspace: null }])
  })
})
