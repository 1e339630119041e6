/**
 * Sessions view: one row per session stream (`astrid-session-<id>`) with who owns it, where and with
 * which model it ran, when it started and was last active, how much it talked, called tools and spent,
 * and whether it is active, ended (with the reason) or deleted.
 *
 * The owner is the envelope principal of SessionStarted; a stream that has none (a session the
 * interceptor recorded without the agent loop) is owned by the principal of its first event. Deletion is
 * `SessionEnded{reason: "deleted"}`: it hides the session from listings, the events stay. A deletion is
 * final (the first one is kept); another end is replaced by a later user message, which resumes the
 * session. Spend, in integer micro-dollars, counts each thing once: the model usage priced in
 * LlmUsageRecorded (`llm_cost_micros`), the budget committed for tool and capsule actions
 * (`committed_micros`), and the budget committed on the carve-outs of sub-agents this session started
 * (`subagent_micros`: what each child spent, its own model calls included). A model call also reserves and
 * commits on the session stream (its BudgetReserved actionId starts with `llm-`); that commit is the same
 * money as its LlmUsageRecorded, so it is not counted again. To tell commits apart, every reservation on
 * a session stream is kept in `session_reservations` with what it was for.
 *
 * `summarizeSession` folds one stream's events with the same `evolve` in memory, so a command that reads
 * the stream itself (authoritative, never behind) and the view agree by construction.
 */
import { Effect, Option, Schema } from "effect"
import type { RecordedEvent } from "../domain/envelope.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { STREAM_PREFIX } from "../domain/streams.js"
import { defineTable, envelopeOf, type Projection, type ViewChange, type ViewReader, upsert } from "./projection.js"
import type { ProjectionError, ProjectionStoreApi } from "./sqliteProjectionStore.js"

export const SessionStatus = Schema.Literal("active", "ended", "deleted")
export type SessionStatus = typeof SessionStatus.Type

const Count = Schema.NonNegativeInt

export const sessions = defineTable({
  name: "sessions",
  row: Schema.Struct({
    session_id: Schema.String,
    principal: Schema.String,
    workspace: Schema.NullOr(Schema.String),
    parent_session_id: Schema.NullOr(Schema.String),
    model: Schema.NullOr(Schema.String),
    /** When SessionStarted was recorded, else the first event of the stream. */
    started_at: Schema.String,
    last_activity_at: Schema.String,
    first_position: Count,
    last_position: Count,
    /** Events on the stream, of every type. */
    events: Count,
    /** User and assistant messages: the conversation a person reads (tool and system messages are the runtime's). */
    messages: Count,
    /** Actions proposed (every tool call that reached the interceptor), and how many were denied or deferred. */
    tool_calls: Count,
    denied: Count,
    deferred: Count,
    input_tokens: Count,
    output_tokens: Count,
    llm_cost_micros: Count,
    /** Committed for tool and capsule actions (not model calls, not sub-agents). */
    committed_micros: Count,
    /** Committed on the carve-outs of this session's sub-agents: what they spent. */
    subagent_micros: Count,
    status: SessionStatus,
    /** The SessionEnded reason (completed, cancelled, failed, expired, deleted) while the session is ended or deleted. */
    end_reason: Schema.NullOr(Schema.String),
    end_detail: Schema.NullOr(Schema.String),
    ended_at: Schema.NullOr(Schema.String),
    ended_by: Schema.NullOr(Schema.String),
    /** Whether the stream has a SessionStarted (0 or 1). */
    has_start: Schema.Literal(0, 1)
  }),
  columns: {
    session_id: "TEXT",
    principal: "TEXT",
    workspace: "TEXT NULL",
    parent_session_id: "TEXT NULL",
    model: "TEXT NULL",
    started_at: "TEXT",
    last_activity_at: "TEXT",
    first_position: "INTEGER",
    last_position: "INTEGER",
    events: "INTEGER",
    messages: "INTEGER",
    tool_calls: "INTEGER",
    denied: "INTEGER",
    deferred: "INTEGER",
    input_tokens: "INTEGER",
    output_tokens: "INTEGER",
    llm_cost_micros: "INTEGER",
    committed_micros: "INTEGER",
    subagent_micros: "INTEGER",
    status: "TEXT",
    end_reason: "TEXT NULL",
    end_detail: "TEXT NULL",
    ended_at: "TEXT NULL",
    ended_by: "TEXT NULL",
    has_start: "INTEGER"
  },
  primaryKey: ["session_id"],
  indexes: [
    ["principal", "started_at"],
    ["principal", "status", "last_activity_at"]
  ]
})
export type SessionRow = typeof sessions.row.Type

const ReservationKind = Schema.Literal("model", "subagent", "tool")
type ReservationKind = typeof ReservationKind.Type

