/**
 * The deferred worker over the real interceptor, budget and token services, with the built-in tools doing
 * real work in a temporary workspace: an action deferred because nobody could be asked runs once after its
 * approval, never after a denial or a policy block, and once only when two workers race for it.
 */
import { Effect, Layer } from "effect"
import { existsSync, mkdtempSync, readFileSync, realpathSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { DEFAULT_POLICY, type SecurityPolicy } from "../../domain/security/policy.js"
import { approvalsStream } from "../../domain/streams.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../infrastructure/crypto/uuidv7.js"
import { makeScriptedProvider } from "../../infrastructure/llm/scriptedProvider.js"
import { bashToolErased } from "../../infrastructure/tools/bash.js"
import { builtinTools } from "../../infrastructure/tools/builtinTools.js"
import { writeFileToolErased } from "../../infrastructure/tools/writeFile.js"
import { PathResolverLive } from "../../infrastructure/workspace/pathResolver.js"
import { type HarnessOptions, makeHarness, TEST_KEY, tempWorkspace } from "../../test/securityHarness.js"
import { tempHome } from "../../test/seedStore.js"
import { EventLog, EventLogLive } from "../eventLog.js"
import { Crypto } from "../ports/crypto.js"
import { EventStore } from "../ports/eventStore.js"
import { KeyRing } from "../ports/keyRing.js"
import { LlmProvider, type LlmRequest } from "../ports/llmProvider.js"
import { type Decision, SecurityInterceptor, type Proposal } from "../security/securityInterceptor.js"
import { runTool } from "../tools/runTool.js"
import type { AnyTool } from "../tools/tool.js"
import { makeRunContext } from "../tools/tool.js"
import { runTurn } from "./agentLoop.js"
import { UNTRUSTED_OPEN } from "./conversation.js"
import { type DeferredWorkerConfig, type Execution, makeDeferredWorker } from "./deferredWorker.js"

const SESSION = "astrid-session-s1"

const setup = async (options: HarnessOptions = {}) => {
  const h = await makeHarness(options)
  const crypto = await makeCrypto()
  const base = Layer.mergeAll(Layer.succeed(EventStore, h.store), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, TEST_KEY), PathResolverLive)
  const layer = Layer.mergeAll(Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), base), Layer.succeed(SecurityInterceptor, h.interceptor))
  const worker = (config: Partial<DeferredWorkerConfig> = {}) =>
    h.run(Effect.provide(makeDeferredWorker({ tools: builtinTools, name: "test-worker", ...config }), layer))
  /** Proposes one tool call with nobody to ask: it is deferred. */
  const defer = async (tool: AnyTool, input: unknown): Promise<Extract<Decision, { _tag: "Deferred" }>> => {
    const context = await Effect.runPromise(makeRunContext(h.workspace))
    const result = await h.run(Effect.provideService(runTool(tool, input, { principal: "alice", sessionId: "s1", context }), SecurityInterceptor, h.interceptor))
    if (result.decision?._tag !== "Deferred") throw new Error(`expected a deferral, got ${JSON.stringify(result.decision)}`)
    return result.decision
  }
  const approve = (requestId: string) =>
    h.run(h.interceptor.resolveDeferred({ requestId, principal: "alice", resolver: "alice", answer: { _tag: "Approve", scope: "once" } }))
  const types = async (stream: string) => (await h.events(stream)).map((e) => e._tag)
  /** Proposes straight to the interceptor (a tool call the built-in tools do not have, a cost to reserve). */
  const deferProposal = async (p: Pick<Proposal, "request" | "toolCall" | "estimatedCostMicros">): Promise<Extract<Decision, { _tag: "Deferred" }>> => {
    const d = await h.run(h.interceptor.intercept({ principal: "alice", sessionId: "s1", workspaceRoot: h.workspace, ...p }))
    if (d._tag !== "Deferred") throw new Error(`expected a deferral, got ${JSON.stringify(d)}`)
    return d
  }
  const appendToSession = (event: Parameters<typeof EventLog.Service["append"]>[2][number]["event"]) =>
    h.run(Effect.provide(Effect.flatMap(EventLog, (log) => log.append(SESSION, "any", [{ principal: "alice", sessionId: "s1", event }])), layer))
  /** Runtime notices (deferred outcomes) the session got. */
  const notices = async () => (await h.events(SESSION)).filter((e) => e._tag === "MessageRecorded" && e.role === "user" && e.inputClassification === "untrusted")
  return { h, layer, worker, defer, deferProposal, approve, types, appendToSession, notices }
}

