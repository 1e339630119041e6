/**
 * The projection runner over the EventStoreDB back end (issue 5, item 4): the real @eventstore/db-client
 * against the protocol stand-in (infrastructure/event-store/esdbStandIn.ts; a stand-in, not a server), with the
 * views in a SQLite projections.db in a temp dir. Events come from the real TokenService and BudgetService
 * through EventLog, deferrals from test/projectionFixtures.ts, and events of other streams are mixed in.
 *
 * One run: catch up in pages, go live through the filtered `$all` subscription (what is appended afterwards
 * shows in the views), lose the connection and carry on after it, keep its checkpoint in projections.db
 * (nothing written to the event store; a new runner resumes from it), and a rebuild from zero, into a fresh
 * file and in place, equals the incremental build row for row.
 */
import { Effect, Either, Exit, Fiber, Layer, Option, Schedule } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { EventLog, EventLogLive } from "../application/eventLog.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../application/ports/eventStore.js"
import { KeyRing } from "../application/ports/keyRing.js"
import { BudgetService, BudgetServiceLive, type BudgetLimits, type ReservationRef } from "../application/security/budgetService.js"
import { TokenService, TokenServiceLive } from "../application/security/tokenService.js"
import type { RecordedEvent } from "../domain/envelope.js"
import { APPROVALS_STREAM, principalStream, sessionStream, STREAM_PREFIX, workspaceStream } from "../domain/streams.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { connectEsdbEventStore } from "../infrastructure/event-store/esdbEventStore.js"
import { startEsdbStandIn } from "../infrastructure/event-store/esdbStandIn.js"
import { appendNext } from "../test/eventStoreContract.js"
import { testKeyRing } from "../test/knownAnswerChain.js"
import { deferralQueued, deferralResolved } from "../test/projectionFixtures.js"
import { getBudget } from "./budgetsView.js"
import { getRequest } from "./pendingApprovalsView.js"
import { makeProjectionRunner } from "./projectionRunner.js"
import { PROJECTIONS } from "./registry.js"
import { openSqliteProjectionStore, type ProjectionStoreApi } from "./sqliteProjectionStore.js"
import { getToken } from "./tokensView.js"

const KEY = testKeyRing(23)
const LIMITS: BudgetLimits = { perActionMicros: 1_000, perSessionMicros: 5_000, perWorkspaceMicros: 10_000, warnAtPercent: 0 }
const S1 = sessionStream("proj-s1")
const S2 = sessionStream("proj-s2")
const W1 = workspaceStream("proj-w1")
const OTHER = "elsewhere-proj"

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

/** What the stand-in may take a moment to answer again after a dropped connection. */
const whileReconnecting = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.retry({
      while: (e) => e._tag === "EventStoreError" && "kind" in e && e.kind === "unavailable",
      schedule: Schedule.spaced("50 millis"),
      times: 100
    })
  )

const open = async () => {
  const standIn = await startEsdbStandIn()
  cleanup.push(() => standIn.close())
  const connected = await run(connectEsdbEventStore(standIn.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } }))
  cleanup.push(() => connected.close())
  const store = connected.api
  const dir = mkdtempSync(join(tmpdir(), "astrid-proj-esdb-"))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  const crypto = await makeCrypto()
  const base = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, KEY))
  const withLog = Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), base)
  const layer = Layer.provideMerge(Layer.mergeAll(BudgetServiceLive, TokenServiceLive({ trustedIssuers: new Map([[KEY.keyId, KEY.publicKeyHex]]) })), withLog)
  const services = await run(Effect.all({ log: EventLog, tokens: TokenService, budget: BudgetService }).pipe(Effect.provide(layer)))
  const views = (file: string): ProjectionStoreApi => {
    const opened = Effect.runSync(openSqliteProjectionStore({ path: join(dir, file), mode: "write" }))
    cleanup.push(opened.close)
    return opened.api
  }
  return { standIn, store, views, ...services }
}

const dumpAll = (views: ProjectionStoreApi) =>
  run(Effect.forEach(PROJECTIONS, (p) => views.dump(p).pipe(Effect.map((d) => [p.name, d] as const)))).then((e) => Object.fromEntries(e))

/** Every Astrid event, in `$all` order. */
const astridEvents = (store: EventStoreApi): Promise<ReadonlyArray<RecordedEvent>> =>
  run(whileReconnecting(store.readAll({ after: 0, maxCount: 100_000, streamPrefix: STREAM_PREFIX })))

const lastAstrid = async (store: EventStoreApi): Promise<RecordedEvent> => {
  const all = await astridEvents(store)
  const last = all[all.length - 1]
  if (last === undefined) throw new Error("the log holds no Astrid event")
  return last
}

