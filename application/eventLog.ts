/**
 * EventLog: the only way events enter the store. It encodes each event, stamps the envelope, links it
 * into its stream's BLAKE3 chain, appends with the expected revision, and signs a checkpoint every
 * `checkpointEvery` events.
 */
import { Clock, Context, Data, Effect, Layer, Option, Ref, Schema } from "effect"
import { canonicalize } from "../domain/canonicalJson.js"
import { linkEvents, type UnchainedEvent } from "../domain/chain.js"
import { type Classification, type ChainedEvent, SCHEMA_VERSION } from "../domain/envelope.js"
import { AstridEvent, splitEvent } from "../domain/events/astridEvent.js"
import { isStreamName } from "../domain/streams.js"
import { Crypto } from "./ports/crypto.js"
import { EventStore, type EventStoreError, type ExpectedRevision, WrongExpectedRevision } from "./ports/eventStore.js"
import { Ids } from "./ports/ids.js"
import { KeyRing } from "./ports/keyRing.js"
import { type CheckpointError, type CheckpointOutcome, makeCheckpointer } from "./audit/checkpointer.js"

export interface EventDraft {
  readonly event: AstridEvent
  readonly principal: string
  readonly sessionId?: string
  /** Defaults to the first event id of the batch. */
  readonly correlationId?: string
  /** Defaults to the correlation id. */
  readonly causationId?: string
  /** Defaults to "trusted" (written by the runtime itself). */
  readonly classification?: Classification
}

/** An event could not be encoded (bad field, non-JSON value, bad stream name). Nothing was appended. */
export class EventEncodingError extends Data.TaggedError("EventEncodingError")<{ readonly message: string }> {}

export interface AppendedBatch {
  readonly stream: string
  readonly events: ReadonlyArray<ChainedEvent>
  readonly lastPosition: number
}

export interface EventLogApi {
  readonly append: (
    stream: string,
    expected: ExpectedRevision,
    drafts: ReadonlyArray<EventDraft>
  ) => Effect.Effect<AppendedBatch, WrongExpectedRevision | EventStoreError | EventEncodingError>
  /** Signs a checkpoint of every stream changed since the last one; none when nothing changed. */
  readonly checkpoint: Effect.Effect<CheckpointOutcome, EventStoreError | EventEncodingError | WrongExpectedRevision | CheckpointError>
}

export class EventLog extends Context.Tag("astrid/EventLog")<EventLog, EventLogApi>() {}

export interface EventLogConfig {
  /** Sign a checkpoint after this many appended events; 0 turns automatic checkpoints off. */
  readonly checkpointEvery: number
  /** Tries for an append with expected "any" that loses a race. */
  readonly maxRetries?: number
}

const encodeEvent = Schema.encodeEither(AstridEvent)

