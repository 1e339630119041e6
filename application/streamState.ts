/**
 * Folding a stream into state, with a per-process cache: a stream is read once, then only its new
 * events. Deciders load state here, decide, and append with the revision they loaded; a conflict means
 * the cache is behind, so the next load catches up.
 */
import { Effect, Either, Schema } from "effect"
import type { RecordedEvent } from "../domain/envelope.js"
import { AstridEvent } from "../domain/events/astridEvent.js"
import type { EventStoreApi, EventStoreError } from "./ports/eventStore.js"

const decodeEvent = Schema.decodeUnknownEither(AstridEvent)

/** The typed event of a recorded one, or undefined for a type this build does not know. */
export const decodeRecorded = (e: RecordedEvent): AstridEvent | undefined => {
  let data: unknown
  try {
    data = JSON.parse(e.data)
  } catch {
    return undefined
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) return undefined
  const decoded = decodeEvent({ ...data, _tag: e.type })
  return Either.isRight(decoded) ? decoded.right : undefined
}

export interface Fold<S> {
  readonly initial: S
  /** Must not mutate `state`. */
  readonly evolve: (state: S, event: AstridEvent, recorded: RecordedEvent) => S
  /**
   * The event types `evolve` cares about. Others are skipped without being decoded: decoding is the
   * dearest part of a fold, and most streams mix many kinds of events.
   */
  readonly types?: ReadonlySet<string>
  /** Sees every recorded event, undecoded, before `evolve` (e.g. to read the envelope). */
  readonly preview?: (state: S, recorded: RecordedEvent) => S
}

const foldOne = <S>(fold: Fold<S>, state: S, recorded: RecordedEvent): S => {
  const previewed = fold.preview === undefined ? state : fold.preview(state, recorded)
  if (fold.types !== undefined && !fold.types.has(recorded.type)) return previewed
  const event = decodeRecorded(recorded)
  return event === undefined ? previewed : fold.evolve(previewed, event, recorded)
}

export interface Loaded<S> {
  readonly state: S
  /** Last revision folded in, undefined when the stream does not exist. */
  readonly revision: number | undefined
}

const PAGE = 1000

export interface StreamStateCache<S> {
  /** The state as of the stream's current end (reads whatever is new since the cached revision). */
  readonly load: (stream: string) => Effect.Effect<Loaded<S>, EventStoreError>
  /**
   * The cached state without any I/O, possibly behind the store. Only for deciders that append at the
   * returned revision: a stale state makes that append fail with WrongExpectedRevision, and the retry
   * loads afresh.
   */
  readonly cached: (stream: string) => Loaded<S> | undefined
  /** Folds events this process just appended, when they directly follow the cached revision. */
  readonly record: (stream: string, events: ReadonlyArray<Omit<RecordedEvent, "stream" | "position">>) => void
  readonly invalidate: (stream: string) => void
  /** Drops what is cached (e.g. after a rebuild). */
  readonly clear: () => void
}

export const makeStreamStateCache = <S>(store: EventStoreApi, fold: Fold<S>, maxStreams = 10_000): StreamStateCache<S> => {
  const cache = new Map<string, Loaded<S>>()
  const remember = (stream: string, loaded: Loaded<S>): void => {
    if (cache.size >= maxStreams && !cache.has(stream)) {
      const oldest = cache.keys().next()
      if (oldest.done !== true) cache.delete(oldest.value)
    }
    cache.set(stream, loaded)
  }
  return {
    clear: () => cache.clear(),
    cached: (stream) => cache.get(stream),
    invalidate: (stream) => {
      cache.delete(stream)
    },
    record: (stream, events) => {
      const first = events[0]
      if (first === undefined) return
      const current = cache.get(stream) ?? (first.revision === 0 ? { state: fold.initial, revision: undefined } : undefined)
      if (current === undefined || (current.revision ?? -1) !== first.revision - 1) {
        cache.delete(stream)
        return
      }
      let { state, revision } = current
      for (const e of events) {
        state = foldOne(fold, state, { ...e, stream, position: 0 })
        revision = e.revision
      }
      remember(stream, { state, revision })
    },
    load: (stream) =>
      Effect.gen(function* () {
        let loaded = cache.get(stream) ?? { state: fold.initial, revision: undefined }
        for (;;) {
          const from = loaded.revision === undefined ? 0 : loaded.revision + 1
          const page = yield* store.readStream(stream, { fromRevision: from, maxCount: PAGE })
          let { state, revision } = loaded
          for (const recorded of page) {
            state = foldOne(fold, state, recorded)
            revision = recorded.revision
          }
          loaded = { state, revision }
          if (page.length < PAGE) break
        }
        remember(stream, loaded)
        return loaded
      })
  }
}
