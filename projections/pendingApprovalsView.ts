/**
 * Pending approvals view: every deferred action queued (DeferredActionQueued), pending until its one
 * DeferredActionResolved, then kept with its outcome. A request is queued once and resolved once (I2):
 * a repeated queue entry or a second resolution leaves the first in place.
 *
 * The principal is the action's owner: the event's own `principal` field where the event has one, else
 * the envelope's. Queries filter by it, so one principal never lists another's requests (I7).
 */
import { Effect, Option, Schema } from "effect"
import type { RecordedEvent } from "../domain/envelope.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { defineTable, envelopeOf, optionalInt, optionalString, type Projection, type ViewChange, type ViewReader, upsert } from "./projection.js"
import type { ProjectionError, ProjectionStoreApi } from "./sqliteProjectionStore.js"

export const RequestStatus = Schema.Literal("pending", "resolved")

export const approvalRequests = defineTable({
  name: "approval_requests",
  row: Schema.Struct({
    request_id: Schema.String,
    session_id: Schema.String,
    action_id: Schema.String,
    principal: Schema.String,
    priority: Schema.Int,
    summary: Schema.String,
    risk: Schema.NullOr(Schema.String),
    workspace: Schema.NullOr(Schema.String),
    defer_reason: Schema.NullOr(Schema.String),
    estimated_cost_micros: Schema.NullOr(Schema.NonNegativeInt),
    queued_at: Schema.String,
    queued_position: Schema.NonNegativeInt,
    stream: Schema.String,
    status: RequestStatus,
    outcome: Schema.NullOr(Schema.String),
    scope: Schema.NullOr(Schema.String),
    resolver: Schema.NullOr(Schema.String),
    resolution_reason: Schema.NullOr(Schema.String),
    resolved_at: Schema.NullOr(Schema.String),
    resolved_position: Schema.NullOr(Schema.NonNegativeInt)
  }),
  columns: {
    request_id: "TEXT",
    session_id: "TEXT",
    action_id: "TEXT",
    principal: "TEXT",
    priority: "INTEGER",
    summary: "TEXT",
    risk: "TEXT NULL",
    workspace: "TEXT NULL",
    defer_reason: "TEXT NULL",
    estimated_cost_micros: "INTEGER NULL",
    queued_at: "TEXT",
    queued_position: "INTEGER",
    stream: "TEXT",
    status: "TEXT",
    outcome: "TEXT NULL",
    scope: "TEXT NULL",
    resolver: "TEXT NULL",
    resolution_reason: "TEXT NULL",
    resolved_at: "TEXT NULL",
    resolved_position: "INTEGER NULL"
  },
  primaryKey: ["request_id"],
  indexes: [
    ["status", "priority", "queued_position"],
    ["principal", "status"]
  ]
})
export type ApprovalRequestRow = typeof approvalRequests.row.Type

const evolve = (view: ViewReader, event: AstridEvent, recorded: RecordedEvent): ReadonlyArray<ViewChange> => {
  switch (event._tag) {
    case "DeferredActionQueued": {
      if (view.get(approvalRequests, { request_id: event.requestId }) !== undefined) return []
      const envelope = envelopeOf(recorded)
      return [
        upsert(approvalRequests, {
          request_id: event.requestId,
          session_id: event.sessionId,
          action_id: event.actionId,
          principal: optionalString(event, "principal") ?? Option.getOrElse(Option.map(envelope, (m) => m.principal), () => "?"),
          priority: event.priority,
          summary: event.summary,
          risk: optionalString(event, "risk") ?? null,
          workspace: optionalString(event, "workspace") ?? null,
          defer_reason: optionalString(event, "reason") ?? null,
          estimated_cost_micros: optionalInt(event, "estimatedCostMicros") ?? null,
          queued_at: Option.getOrElse(Option.map(envelope, (m) => m.occurredAt), () => ""),
          queued_position: recorded.position,
          stream: recorded.stream,
          status: "pending",
          outcome: null,
          scope: null,
          resolver: null,
          resolution_reason: null,
          resolved_at: null,
          resolved_position: null
        })
      ]
    }
    case "DeferredActionResolved": {
      const r = view.get(approvalRequests, { request_id: event.requestId })
      if (r === undefined || r.status === "resolved") return []
      return [
        upsert(approvalRequests, {
          ...r,
          status: "resolved",
          outcome: optionalString(event, "outcome") ?? null,
          scope: optionalString(event, "scope") ?? null,
          resolver: optionalString(event, "resolver") ?? null,
          resolution_reason: optionalString(event, "reason") ?? null,
          resolved_at: Option.getOrNull(Option.map(envelopeOf(recorded), (m) => m.occurredAt)),
          resolved_position: recorded.position
        })
      ]
    }
    default:
      return []
  }
}

export const pendingApprovalsView: Projection = {
  name: "pending-approvals",
  version: 1,
  tables: [approvalRequests],
  evolve
}

export interface RequestFilter {
  readonly principal?: string
}

const principalClause = (filter: RequestFilter): { sql: string; params: Array<string> } =>
  filter.principal === undefined ? { sql: "", params: [] } : { sql: " AND principal = ?", params: [filter.principal] }

/** Requests still waiting, highest priority first, then oldest first. */
export const listPending = (db: ProjectionStoreApi, filter: RequestFilter = {}): Effect.Effect<ReadonlyArray<ApprovalRequestRow>, ProjectionError> => {
  const p = principalClause(filter)
  return db.select(
    approvalRequests,
    `SELECT * FROM approval_requests WHERE status = 'pending'${p.sql} ORDER BY priority DESC, queued_position ASC`,
    p.params
  )
}

/** Resolved requests, most recently resolved first. */
export const listResolved = (
  db: ProjectionStoreApi,
  filter: RequestFilter & { readonly limit?: number } = {}
): Effect.Effect<ReadonlyArray<ApprovalRequestRow>, ProjectionError> => {
  const p = principalClause(filter)
  const limit = filter.limit !== undefined && Number.isSafeInteger(filter.limit) && filter.limit > 0 ? filter.limit : -1
  return db.select(
    approvalRequests,
    `SELECT * FROM approval_requests WHERE status = 'resolved'${p.sql} ORDER BY resolved_position DESC LIMIT ?`,
    [...p.params, limit]
  )
}

/** One request, pending or resolved. Callers check its principal against the asker's (I7). */
export const getRequest = (db: ProjectionStoreApi, requestId: string): Effect.Effect<Option.Option<ApprovalRequestRow>, ProjectionError> =>
  db.select(approvalRequests, "SELECT * FROM approval_requests WHERE request_id = ?", [requestId]).pipe(
    Effect.map((rows) => Option.fromNullable(rows[0]))
  )
