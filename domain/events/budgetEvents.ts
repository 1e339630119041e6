/**
 * Budget movements, in integer micro-dollars (never floats): reserve, then commit or release.
 * Reservations on a session stream and on a workspace stream are paired by `reservationId`.
 */
import { Schema } from "effect"

export const Micros = Schema.NonNegativeInt

/** Which budget a stream's movements count against: a session stream's or a workspace stream's. */
export const BudgetScope = Schema.Literal("session", "workspace")
export type BudgetScope = typeof BudgetScope.Type

/**
 * `limitMicros` and `scope` record the limit the reservation was checked against, so an auditor can
 * re-check I4 from the log alone. Optional only so that events written before they existed still decode.
 */
export const BudgetReserved = Schema.TaggedStruct("BudgetReserved", {
  reservationId: Schema.String,
  actionId: Schema.String,
  amountMicros: Micros,
  limitMicros: Schema.optionalWith(Micros, { exact: true }),
  scope: Schema.optionalWith(BudgetScope, { exact: true })
})

/**
 * Settles a reservation at what the action really cost, charged in full. When that is more than was
 * reserved, `overrunMicros` says by how much: that part is charged at once on top of the reservation, so
 * `spent` may end above the limit by it, and the next reservation sees it. Absent when the cost fit
 * (also in events written before overruns were charged, whose amount never exceeded the reservation).
 */
export const BudgetCommitted = Schema.TaggedStruct("BudgetCommitted", {
  reservationId: Schema.String,
  amountMicros: Micros,
  overrunMicros: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
})

export const ReleaseReason = Schema.Literal("denied", "cancelled", "failed", "compensation", "actual_lower")
export type ReleaseReason = typeof ReleaseReason.Type

/**
 * Closes a reservation, giving back what is left of it (`amountMicros`: all of it, or after a lower
 * commit the difference). Optional only so that events written before it existed still decode.
 */
export const BudgetReleased = Schema.TaggedStruct("BudgetReleased", {
  reservationId: Schema.String,
  reason: ReleaseReason,
  amountMicros: Schema.optionalWith(Micros, { exact: true })
})

/** Tokens a model call used and what they cost at the configured price. */
export const LlmUsageRecorded = Schema.TaggedStruct("LlmUsageRecorded", {
  provider: Schema.String,
  model: Schema.String,
  inputTokens: Schema.NonNegativeInt,
  outputTokens: Schema.NonNegativeInt,
  costMicros: Micros
})
