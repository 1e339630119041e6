/** The budget decider in Given (events) / When (command) / Then (events or error) form, plus I4 as a property. */
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Either } from "effect"
import type { AstridEvent } from "../events/astridEvent.js"
import {
  type BudgetDecisionError,
  type BudgetState,
  checkMicros,
  commit,
  type CommitCommand,
  evolveBudget,
  formatMicros,
  initialBudgetState,
  release,
  type ReleaseCommand,
  reserve,
  type ReserveCommand
} from "./budget.js"

const given = (...events: ReadonlyArray<AstridEvent>): BudgetState => events.reduce(evolveBudget, initialBudgetState)

type Command = { readonly reserve: Omit<ReserveCommand, "scope" | "perActionLimitMicros"> & Partial<ReserveCommand> } | { readonly commit: CommitCommand } | { readonly release: ReleaseCommand }

type Decided = Either.Either<{ readonly events: ReadonlyArray<AstridEvent> }, BudgetDecisionError>

const whenReserve = (state: BudgetState, command: Extract<Command, { reserve: unknown }>["reserve"]) =>
  reserve(state, { scope: "session", perActionLimitMicros: 1_000_000_000, ...command })

const when = (state: BudgetState, command: Command): Decided => {
  if ("reserve" in command) return whenReserve(state, command.reserve)
  if ("commit" in command) return commit(state, command.commit)
  return release(state, command.release)
}

/** Then: the events decided, or the error's tag and fields. */
const thenEvents = (result: Decided): ReadonlyArray<AstridEvent> => {
  if (Either.isLeft(result)) throw new Error(`expected events, got ${result.left._tag}: ${result.left.message}`)
  return result.right.events
}
const thenError = (result: Decided) => {
  if (Either.isRight(result)) throw new Error(`expected an error, got ${JSON.stringify(result.right.events)}`)
  return result.left
}

const reserved = (reservationId: string, amountMicros: number, limitMicros = 10_000_000): AstridEvent => ({
  _tag: "BudgetReserved",
  reservationId,
  actionId: `a-${reservationId}`,
  amountMicros,
  limitMicros,
  scope: "session"
})
const committed = (reservationId: string, amountMicros: number): AstridEvent => ({ _tag: "BudgetCommitted", reservationId, amountMicros })
const released = (reservationId: string, reason: "denied" | "cancelled" | "failed" | "compensation" | "actual_lower", amountMicros: number): AstridEvent => ({
  _tag: "BudgetReleased",
  reservationId,
  reason,
  amountMicros
})

