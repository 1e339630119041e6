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
}

export interface Loaded<S> {
  readonly state: S
  /** Last revision folded in, undefined when the stream does not exist. */
  readonly revision: number | undefined
}

const PAGE = 1000

export interface StreamStateCache<S> {
  readonly load: (stream: string) => Effect.Effect<Loaded<S>, EventStoreError>
  /** Drops what is cached (e.g. after a rebuild). */
  readonly clear: () => void
}

export const makeStreamStateCache = <S>(store: EventStoreApi, fold: Fold<S>, maxStreams = 10_000): StreamStateCache<S> => {
  const cache = new Map<string, Loaded<S>>()
  return {
    clear: () => cache.clear(),
    load: (stream) =>
      Effect.gen(function* () {
        let loaded = cache.get(stream) ?? { state: fold.initial, revision: undefined }
        for (;;) {
          const from = loaded.revision === undefined ? 0 : loaded.revision + 1
          const page = yield* store.readStream(stream, { fromRevision: from, maxCount: PAGE })
          let { state, revision } = loaded
          for (const recorded of page) {
            const event = decodeRecorded(recorded)
            if (event !== undefined) state = fold.evolve(state, event, recorded)
            revision = recorded.revision
          }
          loaded = { state, revision }
          if (page.length < PAGE) break
        }
        if (cache.size >= maxStreams && !cache.has(stream)) {
          const oldest = cache.keys().next()
          if (oldest.done !== true) cache.delete(oldest.value)
        }
        cache.set(stream, loaded)
        return loaded
      })
  }
}