/** Polls the views' checkpoints until every projection has folded the event at `position`. */
const reached = async (views: ProjectionStoreApi, position: number): Promise<void> => {
  const deadline = Date.now() + 15_000
  for (;;) {
    const checkpoints = await run(views.checkpoints)
    if (PROJECTIONS.every((p) => (checkpoints.find((c) => c.name === p.name)?.position ?? -1) >= position)) return
    if (Date.now() > deadline) throw new Error(`the live runner did not reach position ${position}: ${JSON.stringify(checkpoints)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const until = async (what: string, condition: () => boolean): Promise<void> => {
  const deadline = Date.now() + 15_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const some = <A>(option: Option.Option<A>, what: string): A => {
  if (Option.isNone(option)) throw new Error(`${what} is not in the view`)
  return option.value
}

describe("projection runner over EventStoreDB (protocol stand-in)", () => {
  it("catches up, follows the filtered $all subscription live across a dropped connection, checkpoints in projections.db, and rebuilds identically", async () => {
    const h = await open()
    const reserve = (session: string, actionId: string, amountMicros: number) =>
      Effect.gen(function* () {
        const outcome = yield* h.budget.reserve({ sessionStream: session, workspaceStream: W1, actionId, amountMicros, limits: LIMITS, principal: "alice" })
        if (outcome._tag !== "Reserved") return yield* Effect.dieMessage(`reservation ${actionId} was refused: ${outcome.reason}`)
        return outcome.reservation
      })
    const appendDraft = (e: ReturnType<typeof deferralQueued> | ReturnType<typeof deferralResolved>) => h.log.append(e.stream, "any", [e.draft])
    const mint = (principal: string, singleUse: boolean, n: number) =>
      h.tokens.mint({ principal, resource: `file:///work/proj/${n}/**`, permissions: ["read"], singleUse, approvalEventId: `approval-${n}` })

    // Before the runner exists: tokens, budgets, deferrals, and events of a stream that is not Astrid's.
    const before = await run(
      Effect.gen(function* () {
        const t1 = yield* mint("alice", true, 1)
        const t2 = yield* mint("alice", false, 2)
        const t3 = yield* mint("bob", false, 3)
        yield* h.tokens.revoke(t3.tokenId, "admin", "leaked")
        const r1 = yield* reserve(S1, "act-1", 300)
        yield* h.budget.commit(r1, 200)
        const r2 = yield* reserve(S1, "act-2", 150)
        yield* appendNext(h.store, OTHER, 3)
        const r3 = yield* reserve(S2, "act-3", 100)
        yield* h.budget.release(r3, "denied")
        yield* appendDraft(deferralQueued("q1", "alice", 1))
        yield* appendDraft(deferralQueued("q2", "bob", 3))
        yield* appendDraft(deferralResolved("q1", "approved"))
        yield* appendNext(h.store, OTHER, 2)
        return { t1, t2, t3, r2 }
      })
    )

    const views = h.views("projections.db")
    // Small pages, so that the catch-up takes several reads and transactions.
    const runner = await run(makeProjectionRunner(h.store, views, PROJECTIONS, { pageSize: 4 }))
    const subscriptionsBefore = h.standIn.subscriptionsOpened()
    const fiber = Effect.runFork(runner.runLive())
    // Stopped before the store and views close, also when an assertion fails half-way.
    cleanup.push(() => run(Effect.asVoid(Effect.timeout(Fiber.interrupt(fiber), "10 seconds"))))

    // Caught up: the views hold what was there before, and the runner has subscribed.
    await reached(views, (await lastAstrid(h.store)).position)
    expect(some(await run(getToken(views, before.t1.tokenId)), "t1").status).toBe("active")
    expect(some(await run(getToken(views, before.t3.tokenId)), "t3")).toMatchObject({ status: "revoked", revoked_by: "admin", revoked_reason: "leaked" })
    expect(some(await run(getBudget(views, S1)), "S1")).toMatchObject({ committed_micros: 200, held_micros: 150, active_reservations: 1 })
    expect(some(await run(getRequest(views, "q1")), "q1")).toMatchObject({ status: "resolved", outcome: "approved" })
    expect(some(await run(getRequest(views, "q2")), "q2").status).toBe("pending")
    await until("the runner subscribes to $all", () => h.standIn.subscriptionsOpened() > subscriptionsBefore)
    const subscribed = h.standIn.subscriptionsOpened()

    // Live: appended after the runner caught up, they can only reach the views through the subscription.
    const live = await run(
      Effect.gen(function* () {
        yield* h.tokens.use(before.t1, { actionId: "act-live", sessionId: "proj-s1" })
        yield* h.budget.commit(before.r2)
        yield* appendDraft(deferralQueued("q3", "alice", 5))
        yield* appendNext(h.store, OTHER, 1)
        yield* appendDraft(deferralResolved("q2", "denied"))
        return { t4: yield* mint("alice", true, 4) }
      })
    )
    await reached(views, (await lastAstrid(h.store)).position)
    expect(some(await run(getToken(views, before.t1.tokenId)), "t1")).toMatchObject({ status: "used", used_by_action_id: "act-live", use_count: 1 })
    expect(some(await run(getToken(views, live.t4.tokenId)), "t4").status).toBe("active")
    expect(some(await run(getBudget(views, S1)), "S1")).toMatchObject({ committed_micros: 350, held_micros: 0, active_reservations: 0 })
    expect(some(await run(getRequest(views, "q3")), "q3").status).toBe("pending")
    expect(some(await run(getRequest(views, "q2")), "q2")).toMatchObject({ status: "resolved", outcome: "denied" })
    // Still the first subscription: nothing was read by catching up again.
    expect(h.standIn.subscriptionsOpened()).toBe(subscribed)

    // The connection drops, and the server is away for a while; the runner resubscribes from where it was.
    await h.standIn.dropConnections({ downForMs: 200 })
    await run(whileReconnecting(h.store.streamHead(S1)))
    // Each step retried on its own, so that none is done twice.
    await run(
      Effect.gen(function* () {
        yield* whileReconnecting(h.tokens.revoke(before.t2.tokenId, "alice", null))
        const r4: ReservationRef = yield* whileReconnecting(reserve(S2, "act-4", 50))
        yield* whileReconnecting(h.budget.commit(r4, 50))
        yield* whileReconnecting(appendDraft(deferralQueued("q4", "bob", 2)))
      })
    )
    await run(whileReconnecting(appendNext(h.store, OTHER, 2)))
    const last = await lastAstrid(h.store)
    await reached(views, last.position)
    expect(h.standIn.subscriptionsOpened()).toBeGreaterThan(subscribed)
    expect(some(await run(getToken(views, before.t2.tokenId)), "t2").status).toBe("revoked")
    expect(some(await run(getBudget(views, S2)), "S2")).toMatchObject({ committed_micros: 50, released_micros: 100, held_micros: 0 })
    expect(some(await run(getRequest(views, "q4")), "q4").status).toBe("pending")

    // The runner was following all along, not failing and starting over; stopping it cancels its
    // subscription at once, with no event to wake it (it used to wait for the next event on $all).
    expect(fiber.unsafePoll()).toBeNull()
    const stopped = await run(Effect.either(Effect.timeout(Fiber.interrupt(fiber), "10 seconds")))
    if (Either.isLeft(stopped)) return expect.fail("interrupting the live runner did not finish within 10 s")
    expect(Exit.isInterrupted(stopped.right)).toBe(true)

    // Its checkpoint is in projections.db: the last Astrid event (not the later event of another stream).
    const checkpoints = await run(views.checkpoints)
    expect(checkpoints.map((c) => [c.name, c.position, c.lastEventId]).sort()).toEqual(PROJECTIONS.map((p) => [p.name, last.position, last.eventId]).sort())
    const everything = await run(h.store.readAll({ after: 0, maxCount: 100_000 }))
    expect(everything[everything.length - 1]?.stream).toBe(OTHER)
    // ... and nothing of it in the event store: only the streams this test wrote.
    const streams = new Set(h.standIn.events().map((e) => e.stream).filter((s) => !s.startsWith("$")))
    expect([...streams].sort()).toEqual(
      [OTHER, APPROVALS_STREAM, S1, S2, W1, principalStream("alice"), principalStream("bob")].sort()
    )

    // A new runner on the same projections.db resumes from the checkpoint: nothing to read, then only what is new.
    const resumed = await run(makeProjectionRunner(h.store, views, PROJECTIONS))
    expect((await run(resumed.catchUp())).map((p) => [p.name, p.events, p.rebuilt, p.position])).toEqual(
      PROJECTIONS.map((p) => [p.name, 0, null, last.position])
    )
    await run(appendDraft(deferralResolved("q3", "expired")))
    const newest = await lastAstrid(h.store)
    expect((await run(resumed.catchUp())).map((p) => [p.name, p.events, p.position])).toEqual(PROJECTIONS.map((p) => [p.name, 1, newest.position]))
    expect(some(await run(getRequest(views, "q3")), "q3")).toMatchObject({ status: "resolved", outcome: "expired" })

    // Rebuilt from zero, into a fresh file and in place: the same rows as the incremental build.
    const incremental = await dumpAll(views)
    const fresh = h.views("fresh.db")
    await run((await run(makeProjectionRunner(h.store, fresh, PROJECTIONS, { pageSize: 1000 }))).catchUp())
    expect(await dumpAll(fresh)).toEqual(incremental)
    const astrid = await astridEvents(h.store)
    const rebuilt = await run(resumed.rebuild())
    expect(rebuilt.map((p) => [p.name, p.rebuilt, p.events, p.position])).toEqual(PROJECTIONS.map((p) => [p.name, "requested", astrid.length, newest.position]))
    expect(await dumpAll(views)).toEqual(incremental)
    // Not trivially equal: every view has rows.
    for (const p of PROJECTIONS) {
      for (const [table, rows] of Object.entries(incremental[p.name] ?? {})) expect(rows.length, `${p.name}.${table}`).toBeGreaterThan(0)
    }
  })
})
