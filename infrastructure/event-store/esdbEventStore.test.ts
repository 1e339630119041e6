/**
 * The EventStoreDB adapter: the whole event-store contract over the protocol stand-in (the real
 * @eventstore/db-client over loopback gRPC), then the parts only this back end has: dropped connections,
 * ACLs, unreachable servers, URLs, and byte-exact round trips. With ASTRID_TEST_ESDB_URL set, the contract
 * also runs against that real server, each test in streams of its own (see `namespaced`).
 */
import { EventStoreDBClient, binaryEvent, BACKWARDS, NO_STREAM, START, streamNameFilter, WrongExpectedVersionError } from "@eventstore/db-client"
import { Chunk, Deferred, Effect, Either, Fiber, Option, Ref, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { createServer } from "node:net"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import {
  type EventStoreApi,
  EventStoreError,
  type StoreStats,
  WrongExpectedRevision
} from "../../application/ports/eventStore.js"
import { canonicalize } from "../../domain/canonicalJson.js"
import { linkEvents } from "../../domain/chain.js"
import type { RecordedEvent } from "../../domain/envelope.js"
import { appendNext, blake3Hex, body, chainEvents, eventStoreContract, readEverything, verifyAll } from "../../test/eventStoreContract.js"
import { uuidv7 } from "../crypto/uuidv7.js"
import { connectEsdbEventStore, type EsdbEventStore, type EsdbStoreOptions } from "./esdbEventStore.js"
import { type EsdbStandIn, startEsdbStandIn } from "./esdbStandIn.js"

let standIn: EsdbStandIn

beforeAll(async () => {
  standIn = await startEsdbStandIn()
})

afterAll(async () => {
  await standIn.close()
})

const connect = (url: string, options: EsdbStoreOptions = {}): Promise<EsdbEventStore> => Effect.runPromise(connectEsdbEventStore(url, options))

/** The failure of `effect`, which must fail. */
const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> => {
  const outcome = await Effect.runPromise(Effect.either(effect))
  if (Either.isRight(outcome)) return expect.fail("expected a failure, got a success")
  return outcome.left
}

// Every contract test gets an empty stand-in, so the adapter is held to exactly what the other stores do.
eventStoreContract("esdb over the protocol stand-in", async () => {
  standIn.reset()
  const opened = await connect(standIn.url)
  return { store: opened.api, close: opened.close }
})

/**
 * The store as seen through one namespace: stream names get `ns` in front on the way in and lose it on the
 * way out, reads of `$all` are limited to the namespace, and stats are counted over it. The contract assumes
 * an empty store; a real server is shared and never empty, so each test runs in a namespace of its own.
 * Hashes still verify: they cover the names the test used, which is what the wrapper gives back.
 */
const namespaced = (inner: EventStoreApi, ns: string): EventStoreApi => {
  const strip = (e: RecordedEvent): RecordedEvent => ({ ...e, stream: e.stream.slice(ns.length) })
  const renamed = (stream: string) => (e: WrongExpectedRevision | EventStoreError) =>
    e instanceof WrongExpectedRevision ? new WrongExpectedRevision({ stream, expected: e.expected, actual: e.actual }) : e
  const stats: Effect.Effect<StoreStats, EventStoreError> = Effect.gen(function* () {
    let after = 0
    const streams = new Set<string>()
    let events = 0
    let bytes = 0
    let lastPosition = 0
    for (;;) {
      const page = yield* inner.readAll({ after, maxCount: 1000, streamPrefix: ns })
      for (const e of page) {
        streams.add(e.stream)
        events++
        bytes += Buffer.byteLength(e.data) + Buffer.byteLength(e.metadata)
        lastPosition = e.position
      }
      const last = page[page.length - 1]
      if (last === undefined || page.length < 1000) return { events, streams: streams.size, lastPosition, bytes }
      after = last.position
    }
  })
  return {
    location: `${inner.location} (streams ${ns}*)`,
    append: (stream, expected, events) => inner.append(ns + stream, expected, events).pipe(Effect.mapError(renamed(stream))),
    readStream: (stream, options) => inner.readStream(ns + stream, options).pipe(Effect.map((es) => es.map(strip))),
    readAll: ({ after, maxCount, streamPrefix }) =>
      inner.readAll({ after, maxCount, streamPrefix: ns + (streamPrefix ?? "") }).pipe(Effect.map((es) => es.map(strip))),
    subscribeToAll: ({ after, streamPrefix }) => inner.subscribeToAll({ after, streamPrefix: ns + (streamPrefix ?? "") }).pipe(Stream.map(strip)),
    streamHead: (stream) => inner.streamHead(ns + stream),
    findEvent: (eventId) =>
      inner.findEvent(eventId).pipe(Effect.map(Option.flatMap((e) => (e.stream.startsWith(ns) ? Option.some(strip(e)) : Option.none())))),
    stats
  }
}

const uniqueNamespace = () => `t${Date.now().toString(36)}${randomBytes(3).toString("hex")}-`

/**
 * The contract, each test in a fresh namespace of a store that is not empty. One connection serves every
 * test, so its id index is built once (a real server keeps what earlier runs wrote, and a connection per test
 * would scan all of it every time).
 */
const namespacedContract = (name: string, url: () => string) => {
  let shared: Promise<EsdbEventStore> | undefined
  afterAll(async () => {
    if (shared !== undefined) await (await shared).close()
  })
  eventStoreContract(name, async () => {
    shared ??= connect(url())
    const opened = await shared
    return { store: namespaced(opened.api, uniqueNamespace()), close: async () => undefined }
  })
}

// The wrapper that the real-server run depends on, checked here on a stand-in that already holds other
// namespaces' events (the contract above resets it; this one never does).
describe("through a namespace, on a store that is not empty", () => {
  namespacedContract("esdb over the stand-in, namespaced", () => standIn.url)
})

const realUrl = process.env["ASTRID_TEST_ESDB_URL"]
if (realUrl === undefined) {
  console.info(
    "esdbEventStore.test: the contract against a real EventStoreDB/KurrentDB is skipped because ASTRID_TEST_ESDB_URL is not set " +
      "(e.g. ASTRID_TEST_ESDB_URL='esdb://127.0.0.1:2113?tls=false' with an insecure single node running)"
  )
}
describe.skipIf(realUrl === undefined)(`against the real server at ${realUrl ?? "(ASTRID_TEST_ESDB_URL unset)"}`, () => {
  namespacedContract("esdb on a real server, namespaced", () => realUrl ?? "")
})

describe("the EventStoreDB adapter over the stand-in", () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
    standIn.denyAccess("allow")
  })

  const open = async (options: EsdbStoreOptions = {}, url = standIn.url): Promise<EventStoreApi> => {
    const opened = await connect(url, options)
    cleanup.push(opened.close)
    return opened.api
  }

  /** An append that tolerates the moment right after a drop, when the client is still reconnecting. */
  const appendRetrying = (store: EventStoreApi, stream: string, count: number) =>
    appendNext(store, stream, count).pipe(
      Effect.retry({ while: (e) => e._tag === "EventStoreError" && e.kind === "unavailable", schedule: Schedule.spaced("50 millis"), times: 40 })
    )

  it("a subscription resumes after dropped connections from the last event it delivered: no duplicates, no gaps", async () => {
    standIn.reset()
    const store = await open({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 } })
    const subscriptionsBefore = standIn.subscriptionsOpened()
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        for (let i = 0; i < 3; i++) yield* appendNext(store, `astrid-session-drop-${i}`, 10)
        yield* appendNext(store, "other-drop", 5)
        const total = 30 + 20 + 15 + 12
        const seen = yield* Ref.make(0)
        const milestones = new Map<number, Deferred.Deferred<void>>()
        for (const n of [30, 50, 65]) milestones.set(n, yield* Deferred.make<void>())
        const reached = (n: number) => {
          const milestone = milestones.get(n)
          return milestone === undefined ? Effect.dieMessage(`no milestone ${n}`) : Deferred.await(milestone).pipe(Effect.timeout("5 seconds"))
        }
        const subscriber = yield* store.subscribeToAll({ after: 0, streamPrefix: "astrid-" }).pipe(
          Stream.tap(() =>
            Ref.updateAndGet(seen, (n) => n + 1).pipe(
              Effect.flatMap((n) => {
                const milestone = milestones.get(n)
                return milestone === undefined ? Effect.void : Deferred.succeed(milestone, undefined)
              })
            )
          ),
          Stream.take(total),
          Stream.runCollect,
          Effect.fork
        )
        yield* reached(30)
        // Dropped right after the catch-up: the stand-in comes back at once.
        yield* Effect.promise(() => standIn.dropConnections())
        yield* appendRetrying(store, "astrid-session-drop-0", 20)
        yield* reached(50)
        // Dropped while live, and down for a while: the subscription retries until it is back.
        yield* Effect.promise(() => standIn.dropConnections({ downForMs: 300 }))
        yield* appendRetrying(store, "astrid-principal-drop", 15)
        yield* appendNext(store, "other-drop", 3)
        yield* reached(65)
        yield* Effect.promise(() => standIn.dropConnections())
        yield* appendRetrying(store, "astrid-session-drop-2", 12)
        const received = yield* Fiber.join(subscriber).pipe(Effect.timeout("10 seconds"))
        const expected = yield* readEverything(store, 1000, "astrid-")
        return { received: Chunk.toReadonlyArray(received), expected }
      })
    )
    const ids = result.received.map((e) => e.eventId)
    expect(new Set(ids).size).toBe(ids.length)
    expect(result.received).toEqual(result.expected)
    expect(result.received).toHaveLength(77)
    // One subscription, then one more after each of the three drops at least.
    expect(standIn.subscriptionsOpened() - subscriptionsBefore).toBeGreaterThanOrEqual(4)
  })

  it("a subscription whose server stays away fails with 'unavailable' after its retries, naming the server", async () => {
    const own = await startEsdbStandIn()
    const store = await open({ reconnect: { attempts: 3, initialDelayMs: 10, maxDelayMs: 20 } }, own.url)
    const error = await Effect.runPromise(
      Effect.gen(function* () {
        yield* appendNext(store, "astrid-session-gone", 2)
        const caught = yield* Deferred.make<void>()
        const fiber = yield* store.subscribeToAll({ after: 0 }).pipe(
          Stream.tap((e) => (e.revision === 1 ? Deferred.succeed(caught, undefined) : Effect.void)),
          Stream.runDrain,
          Effect.flip,
          Effect.fork
        )
        yield* Deferred.await(caught)
        yield* Effect.promise(() => own.close())
        return yield* Fiber.join(fiber).pipe(Effect.timeout("10 seconds"))
      })
    )
    expect(error).toMatchObject({ _tag: "EventStoreError", kind: "unavailable" })
    expect(error.message).toContain(own.url)
    expect(error.message).toContain("check that EventStoreDB/KurrentDB is running")
  })

  it("access denied by the server is the typed 'access_denied' error, for connecting, appending and subscribing", async () => {
    standIn.reset()
    standIn.denyAccess("deny-all")
    const refused = await failureOf(connectEsdbEventStore(standIn.url))
    expect(refused).toMatchObject({ _tag: "EventStoreError", kind: "access_denied" })
    expect(refused.message).toContain(standIn.url)
    expect(refused.message).toContain("read and write rights")

    standIn.denyAccess("allow")
    const store = await open({ reconnect: { attempts: 50, initialDelayMs: 10 } })
    const { events } = await Effect.runPromise(appendNext(store, "astrid-session-acl", 2))

    standIn.denyAccess("deny-writes")
    const append = await failureOf(appendNext(store, "astrid-session-acl", 1))
    expect(append).toMatchObject({ _tag: "EventStoreError", kind: "access_denied" })
    expect(append.message).toContain("appending to astrid-session-acl")
    expect((await Effect.runPromise(store.readStream("astrid-session-acl"))).map(body)).toEqual(events)

    // Refusal is final: a subscription does not retry it (50 attempts would take far longer than this test).
    standIn.denyAccess("deny-reads")
    const subscription = await failureOf(store.subscribeToAll({ after: 0 }).pipe(Stream.runDrain, Effect.timeout("3 seconds")))
    expect(subscription).toMatchObject({ _tag: "EventStoreError", kind: "access_denied" })
  })

  it("an unreachable server is the typed 'unavailable' error; a URL that is not EventStoreDB's is 'invalid'", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer()
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 1))
      })
    })
    const url = `esdb://127.0.0.1:${closedPort}?tls=false`
    const unreachable = await failureOf(connectEsdbEventStore(url))
    expect(unreachable).toMatchObject({ _tag: "EventStoreError", kind: "unavailable" })
    expect(unreachable.message).toContain(url)
    expect(unreachable.message).toContain("check that EventStoreDB/KurrentDB is running")

    for (const bad of ["http://127.0.0.1:2113", "127.0.0.1:2113", "esdb://"]) {
      expect(await failureOf(connectEsdbEventStore(bad)), bad).toMatchObject({ _tag: "EventStoreError", kind: "invalid" })
    }
    const withPassword = await failureOf(connectEsdbEventStore(`esdb://admin:s3cret@127.0.0.1:${closedPort}?tls=false`))
    expect(withPassword.message).toContain("admin:***@")
    expect(withPassword.message).not.toContain("s3cret")
  })

  it("accepts kurrentdb:// and esdb+discover:// (gossip) for the same node", async () => {
    standIn.reset()
    const viaKurrent = await open({}, standIn.url.replace("esdb://", "kurrentdb://"))
    const { events } = await Effect.runPromise(appendNext(viaKurrent, "astrid-session-schemes", 3))
    const viaGossip = await open({}, standIn.url.replace("esdb://", "esdb+discover://"))
    expect((await Effect.runPromise(viaGossip.readStream("astrid-session-schemes"))).map(body)).toEqual(events)
  })

  it("round-trips data, metadata and hash byte for byte, stores them as documented, and verification catches a changed byte", async () => {
    standIn.reset()
    const store = await open()
    const stream = "astrid-session-bytes"
    const T0 = Date.UTC(2026, 10, 25, 12, 0, 0, 0)
    // Texts that a JSON re-encoder would change: integer-like keys (JS orders them first, JCS as strings),
    // escapes, astral characters, numbers in exponent form.
    const payloads: ReadonlyArray<unknown> = [
      { "10": "ten", "9": "nine", a: [1e21, 0.1, -0], "\u00e9": "caf\u00e9 \u{1F600}" },
      { quote: 'he said "hi"\n', tab: "\t", nul: "\u0000", slash: "a/b\\c" },
      { nested: { z: { "2": 2, "1": 1 }, y: null, x: true } }
    ]
    const events = linkEvents(
      stream,
      undefined,
      payloads.map((p, i) => {
        const eventId = uuidv7(T0 + i)
        return {
          eventId,
          type: "MessageRecorded",
          dataText: canonicalize(p),
          metadata: { eventId, occurredAt: new Date(T0).toISOString(), principal: "p\u00fc", correlationId: eventId, causationId: eventId, classification: "trusted", schemaVersion: 1 }
        }
      }),
      canonicalize,
      blake3Hex
    )
    expect(events[0]?.data.startsWith('{"10":"ten","9":"nine"')).toBe(true)
    const appended = await Effect.runPromise(store.append(stream, "no_stream", events))
    const read = await Effect.runPromise(store.readStream(stream))
    expect(read.map(body)).toEqual(events)
    expect(read[2]?.position).toBe(appended.lastPosition)

    // What the server holds: the data's UTF-8 bytes as binary, and the envelope in the custom metadata.
    const stored = standIn.events().filter((e) => e.stream === stream)
    expect(stored.map((e) => Buffer.from(e.data).toString("utf8"))).toEqual(events.map((e) => e.data))
    expect(stored.map((e) => e.contentType)).toEqual(events.map(() => "application/octet-stream"))
    expect(stored.map((e) => JSON.parse(Buffer.from(e.metadata).toString("utf8")))).toEqual(events.map((e) => ({ v: 1, h: e.hash, m: e.metadata })))
    expect(stored.map((e) => [e.id, e.type, e.revision, e.position])).toEqual(read.map((e) => [e.eventId, e.type, e.revision, e.position]))

    const clean = await Effect.runPromise(verifyAll(store))
    expect(clean.issues).toEqual([])
    expect(clean).toMatchObject({ ok: true, events: 3, streams: 1 })

    // One ASCII letter of the stored data of revision 1 changed behind Astrid's back.
    const target = stored[1]
    if (target === undefined) return expect.fail("nothing stored")
    const at = Buffer.from(target.data).indexOf("hi")
    target.data[at] = "H".charCodeAt(0)
    const tampered = await Effect.runPromise(verifyAll(store))
    expect(tampered.ok).toBe(false)
    expect(tampered.issues.some((i) => i.stream === stream && i.revision === 1)).toBe(true)
  })

  it("positions are the events' $all commit positions, strictly increasing, and readAll leaves system streams out", async () => {
    standIn.reset()
    const store = await open()
    await Effect.runPromise(appendNext(store, "astrid-session-p", 3))
    await Effect.runPromise(appendNext(store, "elsewhere", 2))
    const all = await Effect.runPromise(store.readAll({ after: 0, maxCount: 100 }))
    const onServer = standIn.events()
    expect(onServer.some((e) => e.stream.startsWith("$"))).toBe(true)
    expect(all.map((e) => [e.eventId, e.position])).toEqual(onServer.filter((e) => !e.stream.startsWith("$")).map((e) => [e.id, e.position]))
    expect(await Effect.runPromise(store.stats)).toMatchObject({ events: 5, streams: 2, lastPosition: all[4]?.position })
  })

  it("with eventIds 'batch', only a repeat within one append is refused (the documented trade for skipping the id index)", async () => {
    standIn.reset()
    const store = await open({ eventIds: "batch" })
    const { events } = await Effect.runPromise(appendNext(store, "astrid-session-ids-a", 1))
    const taken = events[0]?.eventId ?? ""
    const [other] = chainEvents("astrid-session-ids-b", undefined, 1)
    if (other === undefined) return expect.fail("nothing chained")
    expect((await Effect.runPromise(store.append("astrid-session-ids-b", "no_stream", [{ ...other, eventId: taken }]))).lastRevision).toBe(0)
    const twice = chainEvents("astrid-session-ids-c", undefined, 2).map((e) => ({ ...e, eventId: taken }))
    expect(await failureOf(store.append("astrid-session-ids-c", "no_stream", twice))).toMatchObject({ _tag: "EventStoreError", kind: "invalid" })
    expect(Option.isNone(await Effect.runPromise(store.streamHead("astrid-session-ids-c")))).toBe(true)
  })

  it("the stand-in speaks enough of the protocol for the stock client: append, expected revisions, reads, filtered subscription", async () => {
    standIn.reset()
    const client = EventStoreDBClient.connectionString(standIn.url)
    cleanup.push(() => client.dispose())
    const data = (n: number) => binaryEvent({ type: "T", data: Uint8Array.of(n) })
    const first = await client.appendToStream("s-1", [data(1), data(2)], { expectedRevision: NO_STREAM })
    expect(first.nextExpectedRevision).toBe(1n)
    const wrong = await client.appendToStream("s-1", data(3), { expectedRevision: 5n }).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(wrong).toBeInstanceOf(WrongExpectedVersionError)
    expect(wrong).toMatchObject({ actualVersion: 1n, expectedVersion: 5n })
    await client.appendToStream("s-1", data(3), { expectedRevision: "stream_exists" })
    await client.appendToStream("t-1", data(4))
    const backwards = []
    for await (const e of client.readStream("s-1", { direction: BACKWARDS, maxCount: 2 })) backwards.push(e.event?.revision)
    expect(backwards).toEqual([2n, 1n])
    const all = []
    for await (const e of client.readAll({ fromPosition: START })) all.push(e.event?.streamId)
    expect(all).toEqual(["$settings", "$scavenges", "s-1", "s-1", "s-1", "t-1"])
    const subscription = client.subscribeToAll({ fromPosition: START, filter: streamNameFilter({ prefixes: ["t-"] }) })
    const live = client.appendToStream("t-2", data(5))
    const seen: Array<string | undefined> = []
    for await (const e of subscription) {
      seen.push(e.event?.streamId)
      if (seen.length === 2) break
    }
    await live
    expect(seen).toEqual(["t-1", "t-2"])
  })

  it("`npm run esdb:standin` starts the stand-in as a process of its own and prints its URL", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/esdbStandIn.ts", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] })
    cleanup.push(async () => {
      child.kill("SIGTERM")
      await new Promise((resolve) => child.once("exit", resolve))
    })
    const url = await new Promise<string>((resolve, reject) => {
      let out = ""
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8")
        const match = /esdb:\/\/\S+/.exec(out)
        if (match !== null) resolve(match[0])
      })
      child.once("exit", (code) => reject(new Error(`the stand-in exited with ${String(code)}: ${out}`)))
    })
    expect(url).toMatch(/^esdb:\/\/127\.0\.0\.1:\d+\?tls=false$/)
    const store = await open({}, url)
    const { events } = await Effect.runPromise(appendNext(store, "astrid-session-cli", 2))
    expect((await Effect.runPromise(store.readStream("astrid-session-cli"))).map(body)).toEqual(events)
  })
})
