/**
 * BudgetService on real stores (memory, and SQLite files in a temp dir): reservations on the session
 * and workspace streams, compensation, settling, and I4 under 50 concurrent actions.
 */
import { afterAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLog, type EventDraft, EventLogLive } from "../eventLog.js"
import { Crypto } from "../ports/crypto.js"
import { EventStore, type EventStoreApi } from "../ports/eventStore.js"
import { BudgetService, type BudgetServiceApi, BudgetServiceLive, type ReservationRef, type ReserveRequest } from "./budgetService.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../../infrastructure/event-store/memoryEventStore.js"
import { openSqliteEventStore } from "../../infrastructure/event-store/sqliteEventStore.js"

const dirs: Array<string> = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/**
 * Yields to other fibers before every read and append, so concurrent fibers really interleave between
 * loading a budget and appending to it (otherwise one fiber could run its whole step uninterrupted).
 */
const interleaving = (store: EventStoreApi, onConflict: () => void): EventStoreApi => ({
  ...store,
  readStream: (stream, options) => Effect.zipRight(Effect.yieldNow(), store.readStream(stream, options)),
  streamHead: (stream) => Effect.zipRight(Effect.yieldNow(), store.streamHead(stream)),
  append: (stream, expected, events) =>
    Effect.zipRight(Effect.yieldNow(), store.append(stream, expected, events)).pipe(Effect.tapError((e) => Effect.sync(() => e._tag === "WrongExpectedRevision" && onConflict())))
})

/** Appends refused because another writer got there first, across all harnesses of this file. */
let conflicts = 0

interface Harness {
  readonly store: EventStoreApi
  readonly run: <A, E>(f: (budget: BudgetServiceApi) => Effect.Effect<A, E>) => Promise<A>
  readonly fail: <A, E>(f: (budget: BudgetServiceApi) => Effect.Effect<A, E>) => Promise<E>
  readonly append: (stream: string, drafts: ReadonlyArray<EventDraft>) => Promise<void>
  readonly events: (stream: string) => Promise<ReadonlyArray<{ readonly type: string; readonly data: Record<string, unknown> }>>
  readonly close: () => void
}

const harness = async (kind: "memory" | "sqlite"): Promise<Harness> => {
  let raw: EventStoreApi
  let close = () => {}
  if (kind === "memory") {
    raw = makeMemoryEventStore()
  } else {
    const dir = mkdtempSync(join(tmpdir(), "astrid-budget-"))
    dirs.push(dir)
    // "normal" sync: still a real SQLite file with the same transactions, without an fsync per append.
    const opened = await Effect.runPromise(openSqliteEventStore({ path: join(dir, "astrid.db"), mode: "write", synchronous: "normal" }))
    raw = opened.api
    close = opened.close
  }
  const store = interleaving(raw, () => {
    conflicts++
  })
  const crypto = await makeCrypto()
  const deps = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive)
  const withLog = Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), deps)
  const layer = Layer.provideMerge(BudgetServiceLive, withLog)
  const { budget, log } = await Effect.runPromise(
    Effect.all({ budget: BudgetService, log: EventLog }).pipe(Effect.provide(layer))
  )
  const quiet = <A, E>(e: Effect.Effect<A, E>) => e.pipe(Logger.withMinimumLogLevel(LogLevel.None))
  return {
    store: raw,
    run: (f) => Effect.runPromise(quiet(f(budget))),
    fail: (f) => Effect.runPromise(Effect.flip(quiet(f(budget)))),
    append: async (stream, drafts) => {
      await Effect.runPromise(log.append(stream, "any", drafts))
    },
    events: async (stream) => {
      const recorded = await Effect.runPromise(raw.readStream(stream))
      return recorded.map((e) => {
        const data: unknown = JSON.parse(e.data)
        if (typeof data !== "object" || data === null) throw new Error(`event data is not an object: ${e.data}`)
        return { type: e.type, data: Object.fromEntries(Object.entries(data)) }
      })
    },
    close
  }
}

const SESSION = "astrid-session-s1"
const WORKSPACE = "astrid-workspace-w1"
const LIMITS = { perActionMicros: 1_000_000, perSessionMicros: 3_000_000, perWorkspaceMicros: 5_000_000, warnAtPercent: 80 }

const request = (actionId: string, amountMicros: number, extra: Partial<ReserveRequest> = {}): ReserveRequest => ({
  sessionStream: SESSION,
  workspaceStream: WORKSPACE,
  actionId,
  amountMicros,
  limits: LIMITS,
  principal: "ada",
  sessionId: "s1",
  ...extra
})

