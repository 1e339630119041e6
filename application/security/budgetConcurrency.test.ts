/**
 * I4 under concurrency, end to end: 50 intercepts racing against one session budget and one workspace
 * budget, through the real interceptor on a real SQLite file and on the memory store. At every prefix of
 * the final streams, committed + reserved stays within every limit, and every reservation is settled.
 */
import { Effect } from "effect"
import fc from "fast-check"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { decodeRecorded } from "../streamState.js"
import { makeHarness } from "../../test/securityHarness.js"

interface Totals {
  held: number
  committed: number
}

/** Replays budget events and checks the limit after each one. */
const checkStream = (events: ReadonlyArray<{ type: string; data: string }>, limit: number): Totals & { open: number } => {
  const reservations = new Map<string, number>()
  const totals: Totals = { held: 0, committed: 0 }
  for (const recorded of events) {
    const e = decodeRecorded({ ...recorded, stream: "", revision: 0, position: 0, eventId: "", metadata: "{}", hash: "" })
    if (e === undefined) continue
    if (e._tag === "BudgetReserved") {
      reservations.set(e.reservationId, e.amountMicros)
      totals.held += e.amountMicros
    } else if (e._tag === "BudgetCommitted") {
      const held = reservations.get(e.reservationId) ?? 0
      totals.held -= held
      totals.committed += e.amountMicros
      reservations.delete(e.reservationId)
    } else if (e._tag === "BudgetReleased") {
      totals.held -= reservations.get(e.reservationId) ?? 0
      reservations.delete(e.reservationId)
    }
    expect(totals.held + totals.committed).toBeLessThanOrEqual(limit)
  }
  return { ...totals, open: reservations.size }
}

const LIMITS = { perActionMicros: 400, perSessionMicros: 2_000, perWorkspaceMicros: 3_000, warnAtPercent: 80 }

describe("50 concurrent intercepts against one budget (I4)", () => {
  for (const backend of ["memory", "sqlite"] as const) {
    it(`never overspends on ${backend}`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ cost: fc.integer({ min: 0, max: 500 }), fails: fc.boolean(), session: fc.integer({ min: 0, max: 1 }) }), { minLength: 50, maxLength: 50 }),
          async (plans) => {
            const sqlitePath = backend === "sqlite" ? join(mkdtempSync(join(tmpdir(), "astrid-i4-")), "astrid.db") : undefined
            const h = await makeHarness({ settings: { budget: LIMITS }, interleave: true, ...(sqlitePath === undefined ? {} : { sqlitePath }) })
            writeFileSync(join(h.workspace, "f.txt"), "x")
            const outcomes = await h.run(
              Effect.all(
                plans.map((plan) =>
                  h.interceptor.guard(
                    { principal: "alice", sessionId: `s${plan.session}`, workspaceRoot: h.workspace, request: { _tag: "file_read", path: "f.txt" }, estimatedCostMicros: plan.cost },
                    () =>
                      Effect.yieldNow().pipe(
                        Effect.zipRight(
                          plan.fails ? Effect.fail("tool failed" as const) : Effect.succeed({ value: plan.cost, outcome: { ok: true, tool: "read_file", output: "x", truncated: false, durationMs: 0 } })
                        )
                      )
                  ).pipe(Effect.either)
                ),
                { concurrency: "unbounded" }
              )
            )
            expect(outcomes).toHaveLength(50)
            const errors = outcomes.flatMap((o) => (o._tag === "Left" && o.left !== "tool failed" ? [o.left] : []))
            expect(errors).toEqual([])
            const all = await Effect.runPromise(Effect.orDie(h.store.readAll({ after: 0, maxCount: 100_000 })))
            for (const session of ["astrid-session-s0", "astrid-session-s1"]) {
              const t = checkStream(all.filter((e) => e.stream === session), LIMITS.perSessionMicros)
              expect(t.open).toBe(0)
              expect(t.held).toBe(0)
            }
            const ws = checkStream(all.filter((e) => e.stream.startsWith("astrid-workspace-")), LIMITS.perWorkspaceMicros)
            expect(ws.open).toBe(0)
            // Something was spent, and every over-limit action was denied at the budget stage.
            const denied = all.filter((e) => e.type === "ActionDenied" && e.data.includes('"stage":"budget"')).length
            const allowed = all.filter((e) => e.type === "ActionAllowed").length
            expect(allowed + denied).toBe(50)
            expect(plans.filter((p) => p.cost > LIMITS.perActionMicros).length).toBeLessThanOrEqual(denied)
          }
        ),
        { numRuns: backend === "sqlite" ? 4 : 8 }
      )
    })
  }
})