const tagged = <T extends Execution["_tag"]>(e: Execution, tag: T): Extract<Execution, { _tag: T }> => {
  if (e._tag !== tag) throw new Error(`expected ${tag}, got ${JSON.stringify(e)}`)
  return e as Extract<Execution, { _tag: T }>
}

describe("the deferred worker", () => {
  it("runs an approved deferred write once, records its result and budget, and the resumed agent is told as untrusted output", async () => {
    const { h, layer, worker, approve, types } = await setup()
    const requests: Array<LlmRequest> = []
    const provider = Effect.runSync(
      makeScriptedProvider(
        [
          { content: [{ type: "tool_call", id: "c1", name: "write_file", input: { path: "notes/out.txt", content: "hello from the queue\n" } }] },
          { content: [{ type: "text", text: "Queued for approval." }] },
          { content: [{ type: "text", text: "It ran." }] }
        ],
        "test"
      )
    )
    const recording = { name: provider.name, stream: (r: LlmRequest) => (requests.push(r), provider.stream(r)) }
    const turn = (userInput: string) =>
      h.run(
        Effect.provide(runTurn({ principal: "alice", sessionId: "s1", workspaceRoot: h.workspace, userInput, tools: builtinTools, model: "m" }), Layer.merge(layer, Layer.succeed(LlmProvider, recording)))
      )
    await turn("write the note")
    const [queued] = (await h.events(approvalsStream)).filter((e) => e._tag === "DeferredActionQueued")
    expect(queued).toMatchObject({ toolCall: { tool: "write_file", input: { path: "notes/out.txt", content: "hello from the queue\n" } } })
    if (queued?._tag !== "DeferredActionQueued") throw new Error("no queue entry")
    expect(existsSync(join(h.workspace, "notes/out.txt"))).toBe(false)

    const w = await worker()
    expect(await h.run(w.runnable("alice"))).toEqual([])
    const decision = await approve(queued.requestId)
    expect(decision._tag).toBe("Allowed")
    expect((await h.run(w.runnable("alice"))).map((q) => q.requestId)).toEqual([queued.requestId])
    // Another principal cannot have it run (I7).
    expect(tagged(await h.run(w.execute({ requestId: queued.requestId, principal: "mallory" })), "Skipped").kind).toBe("unknown_request")

    const ran = tagged(await h.run(w.execute({ requestId: queued.requestId, principal: "alice" })), "Ran")
    expect(ran).toMatchObject({ ok: true, tool: "write_file", actionId: queued.actionId })
    expect(readFileSync(join(h.workspace, "notes/out.txt"), "utf8")).toBe("hello from the queue\n")
    // Exactly once: the same worker, a fresh one, and a drain all find nothing left to run.
    expect(tagged(await h.run(w.execute({ requestId: queued.requestId, principal: "alice" })), "Skipped").kind).toBe("already_claimed")
    expect(tagged(await h.run((await worker()).execute({ requestId: queued.requestId, principal: "alice" })), "Skipped").kind).toBe("already_claimed")
    expect(await h.run((await worker()).drain("alice"))).toEqual([])

    const session = await h.events(SESSION)
    const results = session.filter((e) => e._tag === "ToolResultRecorded" && e.actionId === queued.actionId)
    expect(results).toEqual([expect.objectContaining({ ok: true, tool: "write_file" })])
    // I1: the allowing decision comes before the result.
    const order = await types(SESSION)
    expect(order.lastIndexOf("ActionAllowed")).toBeLessThan(order.lastIndexOf("ToolResultRecorded"))
    expect(await types(approvalsStream)).toEqual(["DeferredActionQueued", "DeferredActionResolved", "DeferredActionClaimed"])
    const notice = session.filter((e) => e._tag === "MessageRecorded" && e.role === "user" && e.inputClassification === "untrusted")
    expect(notice).toHaveLength(1)

    // The session resumes: the model is handed the runtime's notice with the output wrapped as untrusted.
    await turn("what happened?")
    const last = requests[requests.length - 1]
    const handed = last?.messages.find((m) => m.role === "user" && typeof m.content === "string" && m.content.includes(queued.requestId))
    expect(handed?.content).toMatch(/^\[Astrid runtime notice, not a message from the user\] Your earlier write_file call/)
    expect(handed?.content).toContain(UNTRUSTED_OPEN)
    expect(last?.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant", "user", "user"])
  })

  it("never runs a denied action", async () => {
    const s = await setup()
    const d = await s.defer(writeFileToolErased, { path: "denied.txt", content: "no" })
    const denied = await s.h.run(s.h.interceptor.resolveDeferred({ requestId: d.requestId, principal: "alice", resolver: "alice", answer: { _tag: "Deny", reason: "no" } }))
    expect(denied._tag).toBe("Denied")
    const w = await s.worker()
    expect(await s.h.run(w.drain("alice"))).toEqual([])
    expect(tagged(await s.h.run(w.execute({ requestId: d.requestId, principal: "alice" })), "Skipped").kind).toBe("not_approved")
    // Pending (not yet resolved) does not run either.
    const pending = await s.defer(writeFileToolErased, { path: "pending.txt", content: "no" })
    expect(tagged(await s.h.run(w.execute({ requestId: pending.requestId, principal: "alice" })), "Skipped").kind).toBe("not_approved")
    expect(existsSync(join(s.h.workspace, "denied.txt"))).toBe(false)
    expect(existsSync(join(s.h.workspace, "pending.txt"))).toBe(false)
    expect((await s.h.events(SESSION)).some((e) => e._tag === "ToolResultRecorded")).toBe(false)
  })

  it("two workers racing for the same approved command run it once", async () => {
    const s = await setup({ interleave: true })
    const d = await s.defer(bashToolErased, { command: "echo ran >> count.txt" })
    await s.approve(d.requestId)
    const [a, b] = [await s.worker({ name: "worker-a" }), await s.worker({ name: "worker-b" })]
    const outcomes = await s.h.run(
      Effect.all([a.execute({ requestId: d.requestId, principal: "alice" }), b.execute({ requestId: d.requestId, principal: "alice" })], { concurrency: "unbounded" })
    )
    expect(outcomes.map((o) => o._tag).sort()).toEqual(["Ran", "Skipped"])
    expect(readFileSync(join(s.h.workspace, "count.txt"), "utf8")).toBe("ran\n")
    expect((await s.types(approvalsStream)).filter((t) => t === "DeferredActionClaimed")).toHaveLength(1)
    expect((await s.types(SESSION)).filter((t) => t === "ToolResultRecorded")).toHaveLength(1)
  })

  it("two workers draining the same queue run every approved command once", async () => {
    const s = await setup({ interleave: true })
    for (const n of [1, 2, 3]) await s.approve((await s.defer(bashToolErased, { command: `echo ${n} >> drained.txt` })).requestId)
    const [a, b] = [await s.worker({ name: "worker-a" }), await s.worker({ name: "worker-b" })]
    const [ra, rb] = await s.h.run(Effect.all([a.drain("alice"), b.drain("alice")], { concurrency: "unbounded" }))
    expect([...ra, ...rb].filter((o) => o._tag === "Ran")).toHaveLength(3)
    expect(readFileSync(join(s.h.workspace, "drained.txt"), "utf8").split("\n").filter((l) => l !== "").sort()).toEqual(["1", "2", "3"])
  })

  it("a policy changed since the deferral blocks the action when it is approved, and when a worker is about to run it", async () => {
    const home = tempHome()
    const workspace = tempWorkspace()
    const db = join(home, "astrid.db")
    const before = await setup({ sqlitePath: db, workspace })
    const blocked: SecurityPolicy = { ...DEFAULT_POLICY, blockedCommands: [...DEFAULT_POLICY.blockedCommands, "touch"] }
    const first = await before.defer(bashToolErased, { command: "touch first.txt" })
    const second = await before.defer(bashToolErased, { command: "touch second.txt" })

    // Approved after an administrator blocked `touch`: the re-check at approval denies it.
    const after = await setup({ sqlitePath: db, workspace, settings: { policy: blocked } })
    const denied = await after.h.run(after.h.interceptor.resolveDeferred({ requestId: first.requestId, principal: "alice", resolver: "alice", answer: { _tag: "Approve", scope: "once" } }))
    expect(denied).toMatchObject({ _tag: "Denied", stage: "policy" })
    expect(await after.h.run((await after.worker()).drain("alice"))).toEqual([])

    // Approved under the old policy, run by a worker under the new one: stopped before running, and recorded.
    await before.approve(second.requestId)
    const w = await after.worker({ settingsFor: () => Effect.succeed({ policy: blocked, mode: "guided", escapePolicy: "ask" }) })
    const [stopped] = await after.h.run(w.drain("alice"))
    expect(stopped).toMatchObject({ _tag: "Stopped", reason: expect.stringMatching(/^the policy now blocks it/) })
    expect(existsSync(join(workspace, "first.txt"))).toBe(false)
    expect(existsSync(join(workspace, "second.txt"))).toBe(false)
    const results = (await after.h.events(SESSION)).filter((e) => e._tag === "ToolResultRecorded")
    expect(results).toEqual([expect.objectContaining({ ok: false, output: expect.stringMatching(/^not run: the policy now blocks it/) })])
  })

  it("does not follow a symbolic link planted at the approved path after the approval: stopped, recorded, the session told", async () => {
    const s = await setup()
    const outside = realpathSync(mkdtempSync(join(tmpdir(), "astrid-outside-")))
    const d = await s.defer(writeFileToolErased, { path: "notes.txt", content: "redirected?" })
    await s.approve(d.requestId)
    symlinkSync(join(outside, "outside.txt"), join(s.h.workspace, "notes.txt"))
    const [stopped] = await s.h.run((await s.worker()).drain("alice"))
    expect(stopped).toMatchObject({ _tag: "Stopped", actionId: d.actionId, reason: expect.stringMatching(/would now touch file:\/\/.*outside\.txt \(outside the workspace\), not file:\/\/.*notes\.txt as approved/) })
    expect(existsSync(join(outside, "outside.txt"))).toBe(false)
    const results = (await s.h.events(SESSION)).filter((e) => e._tag === "ToolResultRecorded")
    expect(results).toEqual([expect.objectContaining({ actionId: d.actionId, ok: false, output: expect.stringMatching(/^not run: it would now touch/) })])
    expect(await s.notices()).toHaveLength(1)
    // Stopped is its one outcome: nothing is left to run.
    expect(await s.h.run((await s.worker()).drain("alice"))).toEqual([])
  })

  it("checks what was proposed also when the approval hands its decision straight to the worker", async () => {
    const s = await setup()
    const outside = realpathSync(mkdtempSync(join(tmpdir(), "astrid-outside-")))
    const d = await s.defer(writeFileToolErased, { path: "report.txt", content: "redirected?" })
    // Planted between the proposal (which the human was shown) and the approval.
    symlinkSync(join(outside, "report.txt"), join(s.h.workspace, "report.txt"))
    const decision = await s.approve(d.requestId)
    if (decision._tag !== "Allowed") throw new Error(`expected Allowed, got ${decision._tag}`)
    const stopped = tagged(await s.h.run((await s.worker()).execute({ requestId: d.requestId, principal: "alice", decision })), "Stopped")
    expect(stopped.reason).toMatch(/not file:\/\/.*report\.txt as approved/)
    expect(existsSync(join(outside, "report.txt"))).toBe(false)
  })

  it("refuses an approved action outside the workspace once escape_policy is deny", async () => {
    const s = await setup()
    const outside = realpathSync(mkdtempSync(join(tmpdir(), "astrid-outside-")))
    const d = await s.defer(writeFileToolErased, { path: join(outside, "out.txt"), content: "x" })
    await s.approve(d.requestId)
    const w = await s.worker({ settingsFor: () => Effect.succeed({ policy: DEFAULT_POLICY, mode: "guided", escapePolicy: "deny" }) })
    const [stopped] = await s.h.run(w.drain("alice"))
    expect(stopped).toMatchObject({ _tag: "Stopped", reason: expect.stringMatching(/outside the workspace, and escape_policy is deny$/) })
    expect(existsSync(join(outside, "out.txt"))).toBe(false)
  })

  it("records a tool it cannot run (task) as not run, once: the budget is released and the session told", async () => {
    const s = await setup()
    const d = await s.deferProposal({ request: { _tag: "subagent_spawn", task: "review the diff" }, toolCall: { tool: "task", input: { description: "review the diff" } }, estimatedCostMicros: 2_000 })
    await s.approve(d.requestId)
    const w = await s.worker()
    expect((await s.h.run(w.runnable("alice"))).map((q) => q.requestId)).toEqual([d.requestId])
    const [stopped] = await s.h.run(w.drain("alice"))
    expect(stopped).toMatchObject({ _tag: "Stopped", tool: "task", reason: expect.stringMatching(/^the worker cannot run task .*; ask the agent to retry it in the session$/) })
    // Never offered again, to this worker or another.
    expect(await s.h.run(w.runnable("alice"))).toEqual([])
    expect(await s.h.run((await s.worker()).drain("alice"))).toEqual([])
    const session = await s.h.events(SESSION)
    // The reservation the approval took (the one at the proposal was given back when it was deferred).
    const reserved = session.filter((e) => e._tag === "BudgetReserved" && e.actionId === d.actionId).at(-1)
    if (reserved?._tag !== "BudgetReserved") throw new Error("no reservation")
    expect(session.filter((e) => e._tag === "BudgetReleased" && e.reservationId === reserved.reservationId)).toEqual([expect.objectContaining({ reason: "failed" })])
    expect(session.filter((e) => e._tag === "ToolResultRecorded")).toEqual([expect.objectContaining({ actionId: d.actionId, tool: "task", ok: false })])
    expect(await s.notices()).toHaveLength(1)
  })

  it("does not run an action of a deleted session, nor write a notice into it; its result and budget are still settled", async () => {
    const s = await setup()
    const d = await s.defer(writeFileToolErased, { path: "late.txt", content: "x" })
    await s.approve(d.requestId)
    await s.appendToSession({ _tag: "SessionEnded", sessionId: "s1", reason: "deleted", detail: "cleanup" })
    const [stopped] = await s.h.run((await s.worker()).drain("alice"))
    expect(stopped).toMatchObject({ _tag: "Stopped", reason: expect.stringMatching(/session s1 was deleted/) })
    expect(existsSync(join(s.h.workspace, "late.txt"))).toBe(false)
    expect(await s.notices()).toEqual([])
    const order = await s.types(SESSION)
    expect(order.slice(order.indexOf("SessionEnded"))).toEqual(["SessionEnded", "ToolResultRecorded"])
  })
})