const proposed = (actionId: string): EventDraft => ({
  principal: "ada",
  sessionId: "s1",
  correlationId: actionId,
  event: { _tag: "ActionProposed", actionId, kind: "command_exec", resource: "exec://cargo", risk: "medium", summary: "cargo build", arguments: {}, estimatedCostMicros: 1 }
})

const reserved = async (h: Harness, req: ReserveRequest): Promise<ReservationRef> => {
  const outcome = await h.run((b) => b.reserve(req))
  if (outcome._tag !== "Reserved") throw new Error(`expected a reservation, got ${outcome.reason}`)
  return outcome.reservation
}

describe("BudgetService.reserve", () => {
  it("reserves on the workspace, then on the session in one append with the caller's events around it", async () => {
    const h = await harness("memory")
    const allowed: EventDraft = { principal: "ada", sessionId: "s1", event: { _tag: "ActionAllowed", actionId: "a1", proof: { _tag: "PolicyAllowed", rule: "test" } } }
    const outcome = await h.run((b) => b.reserve(request("a1", 400_000, { extraEvents: [proposed("a1")], followingEvents: [allowed] })))
    expect(outcome._tag).toBe("Reserved")
    if (outcome._tag !== "Reserved") return
    expect(outcome.appended.events.map((e) => e.type)).toEqual(["ActionProposed", "BudgetReserved", "ActionAllowed"])
    expect(outcome.appended.events.map((e) => e.revision)).toEqual([0, 1, 2])
    const session = await h.events(SESSION)
    expect(session.map((e) => e.type)).toEqual(["ActionProposed", "BudgetReserved", "ActionAllowed"])
    expect(session[1]?.data).toEqual({ reservationId: outcome.reservation.reservationId, actionId: "a1", amountMicros: 400_000, limitMicros: 3_000_000, scope: "session" })
    const workspace = await h.events(WORKSPACE)
    expect(workspace).toEqual([
      { type: "BudgetReserved", data: { reservationId: outcome.reservation.reservationId, actionId: "a1", amountMicros: 400_000, limitMicros: 5_000_000, scope: "workspace" } }
    ])
    expect(outcome.reservation).toMatchObject({ actionId: "a1", amountMicros: 400_000, principal: "ada", sessionId: "s1", correlationId: "a1", warnings: [] })
  })

  it("reports a warning when a limit's threshold is reached", async () => {
    const h = await harness("memory")
    await reserved(h, request("a1", 1_000_000))
    await reserved(h, request("a2", 1_000_000))
    const outcome = await h.run((b) => b.reserve(request("a3", 500_000)))
    expect(outcome._tag === "Reserved" ? outcome.reservation.warnings : []).toEqual([
      { scope: "session", limitMicros: 3_000_000, usedMicros: 2_500_000, percent: 83, thresholdPercent: 80, crossed: true }
    ])
  })

  it("a failed session reservation releases the workspace reservation with exactly one compensation event", async () => {
    const h = await harness("memory")
    // The session has 3 $; the workspace 5 $. 2.8 $ already reserved on the session.
    const first = [await reserved(h, request("a1", 1_000_000)), await reserved(h, request("a2", 1_000_000)), await reserved(h, request("a3", 800_000))]
    const outcome = await h.run((b) => b.reserve(request("a4", 500_000, { extraEvents: [proposed("a4")] })))
    expect(outcome._tag).toBe("Exceeded")
    if (outcome._tag !== "Exceeded") return
    expect(outcome.compensated).toBe(true)
    expect(outcome.exceeded).toMatchObject({ scope: "session", limit: 3_000_000, spent: 0, reserved: 2_800_000, requested: 500_000 })
    expect(outcome.reason).toContain("session budget would be exceeded")
    expect(outcome.remedy).toContain("[security.budget]")
    const workspace = await h.events(WORKSPACE)
    const compensations = workspace.filter((e) => e.type === "BudgetReleased" && e.data["reason"] === "compensation")
    expect(compensations).toHaveLength(1)
    const failedId = workspace.find((e) => e.type === "BudgetReserved" && e.data["actionId"] === "a4")?.data["reservationId"]
    expect(compensations[0]?.data).toEqual({ reservationId: failedId, reason: "compensation", amountMicros: 500_000 })
    // Nothing of the failed attempt is on the session stream: not the reservation, not the caller's events.
    const session = await h.events(SESSION)
    expect(session.filter((e) => e.data["actionId"] === "a4")).toEqual([])
    const snapshot = await h.run((b) => b.snapshot(WORKSPACE))
    expect(snapshot).toMatchObject({ spentMicros: 0, reservedMicros: 2_800_000, openReservations: first.length })
  })

  it("a workspace limit hit first writes nothing at all", async () => {
    const h = await harness("memory")
    const limits = { ...LIMITS, perWorkspaceMicros: 600_000 }
    await reserved(h, request("a1", 500_000, { limits }))
    const outcome = await h.run((b) => b.reserve(request("a2", 200_000, { limits, extraEvents: [proposed("a2")] })))
    expect(outcome).toMatchObject({ _tag: "Exceeded", compensated: false, exceeded: { scope: "workspace", limit: 600_000, reserved: 500_000 } })
    expect((await h.events(SESSION)).map((e) => e.data["actionId"])).toEqual(["a1"])
    expect((await h.events(WORKSPACE)).map((e) => e.type)).toEqual(["BudgetReserved"])
  })

  it("the per-action limit is checked before anything is written", async () => {
    const h = await harness("memory")
    const outcome = await h.run((b) => b.reserve(request("a1", 1_000_001)))
    expect(outcome).toMatchObject({ _tag: "Exceeded", compensated: false, exceeded: { scope: "action", limit: 1_000_000, requested: 1_000_001 } })
    expect((await Effect.runPromise(h.store.stats)).events).toBe(0)
  })

  it("rejects negative, NaN, infinite and fractional costs with InvalidAmount, writing nothing", async () => {
    const h = await harness("memory")
    for (const amount of [-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5]) {
      const error = await h.fail((b) => b.reserve(request("a1", amount)))
      expect(error._tag).toBe("InvalidAmount")
      expect(error.message).toContain("micro-dollars")
    }
    const ref = await reserved(h, request("a1", 10))
    expect((await h.fail((b) => b.commit(ref, -5)))._tag).toBe("InvalidAmount")
    expect((await h.fail((b) => b.commit(ref, Number.NaN)))._tag).toBe("InvalidAmount")
    expect((await Effect.runPromise(h.store.stats)).events).toBe(2)
  })

  it("rejects one stream for both scopes, and stream names that are not Astrid streams", async () => {
    const h = await harness("memory")
    expect((await h.fail((b) => b.reserve(request("a1", 1, { workspaceStream: SESSION }))))._tag).toBe("InvalidBudgetRequest")
    expect((await h.fail((b) => b.reserve(request("a1", 1, { sessionStream: "session s1" }))))._tag).toBe("InvalidBudgetRequest")
  })

  it("a session append that fails for another reason (a bad extra event) also compensates the workspace", async () => {
    const h = await harness("memory")
    const bad: EventDraft = { principal: "ada", event: { _tag: "BudgetCommitted", reservationId: "x", amountMicros: -1 } }
    const error = await h.fail((b) => b.reserve(request("a1", 100, { extraEvents: [bad] })))
    expect(error._tag).toBe("EventEncodingError")
    expect((await h.events(WORKSPACE)).map((e) => [e.type, e.data["reason"]])).toEqual([
      ["BudgetReserved", undefined],
      ["BudgetReleased", "compensation"]
    ])
    expect(await h.events(SESSION)).toEqual([])
  })
})

