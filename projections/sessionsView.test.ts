/**
 * The sessions view against a real SQLite store and projections.db: owner, counts, spend and status
 * from a session's events; deletion is final, another end is undone by a new user message; the
 * in-memory summary of one stream equals the view's row; a rebuild equals the incremental build.
 */
import { Effect, Option, Schema } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { EventDraft } from "../application/eventLog.js"
import { decodeRecorded } from "../application/streamState.js"
import { AstridEvent } from "../domain/events/astridEvent.js"
import { sessionStream } from "../domain/streams.js"
import { type Harness, noise, openHarness } from "../test/projectionFixtures.js"
import { makeProjectionRunner } from "./projectionRunner.js"
import { getSession, inactiveSessions, listSessions, sessionIdOfStream, sessionsByPrefix, sessionsView, spendMicros, summarizeSession } from "./sessionsView.js"

const open: Array<Harness> = []
afterEach(() => {
  for (const h of open.splice(0)) h.close()
})

const decode = Schema.decodeUnknownSync(AstridEvent)
const draft = (principal: string, sessionId: string, event: Record<string, unknown>): EventDraft => ({ principal, sessionId, event: decode(event) })

const started = (sessionId: string, parent: string | null = null) => ({
  _tag: "SessionStarted",
  sessionId,
  workspace: `/work/${sessionId}`,
  parentSessionId: parent,
  model: "claude-sonnet-4-5"
})
const message = (role: string, content: string, inputClassification = "trusted") => ({ _tag: "MessageRecorded", messageId: `m-${content}`, role, content, inputClassification })
const proposed = (actionId: string) => ({
  _tag: "ActionProposed",
  actionId,
  kind: "file_read",
  resource: "file:///work/a",
  risk: "low",
  summary: "read a",
  arguments: {},
  estimatedCostMicros: 0
})
const ended = (sessionId: string, reason: string, detail: string | null = null) => ({ _tag: "SessionEnded", sessionId, reason, detail })

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

const build = async () => {
  const h = await openHarness()
  open.push(h)
  const append = (principal: string, sessionId: string, ...events: ReadonlyArray<Record<string, unknown>>) =>
    h.append(sessionStream(sessionId), events.map((e) => draft(principal, sessionId, e)))
  await append("ada", "s1", started("s1"), message("user", "hello"), message("assistant", "{}"), message("tool", "{}", "untrusted"), message("system", "note"))
  await append("ada", "s1", proposed("a1"), { _tag: "ActionAllowed", actionId: "a1", proof: { _tag: "PolicyAllowed", rule: "read inside" } })
  await append("ada", "s1", proposed("a2"), { _tag: "ActionDenied", actionId: "a2", stage: "policy", reason: "blocked", remedy: null })
  await append("ada", "s1", { _tag: "LlmUsageRecorded", provider: "anthropic", model: "claude-sonnet-4-5", inputTokens: 1000, outputTokens: 200, costMicros: 6000 })
  await append("ada", "s1", { _tag: "BudgetReserved", reservationId: "r1", actionId: "a1", amountMicros: 500 }, { _tag: "BudgetCommitted", reservationId: "r1", amountMicros: 400 })
  await append("ada", "s1", ended("s1", "completed"))
  // A sub-agent session that ends, resumes on a new user message, and is deleted for good.
  await append("ada", "s2", started("s2", "s1"), message("user", "sub"))
  await append("ada", "s2", ended("s2", "cancelled", "ctrl-c"), message("user", "again"))
  await append("ada", "s2", ended("s2", "deleted", "not needed"), ended("s2", "completed"), message("user", "late"))
  // Bob's session, recorded by the interceptor alone (no SessionStarted).
  await append("bob", "s3", proposed("b1"))
  await h.append(noise(1).stream, [noise(1).draft])
  const views = h.views()
  await run(Effect.flatMap(makeProjectionRunner(h.store, views, [sessionsView]), (r) => r.catchUp()))
  return { h, views }
}

