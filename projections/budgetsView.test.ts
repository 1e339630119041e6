import { Effect, Option } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { budgetCommitted, budgetReleased, budgetReserved, type Harness, noise, openHarness } from "../test/projectionFixtures.js"
import { budgetsView, getBudget, listActiveReservations, listBudgets } from "./budgetsView.js"
import { makeProjectionRunner } from "./projectionRunner.js"
import type { ProjectionStoreApi } from "./sqliteProjectionStore.js"

const open: Array<Harness> = []
afterEach(() => {
  for (const h of open.splice(0)) h.close()
})

const build = async (events: ReadonlyArray<{ stream: string; draft: Parameters<Harness["append"]>[1][number] }>): Promise<ProjectionStoreApi> => {
  const h = await openHarness()
  open.push(h)
  for (const e of events) await h.append(e.stream, [e.draft])
  const views = h.views()
  await Effect.runPromise(Effect.flatMap(makeProjectionRunner(h.store, views, [budgetsView]), (r) => r.catchUp()))
  return views
}

describe("budgets view", () => {
  it("totals reservations, commits and releases per session and workspace stream", async () => {
    const views = await build([
      budgetReserved("session", "s1", "r1", 100),
      budgetReserved("workspace", "w1", "r1", 100),
      budgetReserved("session", "s1", "r2", 50),
      budgetCommitted("session", "s1", "r1", 80),
      // The commit used less than reserved: the rest is released.
      budgetReleased("session", "s1", "r1", "actual_lower"),
      budgetReleased("session", "s1", "r2", "cancelled"),
      budgetReleased("session", "s1", "r2", "failed"),
      budgetReserved("session", "s1", "r3", 30),
      budgetReserved("session", "s1", "r3", 999),
      budgetReleased("session", "s1", "r9", "denied"),
      budgetCommitted("session", "s2", "r8", 40),
      noise(1)
    ])
    const rows = await Effect.runPromise(listBudgets(views))
    expect(rows.map((r) => [r.stream, r.scope, r.owner, r.reserved_micros, r.committed_micros, r.released_micros, r.held_micros, r.active_reservations])).toEqual([
      ["astrid-session-s1", "session", "s1", 180, 80, 70, 30, 1],
      ["astrid-session-s2", "session", "s2", 0, 40, 0, 0, 0],
      ["astrid-workspace-w1", "workspace", "w1", 100, 0, 0, 100, 1]
    ])
    const workspaces = await Effect.runPromise(listBudgets(views, { scope: "workspace" }))
    expect(workspaces.map((r) => r.stream)).toEqual(["astrid-workspace-w1"])
    expect(Option.isNone(await Effect.runPromise(getBudget(views, "astrid-session-zz")))).toBe(true)

    const active = await Effect.runPromise(listActiveReservations(views))
    expect(active.map((r) => [r.stream, r.reservation_id, r.amount_micros, r.status])).toEqual([
      ["astrid-workspace-w1", "r1", 100, "active"],
      ["astrid-session-s1", "r3", 30, "active"]
    ])
    expect(active[0]?.reserved_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    const s1 = await Effect.runPromise(listActiveReservations(views, { stream: "astrid-session-s1" }))
    expect(s1.map((r) => r.reservation_id)).toEqual(["r3"])
  })

  it("keeps each reservation's settlement: committed then remainder released, or released whole", async () => {
    const views = await build([
      budgetReserved("session", "s1", "r1", 100),
      budgetCommitted("session", "s1", "r1", 60),
      budgetReleased("session", "s1", "r1", "actual_lower"),
      budgetReserved("session", "s1", "r2", 70),
      budgetReleased("session", "s1", "r2", "denied"),
      // Releases that state their amount give back exactly that; reservations may name their limit.
      budgetReserved("session", "s1", "r3", 200, 5000),
      budgetCommitted("session", "s1", "r3", 150),
      budgetReleased("session", "s1", "r3", "actual_lower", 50)
    ])
    const [row] = await Effect.runPromise(listBudgets(views))
    expect(row?.reserved_micros).toBe((row?.committed_micros ?? 0) + (row?.released_micros ?? 0) + (row?.held_micros ?? 0))
    const all = await Effect.runPromise(views.dump(budgetsView))
    expect(all["budget_reservations"]).toEqual([
      expect.objectContaining({ reservation_id: "r1", amount_micros: 100, committed_micros: 60, released_micros: 40, status: "committed", release_reason: "actual_lower" }),
      expect.objectContaining({ reservation_id: "r2", amount_micros: 70, committed_micros: 0, released_micros: 70, status: "released", release_reason: "denied" }),
      expect.objectContaining({ reservation_id: "r3", amount_micros: 200, limit_micros: 5000, committed_micros: 150, released_micros: 50, status: "committed" })
    ])
    expect(row).toMatchObject({ reserved_micros: 370, committed_micros: 210, released_micros: 160, held_micros: 0, limit_micros: 5000, active_reservations: 0 })
  })

  it("counts a commit above its reservation in full and keeps the overrun it names, per reservation and per stream", async () => {
    /** A commit as the budget service writes it when the cost passed the reservation. */
    const committedOver = (scope: "session" | "workspace", owner: string, reservationId: string, amountMicros: number, overrunMicros: number) => {
      const base = budgetCommitted(scope, owner, reservationId, amountMicros)
      return { ...base, draft: { ...base.draft, event: { _tag: "BudgetCommitted" as const, reservationId, amountMicros, overrunMicros } } }
    }
    const views = await build([
      budgetReserved("session", "s1", "r1", 60_000, 60_000),
      budgetReserved("workspace", "w1", "r1", 60_000, 500_000),
      committedOver("session", "s1", "r1", 61_000, 1_000),
      committedOver("workspace", "w1", "r1", 61_000, 1_000),
      budgetReserved("session", "s1", "r2", 100, 60_000),
      budgetCommitted("session", "s1", "r2", 40),
      budgetReleased("session", "s1", "r2", "actual_lower", 60)
    ])
    const rows = await Effect.runPromise(listBudgets(views))
    expect(rows.map((r) => [r.stream, r.committed_micros, r.overrun_micros, r.held_micros, r.limit_micros])).toEqual([
      ["astrid-session-s1", 61_040, 1_000, 0, 60_000],
      ["astrid-workspace-w1", 61_000, 1_000, 0, 500_000]
    ])
    const all = await Effect.runPromise(views.dump(budgetsView))
    expect(all["budget_reservations"]).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ stream: "astrid-session-s1", reservation_id: "r1", amount_micros: 60_000, committed_micros: 61_000, overrun_micros: 1_000, status: "committed" }),
        expect.objectContaining({ stream: "astrid-session-s1", reservation_id: "r2", amount_micros: 100, committed_micros: 40, overrun_micros: 0, released_micros: 60 })
      ])
    )
  })
})