describe("BudgetService.commit and release", () => {
  it("commits on both streams; a lower actual cost gives the rest back", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a1", 900_000))
    const outcome = await h.run((b) => b.commit(ref, 250_000))
    expect(outcome).toEqual({ committedMicros: 250_000, releasedMicros: 650_000, overrunMicros: 0 })
    for (const stream of [SESSION, WORKSPACE]) {
      const events = await h.events(stream)
      expect(events.slice(1).map((e) => [e.type, e.data["amountMicros"], e.data["reason"]])).toEqual([
        ["BudgetCommitted", 250_000, undefined],
        ["BudgetReleased", 650_000, "actual_lower"]
      ])
      expect(await h.run((b) => b.snapshot(stream))).toMatchObject({ spentMicros: 250_000, reservedMicros: 0, openReservations: 0 })
    }
  })

  it("a zero-cost reservation writes nothing of its own, only the caller's events, on the session stream", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a0", 0))
    expect(ref.empty).toBe(true)
    expect(await h.events(WORKSPACE)).toEqual([])
    expect(await h.events(SESSION)).toEqual([])
    expect(await h.run((b) => b.commit(ref))).toEqual({ committedMicros: 0, releasedMicros: 0, overrunMicros: 0 })
    expect(await h.events(SESSION)).toEqual([])
  })

  it("commits at most the reserved amount and reports the overrun", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a1", 100))
    expect(await h.run((b) => b.commit(ref, 150))).toEqual({ committedMicros: 100, releasedMicros: 0, overrunMicros: 50 })
  })

  it("releases on both streams, with the caller's events in the same session append; twice is an error", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a1", 700))
    const denied: EventDraft = { principal: "ada", sessionId: "s1", event: { _tag: "ActionDenied", actionId: "a1", stage: "approval", reason: "no", remedy: null } }
    expect(await h.run((b) => b.release(ref, "denied", { extraEvents: [denied] }))).toEqual({ releasedMicros: 700 })
    expect((await h.events(SESSION)).map((e) => e.type)).toEqual(["BudgetReserved", "ActionDenied", "BudgetReleased"])
    expect((await h.events(WORKSPACE)).map((e) => [e.type, e.data["reason"]])).toEqual([
      ["BudgetReserved", undefined],
      ["BudgetReleased", "denied"]
    ])
    expect(await h.fail((b) => b.release(ref, "denied"))).toMatchObject({ _tag: "ReservationClosed", status: "released" })
    expect(await h.fail((b) => b.commit(ref))).toMatchObject({ _tag: "ReservationClosed", status: "released" })
  })

  it("a settle interrupted half-way (workspace side missing) can simply be repeated", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a1", 300))
    // As if a previous release had written the workspace side only.
    await h.append(WORKSPACE, [{ principal: "ada", event: { _tag: "BudgetReleased", reservationId: ref.reservationId, reason: "cancelled", amountMicros: 300 } }])
    expect(await h.run((b) => b.release(ref, "cancelled"))).toEqual({ releasedMicros: 300 })
    expect((await h.events(SESSION)).map((e) => e.type)).toEqual(["BudgetReserved", "BudgetReleased"])
    expect((await h.events(WORKSPACE)).filter((e) => e.type === "BudgetReleased")).toHaveLength(1)
  })

  it("an unknown reservation is an error", async () => {
    const h = await harness("memory")
    const ghost: ReservationRef = { reservationId: "nope", actionId: "a", sessionStream: SESSION, workspaceStream: WORKSPACE, principal: "ada", correlationId: "a" }
    expect((await h.fail((b) => b.commit(ghost)))._tag).toBe("UnknownReservation")
  })
})

