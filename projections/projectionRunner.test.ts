/**
 * The checkpointed runner against real SQLite files: an incrementally built view equals one rebuilt
 * from zero (and the pure fold held in memory); a failing batch keeps neither view rows nor checkpoint;
 * catch-up then live; version bumps, replaced logs and rebuilds of one view.
 */
import Database from "better-sqlite3"
import { Effect, Either, Exit, Fiber, Schema } from "effect"
import fc from "fast-check"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import type { RecordedEvent } from "../domain/envelope.js"
import { decodeRecorded } from "../application/streamState.js"
import {
  budgetCommitted,
  budgetReleased,
  budgetReserved,
  deferralQueued,
  deferralResolved,
  type Harness,
  noise,
  openHarness,
  OUTCOMES,
  RELEASE_REASONS,
  tokenGranted,
  tokenRevoked,
  tokenUsed
} from "../test/projectionFixtures.js"
import { budgetsView } from "./budgetsView.js"
import { pendingApprovalsView } from "./pendingApprovalsView.js"
import { defineTable, type Projection, type TableShape, upsert, type ViewReader } from "./projection.js"
import { makeProjectionRunner, type ProjectionRunner } from "./projectionRunner.js"
import { PROJECTIONS } from "./registry.js"
import type { ProjectionStoreApi } from "./sqliteProjectionStore.js"
import { tokensView } from "./tokensView.js"

const harnesses: Array<Harness> = []
afterEach(() => {
  for (const h of harnesses.splice(0)) h.close()
})
const harness = async (): Promise<Harness> => {
  const h = await openHarness()
  harnesses.push(h)
  return h
}

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const runner = (h: Harness, views: ProjectionStoreApi, pageSize = 1000, registry: ReadonlyArray<Projection> = PROJECTIONS): Promise<ProjectionRunner> =>
  run(makeProjectionRunner(h.store, views, registry, { pageSize }))

const dumpAll = (views: ProjectionStoreApi, projections: ReadonlyArray<Projection> = PROJECTIONS) =>
  run(Effect.forEach(projections, (p) => views.dump(p).pipe(Effect.map((d) => [p.name, d] as const)))).then((e) => Object.fromEntries(e))

const allEvents = (h: Harness): Promise<ReadonlyArray<RecordedEvent>> => run(h.store.readAll({ after: 0, maxCount: 1_000_000 }))

const positionOf = async (views: ProjectionStoreApi, name: string): Promise<number> => {
  const c = await run(views.checkpoint(name))
  return c._tag === "Some" ? c.value.position : -1
}

const lastPosition = async (h: Harness): Promise<number> => (await run(h.store.stats)).lastPosition

/** The pure fold of a projection held in a Map: what a view must equal, whatever store holds it. */
const memoryFold = (projection: Projection, events: ReadonlyArray<RecordedEvent>): Record<string, ReadonlyArray<unknown>> => {
  const shapes = new Map(projection.tables.map((t) => [t.name, t]))
  const rows = new Map(projection.tables.map((t) => [t.name, new Map<string, Readonly<Record<string, unknown>>>()]))
  const keyOf = (shape: TableShape, row: Readonly<Record<string, unknown>>): string => JSON.stringify(shape.primaryKey.map((c) => row[c] ?? null))
  const view: ViewReader = {
    get: (table, key) => {
      const row = rows.get(table.name)?.get(keyOf(table, { ...key }))
      return row === undefined ? undefined : Schema.decodeUnknownSync(table.row)(row)
    }
  }
  for (const recorded of events) {
    const event = decodeRecorded(recorded)
    if (event === undefined) continue
    for (const change of projection.evolve(view, event, recorded)) {
      const shape = shapes.get(change.table)
      const table = rows.get(change.table)
      if (shape === undefined || table === undefined) throw new Error(`unknown table ${change.table}`)
      if (change._tag === "Upsert") table.set(keyOf(shape, change.row), change.row)
      else table.delete(keyOf(shape, change.key))
    }
  }
  const compare = (a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>): number => {
    for (let i = 0; i < a.length; i++) {
      const x = String(a[i])
      const y = String(b[i])
      if (x !== y) return x < y ? -1 : 1
    }
    return 0
  }
  return Object.fromEntries(
    projection.tables.map((t) => {
      const shape = shapes.get(t.name)
      const entries = [...(rows.get(t.name)?.values() ?? [])]
      const sorted = entries.sort((a, b) => compare(shape?.primaryKey.map((c) => a[c]) ?? [], shape?.primaryKey.map((c) => b[c]) ?? []))
      return [t.name, sorted]
    })
  )
}