/** The reservations on a session's stream and what each was for: a model call, a sub-agent's carve-out, a tool action. */
export const sessionReservations = defineTable({
  name: "session_reservations",
  row: Schema.Struct({ session_id: Schema.String, reservation_id: Schema.String, kind: ReservationKind }),
  columns: { session_id: "TEXT", reservation_id: "TEXT", kind: "TEXT" },
  primaryKey: ["session_id", "reservation_id"]
})

/** The actionId prefixes of the reservations a model call (agentLoop.ts) and a sub-agent (subAgents.ts) take. */
const MODEL_CALL_PREFIX = "llm-"
const SUBAGENT_PREFIX = "subagent-"

const kindOfAction = (actionId: string): ReservationKind =>
  actionId.startsWith(MODEL_CALL_PREFIX) ? "model" : actionId.startsWith(SUBAGENT_PREFIX) ? "subagent" : "tool"

const SESSION_PREFIX = `${STREAM_PREFIX}session-`

/** The session id of a session stream, undefined for any other stream. */
export const sessionIdOfStream = (stream: string): string | undefined =>
  stream.startsWith(SESSION_PREFIX) && stream.length > SESSION_PREFIX.length ? stream.slice(SESSION_PREFIX.length) : undefined

/** Total spend of a session in micro-dollars. */
export const spendMicros = (row: SessionRow): number => row.llm_cost_micros + row.committed_micros + row.subagent_micros

const evolve = (view: ViewReader, event: AstridEvent, recorded: RecordedEvent): ReadonlyArray<ViewChange> => {
  const sessionId = sessionIdOfStream(recorded.stream)
  if (sessionId === undefined) return []
  const envelope = envelopeOf(recorded)
  const at = Option.getOrElse(Option.map(envelope, (m) => m.occurredAt), () => "")
  const by = Option.getOrElse(Option.map(envelope, (m) => m.principal), () => "?")
  const previous = view.get(sessions, { session_id: sessionId })
  const base: SessionRow = previous ?? {
    session_id: sessionId,
    principal: by,
    workspace: null,
    parent_session_id: null,
    model: null,
    started_at: at,
    last_activity_at: at,
    first_position: recorded.position,
    last_position: recorded.position,
    events: 0,
    messages: 0,
    tool_calls: 0,
    denied: 0,
    deferred: 0,
    input_tokens: 0,
    output_tokens: 0,
    llm_cost_micros: 0,
    committed_micros: 0,
    subagent_micros: 0,
    status: "active",
    end_reason: null,
    end_detail: null,
    ended_at: null,
    ended_by: null,
    has_start: 0
  }
  // Activity is what the session did; a deletion or an end is not activity, or cleanup would never age it.
  const row: SessionRow = {
    ...base,
    events: base.events + 1,
    last_position: recorded.position,
    last_activity_at: event._tag === "SessionEnded" || at === "" ? base.last_activity_at : at
  }
  switch (event._tag) {
    case "SessionStarted":
      if (row.has_start === 1) return [upsert(sessions, row)]
      return [
        upsert(sessions, {
          ...row,
          principal: by,
          workspace: event.workspace,
          parent_session_id: event.parentSessionId,
          model: event.model,
          started_at: at === "" ? row.started_at : at,
          has_start: 1
        })
      ]
    case "SessionEnded": {
      if (row.status === "deleted") return [upsert(sessions, row)]
      return [
        upsert(sessions, {
          ...row,
          status: event.reason === "deleted" ? "deleted" : "ended",
          end_reason: event.reason,
          end_detail: event.detail,
          ended_at: at === "" ? null : at,
          ended_by: by
        })
      ]
    }
    case "MessageRecorded": {
      const counted = event.role === "user" || event.role === "assistant"
      const resumes = event.role === "user" && row.status === "ended"
      return [
        upsert(sessions, {
          ...row,
          messages: row.messages + (counted ? 1 : 0),
          ...(resumes ? { status: "active" as const, end_reason: null, end_detail: null, ended_at: null, ended_by: null } : {})
        })
      ]
    }
    case "ActionProposed":
      return [upsert(sessions, { ...row, tool_calls: row.tool_calls + 1 })]
    case "ActionDenied":
      return [upsert(sessions, { ...row, denied: row.denied + 1 })]
    case "ActionDeferred":
      return [upsert(sessions, { ...row, deferred: row.deferred + 1 })]
    case "LlmUsageRecorded":
      return [
        upsert(sessions, {
          ...row,
          input_tokens: row.input_tokens + event.inputTokens,
          output_tokens: row.output_tokens + event.outputTokens,
          llm_cost_micros: row.llm_cost_micros + event.costMicros
        })
      ]
    case "BudgetReserved":
      return [upsert(sessions, row), upsert(sessionReservations, { session_id: sessionId, reservation_id: event.reservationId, kind: kindOfAction(event.actionId) })]
    case "SubAgentStarted":
      // Its carve-out, whatever the reservation's actionId: the link the sub-agent records is authoritative.
      return [upsert(sessions, row), upsert(sessionReservations, { session_id: sessionId, reservation_id: event.reservationId, kind: "subagent" })]
    case "BudgetCommitted": {
      // A commit without a reservation on this stream (none should exist) is counted as tool spend.
      const kind = view.get(sessionReservations, { session_id: sessionId, reservation_id: event.reservationId })?.kind ?? "tool"
      const counted: SessionRow =
        kind === "model"
          ? row // already counted, priced, in its LlmUsageRecorded
          : kind === "subagent"
            ? { ...row, subagent_micros: row.subagent_micros + event.amountMicros }
            : { ...row, committed_micros: row.committed_micros + event.amountMicros }
      return [upsert(sessions, counted)]
    }
    default:
      return [upsert(sessions, row)]
  }
}