describe("sessions view", () => {
  it("summarizes each session: owner, workspace, counts, spend and status", async () => {
    const { views } = await build()
    const s1 = Option.getOrThrow(await run(getSession(views, "s1")))
    expect(s1).toMatchObject({
      principal: "ada",
      workspace: "/work/s1",
      model: "claude-sonnet-4-5",
      parent_session_id: null,
      messages: 2,
      tool_calls: 2,
      denied: 1,
      input_tokens: 1000,
      output_tokens: 200,
      llm_cost_micros: 6000,
      committed_micros: 400,
      status: "ended",
      end_reason: "completed",
      ended_by: "ada",
      has_start: 1,
      events: 13
    })
    expect(spendMicros(s1)).toBe(6400)
    expect(s1.started_at).toMatch(/^\d{4}-\d{2}-\d{2}T/)
    expect(s1.last_activity_at >= s1.started_at).toBe(true)

    const s2 = Option.getOrThrow(await run(getSession(views, "s2")))
    expect(s2).toMatchObject({ parent_session_id: "s1", status: "deleted", end_reason: "deleted", end_detail: "not needed", messages: 3 })

    const s3 = Option.getOrThrow(await run(getSession(views, "s3")))
    expect(s3).toMatchObject({ principal: "bob", workspace: null, has_start: 0, tool_calls: 1, status: "active" })
  })

  it("lists a principal's sessions newest first, deleted ones only when asked, and never another's", async () => {
    const { views } = await build()
    expect((await run(listSessions(views, { principal: "ada" }))).map((r) => r.session_id)).toEqual(["s1"])
    expect((await run(listSessions(views, { principal: "ada", includeDeleted: true }))).map((r) => r.session_id)).toEqual(["s2", "s1"])
    expect((await run(listSessions(views, { principal: "bob" }))).map((r) => r.session_id)).toEqual(["s3"])
    expect((await run(sessionsByPrefix(views, "ada", "s"))).map((r) => r.session_id)).toEqual(["s2", "s1"])
    expect(await run(sessionsByPrefix(views, "ada", "s3"))).toEqual([])
    expect((await run(inactiveSessions(views, "ada", "9999-01-01T00:00:00.000Z"))).map((r) => r.session_id)).toEqual(["s1"])
    expect(await run(inactiveSessions(views, "ada", "2000-01-01T00:00:00.000Z"))).toEqual([])
    expect(sessionIdOfStream("astrid-session-x")).toBe("x")
    expect(sessionIdOfStream("astrid-principal-x")).toBeUndefined()
  })

  it("the in-memory summary of a stream equals the view's row, and a rebuild equals the incremental build", async () => {
    const { h, views } = await build()
    for (const id of ["s1", "s2", "s3"]) {
      const recorded = await run(h.store.readStream(sessionStream(id)))
      const summary = summarizeSession(recorded.map((r) => ({ recorded: r, event: decodeRecorded(r) })))
      expect(summary).toEqual(await run(getSession(views, id)))
    }
    expect(summarizeSession([])).toEqual(Option.none())
    const fresh = h.views("fresh.db")
    await run(Effect.flatMap(makeProjectionRunner(h.store, fresh, [sessionsView], { pageSize: 2 }), (r) => r.catchUp()))
    expect(await run(fresh.dump(sessionsView))).toEqual(await run(views.dump(sessionsView)))
  })

  it("counts model spend once, tool spend apart from it, and a sub-agent's carve-out apart from both", async () => {
    const h = await openHarness()
    open.push(h)
    await h.append(
      sessionStream("p1"),
      [
        started("p1"),
        // A model call: reserved and committed on the session stream, and priced in LlmUsageRecorded (the same money).
        { _tag: "BudgetReserved", reservationId: "m1", actionId: "llm-0001", amountMicros: 20_000 },
        { _tag: "LlmUsageRecorded", provider: "anthropic", model: "claude-sonnet-4-5", inputTokens: 1000, outputTokens: 1000, costMicros: 18_000 },
        { _tag: "BudgetCommitted", reservationId: "m1", amountMicros: 18_000 },
        { _tag: "BudgetReleased", reservationId: "m1", reason: "actual_lower", amountMicros: 2_000 },
        // A tool action.
        { _tag: "BudgetReserved", reservationId: "t1", actionId: "a1", amountMicros: 500 },
        { _tag: "BudgetCommitted", reservationId: "t1", amountMicros: 400 },
        // A sub-agent's carve-out, reserved with SubAgentStarted, and what the child spent committed on it.
        { _tag: "BudgetReserved", reservationId: "c1", actionId: "subagent-child", amountMicros: 100_000 },
        { _tag: "SubAgentStarted", childSessionId: "child", description: "review", tools: ["read_file"], paths: [], budgetMicros: 100_000, timeoutSeconds: 60, depth: 1, reservationId: "c1" },
        { _tag: "SubAgentFinished", childSessionId: "child", outcome: "completed", costMicros: 25_000, detail: null },
        { _tag: "BudgetCommitted", reservationId: "c1", amountMicros: 25_000 },
        // A model call still open: reserved, not settled yet.
        { _tag: "BudgetReserved", reservationId: "m2", actionId: "llm-0002", amountMicros: 20_000 }
      ].map((e) => draft("ada", "p1", e))
    )
    const views = h.views()
    await run(Effect.flatMap(makeProjectionRunner(h.store, views, [sessionsView]), (r) => r.catchUp()))
    const row = Option.getOrThrow(await run(getSession(views, "p1")))
    expect(row).toMatchObject({ llm_cost_micros: 18_000, committed_micros: 400, subagent_micros: 25_000 })
    expect(spendMicros(row)).toBe(43_400)
    expect((await run(views.dump(sessionsView)))["session_reservations"]).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ reservation_id: "m1", kind: "model" }),
        expect.objectContaining({ reservation_id: "t1", kind: "tool" }),
        expect.objectContaining({ reservation_id: "c1", kind: "subagent" }),
        expect.objectContaining({ reservation_id: "m2", kind: "model" })
      ])
    )
    const recorded = await run(h.store.readStream(sessionStream("p1")))
    expect(summarizeSession(recorded.map((r) => ({ recorded: r, event: decodeRecorded(r) })))).toEqual(Option.some(row))
  })
})
