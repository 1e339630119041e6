/**
 * The EventStore port: append-only streams with optimistic concurrency, a global order, and a
 * subscription that catches up then goes live. Shaped so that SQLite, memory and EventStoreDB fit it.
 */
import { Context, Data, type Effect, type Option, type Stream } from "effect"
import type { ChainedEvent, RecordedEvent } from "../../domain/envelope.js"

/** What the appender believes the stream's last revision is. */
export type ExpectedRevision = "any" | "no_stream" | number

export interface AppendResult {
  /** Revision of the last event appended. */
  readonly lastRevision: number
  /** Global position of the last event appended. */
  readonly lastPosition: number
}

export interface StreamHeadInfo {
  readonly revision: number
  readonly hash: string
}

export interface ReadStreamOptions {
  readonly fromRevision?: number
  readonly direction?: "forward" | "backward"
  readonly maxCount?: number
}

export interface ReadAllOptions {
  /** Read events whose position is greater than this; 0 reads from the start. */
  readonly after: number
  readonly maxCount: number
  /** Only streams whose name starts with this. */
  readonly streamPrefix?: string
}

export interface SubscribeOptions {
  readonly after: number
  readonly streamPrefix?: string
}

export interface StoreStats {
  readonly events: number
  readonly streams: number
  readonly lastPosition: number
  readonly bytes: number
}

/** The stream is not at the revision the appender expected; reload, decide again, retry. */
export class WrongExpectedRevision extends Data.TaggedError("WrongExpectedRevision")<{
  readonly stream: string
  readonly expected: ExpectedRevision
  readonly actual: number | "no_stream"
}> {
  override get message(): string {
    return `stream ${this.stream} is at revision ${String(this.actual)}, not ${String(this.expected)} as expected`
  }
}

/** `access_denied`: the store is reachable but refuses these credentials (e.g. EventStoreDB ACLs). */
export type StoreFailureKind = "missing" | "locked" | "corrupt" | "not_astrid" | "io" | "invalid" | "unavailable" | "read_only" | "access_denied"

/** The store could not be used. `message` says what happened and what to do. */
export class EventStoreError extends Data.TaggedError("EventStoreError")<{
  readonly kind: StoreFailureKind
  readonly message: string
}> {}

export interface EventStoreApi {
  /**
   * Appends events atomically. Each event's `revision` must continue the stream (its head + 1, + 2, ...);
   * otherwise nothing is written and WrongExpectedRevision is returned. That check is what keeps a chain
   * from forking whatever `expected` says.
   */
  readonly append: (
    stream: string,
    expected: ExpectedRevision,
    events: ReadonlyArray<ChainedEvent>
  ) => Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError>
  readonly readStream: (stream: string, options?: ReadStreamOptions) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>
  readonly readAll: (options: ReadAllOptions) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>
  readonly subscribeToAll: (options: SubscribeOptions) => Stream.Stream<RecordedEvent, EventStoreError>
  readonly streamHead: (stream: string) => Effect.Effect<Option.Option<StreamHeadInfo>, EventStoreError>
  readonly findEvent: (eventId: string) => Effect.Effect<Option.Option<RecordedEvent>, EventStoreError>
  readonly stats: Effect.Effect<StoreStats, EventStoreError>
  /** Human-readable location, e.g. the database path. */
  readonly location: string
}

export class EventStore extends Context.Tag("astrid/EventStore")<EventStore, EventStoreApi>() {}

/** Checks `expected` against a stream's current last revision (undefined when the stream does not exist). */
export const expectationHolds = (expected: ExpectedRevision, current: number | undefined): boolean =>
  expected === "any" ? true : expected === "no_stream" ? current === undefined : current === expected