type Settle = "commit" | "commit_lower" | "commit_higher" | "denied" | "cancelled" | "failed"

interface Op {
  readonly amount: number
  readonly settle: Settle
  readonly actualPercent: number
  readonly pause: number
}

const opArb: fc.Arbitrary<Op> = fc.record({
  amount: fc.integer({ min: 0, max: 400 }),
  settle: fc.constantFrom<Settle>("commit", "commit_lower", "commit_higher", "denied", "cancelled", "failed"),
  actualPercent: fc.integer({ min: 0, max: 100 }),
  pause: fc.integer({ min: 0, max: 3 })
})

interface Scenario {
  readonly perAction: number
  readonly perSession: number
  readonly perWorkspace: number
  readonly ops: ReadonlyArray<Op>
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  perAction: fc.integer({ min: 100, max: 400 }),
  perSession: fc.integer({ min: 0, max: 4000 }),
  perWorkspace: fc.integer({ min: 0, max: 4000 }),
  ops: fc.array(opArb, { minLength: 50, maxLength: 50 })
})

interface Tally {
  reserved: number
  spent: number
  readonly open: Map<string, number>
  readonly closed: Map<string, string>
}

/**
 * An independent model of the log, written from the event format alone: after every event of the
 * stream (every prefix), committed + reserved stays within the limit, and each reservation within the
 * per-action limit.
 */