export const makeEventLog = (config: EventLogConfig) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const crypto = yield* Crypto
    const ids = yield* Ids
    // A KeyRing given to this layer is kept; one provided where `checkpoint` or `append` runs takes precedence.
    const layerKeyRing = yield* Effect.serviceOption(KeyRing)
    const sinceCheckpoint = yield* Ref.make(0)

    const toUnchained = (drafts: ReadonlyArray<EventDraft>, nowMs: number): Effect.Effect<Array<UnchainedEvent>, EventEncodingError> =>
      Effect.try({
        try: () => {
          const occurredAt = new Date(nowMs).toISOString()
          let correlation: string | undefined
          return drafts.map((draft) => {
            const encoded = encodeEvent(draft.event)
            if (encoded._tag === "Left") throw new EventEncodingError({ message: `event ${draft.event._tag} is invalid: ${encoded.left.message}` })
            const { type, data } = splitEvent(encoded.right)
            const eventId = ids.uuidv7(nowMs)
            correlation ??= draft.correlationId ?? eventId
            const correlationId = draft.correlationId ?? correlation
            const metadata: Record<string, string | number> = {
              eventId,
              occurredAt,
              principal: draft.principal,
              correlationId,
              causationId: draft.causationId ?? correlationId,
              classification: draft.classification ?? "trusted",
              schemaVersion: SCHEMA_VERSION
            }
            if (draft.sessionId !== undefined) metadata["sessionId"] = draft.sessionId
            return { eventId, type, dataText: canonicalize(data), metadata }
          })
        },
        catch: (e) => (e instanceof EventEncodingError ? e : new EventEncodingError({ message: `event could not be encoded: ${String(e)}` }))
      })

    /**
     * Heads of the streams this process appended to last. Chaining onto a cached head saves a read per
     * append; a stale one is harmless, because the store refuses events that do not continue the stream,
     * and the head is then read afresh.
     */
    const heads = new Map<string, { readonly revision: number; readonly hash: string }>()
    const MAX_HEADS = 10_000
    const readHead = (stream: string) =>
      Effect.map(store.streamHead(stream), (h) => {
        const head = Option.getOrUndefined(h)
        if (head === undefined) heads.delete(stream)
        else rememberHead(stream, head)
        return head
      })
    const rememberHead = (stream: string, head: { readonly revision: number; readonly hash: string }): void => {
      if (heads.size >= MAX_HEADS && !heads.has(stream)) heads.clear()
      heads.set(stream, head)
    }
    const holds = (expected: ExpectedRevision, current: number | undefined): boolean =>
      expected === "any" || (expected === "no_stream" ? current === undefined : current === expected)

    /** Links `events` onto the current head and appends them; retries a lost race when `expected` is "any". */
    const appendUnchained = (stream: string, expected: ExpectedRevision, events: ReadonlyArray<UnchainedEvent>) => {
      const attempt = Effect.gen(function* () {
        let head = heads.get(stream) ?? (yield* readHead(stream))
        // The cache may be behind another writer: only the store's own head can refuse an expectation.
        if (!holds(expected, head?.revision)) head = yield* readHead(stream)
        const current = head?.revision
        if (!holds(expected, current)) return yield* Effect.fail(new WrongExpectedRevision({ stream, expected, actual: current ?? "no_stream" }))
        const chained = linkEvents(stream, head, events, canonicalize, crypto.blake3Hex)
        const result = yield* store.append(stream, current ?? "no_stream", chained).pipe(Effect.tapError(() => Effect.sync(() => heads.delete(stream))))
        const last = chained[chained.length - 1]
        if (last !== undefined) rememberHead(stream, { revision: last.revision, hash: last.hash })
        return { stream, events: chained, lastPosition: result.lastPosition }
      })
      // Every lost race means another writer got through, so retrying an "any" append always makes progress;
      // the bound only stops a pathological loop.
      const retries = expected === "any" ? (config.maxRetries ?? 1000) : 0
      return attempt.pipe(Effect.retry({ times: retries, while: (e) => e._tag === "WrongExpectedRevision" }))
    }

    const checkpointer = makeCheckpointer(store, crypto, (stream, expected, events) => appendUnchained(stream, expected, events))

    const checkpoint = Effect.gen(function* () {
      const keyRing = Option.orElse(yield* Effect.serviceOption(KeyRing), () => layerKeyRing)
      const now = yield* Clock.currentTimeMillis
      const outcome = yield* checkpointer.run(keyRing, now, ids.uuidv7)
      yield* Ref.set(sinceCheckpoint, 0)
      return outcome
    })

    const append: EventLogApi["append"] = (stream, expected, drafts) =>
      Effect.gen(function* () {
        if (!isStreamName(stream)) {
          return yield* Effect.fail(new EventEncodingError({ message: `'${stream}' is not a valid stream name (astrid-<letters, digits, . _ : @ ->)` }))
        }
        const now = yield* Clock.currentTimeMillis
        const unchained = yield* toUnchained(drafts, now)
        const batch = yield* appendUnchained(stream, expected, unchained)
        if (config.checkpointEvery > 0) {
          const count = yield* Ref.updateAndGet(sinceCheckpoint, (n) => n + drafts.length)
          if (count >= config.checkpointEvery) {
            // The events are durable already; a failed checkpoint is retried after the next append.
            yield* checkpoint.pipe(Effect.catchAll((e) => Effect.logWarning(`automatic checkpoint failed: ${e.message}`)))
          }
        }
        return batch
      })

    return { append, checkpoint } satisfies EventLogApi
  })

export const EventLogLive = (config: EventLogConfig) => Layer.effect(EventLog, makeEventLog(config))
