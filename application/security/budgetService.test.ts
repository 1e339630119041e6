/**
 * BudgetService on real stores (memory, and SQLite files in a temp dir): reservations on the session
 * and workspace streams, compensation, settling, and I4 under 50 concurrent actions; model calls charged
 * in full (overruns included) by concurrent fibers and by two processes sharing one SQLite file.
 */
import { afterAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { Effect, Either, Layer, Logger, LogLevel, Schema } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { EventLog, type EventDraft, EventLogLive } from "../eventLog.js"
import { Crypto } from "../ports/crypto.js"
import { EventStore, type EventStoreApi } from "../ports/eventStore.js"
import { BudgetService, type BudgetServiceApi, BudgetServiceLive, type ReservationRef, type ReserveRequest } from "./budgetService.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../../infrastructure/event-store/memoryEventStore.js"
import { openSqliteEventStore } from "../../infrastructure/event-store/sqliteEventStore.js"
import { MODEL_CALL_CONFIG_ENV, type ModelCallConfig, ModelCallLine } from "../../test/fixtures/modelCallProcess.js"

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

  it("charges an actual cost above the reservation in full on both streams, the overrun named in the commit", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a1", 100))
    expect(await h.run((b) => b.commit(ref, 150))).toEqual({ committedMicros: 150, releasedMicros: 0, overrunMicros: 50 })
    for (const stream of [SESSION, WORKSPACE]) {
      expect((await h.events(stream)).at(-1)).toEqual({ type: "BudgetCommitted", data: { reservationId: ref.reservationId, amountMicros: 150, overrunMicros: 50 } })
      expect(await h.run((b) => b.snapshot(stream))).toMatchObject({ spentMicros: 150, reservedMicros: 0, overrunMicros: 50, openReservations: 0 })
    }
  })

  it("reproduces the 61,000-against-60,000 case: the whole cost is charged, and no further call is let in", async () => {
    const h = await harness("memory")
    const limits = { ...LIMITS, perSessionMicros: 60_000 }
    const ref = await reserved(h, request("llm-1", 60_000, { limits }))
    await h.run((b) => b.commit(ref, 61_000))
    expect(await h.run((b) => b.snapshot(SESSION))).toMatchObject({ spentMicros: 61_000, overrunMicros: 1_000 })
    const next = await h.run((b) => b.reserve(request("llm-2", 1, { limits })))
    expect(next).toMatchObject({ _tag: "Exceeded", compensated: true, exceeded: { scope: "session", spent: 61_000, limit: 60_000 } })
    expect(next._tag === "Exceeded" && next.reason).toContain("used up")
  })

  it("an action that reserved nothing but reports a cost is charged it on both streams, once", async () => {
    const h = await harness("memory")
    const ref = await reserved(h, request("a0", 0))
    expect(ref.empty).toBe(true)
    expect(await h.run((b) => b.commit(ref, 40))).toEqual({ committedMicros: 40, releasedMicros: 0, overrunMicros: 40 })
    for (const stream of [SESSION, WORKSPACE]) {
      expect((await h.events(stream)).map((e) => [e.type, e.data["amountMicros"], e.data["overrunMicros"]])).toEqual([
        ["BudgetReserved", 0, undefined],
        ["BudgetCommitted", 40, 40]
      ])
      expect(await h.run((b) => b.snapshot(stream))).toMatchObject({ spentMicros: 40, overrunMicros: 40 })
    }
    expect(await h.fail((b) => b.commit(ref, 40))).toMatchObject({ _tag: "ReservationClosed", status: "committed" })
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
  /** Sum of the overruns named in commits. */
  overrun: number
  /** The most `spent + reserved` went past the limit, and the least allowance that covered it. */
  worstExcess: number
  readonly open: Map<string, number>
  readonly closed: Map<string, string>
  /** Overrun per reservation, as its commit named it. */
  readonly overruns: Map<string, number>
  /** Biggest number of reservations open at once. */
  maxOpen: number
}

type LoggedEvent = { readonly type: string; readonly data: Record<string, unknown> }

/**
 * An independent model of the log, written from the event format alone. At every reservation, spent +
 * reserved fits the limit it names. A commit is charged in full; what it charges beyond what its
 * reservation held is exactly the `overrunMicros` it names. So after every event (every prefix), spent +
 * reserved stays within the limit plus the overruns committed since the last reservation by reservations
 * that were open then: the money already on its way when the stream last admitted a call. An empty
 * reservation (amount 0) is not an admission: it only carries the charge of an action that reserved
 * nothing yet reported a cost, which counts like an overrun in flight.
 */
const checkPrefixes = (events: ReadonlyArray<LoggedEvent>, limit: number, perAction: number): Tally => {
  const t: Tally = { reserved: 0, spent: 0, overrun: 0, worstExcess: 0, open: new Map(), closed: new Map(), overruns: new Map(), maxOpen: 0 }
  const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN)
  let openAtLastReserve = new Set<string>()
  const unreserved = new Set<string>()
  let allowance = 0
  for (const e of events) {
    const id = String(e.data["reservationId"])
    if (e.type === "BudgetReserved") {
      const amount = num(e.data["amountMicros"])
      expect(amount).toBeLessThanOrEqual(perAction)
      expect(t.open.has(id) || t.closed.has(id)).toBe(false)
      t.open.set(id, amount)
      if (amount === 0) {
        unreserved.add(id)
      } else {
        expect(e.data["limitMicros"]).toBe(limit)
        t.reserved += amount
        expect(t.spent + t.reserved).toBeLessThanOrEqual(limit)
        openAtLastReserve = new Set(t.open.keys())
        allowance = 0
        t.maxOpen = Math.max(t.maxOpen, t.open.size)
      }
    } else if (e.type === "BudgetCommitted") {
      const amount = num(e.data["amountMicros"])
      const held = t.open.get(id)
      expect(held).toBeDefined()
      const fromHold = Math.min(amount, held ?? 0)
      const overrun = amount - fromHold
      expect(e.data["overrunMicros"]).toBe(overrun > 0 ? overrun : undefined)
      if (overrun > 0) t.overruns.set(id, overrun)
      if (openAtLastReserve.has(id) || unreserved.has(id)) allowance += overrun
      t.overrun += overrun
      t.spent += amount
      t.reserved -= fromHold
      t.open.set(id, (held ?? 0) - fromHold)
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
    expect(t.spent + t.reserved).toBeLessThanOrEqual(limit + allowance)
    t.worstExcess = Math.max(t.worstExcess, t.spent + t.reserved - limit)
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
    // Zero-cost reservations hold nothing and write nothing, unless they report a cost after all (then it is
    // charged); the others each leave one settled reservation.
    const succeeded = outcomes.filter((o) => o._tag === "Reserved" && o.reservation.empty !== true)
    const chargedUnreserved = outcomes.filter((o, i) => o._tag === "Reserved" && o.reservation.empty === true && scenario.ops[i]?.settle === "commit_higher" && (scenario.ops[i]?.actualPercent ?? 0) > 0)
    const compensated = outcomes.filter((o) => o._tag === "Exceeded" && o.compensated)
    expect(session.closed.size).toBe(succeeded.length + chargedUnreserved.length)
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
    it(`on the ${kind} store: no prefix of either stream passes a limit by more than the overruns in flight, nothing is left unaccounted`, async () => {
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

/** One model call as the agent loop pays it: reserve the worst case, then commit what it really cost. */
interface ModelCall {
  readonly session: 0 | 1
  readonly reserve: number
  /** What the call really cost: often above the reservation (a provider reporting more than was reserved for). */
  readonly actual: number
  readonly pause: number
}

const modelCallArb: fc.Arbitrary<ModelCall> = fc.record({
  session: fc.constantFrom<0 | 1>(0, 1),
  reserve: fc.integer({ min: 1, max: 400 }),
  actual: fc.integer({ min: 0, max: 700 }),
  pause: fc.integer({ min: 0, max: 3 })
})

interface ModelScenario {
  readonly perSession: number
  readonly perWorkspace: number
  /** Calls running at once, across both sessions (they share the workspace). */
  readonly concurrency: number
  readonly calls: ReadonlyArray<ModelCall>
}

const modelScenarioArb: fc.Arbitrary<ModelScenario> = fc.record({
  perSession: fc.integer({ min: 0, max: 3000 }),
  perWorkspace: fc.integer({ min: 0, max: 4000 }),
  concurrency: fc.integer({ min: 1, max: 4 }),
  calls: fc.array(modelCallArb, { minLength: 10, maxLength: 40 })
})

interface PaidCall {
  readonly reservationId: string
  readonly session: number
  readonly actual: number
  readonly overrun: number
}

const sumOfLargest = (values: ReadonlyArray<number>, k: number): number =>
  [...values]
    .sort((a, b) => b - a)
    .slice(0, k)
    .reduce((sum, v) => sum + v, 0)

interface MoneyStats {
  runs: number
  overruns: number
  overLimit: number
  refused: number
}

/**
 * The money guarantee on one stream's log: every call was let in only while it fit; the stream spent exactly
 * what its calls cost; every overrun is named in its commit; and spending never went past the limit by more
 * than the overruns of `inFlight` calls (one call's, when calls on the stream run one at a time).
 */
const checkMoney = (events: ReadonlyArray<LoggedEvent>, limit: number, calls: ReadonlyArray<PaidCall>, inFlight: number, stats: MoneyStats): Tally => {
  const t = checkPrefixes(events, limit, 1_000)
  expect([...t.open.keys()]).toEqual([])
  expect(t.maxOpen).toBeLessThanOrEqual(inFlight)
  expect(t.spent).toBe(calls.reduce((sum, c) => sum + c.actual, 0))
  expect(t.overruns).toEqual(new Map(calls.filter((c) => c.overrun > 0).map((c) => [c.reservationId, c.overrun])))
  expect(t.worstExcess).toBeLessThanOrEqual(sumOfLargest(calls.map((c) => c.overrun), inFlight))
  if (t.spent > limit) stats.overLimit++
  return t
}

const runModelCalls = async (kind: "memory" | "sqlite", scenario: ModelScenario, stats: MoneyStats): Promise<void> => {
  const h = await harness(kind)
  try {
    const limits = { perActionMicros: 1_000, perSessionMicros: scenario.perSession, perWorkspaceMicros: scenario.perWorkspace, warnAtPercent: 0 }
    const results = await h.run((budget) =>
      Effect.forEach(
        scenario.calls,
        (call, i) =>
          Effect.gen(function* () {
            const sessionId = `m${call.session}`
            const outcome = yield* budget.reserve(request(`llm-${i}`, call.reserve, { limits, sessionStream: `astrid-session-${sessionId}`, sessionId }))
            if (outcome._tag === "Exceeded") return null
            for (let p = 0; p < call.pause; p++) yield* Effect.yieldNow()
            const settled = yield* budget.commit(outcome.reservation, call.actual)
            expect(settled).toEqual({
              committedMicros: call.actual,
              releasedMicros: Math.max(0, call.reserve - call.actual),
              overrunMicros: Math.max(0, call.actual - call.reserve)
            })
            const paid: PaidCall = { reservationId: outcome.reservation.reservationId, session: call.session, actual: call.actual, overrun: settled.overrunMicros }
            return paid
          }),
        { concurrency: scenario.concurrency }
      )
    )
    const paid = results.filter((r): r is PaidCall => r !== null)
    stats.runs++
    stats.refused += results.length - paid.length
    stats.overruns += paid.filter((c) => c.overrun > 0).length
    for (const session of [0, 1]) {
      const stream = `astrid-session-m${session}`
      const t = checkMoney(await h.events(stream), scenario.perSession, paid.filter((c) => c.session === session), scenario.concurrency, stats)
      expect(await h.run((b) => b.snapshot(stream))).toMatchObject({ spentMicros: t.spent, overrunMicros: t.overrun, reservedMicros: 0 })
    }
    const t = checkMoney(await h.events(WORKSPACE), scenario.perWorkspace, paid, scenario.concurrency, stats)
    expect(await h.run((b) => b.snapshot(WORKSPACE))).toMatchObject({ spentMicros: t.spent, overrunMicros: t.overrun, reservedMicros: 0 })
  } finally {
    h.close()
  }
}

describe("model calls charged in full: random reservations and actual costs, concurrent calls, two sessions sharing a workspace", () => {
  for (const [kind, numRuns] of [["memory", 40], ["sqlite", 10]] as const) {
    it(`on the ${kind} store: spent passes a limit by at most the overruns of the calls in flight together (one call's, one at a time), and every overrun is recorded`, async () => {
      const stats: MoneyStats = { runs: 0, overruns: 0, overLimit: 0, refused: 0 }
      await fc.assert(
        fc.asyncProperty(modelScenarioArb, (s) => runModelCalls(kind, s, stats)),
        { numRuns }
      )
      // The runs went where the guarantee matters: calls above their reservation, limits passed, calls refused.
      expect(stats.runs).toBeGreaterThanOrEqual(numRuns)
      expect(stats.overruns).toBeGreaterThan(0)
      expect(stats.overLimit).toBeGreaterThan(0)
      expect(stats.refused).toBeGreaterThan(0)
    })
  }

  it("two processes paying calls on their own sessions against one workspace in one SQLite file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "astrid-money-"))
    dirs.push(dir)
    const limits = { perActionMicros: 1_000, perSessionMicros: 2_000, perWorkspaceMicros: 3_000, warnAtPercent: 0 }
    const callArb = fc.array(fc.record({ reserve: fc.integer({ min: 1, max: 400 }), actual: fc.integer({ min: 0, max: 700 }) }), { minLength: 15, maxLength: 15 })
    const [first, second] = fc.sample(fc.tuple(callArb, callArb), { numRuns: 1, seed: 9 })[0] ?? [[], []]
    const path = join(dir, "astrid.db")
    // The file and its schema exist before either child opens it.
    const created = await Effect.runPromise(openSqliteEventStore({ path, mode: "write" }))
    created.close()
    const children = [first, second].map((calls, i) => startModelCallChild({ path, sessionId: `p${i}`, workspaceStream: WORKSPACE, limits, calls }))
    await Promise.all(children.map((c) => c.ready))
    for (const c of children) c.go()
    const runs = await Promise.all(children.map((c) => c.finished))
    for (const run of runs) {
      expect(run.stderr).toBe("")
      expect(run.code).toBe(0)
      expect(run.lines.at(-1)).toEqual({ kind: "done" })
    }
    const opened = await Effect.runPromise(openSqliteEventStore({ path, mode: "read" }))
    try {
      const events = async (stream: string) =>
        (await Effect.runPromise(opened.api.readStream(stream))).map((e) => {
          const data: unknown = JSON.parse(e.data)
          if (typeof data !== "object" || data === null) throw new Error(`event data is not an object: ${e.data}`)
          return { type: e.type, data: Object.fromEntries(Object.entries(data)) }
        })
      const stats: MoneyStats = { runs: 0, overruns: 0, overLimit: 0, refused: 0 }
      const paidBy = runs.map((run, session) =>
        run.lines.flatMap((l): Array<PaidCall> => (l.kind === "paid" ? [{ reservationId: l.reservationId, session, actual: l.actualMicros, overrun: l.overrunMicros }] : []))
      )
      for (const [session, paid] of paidBy.entries()) {
        // Each process pays one call at a time: its session passes its limit by one call's overrun at most.
        checkMoney(await events(`astrid-session-p${session}`), limits.perSessionMicros, paid, 1, stats)
      }
      checkMoney(await events(WORKSPACE), limits.perWorkspaceMicros, paidBy.flat(), 2, stats)
      expect(paidBy.flat().some((c) => c.overrun > 0)).toBe(true)
      expect(runs.some((run) => run.lines.some((l) => l.kind === "refused"))).toBe(true)
    } finally {
      opened.close()
    }
  }, 60_000)
})

interface ModelCallChild {
  readonly ready: Promise<void>
  readonly finished: Promise<{ readonly lines: ReadonlyArray<ModelCallLine>; readonly stderr: string; readonly code: number | null }>
  readonly go: () => void
}

const MODEL_CALL_FIXTURE = fileURLToPath(new URL("../../test/fixtures/modelCallProcess.ts", import.meta.url))
const decodeModelCallLine = Schema.decodeUnknownEither(Schema.parseJson(ModelCallLine))

const startModelCallChild = (config: ModelCallConfig): ModelCallChild => {
  const child = spawn(process.execPath, ["--import", "tsx", MODEL_CALL_FIXTURE], {
    env: { ...process.env, [MODEL_CALL_CONFIG_ENV]: JSON.stringify(config) },
    stdio: ["pipe", "pipe", "pipe"]
  })
  const lines: Array<ModelCallLine> = []
  let stderr = ""
  let pending = ""
  let onReady = () => {}
  let onNotReady = (_: Error) => {}
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve
    onNotReady = reject
  })
  const giveUp = setTimeout(() => child.kill("SIGKILL"), 45_000)
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const line = decodeModelCallLine(pending.slice(0, nl))
      pending = pending.slice(nl + 1)
      if (Either.isLeft(line)) continue
      lines.push(line.right)
      if (line.right.kind === "ready") onReady()
    }
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  child.stdin.on("error", () => undefined)
  const finished = new Promise<{ lines: ReadonlyArray<ModelCallLine>; stderr: string; code: number | null }>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(giveUp)
      onNotReady(new Error(`the model-call child for ${config.sessionId} exited (${String(code)}) before it was ready: ${stderr}`))
      resolve({ lines, stderr, code })
    })
  })
  return { ready, finished, go: () => child.stdin.end("go\n") }
}
