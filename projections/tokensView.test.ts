import { Effect, Option } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { type Harness, openHarness, tokenGranted, tokenRevoked, tokenUsed } from "../test/projectionFixtures.js"
import { makeProjectionRunner } from "./projectionRunner.js"
import type { ProjectionStoreApi } from "./sqliteProjectionStore.js"
import { getToken, isExpired, listTokens, tokensView } from "./tokensView.js"

const open: Array<Harness> = []
afterEach(() => {
  for (const h of open.splice(0)) h.close()
})

const build = async (events: ReadonlyArray<{ stream: string; draft: Parameters<Harness["append"]>[1][number] }>): Promise<ProjectionStoreApi> => {
  const h = await openHarness()
  open.push(h)
  for (const e of events) await h.append(e.stream, [e.draft])
  const views = h.views()
  await Effect.runPromise(Effect.flatMap(makeProjectionRunner(h.store, views, [tokensView]), (r) => r.catchUp()))
  return views
}

describe("tokens view", () => {
  it("tracks each token from grant to use and revocation", async () => {
    const views = await build([
      tokenGranted("alice", "t1", { singleUse: true }),
      tokenGranted("alice", "t2", { expiresAt: "2026-11-25T12:00:00.000Z" }),
      tokenGranted("bob", "t3"),
      tokenUsed("alice", "t1", "a1"),
      tokenUsed("alice", "t1", "a2"),
      tokenUsed("alice", "t2", "a3"),
      tokenUsed("alice", "t-unknown", "a4"),
      tokenRevoked("bob", "t3", "key leaked"),
      tokenRevoked("bob", "t3", "again")
    ])
    const t1 = Option.getOrThrow(await Effect.runPromise(getToken(views, "t1")))
    expect(t1).toMatchObject({
      principal: "alice",
      permissions: ["read", "write"],
      single_use: true,
      status: "used",
      use_count: 2,
      used_by_action_id: "a1",
      used_by_session_id: "s1",
      approval_event_id: "approval-t1",
      issuer: "ed25519:0123456789abcdef"
    })
    expect(t1.used_at).toMatch(/Z$/)
    const t3 = Option.getOrThrow(await Effect.runPromise(getToken(views, "t3")))
    expect(t3).toMatchObject({ principal: "bob", status: "revoked", revoked_by: "bob", revoked_reason: "key leaked", use_count: 0 })
    expect(Option.isNone(await Effect.runPromise(getToken(views, "t-unknown")))).toBe(true)

    const alice = await Effect.runPromise(listTokens(views, { principal: "alice" }))
    expect(alice.map((t) => [t.token_id, t.status, t.use_count])).toEqual([
      ["t2", "active", 1],
      ["t1", "used", 2]
    ])
    const usable = await Effect.runPromise(listTokens(views, { activeOnly: true, now: "2026-11-25T11:30:00.000Z" }))
    expect(usable.map((t) => t.token_id)).toEqual(["t2"])
    const later = await Effect.runPromise(listTokens(views, { activeOnly: true, now: "2026-11-25T12:00:00.000Z" }))
    expect(later).toEqual([])
    expect(isExpired(t1, "2026-11-25T11:00:00.000Z")).toBe(true)
    expect(isExpired(t1, "2026-11-25T10:59:59.999Z")).toBe(false)
  })

  it("lets a revocation win over a use, and keeps the first grant of a repeated id", async () => {
    const views = await build([
      tokenGranted("alice", "t1", { singleUse: true, resource: "file:///a/**" }),
      tokenUsed("alice", "t1", "a1"),
      tokenRevoked("alice", "t1", null),
      tokenUsed("alice", "t1", "a2"),
      tokenGranted("alice", "t1", { resource: "file:///b/**" })
    ])
    const t1 = Option.getOrThrow(await Effect.runPromise(getToken(views, "t1")))
    expect(t1).toMatchObject({ status: "revoked", revoked_reason: null, use_count: 2, resource: "file:///a/**" })
  })
})
