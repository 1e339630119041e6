/**
 * Tokens view: every capability token granted, with its fields and its state from the log: active,
 * used (a single-use token once used) or revoked (which wins over used). Expiry is not state: it depends
 * on the clock, so queries take `now` and a view holds only what events say.
 */
import { Effect, Option, Schema } from "effect"
import type { RecordedEvent } from "../domain/envelope.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { defineTable, envelopeOf, optionalString, type Projection, type ViewChange, type ViewReader, upsert } from "./projection.js"
import type { ProjectionError, ProjectionStoreApi } from "./sqliteProjectionStore.js"

export const TokenStatus = Schema.Literal("active", "used", "revoked")
export type TokenStatus = typeof TokenStatus.Type

/** SQLite has no booleans: 0 or 1. */
const BooleanInt = Schema.transform(Schema.Literal(0, 1), Schema.Boolean, {
  strict: true,
  decode: (n) => n === 1,
  encode: (b) => (b ? 1 : 0)
})

export const tokens = defineTable({
  name: "tokens",
  row: Schema.Struct({
    token_id: Schema.String,
    principal: Schema.String,
    resource: Schema.String,
    permissions: Schema.parseJson(Schema.Array(Schema.String)),
    issued_at: Schema.String,
    expires_at: Schema.String,
    single_use: BooleanInt,
    issuer: Schema.String,
    approval_event_id: Schema.String,
    status: TokenStatus,
    use_count: Schema.NonNegativeInt,
    /** The first use: for a single-use token, the one that used it up. */
    used_at: Schema.NullOr(Schema.String),
    used_by_action_id: Schema.NullOr(Schema.String),
    used_by_session_id: Schema.NullOr(Schema.String),
    revoked_at: Schema.NullOr(Schema.String),
    revoked_by: Schema.NullOr(Schema.String),
    revoked_reason: Schema.NullOr(Schema.String),
    stream: Schema.String,
    granted_event_id: Schema.String,
    granted_position: Schema.NonNegativeInt
  }),
  columns: {
    token_id: "TEXT",
    principal: "TEXT",
    resource: "TEXT",
    permissions: "TEXT",
    issued_at: "TEXT",
    expires_at: "TEXT",
    single_use: "INTEGER",
    issuer: "TEXT",
    approval_event_id: "TEXT",
    status: "TEXT",
    use_count: "INTEGER",
    used_at: "TEXT NULL",
    used_by_action_id: "TEXT NULL",
    used_by_session_id: "TEXT NULL",
    revoked_at: "TEXT NULL",
    revoked_by: "TEXT NULL",
    revoked_reason: "TEXT NULL",
    stream: "TEXT",
    granted_event_id: "TEXT",
    granted_position: "INTEGER"
  },
  primaryKey: ["token_id"],
  indexes: [["principal", "granted_position"]]
})
export type TokenRow = typeof tokens.row.Type

const occurredAt = (recorded: RecordedEvent): string | null => Option.getOrNull(Option.map(envelopeOf(recorded), (m) => m.occurredAt))

const evolve = (view: ViewReader, event: AstridEvent, recorded: RecordedEvent): ReadonlyArray<ViewChange> => {
  switch (event._tag) {
    case "CapabilityTokenGranted": {
      const t = event.token
      // A token id is granted once; a repeat (which the tokens service never writes) must not reset its state.
      if (view.get(tokens, { token_id: t.tokenId }) !== undefined) return []
      return [
        upsert(tokens, {
          token_id: t.tokenId,
          principal: t.principal,
          resource: t.resource,
          permissions: t.permissions,
          issued_at: t.issuedAt,
          expires_at: t.expiresAt,
          single_use: t.singleUse,
          issuer: t.issuer,
          approval_event_id: t.approvalEventId,
          status: "active",
          use_count: 0,
          used_at: null,
          used_by_action_id: null,
          used_by_session_id: null,
          revoked_at: null,
          revoked_by: null,
          revoked_reason: null,
          stream: recorded.stream,
          granted_event_id: recorded.eventId,
          granted_position: recorded.position
        })
      ]
    }
    case "CapabilityTokenUsed": {
      const t = view.get(tokens, { token_id: event.tokenId })
      if (t === undefined) return []
      const first = t.use_count === 0
      return [
        upsert(tokens, {
          ...t,
          use_count: t.use_count + 1,
          status: t.status === "active" && t.single_use ? "used" : t.status,
          used_at: first ? occurredAt(recorded) : t.used_at,
          used_by_action_id: first ? (optionalString(event, "actionId") ?? null) : t.used_by_action_id,
          used_by_session_id: first ? (optionalString(event, "sessionId") ?? null) : t.used_by_session_id
        })
      ]
    }
    case "CapabilityTokenRevoked": {
      const t = view.get(tokens, { token_id: event.tokenId })
      if (t === undefined || t.status === "revoked") return []
      return [
        upsert(tokens, {
          ...t,
          status: "revoked",
          revoked_at: occurredAt(recorded),
          revoked_by: optionalString(event, "revokedBy") ?? null,
          revoked_reason: optionalString(event, "reason") ?? null
        })
      ]
    }
    default:
      return []
  }
}

export const tokensView: Projection = {
  name: "tokens",
  version: 1,
  tables: [tokens],
  evolve
}

export interface TokenFilter {
  readonly principal?: string
  /** Leave out revoked, used and (with `now`) expired tokens. */
  readonly activeOnly?: boolean
  /** ISO-8601 time the expiry is judged at; needed for `activeOnly` to leave expired tokens out. */
  readonly now?: string
}

/** Tokens, newest grant first. */
export const listTokens = (db: ProjectionStoreApi, filter: TokenFilter = {}): Effect.Effect<ReadonlyArray<TokenRow>, ProjectionError> => {
  const where: Array<string> = []
  const params: Array<string> = []
  if (filter.principal !== undefined) {
    where.push("principal = ?")
    params.push(filter.principal)
  }
  if (filter.activeOnly === true) {
    where.push("status = 'active'")
    if (filter.now !== undefined) {
      // Timestamps share one fixed ISO-8601 form (ms, Z), so text order is time order.
      where.push("expires_at > ?")
      params.push(filter.now)
    }
  }
  const clause = where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`
  return db.select(tokens, `SELECT * FROM tokens${clause} ORDER BY granted_position DESC`, params)
}

export const getToken = (db: ProjectionStoreApi, tokenId: string): Effect.Effect<Option.Option<TokenRow>, ProjectionError> =>
  db.select(tokens, "SELECT * FROM tokens WHERE token_id = ?", [tokenId]).pipe(Effect.map((rows) => Option.fromNullable(rows[0])))

/** Whether a token is past its expiry at `now` (ISO-8601, ms, UTC). */
export const isExpired = (token: TokenRow, now: string): boolean => token.expires_at <= now
