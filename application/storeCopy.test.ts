/**
 * Store copy over real stores: memory, SQLite files in a temp dir, and the EventStoreDB protocol stand-in
 * (the real @eventstore/db-client over loopback gRPC). The source history is written by EventLog with signed
 * checkpoints, so "verifies in the target" covers chains, links and checkpoint signatures alike.
 */
import { Effect, Either, Layer } from "effect"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Crypto } from "./ports/crypto.js"
import { EventStore, type EventStoreApi, EventStoreError, WrongExpectedRevision } from "./ports/eventStore.js"
import { KeyRing } from "./ports/keyRing.js"
import { EventLog, EventLogLive } from "./eventLog.js"
import { verifyStore } from "./audit/verifyStore.js"
import { copyStore, type CopyOptions, type CopyProgress, StoreCopyError } from "./storeCopy.js"
import type { ChainedEvent, RecordedEvent } from "../domain/envelope.js"
import { STREAM_PREFIX } from "../domain/streams.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { connectEsdbEventStore } from "../infrastructure/event-store/esdbEventStore.js"
import { type EsdbStandIn, startEsdbStandIn } from "../infrastructure/event-store/esdbStandIn.js"
import { makeMemoryEventStore } from "../infrastructure/event-store/memoryEventStore.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, loadKeyRing, localTrustedKeys } from "../infrastructure/keys/keyFiles.js"
import { chainEvents, readEverything } from "../test/eventStoreContract.js"
import { tempHome, toolResult } from "../test/seedStore.js"

const crypto = await makeCrypto()
const home = tempHome()
await Effect.runPromise(generateKey(home, false, Date.now()))
const keyRing = await Effect.runPromise(loadKeyRing(home))
const trustedKeys = await Effect.runPromise(localTrustedKeys(home))
const verify = { trustedKeys, blake3Hex: crypto.blake3Hex, verifyText: crypto.verifyText }

const STREAMS = ["astrid-session-a", "astrid-session-b", "astrid-principal-alice", "astrid-workspace-w1"]

/**
 * Interleaved appends of 1-3 events to each stream, with a signed checkpoint every third round, as a
 * running runtime leaves them.
 */
const recordHistory = (store: EventStoreApi, rounds: number) =>
  Effect.gen(function* () {
    const layer = EventLogLive({ checkpointEvery: 0 }).pipe(
      Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive))
    )
    const log = yield* EventLog.pipe(Effect.provide(layer))
    for (let round = 0; round < rounds; round++) {
      for (const [i, stream] of STREAMS.entries()) {
        const drafts = Array.from({ length: 1 + ((round + i) % 3) }, (_, k) => toolResult(`${stream}-${round}-${k}`, `output ${round}.${k}`))
        yield* log.append(stream, "any", drafts)
      }
      if (round % 3 === 2) yield* log.checkpoint.pipe(Effect.provideService(KeyRing, keyRing))
    }
  })

/** Everything a copy must preserve, in global order, without the store-assigned positions. */
const history = (store: EventStoreApi) =>
  Effect.map(readEverything(store, 1000, STREAM_PREFIX), (events) =>
    events.map((e) => ({ stream: e.stream, revision: e.revision, eventId: e.eventId, type: e.type, data: e.data, metadata: e.metadata, hash: e.hash }))
  )

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> => {
  const outcome = await Effect.runPromise(Effect.either(effect))
  if (Either.isRight(outcome)) return expect.fail("expected a failure, got a success")
  return outcome.left
}

const dir = tempHome()
let fileCount = 0
/** A fresh SQLite store file; closed with the returned function. */
const sqlite = async (path = join(dir, `copy-${++fileCount}.db`)) => {
  const opened = await run(openSqliteEventStore({ path, mode: "write", synchronous: "normal" }))
  return { ...opened, path }
}

let standIn: EsdbStandIn
beforeAll(async () => {
  standIn = await startEsdbStandIn()
})
afterAll(async () => {
  await standIn.close()
})

