/**
 * The envelope: metadata every event carries, and the recorded form of an event as a store holds it.
 */
import { Schema } from "effect"
import { HASH_HEX_PATTERN } from "./chain.js"

export const HashHex = Schema.String.pipe(Schema.pattern(HASH_HEX_PATTERN, { message: () => "expected 64 lowercase hex digits" }))

/** How far the content of an event may be trusted when it is handed to a model or a person. */
export const Classification = Schema.Literal("trusted", "pre-authorized", "untrusted")
export type Classification = typeof Classification.Type

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
export const EventId = Schema.String.pipe(Schema.pattern(UUID_V7, { message: () => "expected a UUIDv7" }))

/** ISO-8601 UTC timestamp with millisecond precision, e.g. 2026-11-25T19:01:43.123Z. */
export const Timestamp = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, { message: () => "expected an ISO-8601 UTC time with milliseconds" })
)

export const SCHEMA_VERSION = 1

/** The envelope as hashed: everything except the event's own hash. */
export const EventMetadata = Schema.Struct({
  eventId: EventId,
  occurredAt: Timestamp,
  principal: Schema.String,
  sessionId: Schema.optional(Schema.String),
  correlationId: Schema.String,
  causationId: Schema.String,
  classification: Classification,
  schemaVersion: Schema.Int,
  prevHash: HashHex
})
export type EventMetadata = typeof EventMetadata.Type

/**
 * An event as a store records it. `data` and `metadata` are the canonical JSON texts that were hashed;
 * `position` is the store-wide (global) position, increasing in commit order.
 */
export interface RecordedEvent {
  readonly stream: string
  readonly revision: number
  readonly position: number
  readonly eventId: string
  readonly type: string
  readonly data: string
  readonly metadata: string
  readonly hash: string
}

/** An event whose chain fields are computed, ready to be appended at `revision`. */
export interface ChainedEvent {
  readonly eventId: string
  readonly revision: number
  readonly type: string
  readonly data: string
  readonly metadata: string
  readonly hash: string
}