const checkPrefixes = (events: ReadonlyArray<{ readonly type: string; readonly data: Record<string, unknown> }>, limit: number, perAction: number): Tally => {
  const t: Tally = { reserved: 0, spent: 0, open: new Map(), closed: new Map() }
  const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN)
  for (const e of events) {
    const id = String(e.data["reservationId"])
    if (e.type === "BudgetReserved") {
      const amount = num(e.data["amountMicros"])
      expect(amount).toBeLessThanOrEqual(perAction)
      expect(t.open.has(id) || t.closed.has(id)).toBe(false)
      t.open.set(id, amount)
      t.reserved += amount
    } else if (e.type === "BudgetCommitted") {
      const amount = num(e.data["amountMicros"])
      const held = t.open.get(id)
      expect(held).toBeDefined()
      expect(amount).toBeLessThanOrEqual(held ?? -1)
      t.spent += amount
      t.reserved -= amount
      t.open.set(id, (held ?? 0) - amount)
      t.closed.set(id, "committed")
    } else if (e.type === "BudgetReleased") {
      const amount = num(e.data["amountMicros"])
      const held = t.open.get(id)
      expect(held).toBe(amount)
      t.reserved -= amount
      t.open.delete(id)
      if (!t.closed.has(id)) t.closed.set(id, String(e.data["reason"]))
    }
    if (t.closed.get(id) === "committed" && t.open.get(id) === 0) t.open.delete(id)
    expect(t.reserved).toBeGreaterThanOrEqual(0)
    expect(t.spent + t.reserved).toBeLessThanOrEqual(limit)
  }
  return t
}

interface Stats {
  runs: number
  exceeded: number
  compensated: number
  reserved: number
}

const runScenario = async (kind: "memory" | "sqlite", scenario: Scenario, stats: Stats): Promise<void> => {
  const h = await harness(kind)
  try {
    const limits = { perActionMicros: scenario.perAction, perSessionMicros: scenario.perSession, perWorkspaceMicros: scenario.perWorkspace, warnAtPercent: 90 }
    const outcomes = await h.run((budget) =>
      Effect.forEach(
        scenario.ops,
        (op, i) =>
          Effect.gen(function* () {
            const outcome = yield* budget.reserve(request(`a${i}`, op.amount, { limits }))
            if (outcome._tag === "Exceeded") return outcome
            for (let p = 0; p < op.pause; p++) yield* Effect.yieldNow()
            const ref = outcome.reservation
            if (op.settle === "commit") yield* budget.commit(ref)
            else if (op.settle === "commit_lower") yield* budget.commit(ref, Math.floor((op.amount * op.actualPercent) / 100))
            else if (op.settle === "commit_higher") yield* budget.commit(ref, op.amount + op.actualPercent)
            else yield* budget.release(ref, op.settle)
            return outcome
          }),
        { concurrency: "unbounded" }
      )
    )
    const session = checkPrefixes(await h.events(SESSION), scenario.perSession, scenario.perAction)
    const workspace = checkPrefixes(await h.events(WORKSPACE), scenario.perWorkspace, scenario.perAction)
    // Nothing left unaccounted: every reservation on either stream is settled.
    expect([...session.open.keys()]).toEqual([])
    expect([...workspace.open.keys()]).toEqual([])
    // Zero-cost reservations hold nothing and write nothing; the others each leave one settled reservation.
    const succeeded = outcomes.filter((o) => o._tag === "Reserved" && o.reservation.empty !== true)
    const compensated = outcomes.filter((o) => o._tag === "Exceeded" && o.compensated)
    expect(session.closed.size).toBe(succeeded.length)
    // Each workspace reservation is either paired with the session one (settled the same way) or compensated.
    for (const [id, how] of workspace.closed) {
      expect(how === "compensation" ? !session.closed.has(id) : session.closed.get(id) === how).toBe(true)
    }
    expect([...workspace.closed.values()].filter((how) => how === "compensation")).toHaveLength(compensated.length)
    expect(workspace.spent).toBe(session.spent)
    stats.runs++
    stats.reserved += succeeded.length
    stats.exceeded += outcomes.length - succeeded.length
    stats.compensated += compensated.length
  } finally {
    h.close()
  }
}

describe("I4 under concurrency: 50 concurrent reserve + commit/release against one session and one workspace budget", () => {
  for (const [kind, numRuns] of [["memory", 20], ["sqlite", 12]] as const) {
    it(`on the ${kind} store: no prefix of either stream exceeds a limit, nothing is left unaccounted`, async () => {
      const stats: Stats = { runs: 0, exceeded: 0, compensated: 0, reserved: 0 }
      const conflictsBefore = conflicts
      await fc.assert(
        fc.asyncProperty(scenarioArb, (s) => runScenario(kind, s, stats)),
        { numRuns }
      )
      // The runs went through every path: reservations, refusals and compensations.
      expect(stats.runs).toBeGreaterThanOrEqual(numRuns)
      expect(stats.reserved).toBeGreaterThan(0)
      expect(stats.exceeded).toBeGreaterThan(0)
      expect(stats.compensated).toBeGreaterThan(0)
      // And writers really raced: appends were refused at a stale revision and decided again.
      expect(conflicts - conflictsBefore).toBeGreaterThan(0)
    })
  }
})