// ---- random event sequences over small id sets, so that events meet the same tokens, reservations and requests

const principalArb = fc.constantFrom("alice", "bob")
const tokenArb = fc.constantFrom("t1", "t2", "t3")
const scopeArb = fc.constantFrom("session" as const, "workspace" as const)
const ownerArb = fc.constantFrom("s1", "s2")
const reservationArb = fc.constantFrom("r1", "r2", "r3", "r4")
const requestArb = fc.constantFrom("q1", "q2", "q3", "q4")

const opArb = fc.oneof(
  fc.record({ k: fc.constant("grant" as const), principal: principalArb, token: tokenArb, singleUse: fc.boolean() }),
  fc.record({ k: fc.constant("use" as const), principal: principalArb, token: tokenArb }),
  fc.record({ k: fc.constant("revoke" as const), principal: principalArb, token: tokenArb, reason: fc.option(fc.constantFrom("lost", "leaked")) }),
  fc.record({
    k: fc.constant("reserve" as const),
    scope: scopeArb,
    owner: ownerArb,
    res: reservationArb,
    amount: fc.nat({ max: 1_000_000 }),
    limit: fc.option(fc.nat({ max: 2_000_000 }), { nil: undefined })
  }),
  fc.record({ k: fc.constant("commit" as const), scope: scopeArb, owner: ownerArb, res: reservationArb, amount: fc.nat({ max: 1_000_000 }) }),
  fc.record({
    k: fc.constant("release" as const),
    scope: scopeArb,
    owner: ownerArb,
    res: reservationArb,
    reason: fc.constantFrom(...RELEASE_REASONS),
    amount: fc.option(fc.nat({ max: 1_000_000 }), { nil: undefined })
  }),
  fc.record({ k: fc.constant("queue" as const), req: requestArb, principal: principalArb, priority: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ k: fc.constant("resolve" as const), req: requestArb, outcome: fc.constantFrom(...OUTCOMES) }),
  fc.record({ k: fc.constant("noise" as const), n: fc.nat({ max: 9 }) })
)
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never

const eventOf = (op: Op) => {
  switch (op.k) {
    case "grant":
      return tokenGranted(op.principal, op.token, { singleUse: op.singleUse })
    case "use":
      return tokenUsed(op.principal, op.token, `a-${op.token}`)
    case "revoke":
      return tokenRevoked(op.principal, op.token, op.reason)
    case "reserve":
      return budgetReserved(op.scope, op.owner, op.res, op.amount, op.limit)
    case "commit":
      return budgetCommitted(op.scope, op.owner, op.res, op.amount)
    case "release":
      return budgetReleased(op.scope, op.owner, op.res, op.reason, op.amount)
    case "queue":
      return deferralQueued(op.req, op.principal, op.priority)
    case "resolve":
      return deferralResolved(op.req, op.outcome)
    case "noise":
      return noise(op.n)
  }
}

const segmentArb = fc.record({ ops: fc.array(opArb, { maxLength: 14 }), pageSize: fc.integer({ min: 1, max: 9 }) })

