/**
 * The catalogue of event types. An event is `{ _tag, ...data }`; a store keeps `_tag` as the event's
 * `type` and the other fields as its `data`.
 */
import { Schema } from "effect"
import { IdentityEvolved, SubAgentFinished, SubAgentStarted } from "./agentEvents.js"
import { ActionAllowed, ActionDeferred, ActionDenied, ActionProposed, ToolResultRecorded } from "./actionEvents.js"
import {
  AllowanceGranted,
  ApprovalGranted,
  ApprovalRefused,
  ApprovalRequested,
  DeferredActionClaimed,
  DeferredActionQueued,
  DeferredActionResolved
} from "./approvalEvents.js"
import { CheckpointSigned, RuntimeKeyGenerated } from "./auditEvents.js"
import { BudgetCommitted, BudgetReleased, BudgetReserved, LlmUsageRecorded } from "./budgetEvents.js"
import { MessageRecorded, SessionEnded, SessionStarted } from "./sessionEvents.js"
import { CapabilityTokenGranted, CapabilityTokenRevoked, CapabilityTokenUsed } from "./tokenEvents.js"

export const AstridEvent = Schema.Union(
  CheckpointSigned,
  RuntimeKeyGenerated,
  SessionStarted,
  SessionEnded,
  MessageRecorded,
  ActionProposed,
  ActionAllowed,
  ActionDenied,
  ActionDeferred,
  ToolResultRecorded,
  ApprovalRequested,
  ApprovalGranted,
  ApprovalRefused,
  AllowanceGranted,
  DeferredActionQueued,
  DeferredActionResolved,
  DeferredActionClaimed,
  CapabilityTokenGranted,
  CapabilityTokenUsed,
  CapabilityTokenRevoked,
  BudgetReserved,
  BudgetCommitted,
  BudgetReleased,
  LlmUsageRecorded,
  SubAgentStarted,
  SubAgentFinished,
  IdentityEvolved
)
export type AstridEvent = typeof AstridEvent.Type
export type EventType = AstridEvent["_tag"]


/** Splits an event into the `type` and `data` a store records. */
export const splitEvent = (event: Record<string, unknown> & { readonly _tag: string }): { type: string; data: Record<string, unknown> } => {
  const { _tag, ...data } = event
  return { type: _tag, data }
}
