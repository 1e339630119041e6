/**
 * The EventStore contract: one suite of behaviours every adapter must show, registered with vitest by
 * each adapter's own test file (`eventStoreContract("sqlite", makeStore)`). Events are chained for real
 * (JCS + BLAKE3 through the domain chain rule), so the log verifier can be run over what the suite wrote.
 */
import { Data, Deferred, Effect, Either, Fiber, Option, Ref, Stream } from "effect"
import { describe, expect, it } from "vitest"
import type { EventStoreApi, ExpectedRevision, StoreStats } from "../application/ports/eventStore.js"
import { verifyStore } from "../application/audit/verifyStore.js"
import type { VerifyReport } from "../application/audit/verifier.js"
import { canonicalize } from "../domain/canonicalJson.js"
import { linkEvents } from "../domain/chain.js"
import type { ChainedEvent, RecordedEvent } from "../domain/envelope.js"
import { loadBlake3 } from "../infrastructure/crypto/blake3.js"
import { uuidv7 } from "../infrastructure/crypto/uuidv7.js"

export interface StoreUnderTest {
  readonly store: EventStoreApi
  readonly close: () => Promise<void>
}

const blake3 = await loadBlake3()

/** A fixed clock keeps the texts stable; ids stay unique because UUIDv7 carries 74 random bits. */
const T0 = Date.UTC(2026, 10, 25, 12, 0, 0, 0)

export type Head = { readonly revision: number; readonly hash: string } | undefined

/** `count` MessageRecorded events linked onto `head` of `stream`, as EventLog would build them. */
export const chainEvents = (stream: string, head: Head, count: number, label = "m"): Array<ChainedEvent> => {
  const occurredAt = new Date(T0).toISOString()
  const unchained = Array.from({ length: count }, (_, i) => {
    const eventId = uuidv7(T0 + i)
    return {
      eventId,
      type: "MessageRecorded",
      dataText: canonicalize({ messageId: `${label}-${i}`, role: "user", content: `${label} #${i} on ${stream}`, inputClassification: "trusted" }),
      metadata: {
        eventId,
        occurredAt,
        principal: "contract-test",
        correlationId: eventId,
        causationId: eventId,
        classification: "trusted",
        schemaVersion: 1
      }
    }
  })
  return linkEvents(stream, head, unchained, canonicalize, blake3.hexOfText)
}

/** The stored parts of an event, without the store-assigned position. */
export const body = (e: ChainedEvent | RecordedEvent): ChainedEvent => ({
  eventId: e.eventId,
  revision: e.revision,
  type: e.type,
  data: e.data,
  metadata: e.metadata,
  hash: e.hash
})

export const headOf = (events: ReadonlyArray<ChainedEvent>, before: Head = undefined): Head => {
  const last = events[events.length - 1]
  return last === undefined ? before : { revision: last.revision, hash: last.hash }
}

/** Reads the head, links `count` events onto it and appends them with that head as expected revision. */
export const appendNext = (store: EventStoreApi, stream: string, count: number, label = "m") =>
  Effect.gen(function* () {
    const head = Option.getOrUndefined(yield* store.streamHead(stream))
    const events = chainEvents(stream, head, count, label)
    const result = yield* store.append(stream, head?.revision ?? "no_stream", events)
    return { events, result }
  })

/** Every event in global order, read in pages of `page`. */
export const readEverything = (store: EventStoreApi, page = 1000, streamPrefix?: string) =>
  Effect.gen(function* () {
    const out: Array<RecordedEvent> = []
    let after = 0
    for (;;) {
      const batch = yield* store.readAll(streamPrefix === undefined ? { after, maxCount: page } : { after, maxCount: page, streamPrefix })
      out.push(...batch)
      const last = batch[batch.length - 1]
      if (last === undefined || batch.length < page) return out
      after = last.position
    }
  })

/** Runs the log verifier over the store (no checkpoints are trusted, none are written by the suite). */
export const verifyAll = (store: EventStoreApi, trustedKeys: ReadonlyMap<string, string> = new Map()): Effect.Effect<VerifyReport, unknown> =>
  verifyStore(store, { trustedKeys, blake3Hex: blake3.hexOfText, verifyText: () => false })

