/** Human answers, standing allowances and the deferred-approval queue. */
import { Schema } from "effect"

export const ApprovalScope = Schema.Literal("once", "session", "workspace", "always")
export type ApprovalScope = typeof ApprovalScope.Type

export const ApprovalRequested = Schema.TaggedStruct("ApprovalRequested", {
  requestId: Schema.String,
  actionId: Schema.String,
  channel: Schema.String
})

export const ApprovalGranted = Schema.TaggedStruct("ApprovalGranted", {
  requestId: Schema.String,
  actionId: Schema.String,
  scope: ApprovalScope,
  approver: Schema.String
})

export const ApprovalRefused = Schema.TaggedStruct("ApprovalRefused", {
  requestId: Schema.String,
  actionId: Schema.String,
  approver: Schema.String,
  reason: Schema.NullOr(Schema.String)
})

/** A standing allowance for the rest of a session or for a workspace, created by an approval. */
export const AllowanceGranted = Schema.TaggedStruct("AllowanceGranted", {
  allowanceId: Schema.String,
  scope: Schema.Literal("session", "workspace"),
  principal: Schema.String,
  actionKind: Schema.String,
  /** The resource URI (or, for commands, the exact command line) the allowance covers. */
  pattern: Schema.String,
  approvalEventId: Schema.String
})

/**
 * The tool call behind a deferred action: the tool's name and the input the model gave it (which decoded),
 * so that a worker can run exactly what was judged once the action is approved.
 */
export const DeferredToolCall = Schema.Struct({ tool: Schema.String, input: Schema.Unknown })
export type DeferredToolCall = typeof DeferredToolCall.Type

/**
 * A deferred action entered the queue (on the approvals stream). It carries everything needed to
 * re-check the action when someone resolves it: the principal, workspace and the request itself, and,
 * for a tool call, what a worker runs once it is approved. `toolCall` is optional only so that events
 * written before it existed still decode.
 */
export const DeferredActionQueued = Schema.TaggedStruct("DeferredActionQueued", {
  requestId: Schema.String,
  sessionId: Schema.String,
  actionId: Schema.String,
  principal: Schema.String,
  workspace: Schema.String,
  request: Schema.Unknown,
  estimatedCostMicros: Schema.NonNegativeInt,
  priority: Schema.Int,
  summary: Schema.String,
  risk: Schema.String,
  reason: Schema.Literal("no_channel", "channel_unavailable", "timeout"),
  toolCall: Schema.optionalWith(DeferredToolCall, { exact: true })
})

/** A queued action was resolved, once (I2). */
export const DeferredActionResolved = Schema.TaggedStruct("DeferredActionResolved", {
  requestId: Schema.String,
  outcome: Schema.Literal("approved", "denied", "expired"),
  scope: Schema.NullOr(ApprovalScope),
  resolver: Schema.String,
  reason: Schema.NullOr(Schema.String)
})

/**
 * A worker took an approved deferred action to run it. Appended on the approvals stream at the revision
 * the worker read, so of two workers racing only one claims it: the action runs at most once (I2), and its
 * result is the ToolResultRecorded with the same actionId on the session stream.
 */
export const DeferredActionClaimed = Schema.TaggedStruct("DeferredActionClaimed", {
  requestId: Schema.String,
  actionId: Schema.String,
  worker: Schema.String
})
