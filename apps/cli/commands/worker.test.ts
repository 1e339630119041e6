/**
 * `astrid approvals approve` (running the action by default, or not with --no-run) and `astrid worker --once`
 * handlers, run in-process against a real SQLite file in a temporary ASTRID_HOME, with tool calls deferred
 * by the real interceptor and run for real in a temporary workspace (the commands are wired into main.ts
 * separately; the bin's own tests cover wiring).
 */
import { Effect } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { useCliCapture } from "../../../test/cliCapture.js"
import { deferredQueue } from "../../../test/deferredQueue.js"
import { bashToolErased } from "../../../infrastructure/tools/bash.js"
import { writeFileToolErased } from "../../../infrastructure/tools/writeFile.js"
import { approve, deny } from "./approvals.js"
import type { Execution } from "../../../application/agent/deferredWorker.js"
import { reportedOnce, worker } from "./worker.js"

const capture = useCliCapture()
const homes = capture.homes

const deferredHome = (
  calls: Parameters<typeof deferredQueue>[0],
  proposals: Parameters<typeof deferredQueue>[1] = []
) => deferredQueue(calls, proposals, homes)

const jsonOutput = (): unknown => JSON.parse(capture.output())

describe("approve, then run", () => {
  it("approve runs the approved command once and prints its result", async () => {
    const { workspace, requestIds } = await deferredHome([{ tool: bashToolErased, input: { command: "echo built > artifact.txt && cat artifact.txt" } }])
    const [id] = requestIds
    if (id === undefined) throw new Error("no request")
    await Effect.runPromise(approve({ id, scope: "once", json: false }))
    expect(capture.output()).toContain(`${id}: run: echo built > artifact.txt && cat artifact.txt`)
    expect(capture.output()).toMatch(/allowed: run: echo built .* \(approved \(once\) by alice\)\nran bash: run: echo built .* \(ok, \d+ ms\), result recorded in session s1\n\s+built\n\s+\[exit code: 0\]/)
    expect(readFileSync(join(workspace, "artifact.txt"), "utf8")).toBe("built\n")
    capture.reset()
    await Effect.runPromise(worker({ once: true, json: true }))
    expect(jsonOutput()).toEqual([])
  })

  it("approve --no-run leaves it to the worker, which runs it once; a denied action never runs", async () => {
    const { workspace, requestIds } = await deferredHome([
      { tool: writeFileToolErased, input: { path: "later.txt", content: "from the worker\n" } },
      { tool: writeFileToolErased, input: { path: "never.txt", content: "no\n" } }
    ])
    const [later, never] = requestIds
    if (later === undefined || never === undefined) throw new Error("no requests")
    await Effect.runPromise(approve({ id: later, scope: "once", json: true, run: false }))
    expect(jsonOutput()).toMatchObject({ requestId: later, decision: "Allowed" })
    expect(jsonOutput()).not.toHaveProperty("execution")
    expect(existsSync(join(workspace, "later.txt"))).toBe(false)
    capture.reset()
    await Effect.runPromise(deny({ id: never, reason: "not today", json: true }))
    capture.reset()
    await Effect.runPromise(worker({ once: true, json: true }))
    expect(jsonOutput()).toEqual([expect.objectContaining({ requestId: later, status: "ran", tool: "write_file", ok: true })])
    expect(readFileSync(join(workspace, "later.txt"), "utf8")).toBe("from the worker\n")
    expect(existsSync(join(workspace, "never.txt"))).toBe(false)
    capture.reset()
    await Effect.runPromise(worker({ once: true, json: false }))
    expect(capture.output()).toBe("no approved actions waiting to run for alice\n")
  })
})

describe("a tool the worker does not have", () => {
  const spawn = { request: { _tag: "subagent_spawn", task: "review the diff" }, toolCall: { tool: "task", input: { description: "review the diff" } }, estimatedCostMicros: 3_000 } as const

  it("approve --no-run says the worker cannot run it; the worker records it as not run once, releasing its budget", async () => {
    const { requestIds, h } = await deferredHome([], [spawn])
    const [id] = requestIds
    if (id === undefined) throw new Error("no request")
    await Effect.runPromise(approve({ id, scope: "once", json: false, run: false }))
    expect(capture.output()).toMatch(/the worker cannot run task, so 'astrid worker' records it as not run and tells the session/)
    capture.reset()
    await Effect.runPromise(worker({ once: true, json: true }))
    expect(jsonOutput()).toEqual([expect.objectContaining({ requestId: id, status: "stopped", tool: "task", reason: expect.stringMatching(/^the worker cannot run task/) })])
    capture.reset()
    await Effect.runPromise(worker({ once: true, json: true }))
    expect(jsonOutput()).toEqual([])
    const session = await h.events("astrid-session-s1")
    const reserved = session.filter((e) => e._tag === "BudgetReserved").at(-1)
    if (reserved?._tag !== "BudgetReserved") throw new Error("no reservation")
    expect(session.some((e) => e._tag === "BudgetReleased" && e.reservationId === reserved.reservationId)).toBe(true)
  })

  it("a watching worker says it once, not at every poll", async () => {
    const { requestIds } = await deferredHome([], [spawn])
    const [id] = requestIds
    if (id === undefined) throw new Error("no request")
    await Effect.runPromise(approve({ id, scope: "once", json: true, run: false }))
    capture.reset()
    // Three polls, one second apart; then the watch is interrupted, as Ctrl-C would.
    await Effect.runPromise(Effect.race(worker({ once: false, json: true }), Effect.sleep("2500 millis")))
    const lines = capture.output().split("\n").filter((l) => l !== "")
    expect(lines.map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ requestId: id, status: "stopped" })])
  })
})

describe("reportedOnce", () => {
  it("passes what ran or stopped and a skip the first time only, or when its reason changes", () => {
    const fresh = reportedOnce()
    const skipped = (reason: string): Execution => ({ _tag: "Skipped", requestId: "r1", kind: "no_decision", reason })
    const stopped: Execution = { _tag: "Stopped", requestId: "r2", actionId: "a2", sessionId: "s1", tool: "task", summary: "spawn", reason: "no" }
    expect(fresh([skipped("first"), stopped])).toEqual([skipped("first"), stopped])
    expect(fresh([skipped("first")])).toEqual([])
    expect(fresh([skipped("second")])).toEqual([skipped("second")])
  })
})