export const blake3Hex = blake3.hexOfText

/** Raised when a subscription does not deliver in time: a hang fails the test fast instead of timing out. */
class SubscriptionStalled extends Data.TaggedError("SubscriptionStalled")<{ readonly waitingFor: string }> {}

const within = <A, E>(what: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E | SubscriptionStalled> =>
  effect.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new SubscriptionStalled({ waitingFor: what }) }))

const ids = (events: ReadonlyArray<{ readonly eventId: string }>): Array<string> => events.map((e) => e.eventId)

const expectIncreasing = (positions: ReadonlyArray<number>): void => {
  for (let i = 1; i < positions.length; i++) {
    const previous = positions[i - 1] ?? Number.NaN
    const current = positions[i] ?? Number.NaN
    if (!(current > previous)) expect.fail(`position ${current} at index ${i} does not follow ${previous}`)
  }
}

interface Snapshot {
  readonly stats: StoreStats
  readonly events: ReadonlyArray<RecordedEvent>
}

const snapshot = (store: EventStoreApi): Effect.Effect<Snapshot, unknown> =>
  Effect.all({ stats: store.stats, events: readEverything(store) })

export const eventStoreContract = (name: string, makeStore: () => Promise<StoreUnderTest>): void => {
  /** Runs `f` against a fresh store and always closes it. */
  const withStore = async <A>(f: (store: EventStoreApi) => Effect.Effect<A, unknown>): Promise<A> => {
    const { store, close } = await makeStore()
    try {
      return await Effect.runPromise(f(store))
    } finally {
      await close()
    }
  }

  /** Appends that must fail: returns the error and checks that the store did not change. */
  const refused = (store: EventStoreApi, stream: string, expected: ExpectedRevision, events: ReadonlyArray<ChainedEvent>) =>
    Effect.gen(function* () {
      const before = yield* snapshot(store)
      const outcome = yield* Effect.either(store.append(stream, expected, events))
      const after = yield* snapshot(store)
      expect(after).toEqual(before)
      if (Either.isRight(outcome)) return expect.fail(`append to ${stream} with expected ${String(expected)} was accepted`)
      return outcome.left
    })

  describe(`EventStore contract: ${name}`, () => {
    describe("round trips", () => {
      it("an empty store has no events, no heads and zero stats", () =>
        withStore((store) =>
          Effect.gen(function* () {
            expect(yield* store.stats).toEqual({ events: 0, streams: 0, lastPosition: 0, bytes: 0 })
            expect(Option.isNone(yield* store.streamHead("astrid-session-none"))).toBe(true)
            expect(yield* store.readStream("astrid-session-none")).toEqual([])
            expect(yield* store.readStream("astrid-session-none", { direction: "backward" })).toEqual([])
            expect(yield* store.readAll({ after: 0, maxCount: 10 })).toEqual([])
            expect(Option.isNone(yield* store.findEvent(uuidv7(T0)))).toBe(true)
          })
        ))

      it("readStream returns what was appended, forward, backward, from a revision and up to a count", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const stream = "astrid-session-rt"
            const first = chainEvents(stream, undefined, 4, "a")
            const r1 = yield* store.append(stream, "no_stream", first)
            // Another stream in between, so this stream's positions are not contiguous.
            yield* appendNext(store, "astrid-session-other", 3)
            const second = chainEvents(stream, headOf(first), 6, "b")
            const r2 = yield* store.append(stream, 3, second)
            const all = [...first, ...second]

            expect(r1.lastRevision).toBe(3)
            expect(r2.lastRevision).toBe(9)

            const forward = yield* store.readStream(stream)
            expect(forward.map(body)).toEqual(all)
            expect(forward.every((e) => e.stream === stream)).toBe(true)
            expectIncreasing(forward.map((e) => e.position))
            expect(forward[3]?.position).toBe(r1.lastPosition)
            expect(forward[9]?.position).toBe(r2.lastPosition)
            expect(r2.lastPosition).toBeGreaterThan(r1.lastPosition)

            const backward = yield* store.readStream(stream, { direction: "backward" })
            expect(backward).toEqual([...forward].reverse())

            expect((yield* store.readStream(stream, { fromRevision: 4 })).map(body)).toEqual(all.slice(4))
            expect((yield* store.readStream(stream, { maxCount: 3 })).map(body)).toEqual(all.slice(0, 3))
            expect((yield* store.readStream(stream, { fromRevision: 5, maxCount: 2 })).map(body)).toEqual(all.slice(5, 7))
            expect((yield* store.readStream(stream, { fromRevision: 9, maxCount: 5 })).map(body)).toEqual(all.slice(9))
            expect(yield* store.readStream(stream, { fromRevision: 10 })).toEqual([])
            expect((yield* store.readStream(stream, { direction: "backward", fromRevision: 6 })).map(body)).toEqual(
              all.slice(0, 7).reverse()
            )
            expect((yield* store.readStream(stream, { direction: "backward", maxCount: 2 })).map(body)).toEqual([all[9], all[8]])
            expect((yield* store.readStream(stream, { direction: "backward", fromRevision: 2, maxCount: 2 })).map(body)).toEqual([
              all[2],
              all[1]
            ])
            expect((yield* store.readStream(stream, { direction: "backward", fromRevision: 0 })).map(body)).toEqual([all[0]])

            const report = yield* verifyAll(store)
            expect(report.issues).toEqual([])
            expect(report).toMatchObject({ ok: true, events: 13, streams: 2 })
          })
        ))

      it("readAll pages through the global order, after a position, up to a count, by stream prefix", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const appended: Array<{ stream: string; events: Array<ChainedEvent> }> = []
            const plan: Array<[string, number]> = [
              ["astrid-session-1", 3],
              ["astrid-principal-p", 2],
              ["other-stream", 2],
              ["astrid-session-2", 4],
              ["astrid-session-1", 2],
              ["other-stream", 1]
            ]
            for (const [stream, count] of plan) {
              const { events } = yield* appendNext(store, stream, count)
              appended.push({ stream, events })
            }
            const inOrder = appended.flatMap(({ stream, events }) => events.map((e) => ({ stream, ...body(e) })))

            const all = yield* store.readAll({ after: 0, maxCount: 100 })
            expect(all.map((e) => ({ stream: e.stream, ...body(e) }))).toEqual(inOrder)
            expectIncreasing(all.map((e) => e.position))
            expect(all[0]?.position).toBeGreaterThan(0)

            const p4 = all[4]?.position ?? -1
            expect(ids(yield* store.readAll({ after: p4, maxCount: 100 }))).toEqual(ids(all.slice(5)))
            expect(ids(yield* store.readAll({ after: p4, maxCount: 3 }))).toEqual(ids(all.slice(5, 8)))
            expect(ids(yield* store.readAll({ after: 0, maxCount: 1 }))).toEqual(ids(all.slice(0, 1)))
            const lastPosition = all[all.length - 1]?.position ?? -1
            expect(yield* store.readAll({ after: lastPosition, maxCount: 100 })).toEqual([])

            // Small pages chained by position give the same sequence as one big read.
            expect(yield* readEverything(store, 4)).toEqual(all)

            const sessions = yield* store.readAll({ after: 0, maxCount: 100, streamPrefix: "astrid-session-" })
            expect(sessions).toEqual(all.filter((e) => e.stream.startsWith("astrid-session-")))
            expect(sessions).toHaveLength(9)
            const astrid = yield* store.readAll({ after: 0, maxCount: 100, streamPrefix: "astrid-" })
            expect(astrid).toEqual(all.filter((e) => e.stream !== "other-stream"))
            const sessionsAfter = yield* store.readAll({ after: p4, maxCount: 2, streamPrefix: "astrid-session-" })
            expect(sessionsAfter).toEqual(all.filter((e) => e.position > p4 && e.stream.startsWith("astrid-session-")).slice(0, 2))
            expect(yield* store.readAll({ after: 0, maxCount: 100, streamPrefix: "astrid-nothing-" })).toEqual([])

            const report = yield* verifyAll(store)
            expect(report.issues).toEqual([])
            expect(report).toMatchObject({ ok: true, events: 11, streams: 3 })
          })
        ))

      it("findEvent, streamHead and stats describe what was appended", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const a = yield* appendNext(store, "astrid-session-a", 3)
            const b = yield* appendNext(store, "astrid-session-b", 2)
            const a2 = yield* appendNext(store, "astrid-session-a", 1)

            const target = a.events[1]
            if (target === undefined) return expect.fail("no event to look for")
            const found = yield* store.findEvent(target.eventId)
            if (Option.isNone(found)) return expect.fail(`findEvent did not find ${target.eventId}`)
            expect(body(found.value)).toEqual(target)
            expect(found.value.stream).toBe("astrid-session-a")
            const fromStream = yield* store.readStream("astrid-session-a", { fromRevision: 1, maxCount: 1 })
            expect(fromStream).toEqual([found.value])
            expect(Option.isNone(yield* store.findEvent(uuidv7(T0)))).toBe(true)

            expect(yield* store.streamHead("astrid-session-a")).toEqual(Option.some(headOf(a2.events)))
            expect(yield* store.streamHead("astrid-session-b")).toEqual(Option.some(headOf(b.events)))
            expect(Option.isNone(yield* store.streamHead("astrid-session-c"))).toBe(true)

            const stats = yield* store.stats
            const written = [...a.events, ...b.events, ...a2.events]
            expect(stats.events).toBe(6)
            expect(stats.streams).toBe(2)
            expect(stats.lastPosition).toBe(a2.result.lastPosition)
            // All texts here are ASCII, so characters and UTF-8 bytes agree.
            expect(stats.bytes).toBeGreaterThanOrEqual(written.reduce((n, e) => n + e.data.length + e.metadata.length, 0))
          })
        ))
    })

    describe("expected revisions", () => {
      it("'any' appends to a new stream and to an existing one", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const stream = "astrid-session-any"
            const first = chainEvents(stream, undefined, 2)
            expect((yield* store.append(stream, "any", first)).lastRevision).toBe(1)
            const second = chainEvents(stream, headOf(first), 3)
            expect((yield* store.append(stream, "any", second)).lastRevision).toBe(4)
            expect((yield* store.readStream(stream)).map(body)).toEqual([...first, ...second])
          })
        ))

      it("'no_stream' succeeds only while the stream does not exist", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const stream = "astrid-session-ns"
            const first = chainEvents(stream, undefined, 2)
            expect((yield* store.append(stream, "no_stream", first)).lastRevision).toBe(1)
            // Revisions that would fit, so only the expectation is at fault.
            const error = yield* refused(store, stream, "no_stream", chainEvents(stream, headOf(first), 1))
            expect(error).toMatchObject({ _tag: "WrongExpectedRevision", stream, expected: "no_stream", actual: 1 })
            expect((yield* store.readStream(stream)).map(body)).toEqual(first)
          })
        ))

      it("an exact expected revision must equal the stream's last revision", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const stream = "astrid-session-exact"
            const missing = yield* refused(store, stream, 0, chainEvents(stream, undefined, 1))
            expect(missing).toMatchObject({ _tag: "WrongExpectedRevision", stream, expected: 0, actual: "no_stream" })

            const first = chainEvents(stream, undefined, 3)
            yield* store.append(stream, "no_stream", first)
            const next = chainEvents(stream, headOf(first), 2)
            for (const wrong of [0, 1, 3, 7]) {
              const error = yield* refused(store, stream, wrong, next)
              expect(error).toMatchObject({ _tag: "WrongExpectedRevision", stream, expected: wrong, actual: 2 })
            }
            expect((yield* store.append(stream, 2, next)).lastRevision).toBe(4)
            expect((yield* store.readStream(stream)).map(body)).toEqual([...first, ...next])
          })
        ))

      it("events whose revisions do not continue the stream are refused whatever is expected", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const stream = "astrid-session-cont"
            const first = chainEvents(stream, undefined, 3)
            yield* store.append(stream, "no_stream", first)
            const head = headOf(first)
            const shifted = (events: Array<ChainedEvent>, by: number) => events.map((e) => ({ ...e, revision: e.revision + by }))
            const good = chainEvents(stream, head, 3)
            const cases: Array<[string, ExpectedRevision, ReadonlyArray<ChainedEvent>]> = [
              ["restarting at 0 with any", "any", chainEvents(stream, undefined, 2)],
              ["skipping revisions with any", "any", shifted(good, 2)],
              ["skipping revisions with the right expectation", 2, shifted(good, 1)],
              ["overwriting the head", 2, shifted(good, -1)],
              ["a gap inside the batch", "any", [good[0], good[2]].flatMap((e) => (e === undefined ? [] : [e]))],
              ["a batch out of order", "any", [good[1], good[0], good[2]].flatMap((e) => (e === undefined ? [] : [e]))],
              ["revision 0 on a missing stream shifted", "no_stream", shifted(chainEvents("astrid-session-new", undefined, 1), 1)]
            ]
            for (const [label, expected, events] of cases) {
              const target = label.includes("missing stream") ? "astrid-session-new" : stream
              const error = yield* refused(store, target, expected, events)
              expect(error._tag, label).toBe("WrongExpectedRevision")
            }
            expect((yield* store.readStream(stream)).map(body)).toEqual(first)
            expect(Option.isNone(yield* store.streamHead("astrid-session-new"))).toBe(true)
            expect((yield* store.append(stream, 2, good)).lastRevision).toBe(5)
          })
        ))

      it("an empty append writes nothing and creates no stream", () =>
        withStore((store) =>
          Effect.gen(function* () {
            yield* store.append("astrid-session-empty", "no_stream", [])
            expect(Option.isNone(yield* store.streamHead("astrid-session-empty"))).toBe(true)
            expect(yield* store.stats).toMatchObject({ events: 0, streams: 0 })
            // The stream is still missing, so 'no_stream' still holds.
            expect((yield* store.append("astrid-session-empty", "no_stream", chainEvents("astrid-session-empty", undefined, 1))).lastRevision).toBe(0)
            expect((yield* store.append("astrid-session-empty", 0, [])).lastRevision).toBe(0)
            expect(yield* store.stats).toMatchObject({ events: 1, streams: 1 })
          })
        ))

      for (const existing of [0, 5]) {
        it(`of 20 concurrent appenders at one expected revision exactly one wins (stream with ${existing} events)`, () =>
          withStore((store) =>
            Effect.gen(function* () {
              const stream = "astrid-session-race"
              const before = existing > 0 ? (yield* appendNext(store, stream, existing)).events : []
              const contenders = 20
              const arrived = yield* Ref.make(0)
              const allRead = yield* Deferred.make<void>()
              const contender = (i: number) =>
                Effect.gen(function* () {
                  const head = Option.getOrUndefined(yield* store.streamHead(stream))
                  const events = chainEvents(stream, head, 3, `contender-${i}`)
                  // Nobody appends before everybody has read the head, so all of them expect the same revision.
                  if ((yield* Ref.updateAndGet(arrived, (n) => n + 1)) === contenders) yield* Deferred.succeed(allRead, undefined)
                  yield* Deferred.await(allRead)
                  const outcome = yield* Effect.either(store.append(stream, head?.revision ?? "no_stream", events))
                  return { events, outcome }
                })
              const results = yield* Effect.all(
                Array.from({ length: contenders }, (_, i) => contender(i)),
                { concurrency: "unbounded" }
              )
              const winners = results.filter((r) => Either.isRight(r.outcome))
              expect(winners).toHaveLength(1)
              for (const r of results) {
                if (Either.isLeft(r.outcome)) {
                  expect(r.outcome.left).toMatchObject({
                    _tag: "WrongExpectedRevision",
                    expected: existing > 0 ? existing - 1 : "no_stream",
                    actual: existing + 2
                  })
                }
              }
              const winner = winners[0]
              if (winner === undefined) return
              expect((yield* store.readStream(stream)).map(body)).toEqual([...before, ...winner.events])
              const report = yield* verifyAll(store)
              expect(report.issues).toEqual([])
              expect(report.events).toBe(existing + 3)
            })
          ))
      }
    })

    it("10,000 events over 40 streams keep one global order, dense revisions and atomic batches", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const streams = Array.from({ length: 40 }, (_, i) => `astrid-${i % 2 === 0 ? "session" : "principal"}-bulk-${i}`)
          const batches = 10
          const batchSize = 25
          const appended: Array<{ stream: string; events: Array<ChainedEvent>; lastPosition: number }> = []
          yield* Effect.forEach(
            streams,
            (stream) =>
              Effect.gen(function* () {
                let head: Head = undefined
                for (let b = 0; b < batches; b++) {
                  const events = chainEvents(stream, head, batchSize, `bulk-${b}`)
                  const result = yield* store.append(stream, head?.revision ?? "no_stream", events)
                  appended.push({ stream, events, lastPosition: result.lastPosition })
                  head = headOf(events, head)
                  // Let the other streams' fibers in, so that streams interleave in the global order.
                  yield* Effect.yieldNow()
                }
              }),
            { concurrency: "unbounded", discard: true }
          )

          const all = yield* readEverything(store, 1000)
          expect(all).toHaveLength(streams.length * batches * batchSize)
          expectIncreasing(all.map((e) => e.position))

          const indexById = new Map(all.map((e, i) => [e.eventId, i]))
          expect(indexById.size).toBe(all.length)
          for (const batch of appended) {
            // A batch occupies consecutive places in the global order and ends where append said it did.
            const first = indexById.get(batch.events[0]?.eventId ?? "")
            if (first === undefined) return expect.fail(`batch of ${batch.stream} is missing`)
            const placed = all.slice(first, first + batch.events.length)
            expect(placed.map((e) => ({ stream: e.stream, ...body(e) }))).toEqual(batch.events.map((e) => ({ stream: batch.stream, ...e })))
            expect(placed[placed.length - 1]?.position).toBe(batch.lastPosition)
          }

          const revisions = new Map<string, Array<number>>()
          for (const e of all) revisions.set(e.stream, [...(revisions.get(e.stream) ?? []), e.revision])
          const dense = Array.from({ length: batches * batchSize }, (_, i) => i)
          expect(revisions.size).toBe(streams.length)
          for (const stream of streams) expect(revisions.get(stream), stream).toEqual(dense)

          // The streams really interleave: the first stream's events are not one contiguous block.
          const firstStreamIdx = all.flatMap((e, i) => (e.stream === streams[0] ? [i] : []))
          expect((firstStreamIdx[firstStreamIdx.length - 1] ?? 0) - (firstStreamIdx[0] ?? 0)).toBeGreaterThan(batches * batchSize)

          const stats = yield* store.stats
          expect(stats).toMatchObject({ events: all.length, streams: streams.length, lastPosition: all[all.length - 1]?.position })

          const principals = yield* readEverything(store, 700, "astrid-principal-")
          expect(ids(principals)).toEqual(ids(all.filter((e) => e.stream.startsWith("astrid-principal-"))))
          expect(principals).toHaveLength(all.length / 2)

          const report = yield* verifyAll(store)
          expect(report.issues).toEqual([])
          expect(report).toMatchObject({ ok: true, events: all.length, streams: streams.length })
        })
      ))

    describe("subscriptions", () => {
      it("a subscription from a position catches up, then receives live appends in order", () =>
        withStore((store) =>
          Effect.gen(function* () {
            yield* appendNext(store, "astrid-session-s1", 10)
            yield* appendNext(store, "astrid-session-s2", 10)
            yield* appendNext(store, "astrid-session-s1", 10)
            const existing = yield* store.readAll({ after: 0, maxCount: 100 })
            const from = existing[9]?.position ?? -1
            const catchUp = existing.slice(10)
            expect(catchUp).toHaveLength(20)

            const seen = yield* Ref.make(0)
            const caughtUp = yield* Deferred.make<void>()
            const live = 15
            const subscriber = yield* store.subscribeToAll({ after: from }).pipe(
              Stream.tap(() =>
                Ref.updateAndGet(seen, (n) => n + 1).pipe(
                  Effect.flatMap((n) => (n === catchUp.length ? Deferred.succeed(caughtUp, undefined) : Effect.void))
                )
              ),
              Stream.take(catchUp.length + live),
              Stream.runCollect,
              Effect.fork
            )
            yield* within("the catch-up", Deferred.await(caughtUp))

            // Everything below is appended after the subscriber has caught up: it can only arrive live.
            const liveAppends = [
              ...(yield* appendNext(store, "astrid-session-s2", 5)).events,
              ...(yield* appendNext(store, "astrid-session-s3", 4)).events,
              ...(yield* appendNext(store, "astrid-session-s1", 6)).events
            ]
            const received = [...(yield* within("the live events", Fiber.join(subscriber)))]

            expect(received.slice(0, catchUp.length)).toEqual(catchUp)
            expect(ids(received.slice(catchUp.length))).toEqual(ids(liveAppends))
            expect(received).toEqual(yield* store.readAll({ after: from, maxCount: 100 }))
            expectIncreasing(received.map((e) => e.position))
          })
        ))

      it("a subscription from the end, filtered by prefix, sees only new events of matching streams", () =>
        withStore((store) =>
          Effect.gen(function* () {
            yield* appendNext(store, "astrid-session-old", 3)
            yield* appendNext(store, "other-old", 2)
            const { lastPosition } = yield* store.stats
            const subscriber = yield* store.subscribeToAll({ after: lastPosition, streamPrefix: "astrid-" }).pipe(
              Stream.take(7),
              Stream.runCollect,
              Effect.fork
            )
            yield* appendNext(store, "other-new", 4)
            const a = yield* appendNext(store, "astrid-session-new", 3)
            yield* appendNext(store, "other-new", 2)
            const b = yield* appendNext(store, "astrid-principal-new", 2)
            const c = yield* appendNext(store, "astrid-session-old", 2)
            const received = [...(yield* within("7 matching live events", Fiber.join(subscriber)))]
            expect(ids(received)).toEqual(ids([...a.events, ...b.events, ...c.events]))
            expect(received.every((e) => e.stream.startsWith("astrid-") && e.position > lastPosition)).toBe(true)
          })
        ))

      it("a subscription from position 0 on an empty store waits for the first append", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const subscriber = yield* store.subscribeToAll({ after: 0 }).pipe(Stream.take(2), Stream.runCollect, Effect.fork)
            yield* Effect.yieldNow()
            const { events } = yield* appendNext(store, "astrid-session-first", 2)
            const received = [...(yield* within("the first events", Fiber.join(subscriber)))]
            expect(received.map(body)).toEqual(events)
          })
        ))
    })

    describe("event ids", () => {
      it("an event id that is already stored is refused, in any stream, and nothing is written", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const a = yield* appendNext(store, "astrid-session-a", 2)
            const taken = a.events[1]
            if (taken === undefined) return expect.fail("nothing appended")

            const [copy] = chainEvents("astrid-session-b", undefined, 1)
            if (copy === undefined) return expect.fail("nothing chained")
            const otherStream = yield* refused(store, "astrid-session-b", "no_stream", [{ ...copy, eventId: taken.eventId }])
            expect(otherStream._tag).toBe("EventStoreError")
            expect(otherStream).toMatchObject({ kind: "invalid" })
            expect(otherStream.message).toContain(taken.eventId)

            const next = chainEvents("astrid-session-a", headOf(a.events), 3)
            const sameStream = next.map((e, i) => (i === 2 ? { ...e, eventId: taken.eventId } : e))
            expect(yield* refused(store, "astrid-session-a", 1, sameStream)).toMatchObject({ _tag: "EventStoreError", kind: "invalid" })

            const found = yield* store.findEvent(taken.eventId)
            expect(Option.map(found, body)).toEqual(Option.some(taken))
            expect(Option.map(found, (e) => e.stream)).toEqual(Option.some("astrid-session-a"))
          })
        ))

      it("a batch that repeats an event id is refused as a whole", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const events = chainEvents("astrid-session-dup", undefined, 3)
            const first = events[0]
            if (first === undefined) return expect.fail("nothing chained")
            const repeated = events.map((e, i) => (i === 2 ? { ...e, eventId: first.eventId } : e))
            expect(yield* refused(store, "astrid-session-dup", "no_stream", repeated)).toMatchObject({ _tag: "EventStoreError", kind: "invalid" })
            expect(Option.isNone(yield* store.findEvent(first.eventId))).toBe(true)
            expect((yield* store.append("astrid-session-dup", "no_stream", events)).lastRevision).toBe(2)
          })
        ))
    })
  })
}