export const sessionsView: Projection = {
  name: "sessions",
  // 2: model-call commits no longer counted as tool spend; sub-agent carve-outs counted on their own.
  version: 2,
  tables: [sessions, sessionReservations],
  evolve
}

const decodeRow = Schema.decodeUnknownSync(sessions.row)

/**
 * The view row of one session, folded in memory from its stream's events, skipping events this build
 * cannot decode (undefined) as the runner does. None when no event of the stream was folded.
 */
export const summarizeSession = (events: ReadonlyArray<{ readonly recorded: RecordedEvent; readonly event: AstridEvent | undefined }>): Option.Option<SessionRow> => {
  // The view's tables held in memory, rows encoded as the store holds them, keyed by table and primary key.
  const rows = new Map<string, Readonly<Record<string, unknown>>>()
  const keyOf = (table: string, values: ReadonlyArray<unknown>) => JSON.stringify([table, ...values])
  const primaryKeys = new Map(sessionsView.tables.map((t) => [t.name, t.primaryKey]))
  const reader: ViewReader = {
    get: (table, key) => {
      const encoded = rows.get(keyOf(table.name, table.primaryKey.map((c) => Reflect.get(key, c))))
      return encoded === undefined ? undefined : Schema.decodeUnknownSync(table.row)(encoded)
    }
  }
  let sessionKey: string | undefined
  for (const { recorded, event } of events) {
    if (event === undefined) continue
    for (const change of evolve(reader, event, recorded)) {
      const pk = primaryKeys.get(change.table) ?? []
      const source = change._tag === "Upsert" ? change.row : change.key
      const key = keyOf(change.table, pk.map((c) => source[c]))
      if (change._tag === "Upsert") rows.set(key, change.row)
      else rows.delete(key)
      if (change.table === sessions.name) sessionKey = key
    }
  }
  const encoded = sessionKey === undefined ? undefined : rows.get(sessionKey)
  return encoded === undefined ? Option.none() : Option.some(decodeRow(encoded))
}

export interface SessionFilter {
  readonly principal: string
  /** Include deleted sessions (default: hidden). */
  readonly includeDeleted?: boolean
}

/** A principal's sessions, newest first (by when they started; the later in the log among equal times). */
export const listSessions = (db: ProjectionStoreApi, filter: SessionFilter): Effect.Effect<ReadonlyArray<SessionRow>, ProjectionError> =>
  filter.includeDeleted === true
    ? db.select(sessions, `SELECT * FROM sessions WHERE principal = ? ORDER BY started_at DESC, first_position DESC`, [filter.principal])
    : db.select(sessions, `SELECT * FROM sessions WHERE principal = ? AND status <> 'deleted' ORDER BY started_at DESC, first_position DESC`, [filter.principal])

export const getSession = (db: ProjectionStoreApi, sessionId: string): Effect.Effect<Option.Option<SessionRow>, ProjectionError> =>
  db.select(sessions, `SELECT * FROM sessions WHERE session_id = ?`, [sessionId]).pipe(Effect.map((rows) => Option.fromNullable(rows[0])))

/** A principal's sessions (deleted ones too) whose id starts with `prefix`. */
export const sessionsByPrefix = (db: ProjectionStoreApi, principal: string, prefix: string): Effect.Effect<ReadonlyArray<SessionRow>, ProjectionError> =>
  db.select(sessions, `SELECT * FROM sessions WHERE principal = ? AND substr(session_id, 1, ?) = ? ORDER BY started_at DESC, first_position DESC`, [
    principal,
    prefix.length,
    prefix
  ])

/** A principal's sessions not deleted whose last activity is before `before` (an ISO time), oldest first. */
export const inactiveSessions = (db: ProjectionStoreApi, principal: string, before: string): Effect.Effect<ReadonlyArray<SessionRow>, ProjectionError> =>
  db.select(sessions, `SELECT * FROM sessions WHERE principal = ? AND status <> 'deleted' AND last_activity_at < ? ORDER BY last_activity_at, session_id`, [
    principal,
    before
  ])
