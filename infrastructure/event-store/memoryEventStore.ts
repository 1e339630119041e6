/** The in-memory EventStore, for tests: same contract as the durable stores, nothing kept on exit. */
import { Effect, Layer, Option } from "effect"
import type { RecordedEvent } from "../../domain/envelope.js"
import {
  type AppendResult,
  EventStore,
  type EventStoreApi,
  EventStoreError,
  expectationHolds,
  WrongExpectedRevision
} from "../../application/ports/eventStore.js"
import { ChangeSignal, pagedSubscription } from "./changeSignal.js"

export const makeMemoryEventStore = (): EventStoreApi => {
  const all: Array<RecordedEvent> = []
  const streams = new Map<string, Array<RecordedEvent>>()
  const byId = new Map<string, RecordedEvent>()
  const signal = new ChangeSignal()
  let bytes = 0

  const readAllSync = (after: number, maxCount: number, prefix: string | undefined): ReadonlyArray<RecordedEvent> => {
    // Positions are 1-based and dense here, so `after` is also the index of the next event.
    const out: Array<RecordedEvent> = []
    for (let i = after; i < all.length && out.length < maxCount; i++) {
      const e = all[i] as RecordedEvent
      if (prefix === undefined || e.stream.startsWith(prefix)) out.push(e)
    }
    return out
  }

  return {
    location: "memory",
    append: (stream, expected, events) =>
      Effect.suspend((): Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError> => {
        const existing = streams.get(stream)
        const current = existing === undefined ? undefined : existing.length - 1
        const next = current === undefined ? 0 : current + 1
        const fits = expectationHolds(expected, current) && events.every((e, i) => e.revision === next + i)
        if (!fits) {
          return Effect.fail(new WrongExpectedRevision({ stream, expected, actual: current ?? "no_stream" }))
        }
        // Like the durable stores: an event id is unique store-wide, also within the batch itself.
        const batchIds = new Set<string>()
        for (const e of events) {
          if (byId.has(e.eventId) || batchIds.has(e.eventId)) {
            const where = byId.has(e.eventId) ? "is already in the event store" : "appears twice in the batch"
            return Effect.fail(
              new EventStoreError({ kind: "invalid", message: `event ${e.eventId} ${where}; an event id can be appended only once` })
            )
          }
          batchIds.add(e.eventId)
        }
        if (events.length === 0) return Effect.succeed({ lastRevision: current ?? -1, lastPosition: existing?.at(-1)?.position ?? 0 })
        const list = existing ?? []
        for (const e of events) {
          const recorded: RecordedEvent = { ...e, stream, position: all.length + 1 }
          all.push(recorded)
          list.push(recorded)
          byId.set(e.eventId, recorded)
          bytes += e.data.length + e.metadata.length
        }
        streams.set(stream, list)
        if (events.length > 0) signal.notify()
        const last = list[list.length - 1]
        return Effect.succeed({ lastRevision: last?.revision ?? -1, lastPosition: last?.position ?? 0 })
      }),
    readStream: (stream, options = {}) =>
      Effect.sync(() => {
        const list = streams.get(stream) ?? []
        const max = options.maxCount ?? Number.MAX_SAFE_INTEGER
        if (options.direction === "backward") {
          const from = options.fromRevision ?? list.length - 1
          return list.slice(0, from + 1).reverse().slice(0, max)
        }
        return list.slice(options.fromRevision ?? 0).slice(0, max)
      }),
    readAll: ({ after, maxCount, streamPrefix }) => Effect.sync(() => readAllSync(after, maxCount, streamPrefix)),
    subscribeToAll: ({ after, streamPrefix }) =>
      pagedSubscription(after, (from) => Effect.sync(() => readAllSync(from, 1000, streamPrefix)), signal, 1000),
    streamHead: (stream) =>
      Effect.sync(() => {
        const last = streams.get(stream)?.at(-1)
        return last === undefined ? Option.none() : Option.some({ revision: last.revision, hash: last.hash })
      }),
    findEvent: (eventId) => Effect.sync(() => Option.fromNullable(byId.get(eventId))),
    stats: Effect.sync(() => ({ events: all.length, streams: streams.size, lastPosition: all.length, bytes }))
  }
}

export const MemoryEventStoreLive = Layer.sync(EventStore, makeMemoryEventStore)
