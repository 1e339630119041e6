/**
 * Budgets view: per budget stream (a session's or a workspace's) the micro-dollars reserved, committed
 * and released so far, what active reservations still hold, and each reservation with its state.
 *
 * A reservation is active until the first commit or release settles it. A release gives back the amount
 * it states; a release from before releases stated one gives back what is left of the reservation (all
 * of it, or after a lower commit the difference), and a second such release nothing. A commit naming a
 * reservation the stream never made still counts as committed; such a release is ignored (there is
 * nothing to give back), so the view never invents money.
 *
 * A commit counts at its full amount: an action that cost more than it reserved is charged the overrun
 * too, and the commit names it (`overrunMicros`), kept here as `overrun_micros` per reservation and per
 * stream, so `committed_micros` above `limit_micros` shows exactly where a limit was passed and by what.
 */
import { Effect, Option, Schema } from "effect"
import type { RecordedEvent } from "../domain/envelope.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { STREAM_PREFIX } from "../domain/streams.js"
import { defineTable, envelopeOf, optionalInt, optionalString, type Projection, type ViewChange, type ViewReader, upsert } from "./projection.js"
import type { ProjectionError, ProjectionStoreApi } from "./sqliteProjectionStore.js"

const Micros = Schema.NonNegativeInt

export const BudgetScope = Schema.Literal("session", "workspace", "other")
export type BudgetScope = typeof BudgetScope.Type

export const budgetStreams = defineTable({
  name: "budget_streams",
  row: Schema.Struct({
    stream: Schema.String,
    scope: BudgetScope,
    /** The session id or workspace hash from the stream name. */
    owner: Schema.String,
    reserved_micros: Micros,
    /** Charged, overruns included. */
    committed_micros: Micros,
    released_micros: Micros,
    /** The part of committed_micros that commits charged beyond their reservations. */
    overrun_micros: Micros,
    /** Sum of what active reservations hold. */
    held_micros: Micros,
    /** The limit the latest reservation was checked against, when it says. */
    limit_micros: Schema.NullOr(Micros),
    active_reservations: Schema.NonNegativeInt,
    last_position: Schema.NonNegativeInt
  }),
  columns: {
    stream: "TEXT",
    scope: "TEXT",
    owner: "TEXT",
    reserved_micros: "INTEGER",
    committed_micros: "INTEGER",
    released_micros: "INTEGER",
    overrun_micros: "INTEGER",
    held_micros: "INTEGER",
    limit_micros: "INTEGER NULL",
    active_reservations: "INTEGER",
    last_position: "INTEGER"
  },
  primaryKey: ["stream"]
})
export type BudgetStreamRow = typeof budgetStreams.row.Type

export const ReservationStatus = Schema.Literal("active", "committed", "released")

export const budgetReservations = defineTable({
  name: "budget_reservations",
  row: Schema.Struct({
    stream: Schema.String,
    reservation_id: Schema.String,
    action_id: Schema.String,
    amount_micros: Micros,
    limit_micros: Schema.NullOr(Micros),
    committed_micros: Micros,
    released_micros: Micros,
    /** What the commit charged beyond amount_micros. */
    overrun_micros: Micros,
    status: ReservationStatus,
    release_reason: Schema.NullOr(Schema.String),
    reserved_at: Schema.NullOr(Schema.String),
    reserved_position: Schema.NonNegativeInt,
    settled_position: Schema.NullOr(Schema.NonNegativeInt)
  }),
  columns: {
    stream: "TEXT",
    reservation_id: "TEXT",
    action_id: "TEXT",
    amount_micros: "INTEGER",
    limit_micros: "INTEGER NULL",
    committed_micros: "INTEGER",
    released_micros: "INTEGER",
    overrun_micros: "INTEGER",
    status: "TEXT",
    release_reason: "TEXT NULL",
    reserved_at: "TEXT NULL",
    reserved_position: "INTEGER",
    settled_position: "INTEGER NULL"
  },
  primaryKey: ["stream", "reservation_id"],
  indexes: [["status", "stream"]]
})
export type BudgetReservationRow = typeof budgetReservations.row.Type

const scopeOf = (stream: string): { scope: BudgetScope; owner: string } => {
  for (const scope of ["session", "workspace"] as const) {
    const prefix = `${STREAM_PREFIX}${scope}-`
    if (stream.startsWith(prefix)) return { scope, owner: stream.slice(prefix.length) }
  }
  return { scope: "other", owner: stream }
}

const streamRow = (view: ViewReader, recorded: RecordedEvent): BudgetStreamRow =>
  view.get(budgetStreams, { stream: recorded.stream }) ?? {
    stream: recorded.stream,
    ...scopeOf(recorded.stream),
    reserved_micros: 0,
    committed_micros: 0,
    released_micros: 0,
    overrun_micros: 0,
    held_micros: 0,
    limit_micros: null,
    active_reservations: 0,
    last_position: 0
  }