describe("projection runner", () => {
  it("builds the same views incrementally, in random-sized steps between appends, as from zero (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(segmentArb, { minLength: 1, maxLength: 5 }), fc.array(opArb, { maxLength: 8 }), async (segments, tail) => {
        const h = await openHarness()
        try {
          const views = h.views()
          for (const segment of segments) {
            for (const op of segment.ops) {
              const e = eventOf(op)
              await h.append(e.stream, [e.draft])
            }
            await run((await runner(h, views, segment.pageSize)).catchUp())
          }
          // Events appended after the last catch-up are read by the next one, from the checkpoints.
          for (const op of tail) {
            const e = eventOf(op)
            await h.append(e.stream, [e.draft])
          }
          const final = await run((await runner(h, views, 3)).catchUp())
          const end = await lastPosition(h)
          for (const p of final) expect(p.position).toBe(end)

          const incremental = await dumpAll(views)
          const fresh = h.views("fresh.db")
          await run((await runner(h, fresh, 1000)).catchUp())
          expect(await dumpAll(fresh)).toEqual(incremental)

          const events = await allEvents(h)
          expect(Object.fromEntries(PROJECTIONS.map((p) => [p.name, memoryFold(p, events)]))).toEqual(incremental)

          await run((await runner(h, views, 5)).rebuild())
          expect(await dumpAll(views)).toEqual(incremental)
        } finally {
          h.close()
        }
      }),
      { numRuns: 40 }
    )
  })

  it("rolls back view rows and checkpoints together when a projection fails inside a batch", async () => {
    const h = await harness()
    const views = h.views()
    const counter = defineTable({
      name: "noise_outputs",
      row: Schema.Struct({ action_id: Schema.String, position: Schema.Int }),
      columns: { action_id: "TEXT", position: "INTEGER" },
      primaryKey: ["action_id"]
    })
    const fragile = (failOn: string | undefined): Projection => ({
      name: "fragile",
      version: 1,
      tables: [counter],
      evolve: (_view, event, recorded) => {
        if (event._tag !== "ToolResultRecorded") return []
        if (event.actionId === failOn) throw new Error("cannot fold this one")
        return [upsert(counter, { action_id: event.actionId, position: recorded.position })]
      }
    })
    for (let i = 0; i < 3; i++) await h.append(noise(i).stream, [noise(i).draft])
    const r1 = await runner(h, views, 100, [fragile("noise-4"), budgetsView])
    await run(r1.catchUp())
    const before = { dump: await dumpAll(views, [fragile(undefined), budgetsView]), fragile: await positionOf(views, "fragile"), budgets: await positionOf(views, "budgets") }
    expect(before.fragile).toBe(3)

    const reserve = budgetReserved("session", "s1", "r1", 10)
    await h.append(reserve.stream, [reserve.draft])
    for (let i = 3; i < 6; i++) await h.append(noise(i).stream, [noise(i).draft])
    // One batch: the reservation, noise-3, then noise-4 which throws.
    const failed = await run(Effect.either(r1.catchUp()))
    expect(Either.isLeft(failed)).toBe(true)
    if (Either.isLeft(failed)) {
      expect(failed.left._tag).toBe("ProjectionError")
      expect(failed.left.message).toMatch(/projection fragile failed on ToolResultRecorded .*cannot fold this one.*rebuild fragile/)
    }
    expect(await dumpAll(views, [fragile(undefined), budgetsView])).toEqual(before.dump)
    expect(await positionOf(views, "fragile")).toBe(before.fragile)
    expect(await positionOf(views, "budgets")).toBe(before.budgets)

    // Fixed (same name and version): it goes on from its checkpoint and ends where a rebuild ends.
    const r2 = await runner(h, views, 100, [fragile(undefined), budgetsView])
    await run(r2.catchUp())
    const after = await dumpAll(views, [fragile(undefined), budgetsView])
    expect(after["fragile"]?.["noise_outputs"]).toHaveLength(6)
    expect(after["budgets"]?.["budget_reservations"]).toHaveLength(1)
    const fresh = h.views("fresh.db")
    await run((await runner(h, fresh, 100, [fragile(undefined), budgetsView])).catchUp())
    expect(await dumpAll(fresh, [fragile(undefined), budgetsView])).toEqual(after)
  })

  it("catches up, then follows new appends live until interrupted", async () => {
    const h = await harness()
    const views = h.views()
    const q1 = deferralQueued("q1", "alice", 1)
    await h.append(q1.stream, [q1.draft])
    const r = await runner(h, views, 2)
    const fiber = Effect.runFork(r.runLive())

    const waitFor = async (position: number): Promise<void> => {
      const deadline = Date.now() + 5000
      while ((await positionOf(views, pendingApprovalsView.name)) < position) {
        if (Date.now() > deadline) throw new Error(`the live runner did not reach position ${position}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    await waitFor(await lastPosition(h))
    for (let i = 2; i <= 6; i++) {
      const q = deferralQueued(`q${i}`, "bob", i)
      await h.append(q.stream, [q.draft])
    }
    const resolved = deferralResolved("q1", "approved")
    await h.append(resolved.stream, [resolved.draft])
    const end = await lastPosition(h)
    await waitFor(end)
    for (const p of PROJECTIONS) expect(await positionOf(views, p.name)).toBe(end)

    const exit = await Effect.runPromise(Fiber.interrupt(fiber))
    expect(Exit.isInterrupted(exit)).toBe(true)
    const later = deferralQueued("q9", "alice", 9)
    await h.append(later.stream, [later.draft])
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await positionOf(views, pendingApprovalsView.name)).toBe(end)

    const live = await dumpAll(views)
    const fresh = h.views("fresh.db")
    const rf = await runner(h, fresh)
    await run(rf.catchUp())
    // The fresh build saw q9 too; the one stopped before it had not.
    expect(live["pending-approvals"]?.["approval_requests"]).toHaveLength(6)
    expect((await dumpAll(fresh))["pending-approvals"]?.["approval_requests"]).toHaveLength(7)
  })

  it("picks up a view that another process resets while it follows the log", async () => {
    const h = await harness()
    const views = h.views()
    for (let i = 0; i < 20; i++) {
      const e = budgetReserved("session", `s${i % 3}`, `r${i}`, 100 + i)
      await h.append(e.stream, [e.draft])
    }
    const waitFor = async (position: number): Promise<void> => {
      const deadline = Date.now() + 5000
      while ((await positionOf(views, "budgets")) < position) {
        if (Date.now() > deadline) throw new Error(`the live runner did not reach position ${position}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    const fiber = Effect.runFork((await runner(h, views, 4)).runLive())
    await waitFor(await lastPosition(h))
    // Another process starts a rebuild (its reset is committed, its replay not yet): the live runner's
    // next batch comes after the view's checkpoint, so it must catch the view up before folding it.
    await run(h.views().reset(budgetsView))
    for (let i = 20; i < 30; i++) {
      const e = budgetReserved("workspace", "w1", `r${i}`, 7)
      await h.append(e.stream, [e.draft])
    }
    await waitFor(await lastPosition(h))
    await Effect.runPromise(Fiber.interrupt(fiber))
    const fresh = h.views("fresh.db")
    await run((await runner(h, fresh)).catchUp())
    expect(await dumpAll(views)).toEqual(await dumpAll(fresh))
  })

  it("drops the old version's tables and replays the log when a projection's version changes", async () => {
    const h = await harness()
    const views = h.views()
    for (let i = 0; i < 4; i++) await h.append(noise(i).stream, [noise(i).draft])
    const t1 = defineTable({
      name: "type_counts",
      row: Schema.Struct({ type: Schema.String, n: Schema.Int }),
      columns: { type: "TEXT", n: "INTEGER" },
      primaryKey: ["type"]
    })
    const t2 = defineTable({
      name: "type_counts",
      row: Schema.Struct({ type: Schema.String, n: Schema.Int, last: Schema.Int }),
      columns: { type: "TEXT", n: "INTEGER", last: "INTEGER" },
      primaryKey: ["type"]
    })
    const t3 = defineTable({
      name: "types_seen",
      row: Schema.Struct({ type: Schema.String }),
      columns: { type: "TEXT" },
      primaryKey: ["type"]
    })
    const v1: Projection = {
      name: "counts",
      version: 1,
      tables: [t1],
      evolve: (view, event) => [upsert(t1, { type: event._tag, n: (view.get(t1, { type: event._tag })?.n ?? 0) + 1 })]
    }
    const v2: Projection = {
      name: "counts",
      version: 2,
      tables: [t2],
      evolve: (view, event, recorded) => [upsert(t2, { type: event._tag, n: (view.get(t2, { type: event._tag })?.n ?? 0) + 10, last: recorded.position })]
    }
    const v3: Projection = { name: "counts", version: 3, tables: [t3], evolve: (_view, event) => [upsert(t3, { type: event._tag })] }

    const p1 = await run((await runner(h, views, 100, [v1])).catchUp())
    expect(p1).toEqual([{ name: "counts", version: 1, position: 4, events: 4, rebuilt: "created" }])
    expect((await dumpAll(views, [v1]))["counts"]).toEqual({ type_counts: [{ type: "ToolResultRecorded", n: 4 }] })

    await h.append(noise(5).stream, [noise(5).draft])
    const p2 = await run((await runner(h, views, 2, [v2])).catchUp())
    expect(p2).toEqual([{ name: "counts", version: 2, position: 5, events: 5, rebuilt: "version_changed" }])
    expect((await dumpAll(views, [v2]))["counts"]).toEqual({ type_counts: [{ type: "ToolResultRecorded", n: 50, last: 5 }] })

    const p3 = await run((await runner(h, views, 2, [v3])).catchUp())
    expect(p3[0]?.rebuilt).toBe("version_changed")
    const db = new Database(join(h.dir, "projections.db"), { readonly: true })
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()
      expect(tables).toEqual(["projection_checkpoints", "projection_meta", "types_seen"])
    } finally {
      db.close()
    }
    // Same version again: nothing is rebuilt, nothing is read twice.
    const again = await run((await runner(h, views, 2, [v3])).catchUp())
    expect(again).toEqual([{ name: "counts", version: 3, position: 5, events: 0, rebuilt: null }])
  })

  it("rebuilds only the views named, and refuses unknown names", async () => {
    const h = await harness()
    const views = h.views()
    const events = [
      tokenGranted("alice", "t1"),
      budgetReserved("session", "s1", "r1", 500),
      budgetCommitted("session", "s1", "r1", 400),
      deferralQueued("q1", "alice", 2)
    ]
    for (const e of events) await h.append(e.stream, [e.draft])
    const r = await runner(h, views)
    await run(r.catchUp())
    const good = await dumpAll(views)

    // Damage two views behind the runner's back; a rebuild of one must repair it and leave the other alone.
    const db = new Database(join(h.dir, "projections.db"))
    try {
      db.prepare("UPDATE tokens SET status = 'revoked'").run()
      db.prepare("UPDATE budget_streams SET committed_micros = 1").run()
    } finally {
      db.close()
    }
    const tokensBefore = await positionOf(views, "tokens")
    const rebuilt = await run(r.rebuild(["budgets"]))
    expect(rebuilt.map((p) => [p.name, p.rebuilt, p.events])).toEqual([["budgets", "requested", 4]])
    const afterOne = await dumpAll(views)
    expect(afterOne["budgets"]).toEqual(good["budgets"])
    expect(afterOne["pending-approvals"]).toEqual(good["pending-approvals"])
    expect(afterOne["tokens"]).not.toEqual(good["tokens"])
    expect(await positionOf(views, "tokens")).toBe(tokensBefore)

    await run(r.rebuild(["tokens"]))
    expect(await dumpAll(views)).toEqual(good)

    const unknown = await run(Effect.flip(r.rebuild(["tokens", "nope"])))
    expect(unknown.kind).toBe("unknown")
    expect(unknown.message).toBe("unknown projection 'nope'; known: budgets, tokens, pending-approvals, sessions")
  })

  it("starts a view again when the event store it was built from is replaced", async () => {
    const a = await harness()
    const b = await harness()
    for (const e of [tokenGranted("alice", "t1"), tokenGranted("alice", "t2")]) await a.append(e.stream, [e.draft])
    for (const e of [tokenGranted("bob", "t9"), noise(1), tokenRevoked("bob", "t9", "lost")]) await b.append(e.stream, [e.draft])
    const views = a.views()
    await run((await runner(a, views)).catchUp())
    // Same projections.db, another log (as when astrid.db is restored from a backup).
    const progress = await run((await runner(b, views)).catchUp())
    expect(progress.map((p) => p.rebuilt)).toEqual(PROJECTIONS.map(() => "log_changed"))
    const fresh = b.views("fresh.db")
    await run((await runner(b, fresh)).catchUp())
    expect(await dumpAll(views)).toEqual(await dumpAll(fresh))
  })

  it("refuses projections that share a name or a table", async () => {
    const h = await harness()
    const views = h.views()
    const dup = await run(Effect.flip(makeProjectionRunner(h.store, views, [tokensView, { ...tokensView, name: "tokens-2" }])))
    expect(dup.message).toBe("table tokens of projection tokens-2 is already used by tokens")
    const twice = await run(Effect.flip(makeProjectionRunner(h.store, views, [budgetsView, budgetsView])))
    expect(twice.message).toBe("two projections are named budgets")
  })

  it("reads a view through a read-only connection and refuses to write there", async () => {
    const h = await harness()
    const e = deferralQueued("q1", "alice", 1)
    await h.append(e.stream, [e.draft])
    await run((await runner(h, h.views())).catchUp())
    const ro = h.views("projections.db", "read")
    expect(await run(ro.rowCounts(pendingApprovalsView))).toEqual({ approval_requests: 1 })
    const refused = await run(Effect.flip((await runner(h, ro)).catchUp()))
    expect(refused.message).toMatch(/opened read-only/)
  })
})
