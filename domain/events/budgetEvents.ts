/**
 * Budget movements, in integer micro-dollars (never floats): reserve, then commit or release.
 * Reservations on a session stream and on a workspace stream are paired by `reservationId`.
 */
import { Schema } from "effect"

export const Micros = Schema.NonNegativeInt

export const BudgetReserved = Schema.TaggedStruct("BudgetReserved", {
  reservationId: Schema.String,
  actionId: Schema.String,
  amountMicros: Micros
})

export const BudgetCommitted = Schema.TaggedStruct("BudgetCommitted", {
  reservationId: Schema.String,
  amountMicros: Micros
})

export const BudgetReleased = Schema.TaggedStruct("BudgetReleased", {
  reservationId: Schema.String,
  reason: Schema.Literal("denied", "cancelled", "failed", "compensation", "actual_lower")
})

/** Tokens a model call used and what they cost at the configured price. */
export const LlmUsageRecorded = Schema.TaggedStruct("LlmUsageRecorded", {
  provider: Schema.String,
  model: Schema.String,
  inputTokens: Schema.NonNegativeInt,
  outputTokens: Schema.NonNegativeInt,
  costMicros: Micros
})