describe("reserve", () => {
  it("Given nothing, When 2 $ is reserved under a 10 $ limit, Then one BudgetReserved records the amount, limit and scope", () => {
    const events = thenEvents(when(given(), { reserve: { reservationId: "r1", actionId: "a1", amountMicros: 2_000_000, limitMicros: 10_000_000 } }))
    expect(events).toEqual([{ _tag: "BudgetReserved", reservationId: "r1", actionId: "a1", amountMicros: 2_000_000, limitMicros: 10_000_000, scope: "session" }])
  })

  it("Given 6 $ spent and 3 $ reserved, When 1 $ more is reserved under 10 $, Then it fits exactly", () => {
    const state = given(reserved("r1", 6_000_000), committed("r1", 6_000_000), reserved("r2", 3_000_000))
    expect(thenEvents(when(state, { reserve: { reservationId: "r3", actionId: "a3", amountMicros: 1_000_000, limitMicros: 10_000_000 } }))).toHaveLength(1)
  })

  it("Given 6 $ spent and 3 $ reserved, When 1 $ + 1 micro is reserved under 10 $, Then BudgetExceeded with the numbers", () => {
    const state = given(reserved("r1", 6_000_000), committed("r1", 6_000_000), reserved("r2", 3_000_000))
    const error = thenError(when(state, { reserve: { reservationId: "r3", actionId: "a3", amountMicros: 1_000_001, limitMicros: 10_000_000 } }))
    expect(error).toMatchObject({ _tag: "BudgetExceeded", scope: "session", limit: 10_000_000, spent: 6_000_000, reserved: 3_000_000, requested: 1_000_001 })
    expect(error.message).toBe("the session budget would be exceeded: $6.00 spent + $3.00 reserved + $1.000001 requested is over the limit of $10.00")
  })

  it("Given nothing, When an action asks for more than the per-action limit, Then BudgetExceeded for the action", () => {
    const error = thenError(
      when(given(), { reserve: { reservationId: "r1", actionId: "a1", amountMicros: 600_000, limitMicros: 10_000_000, perActionLimitMicros: 500_000 } })
    )
    expect(error).toMatchObject({ _tag: "BudgetExceeded", scope: "action", limit: 500_000, requested: 600_000 })
    expect(error.message).toContain("per-action limit of $0.50")
  })

  it("Given a released reservation, When the same room is reserved again, Then it fits (a release gives the room back)", () => {
    const state = given(reserved("r1", 10_000_000), released("r1", "denied", 10_000_000))
    expect(thenEvents(when(state, { reserve: { reservationId: "r2", actionId: "a2", amountMicros: 10_000_000, limitMicros: 10_000_000 } }))).toHaveLength(1)
  })

  it("Given a reservation r1, When r1 is reserved again, Then DuplicateReservation", () => {
    expect(thenError(when(given(reserved("r1", 1)), { reserve: { reservationId: "r1", actionId: "a", amountMicros: 1, limitMicros: 100 } }))._tag).toBe(
      "DuplicateReservation"
    )
  })

  it("reports the warning threshold: crossed by the reservation that reaches it, still reported after", () => {
    const command = (id: string, amount: number) => ({ reservationId: id, actionId: id, amountMicros: amount, limitMicros: 1_000_000, warnAtPercent: 80 })
    const below = whenReserve(given(), command("r1", 790_000))
    expect(Either.getOrThrow(below).warning).toBeNull()
    const crossing = whenReserve(given(reserved("r1", 700_000)), command("r2", 100_000))
    expect(Either.getOrThrow(crossing).warning).toEqual({
      scope: "session",
      limitMicros: 1_000_000,
      usedMicros: 800_000,
      percent: 80,
      thresholdPercent: 80,
      crossed: true
    })
    const after = whenReserve(given(reserved("r1", 850_000)), command("r2", 10_000))
    expect(Either.getOrThrow(after).warning).toMatchObject({ percent: 86, crossed: false })
    const off = whenReserve(given(reserved("r1", 999_000)), { ...command("r2", 1_000), warnAtPercent: 0 })
    expect(Either.getOrThrow(off).warning).toBeNull()
  })

  it("rejects negative, NaN, infinite, fractional and unsafe amounts and limits with InvalidAmount", () => {
    for (const amount of [-1, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1.5, 2 ** 53]) {
      const error = thenError(when(given(), { reserve: { reservationId: "r", actionId: "a", amountMicros: amount, limitMicros: 100 } }))
      expect(error._tag).toBe("InvalidAmount")
      expect(error.message).toContain("amountMicros")
      expect(error.message).toContain("micro-dollars")
    }
    expect(thenError(when(given(), { reserve: { reservationId: "r", actionId: "a", amountMicros: 1, limitMicros: Number.NaN } }))).toMatchObject({
      _tag: "InvalidAmount",
      field: "limitMicros",
      value: "NaN"
    })
    expect(thenError(when(given(), { reserve: { reservationId: "r", actionId: "a", amountMicros: 1, limitMicros: 9, warnAtPercent: 101 } }))).toMatchObject({
      _tag: "InvalidAmount",
      field: "warnAtPercent"
    })
  })

  it("compares exactly near 2^53 (no floating-point rounding past the limit)", () => {
    const max = Number.MAX_SAFE_INTEGER
    const state = given(reserved("r1", max - 1, max))
    expect(thenError(when(state, { reserve: { reservationId: "r2", actionId: "a", amountMicros: 2, limitMicros: max } }))._tag).toBe("BudgetExceeded")
    expect(thenEvents(when(state, { reserve: { reservationId: "r2", actionId: "a", amountMicros: 1, limitMicros: max } }))).toHaveLength(1)
  })
})

describe("commit", () => {
  it("Given a 2 $ reservation, When it is committed without an amount, Then 2 $ are committed", () => {
    expect(thenEvents(when(given(reserved("r1", 2_000_000)), { commit: { reservationId: "r1" } }))).toEqual([committed("r1", 2_000_000)])
  })

  it("Given a 2 $ reservation, When 0.5 $ is the actual cost, Then 0.5 $ committed and 1.5 $ released as actual_lower", () => {
    const result = when(given(reserved("r1", 2_000_000)), { commit: { reservationId: "r1", amountMicros: 500_000 } })
    expect(thenEvents(result)).toEqual([committed("r1", 500_000), released("r1", "actual_lower", 1_500_000)])
    const after = thenEvents(result).reduce(evolveBudget, given(reserved("r1", 2_000_000)))
    expect(after.spentMicros).toBe(500_000)
    expect(after.reservedMicros).toBe(0)
  })

  it("Given a 2 $ reservation, When the actual cost is 3 $, Then at most 2 $ are committed and the overrun is reported", () => {
    const result = when(given(reserved("r1", 2_000_000)), { commit: { reservationId: "r1", amountMicros: 3_000_000 } })
    expect(thenEvents(result)).toEqual([committed("r1", 2_000_000)])
    expect(Either.getOrThrow(commit(given(reserved("r1", 2_000_000)), { reservationId: "r1", amountMicros: 3_000_000 })).overrunMicros).toBe(1_000_000)
  })

  it("Given a released reservation, When it is committed, Then ReservationClosed (released)", () => {
    expect(thenError(when(given(reserved("r1", 5), released("r1", "denied", 5)), { commit: { reservationId: "r1" } }))).toMatchObject({
      _tag: "ReservationClosed",
      status: "released"
    })
  })

  it("Given a committed reservation, When it is committed again, Then ReservationClosed (committed)", () => {
    expect(thenError(when(given(reserved("r1", 5), committed("r1", 5)), { commit: { reservationId: "r1" } }))).toMatchObject({
      _tag: "ReservationClosed",
      status: "committed"
    })
  })

  it("Given nothing, When r1 is committed, Then UnknownReservation", () => {
    expect(thenError(when(given(), { commit: { reservationId: "r1" } }))._tag).toBe("UnknownReservation")
  })

  it("rejects a negative or NaN actual cost", () => {
    expect(thenError(when(given(reserved("r1", 5)), { commit: { reservationId: "r1", amountMicros: -1 } }))._tag).toBe("InvalidAmount")
    expect(thenError(when(given(reserved("r1", 5)), { commit: { reservationId: "r1", amountMicros: Number.NaN } }))._tag).toBe("InvalidAmount")
  })
})

