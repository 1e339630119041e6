import { Effect, Option } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { deferralQueued, deferralResolved, type Harness, openHarness } from "../test/projectionFixtures.js"
import { getRequest, listPending, listResolved, pendingApprovalsView } from "./pendingApprovalsView.js"
import { makeProjectionRunner } from "./projectionRunner.js"

const open: Array<Harness> = []
afterEach(() => {
  for (const h of open.splice(0)) h.close()
})

describe("pending approvals view", () => {
  it("lists queued requests by priority then age, per principal, and keeps resolved ones with their outcome", async () => {
    const h = await openHarness()
    open.push(h)
    const events = [
      deferralQueued("q1", "alice", 1),
      deferralQueued("q2", "bob", 5, "s2"),
      deferralQueued("q3", "alice", 5),
      deferralQueued("q4", "alice", 1),
      deferralQueued("q5", "alice", 9),
      deferralResolved("q5", "denied", "carol"),
      // Resolved once (I2): a second resolution and a repeated queue entry change nothing.
      deferralResolved("q5", "approved"),
      deferralQueued("q5", "alice", 0),
      deferralResolved("q-unknown", "approved")
    ]
    for (const e of events) await h.append(e.stream, [e.draft])
    const views = h.views()
    await Effect.runPromise(Effect.flatMap(makeProjectionRunner(h.store, views, [pendingApprovalsView]), (r) => r.catchUp()))

    const pending = await Effect.runPromise(listPending(views))
    expect(pending.map((r) => [r.request_id, r.priority, r.principal])).toEqual([
      ["q2", 5, "bob"],
      ["q3", 5, "alice"],
      ["q1", 1, "alice"],
      ["q4", 1, "alice"]
    ])
    expect(pending[0]).toMatchObject({ session_id: "s2", action_id: "act-q2", summary: "delete for q2", status: "pending", outcome: null })
    expect(pending[0]?.queued_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    const alice = await Effect.runPromise(listPending(views, { principal: "alice" }))
    expect(alice.map((r) => r.request_id)).toEqual(["q3", "q1", "q4"])
    expect(await Effect.runPromise(listPending(views, { principal: "mallory" }))).toEqual([])

    const resolved = await Effect.runPromise(listResolved(views, { principal: "alice" }))
    expect(resolved.map((r) => [r.request_id, r.status, r.outcome, r.resolver, r.resolution_reason, r.priority])).toEqual([
      ["q5", "resolved", "denied", "carol", "not now", 9]
    ])
    expect(await Effect.runPromise(listResolved(views, { principal: "bob" }))).toEqual([])
    const q5 = Option.getOrThrow(await Effect.runPromise(getRequest(views, "q5")))
    expect(q5.resolved_at).toMatch(/Z$/)
    expect(Option.isNone(await Effect.runPromise(getRequest(views, "q-unknown")))).toBe(true)
  })
})