const esdb = async () => {
  standIn.reset()
  return run(connectEsdbEventStore(standIn.url))
}

/** A source history shared by the tests: 10 rounds over 4 streams, 3 checkpoints. */
const source = makeMemoryEventStore()
await run(recordHistory(source, 10))
const sourceHistory = await run(history(source))

const options = (extra: Partial<CopyOptions> = {}): CopyOptions => ({ verify, ...extra })

/** A store that behaves like `inner` except for `append`. */
const withAppend = (inner: EventStoreApi, append: EventStoreApi["append"]): EventStoreApi => ({ ...inner, append })

describe("store copy", () => {
  it("copies memory -> SQLite -> EventStoreDB -> SQLite with every hash, in order, verifying clean each time", async () => {
    expect(sourceHistory.length).toBeGreaterThan(80)
    const first = await sqlite()
    const ours = await esdb()
    const back = await sqlite()
    try {
      const progress: Array<CopyProgress> = []
      for (const [from, to] of [
        [source, first.api],
        [first.api, ours.api],
        [ours.api, back.api]
      ] as const) {
        const r = await run(copyStore(from, to, options({ onProgress: (p) => progress.push(p) })))
        expect(r.copied).toBe(sourceHistory.length)
        expect(r.skipped).toBe(0)
        expect(r.streams).toBe(STREAMS.length + 1)
        expect(r.verify.ok).toBe(true)
        expect(r.verify.issues).toEqual([])
        expect(r.verify.events).toBe(sourceHistory.length)
        expect(r.verify.checkpoints).toBe(3)
        expect(await run(history(to))).toEqual(sourceHistory)
      }
      const lastCopy = progress.filter((p) => p.phase === "copy").at(-1)
      expect(lastCopy).toMatchObject({ copied: sourceHistory.length, skipped: 0 })
      expect(progress.some((p) => p.phase === "verify")).toBe(true)
      // Positions are the target's own: the stand-in counts byte offsets from 4096, SQLite from 1.
      const esdbFirst = (await run(ours.api.readAll({ after: 0, maxCount: 1, streamPrefix: STREAM_PREFIX })))[0]
      const sqliteFirst = (await run(back.api.readAll({ after: 0, maxCount: 1, streamPrefix: STREAM_PREFIX })))[0]
      expect(esdbFirst?.position).toBeGreaterThanOrEqual(4096)
      expect(sqliteFirst?.position).toBe(1)
    } finally {
      first.close()
      await ours.close()
      back.close()
    }
  })

  it("after an EventStoreDB -> SQLite copy, new events are checkpointed and counted in the copy's own positions", async () => {
    const ours = await esdb()
    const back = await sqlite()
    try {
      await run(copyStore(source, ours.api, options()))
      await run(copyStore(ours.api, back.api, options()))
      // The copied checkpoints name byte offsets of the stand-in; the SQLite copy counts from 1.
      const layer = EventLogLive({ checkpointEvery: 0 }).pipe(Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, back.api), Layer.succeed(Crypto, crypto), IdsLive)))
      const log = await run(EventLog.pipe(Effect.provide(layer)))
      await run(log.append("astrid-session-a", "any", [toolResult("after-copy")]))
      const inSource = (await run(verifyStore(source, verify))).uncheckpointedEvents
      const before = await run(verifyStore(back.api, verify))
      expect(before.uncheckpointedEvents).toBe(inSource + 1)
      const signed = await run(log.checkpoint.pipe(Effect.provideService(KeyRing, keyRing)))
      expect(signed._tag).toBe("Signed")
      // It names the new head (and the copied tail the source had not checkpointed yet).
      if (signed._tag === "Signed") expect(signed.body.heads.map((h) => h.stream)).toContain("astrid-session-a")
      const after = await run(verifyStore(back.api, verify))
      expect(after).toMatchObject({ ok: true, uncheckpointedEvents: 0 })
    } finally {
      await ours.close()
      back.close()
    }
  })

  it("copies nothing on a second run, and verifies the copy with the trusted keys it is given", async () => {
    const target = await sqlite()
    try {
      await run(copyStore(source, target.api, options()))
      const again = await run(copyStore(source, target.api, options()))
      expect(again).toMatchObject({ copied: 0, skipped: sourceHistory.length, appends: 0 })
      expect(again.verify.ok).toBe(true)
      expect(await run(history(target.api))).toEqual(sourceHistory)
      // The same copy under no trusted key: the signatures are still there, only no longer trusted.
      const untrusted = await run(copyStore(source, target.api, options({ verify: { ...verify, trustedKeys: new Map() } })))
      expect(untrusted.verify.ok).toBe(false)
      expect(new Set(untrusted.verify.issues.map((i) => i.kind))).toEqual(new Set(["untrusted_key"]))
    } finally {
      target.close()
    }
  })

  it("picks up what the source recorded after an earlier copy", async () => {
    const growing = makeMemoryEventStore()
    await run(recordHistory(growing, 4))
    const target = await sqlite()
    try {
      const first = await run(copyStore(growing, target.api, options()))
      await run(recordHistory(growing, 2))
      const second = await run(copyStore(growing, target.api, options()))
      expect(second.skipped).toBe(first.copied)
      expect(second.copied).toBeGreaterThan(0)
      expect(second.verify.ok).toBe(true)
      expect(await run(history(target.api))).toEqual(await run(history(growing)))
    } finally {
      target.close()
    }
  })

  describe("interrupted and resumed", () => {
    const interruptedThenResumed = async (target: EventStoreApi, failing: (appends: { n: number }) => EventStoreApi) => {
      const counter = { n: 0 }
      const failure = await failureOf(copyStore(source, failing(counter), options({ batchEvents: 2 })))
      expect(failure).toBeInstanceOf(EventStoreError)
      // What the interrupted run left is a prefix of the source's order, whole events only, and verifies.
      const partial = await run(history(target))
      expect(partial.length).toBeGreaterThan(0)
      expect(partial.length).toBeLessThan(sourceHistory.length)
      expect(partial).toEqual(sourceHistory.slice(0, partial.length))
      expect((await run(verifyStore(target, verify))).issues).toEqual([])
      const resumed = await run(copyStore(source, target, options()))
      expect(resumed).toMatchObject({ skipped: partial.length, copied: sourceHistory.length - partial.length })
      expect(resumed.verify.ok).toBe(true)
      const final = await run(history(target))
      expect(final).toEqual(sourceHistory)
      expect(new Set(final.map((e) => e.eventId)).size).toBe(sourceHistory.length)
      return partial.length
    }

    it("resumes after the target failed an append (nothing of that append written)", async () => {
      const target = await sqlite()
      try {
        const copiedBefore = await interruptedThenResumed(target.api, (count) =>
          withAppend(target.api, (stream, expected, events) =>
            ++count.n > 7
              ? Effect.fail(new EventStoreError({ kind: "unavailable", message: "the target went away" }))
              : target.api.append(stream, expected, events)
          )
        )
        expect(copiedBefore).toBeGreaterThanOrEqual(7)
        expect(copiedBefore).toBeLessThanOrEqual(14)
      } finally {
        target.close()
      }
    })

    it("resumes after an append was written but its acknowledgement lost (EventStoreDB target)", async () => {
      const target = await esdb()
      try {
        await interruptedThenResumed(target.api, (count) =>
          withAppend(target.api, (stream, expected, events) =>
            target.api.append(stream, expected, events).pipe(
              Effect.flatMap((r) => (++count.n > 5 ? Effect.fail(new EventStoreError({ kind: "unavailable", message: "connection lost" })) : Effect.succeed(r)))
            )
          )
        )
      } finally {
        await target.close()
      }
    })

    it("resumes with the same result whatever the batch size of each run", async () => {
      const target = await sqlite()
      try {
        const stopAfter = (n: number) => {
          let appends = 0
          return withAppend(target.api, (stream, expected, events) =>
            ++appends > n ? Effect.fail(new EventStoreError({ kind: "io", message: "disk full" })) : target.api.append(stream, expected, events)
          )
        }
        await failureOf(copyStore(source, stopAfter(3), options({ batchEvents: 1 })))
        await failureOf(copyStore(source, stopAfter(4), options({ batchEvents: 1000, batchChars: 600 })))
        const done = await run(copyStore(source, target.api, options({ batchEvents: 3 })))
        expect(done.skipped).toBeGreaterThanOrEqual(7)
        expect(done.copied + done.skipped).toBe(sourceHistory.length)
        expect(await run(history(target.api))).toEqual(sourceHistory)
      } finally {
        target.close()
      }
    })
  })

  describe("refusals", () => {
    const refused = async (target: EventStoreApi, from: EventStoreApi = source) => {
      const before = await run(history(target))
      const e = await failureOf(copyStore(from, target, options()))
      expect(await run(history(target))).toEqual(before)
      if (!(e instanceof StoreCopyError)) return expect.fail(`expected a StoreCopyError, got ${String(e)}`)
      return e
    }

    it("refuses a target whose stream holds other events, before writing anything", async () => {
      const target = await sqlite()
      try {
        const other: ReadonlyArray<ChainedEvent> = chainEvents("astrid-session-a", undefined, 2, "other")
        await run(target.api.append("astrid-session-a", "no_stream", other))
        const e = await refused(target.api)
        expect(e.kind).toBe("diverged")
        expect(e.message).toMatch(/holds a different history: astrid-session-a@1 is event .* there but event .* in the source/)
      } finally {
        target.close()
      }
    })

    it("refuses a target with a stream the source lacks, or a stream longer than the source's", async () => {
      const extra = await sqlite()
      const longer = await sqlite()
      try {
        await run(extra.api.append("astrid-session-zzz", "no_stream", chainEvents("astrid-session-zzz", undefined, 1)))
        expect((await refused(extra.api)).message).toMatch(/stream astrid-session-zzz is not in the source/)

        await run(copyStore(source, longer.api, options()))
        const [head] = await run(longer.api.readStream("astrid-session-b", { direction: "backward", maxCount: 1 }))
        if (head === undefined) return expect.fail("no head")
        await run(longer.api.append("astrid-session-b", head.revision, chainEvents("astrid-session-b", { revision: head.revision, hash: head.hash }, 1)))
        expect((await refused(longer.api)).message).toMatch(new RegExp(`astrid-session-b runs to revision ${head.revision + 1}, the source's ends at revision ${head.revision}`))
      } finally {
        extra.close()
        longer.close()
      }
    })

    it("refuses to copy a store onto itself, also through a second handle on the same file", async () => {
      const a = await sqlite()
      const b = await sqlite(a.path)
      try {
        await run(copyStore(source, a.api, options()))
        expect((await refused(a.api, a.api)).kind).toBe("same_store")
        expect((await refused(b.api, a.api)).kind).toBe("same_store")
      } finally {
        a.close()
        b.close()
      }
    })

    it("stops at a source whose stream skips a revision, and at a target something else writes to", async () => {
      const skipping: EventStoreApi = {
        ...source,
        location: "a damaged source",
        readAll: (o) => Effect.map(source.readAll(o), (page) => page.filter((e: RecordedEvent) => !(e.stream === "astrid-session-b" && e.revision === 3)))
      }
      const target = await sqlite()
      try {
        const damaged = await failureOf(copyStore(skipping, target.api, options()))
        expect(damaged).toMatchObject({ _tag: "StoreCopyError", kind: "source_damaged" })
        expect(damaged.message).toMatch(/astrid-session-b at revision 4 where revision 3 belongs/)

        const raced = withAppend(target.api, (stream, expected) => Effect.fail(new WrongExpectedRevision({ stream, expected, actual: 99 })))
        const moved = await failureOf(copyStore(source, raced, options()))
        expect(moved).toMatchObject({ _tag: "StoreCopyError", kind: "target_moved" })
        expect(moved.message).toMatch(/something else writes to the target/)
      } finally {
        target.close()
      }
    })
  })
})