const evolve = (view: ViewReader, event: AstridEvent, recorded: RecordedEvent): ReadonlyArray<ViewChange> => {
  switch (event._tag) {
    case "BudgetReserved": {
      const s = streamRow(view, recorded)
      const previous = view.get(budgetReservations, { stream: recorded.stream, reservation_id: event.reservationId })
      // The same reservation id twice on one stream: keep the first, as the budget service would refuse the second.
      if (previous !== undefined) return []
      const limit = optionalInt(event, "limitMicros") ?? null
      return [
        upsert(budgetReservations, {
          stream: recorded.stream,
          reservation_id: event.reservationId,
          action_id: event.actionId,
          amount_micros: event.amountMicros,
          limit_micros: limit,
          committed_micros: 0,
          released_micros: 0,
          overrun_micros: 0,
          status: "active",
          release_reason: null,
          reserved_at: Option.getOrNull(Option.map(envelopeOf(recorded), (m) => m.occurredAt)),
          reserved_position: recorded.position,
          settled_position: null
        }),
        upsert(budgetStreams, {
          ...s,
          reserved_micros: s.reserved_micros + event.amountMicros,
          held_micros: s.held_micros + event.amountMicros,
          limit_micros: limit ?? s.limit_micros,
          active_reservations: s.active_reservations + 1,
          last_position: recorded.position
        })
      ]
    }
    case "BudgetCommitted": {
      const s = streamRow(view, recorded)
      const r = view.get(budgetReservations, { stream: recorded.stream, reservation_id: event.reservationId })
      const settles = r?.status === "active"
      const overrun = event.overrunMicros ?? 0
      const changes: Array<ViewChange> = [
        upsert(budgetStreams, {
          ...s,
          committed_micros: s.committed_micros + event.amountMicros,
          overrun_micros: s.overrun_micros + overrun,
          held_micros: settles ? s.held_micros - r.amount_micros : s.held_micros,
          active_reservations: settles ? s.active_reservations - 1 : s.active_reservations,
          last_position: recorded.position
        })
      ]
      if (r !== undefined) {
        changes.push(
          upsert(budgetReservations, {
            ...r,
            committed_micros: r.committed_micros + event.amountMicros,
            overrun_micros: r.overrun_micros + overrun,
            status: r.status === "active" ? "committed" : r.status,
            settled_position: r.settled_position ?? recorded.position
          })
        )
      }
      return changes
    }
    case "BudgetReleased": {
      const r = view.get(budgetReservations, { stream: recorded.stream, reservation_id: event.reservationId })
      if (r === undefined) return []
      const s = streamRow(view, recorded)
      const settles = r.status === "active"
      const stated = optionalInt(event, "amountMicros")
      const freed = stated !== undefined && stated >= 0 ? stated : Math.max(0, r.amount_micros - r.committed_micros - r.released_micros)
      return [
        upsert(budgetReservations, {
          ...r,
          released_micros: r.released_micros + freed,
          status: settles ? "released" : r.status,
          release_reason: r.release_reason ?? optionalString(event, "reason") ?? null,
          settled_position: r.settled_position ?? recorded.position
        }),
        upsert(budgetStreams, {
          ...s,
          released_micros: s.released_micros + freed,
          held_micros: settles ? s.held_micros - r.amount_micros : s.held_micros,
          active_reservations: settles ? s.active_reservations - 1 : s.active_reservations,
          last_position: recorded.position
        })
      ]
    }
    default:
      return []
  }
}

export const budgetsView: Projection = {
  name: "budgets",
  // 2: overrun_micros (commits charged in full, the part beyond the reservation named).
  version: 2,
  tables: [budgetStreams, budgetReservations],
  evolve
}

/** Every budget stream, sessions first, then by stream name. */
export const listBudgets = (
  db: ProjectionStoreApi,
  filter: { readonly scope?: BudgetScope } = {}
): Effect.Effect<ReadonlyArray<BudgetStreamRow>, ProjectionError> =>
  filter.scope === undefined
    ? db.select(budgetStreams, `SELECT * FROM budget_streams ORDER BY scope, stream`)
    : db.select(budgetStreams, `SELECT * FROM budget_streams WHERE scope = ? ORDER BY stream`, [filter.scope])

export const getBudget = (db: ProjectionStoreApi, stream: string): Effect.Effect<Option.Option<BudgetStreamRow>, ProjectionError> =>
  db.select(budgetStreams, `SELECT * FROM budget_streams WHERE stream = ?`, [stream]).pipe(Effect.map((rows) => Option.fromNullable(rows[0])))

/** Reservations not yet committed or released, oldest first. */
export const listActiveReservations = (
  db: ProjectionStoreApi,
  filter: { readonly stream?: string } = {}
): Effect.Effect<ReadonlyArray<BudgetReservationRow>, ProjectionError> =>
  filter.stream === undefined
    ? db.select(budgetReservations, `SELECT * FROM budget_reservations WHERE status = 'active' ORDER BY reserved_position`)
    : db.select(budgetReservations, `SELECT * FROM budget_reservations WHERE status = 'active' AND stream = ? ORDER BY reserved_position`, [
        filter.stream
      ])