describe("release", () => {
  it("Given a 2 $ reservation, When it is released on denial, Then BudgetReleased gives back 2 $", () => {
    expect(thenEvents(when(given(reserved("r1", 2_000_000)), { release: { reservationId: "r1", reason: "denied" } }))).toEqual([
      released("r1", "denied", 2_000_000)
    ])
  })

  it("Given a released reservation, When it is released again, Then ReservationClosed", () => {
    expect(thenError(when(given(reserved("r1", 5), released("r1", "cancelled", 5)), { release: { reservationId: "r1", reason: "cancelled" } }))._tag).toBe(
      "ReservationClosed"
    )
  })

  it("Given a committed reservation, When it is released, Then ReservationClosed", () => {
    expect(thenError(when(given(reserved("r1", 5), committed("r1", 5)), { release: { reservationId: "r1", reason: "failed" } }))._tag).toBe(
      "ReservationClosed"
    )
  })
})

describe("evolveBudget", () => {
  it("ignores events that do not fit, so a foreign writer cannot drive the tally negative", () => {
    const state = given(released("ghost", "denied", 99), committed("ghost", 99), reserved("r1", 10), reserved("r1", 1_000), released("r1", "denied", 10), released("r1", "denied", 10))
    expect(state.spentMicros).toBe(0)
    expect(state.reservedMicros).toBe(0)
  })

  it("ignores other event types", () => {
    const state = given({ _tag: "SessionEnded", sessionId: "s", reason: "completed", detail: null })
    expect(state).toEqual(initialBudgetState)
  })
})

describe("amounts", () => {
  it("checkMicros accepts whole micro-dollars only, and turns -0 into 0", () => {
    expect(Either.getOrThrow(checkMicros("x", 0))).toBe(0)
    expect(Object.is(Either.getOrThrow(checkMicros("x", -0)), 0)).toBe(true)
    expect(Either.getOrThrow(checkMicros("x", Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER)
    expect(Either.isLeft(checkMicros("x", 0.1 + 0.2))).toBe(true)
  })

  it("formatMicros prints dollars without floating point", () => {
    expect(formatMicros(0)).toBe("$0.00")
    expect(formatMicros(1_500_000)).toBe("$1.50")
    expect(formatMicros(1_234_567)).toBe("$1.234567")
    expect(formatMicros(1)).toBe("$0.000001")
  })
})

describe("I4 over random command sequences (pure)", () => {
  it("spent + reserved never exceeds the limit, and no amount is lost", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("reserve" as const), amount: fc.integer({ min: 0, max: 400 }) }),
      fc.record({ kind: fc.constant("commit" as const), pick: fc.nat(), actual: fc.option(fc.integer({ min: 0, max: 500 }), { nil: undefined }) }),
      fc.record({ kind: fc.constant("release" as const), pick: fc.nat() })
    )
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 500 }), fc.array(op, { maxLength: 60 }), (limit, perAction, ops) => {
        let state = initialBudgetState
        const ids: Array<string> = []
        let committedTotal = 0
        for (const [i, o] of ops.entries()) {
          const result: Decided =
            o.kind === "reserve"
              ? reserve(state, { reservationId: `r${i}`, actionId: `a${i}`, amountMicros: o.amount, limitMicros: limit, perActionLimitMicros: perAction, scope: "session" })
              : o.kind === "commit"
                ? commit(state, { reservationId: ids[o.pick % Math.max(ids.length, 1)] ?? "none", ...(o.actual === undefined ? {} : { amountMicros: o.actual }) })
                : release(state, { reservationId: ids[o.pick % Math.max(ids.length, 1)] ?? "none", reason: "cancelled" })
          if (Either.isLeft(result)) continue
          if (o.kind === "reserve") ids.push(`r${i}`)
          for (const e of result.right.events) {
            state = evolveBudget(state, e)
            if (e._tag === "BudgetCommitted") committedTotal += e.amountMicros
            expect(state.spentMicros + state.reservedMicros).toBeLessThanOrEqual(limit)
          }
        }
        let open = 0
        for (const [, r] of state.reservations) {
          expect(r.amountMicros).toBeLessThanOrEqual(perAction)
          if (r.status === "open") open += r.remainingMicros
        }
        expect(state.reservedMicros).toBe(open)
        expect(state.spentMicros).toBe(committedTotal)
      }),
      { numRuns: 300 }
    )
  })
})
