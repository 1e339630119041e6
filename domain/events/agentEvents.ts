/**
 * Events of agents themselves: sub-agents a session spawned (recorded on the parent's session stream, so
 * the parent's log says which child sessions acted on its behalf and what they cost), and the agent's
 * identity ("spark"), which lives on a stream of its own per principal.
 */
import { Schema } from "effect"
import { Micros } from "./budgetEvents.js"

/** A child agent was started in session `childSessionId`, with the narrowed permissions it was given. */
export const SubAgentStarted = Schema.TaggedStruct("SubAgentStarted", {
  childSessionId: Schema.String,
  description: Schema.String,
  /** Tool names the child may call: always a subset of the parent's. */
  tools: Schema.Array(Schema.String),
  /** Path globs the child is confined to; empty: the parent's own policy, unchanged. */
  paths: Schema.Array(Schema.String),
  /** The child's session budget, carved out of (and reserved on) the parent's. */
  budgetMicros: Micros,
  timeoutSeconds: Schema.NonNegativeInt,
  /** 1 for a child of a top-level session, 2 for a grandchild... */
  depth: Schema.NonNegativeInt,
  /** The parent's BudgetReserved holding the carve-out. */
  reservationId: Schema.String
})

/**
 * How a child ended. "abandoned": the process running it died before it finished, and a later turn of the
 * parent settled it (settleAbandonedChildren). Added later; events without it decode as before.
 */
export const SubAgentOutcome = Schema.Literal("completed", "max_steps", "budget", "timed_out", "failed", "cancelled", "abandoned")
export type SubAgentOutcome = typeof SubAgentOutcome.Type

/** The child's turn ended; `costMicros` is what it spent, committed on the parent's reservation. */
export const SubAgentFinished = Schema.TaggedStruct("SubAgentFinished", {
  childSessionId: Schema.String,
  outcome: SubAgentOutcome,
  costMicros: Micros,
  detail: Schema.NullOr(Schema.String)
})

/** The fields of an agent's identity; every one is optional until first set. */
export const IdentityFields = Schema.Struct({
  callsign: Schema.optionalWith(Schema.String, { exact: true }),
  class: Schema.optionalWith(Schema.String, { exact: true }),
  aura: Schema.optionalWith(Schema.String, { exact: true }),
  signal: Schema.optionalWith(Schema.String, { exact: true }),
  core: Schema.optionalWith(Schema.String, { exact: true })
})
export type IdentityFields = typeof IdentityFields.Type

/** The identity changed: the fields set by this change, and what those fields held before (absent: unset). */
export const IdentityEvolved = Schema.TaggedStruct("IdentityEvolved", {
  changes: IdentityFields,
  previous: IdentityFields
})
