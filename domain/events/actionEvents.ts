/**
 * A proposed action and its one terminal decision (I2): allowed with its proof, denied with the stage
 * and reason, or deferred to the approval queue.
 */
import { Schema } from "effect"

export const RiskLevel = Schema.Literal("low", "medium", "high", "critical")
export const Stage = Schema.Literal("policy", "token", "budget", "approval", "audit")

export const ActionProposed = Schema.TaggedStruct("ActionProposed", {
  actionId: Schema.String,
  kind: Schema.String,
  resource: Schema.String,
  risk: RiskLevel,
  summary: Schema.String,
  arguments: Schema.Unknown,
  estimatedCostMicros: Schema.NonNegativeInt
})

/** What allowed an action: a policy rule, a capability token, a standing allowance, or a human answer. */
export const DecisionProof = Schema.Union(
  Schema.TaggedStruct("PolicyAllowed", { rule: Schema.String }),
  Schema.TaggedStruct("TokenCovered", { tokenId: Schema.String, tokenHash: Schema.String }),
  Schema.TaggedStruct("AllowanceCovered", { allowanceEventId: Schema.String, scope: Schema.Literal("session", "workspace") }),
  Schema.TaggedStruct("HumanApproved", { approvalEventId: Schema.String, approver: Schema.String })
)

export const ActionAllowed = Schema.TaggedStruct("ActionAllowed", {
  actionId: Schema.String,
  proof: DecisionProof
})

export const ActionDenied = Schema.TaggedStruct("ActionDenied", {
  actionId: Schema.String,
  stage: Stage,
  reason: Schema.String,
  remedy: Schema.NullOr(Schema.String)
})

export const ActionDeferred = Schema.TaggedStruct("ActionDeferred", {
  actionId: Schema.String,
  requestId: Schema.String,
  priority: Schema.Int,
  reason: Schema.Literal("no_channel", "channel_unavailable", "timeout")
})

/** The outcome of running an allowed action. Its output is untrusted content. */
export const ToolResultRecorded = Schema.TaggedStruct("ToolResultRecorded", {
  actionId: Schema.String,
  tool: Schema.String,
  ok: Schema.Boolean,
  output: Schema.String,
  truncated: Schema.Boolean,
  durationMs: Schema.NonNegativeInt
})
