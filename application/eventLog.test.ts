import { describe, expect, it } from "vitest"
import { Effect, Layer, Logger, LogLevel, Schema } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLog, type EventDraft, type EventLogApi, EventLogLive } from "./eventLog.js"
import { verifyStore } from "./audit/verifyStore.js"
import { Crypto, type CryptoApi } from "./ports/crypto.js"
import { EventStore, type EventStoreApi } from "./ports/eventStore.js"
import { KeyRing, type KeyRingApi } from "./ports/keyRing.js"
import { genesisPreimage } from "../domain/chain.js"
import { checkpointSigningText, merkleRoot } from "../domain/checkpoint.js"
import { EventMetadata, type RecordedEvent } from "../domain/envelope.js"
import { CheckpointSigned } from "../domain/events/auditEvents.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { CHECKPOINT_STREAM } from "../domain/streams.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../infrastructure/event-store/memoryEventStore.js"
import { generateKey, loadKeyRing } from "../infrastructure/keys/keyFiles.js"
import { testKeyRing } from "../test/knownAnswerChain.js"

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const decodeMetadata = Schema.decodeUnknownSync(Schema.parseJson(EventMetadata))
const decodeCheckpoint = Schema.decodeUnknownSync(Schema.parseJson(Schema.Struct(CheckpointSigned.fields).pipe(Schema.omit("_tag"))))

interface Setup {
  readonly store: EventStoreApi
  readonly crypto: CryptoApi
  readonly run: <A, E>(effect: (log: EventLogApi) => Effect.Effect<A, E>, keyRing?: KeyRingApi) => Promise<A>
  readonly fail: <A, E>(effect: (log: EventLogApi) => Effect.Effect<A, E>, keyRing?: KeyRingApi) => Promise<E>
  readonly events: () => Promise<ReadonlyArray<RecordedEvent>>
  readonly checkpoints: () => Promise<ReadonlyArray<RecordedEvent>>
}

/** An EventLog on a fresh memory store. A `layerKeyRing` is given to the layer; `run`'s keyRing is provided at the call. */
const setup = async (checkpointEvery: number, layerKeyRing?: KeyRingApi): Promise<Setup> => {
  const store = makeMemoryEventStore()
  const crypto = await makeCrypto()
  const deps = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive)
  const layer = EventLogLive({ checkpointEvery }).pipe(
    Layer.provide(layerKeyRing === undefined ? deps : Layer.merge(deps, Layer.succeed(KeyRing, layerKeyRing)))
  )
  const log = await Effect.runPromise(EventLog.pipe(Effect.provide(layer)))
  const provided = <A, E>(effect: (l: EventLogApi) => Effect.Effect<A, E>, keyRing?: KeyRingApi) => {
    const e = effect(log).pipe(Logger.withMinimumLogLevel(LogLevel.None))
    return keyRing === undefined ? e : Effect.provideService(e, KeyRing, keyRing)
  }
  return {
    store,
    crypto,
    run: (effect, keyRing) => Effect.runPromise(provided(effect, keyRing)),
    fail: (effect, keyRing) => Effect.runPromise(Effect.flip(provided(effect, keyRing))),
    events: () => Effect.runPromise(store.readAll({ after: 0, maxCount: 1_000_000 })),
    checkpoints: () => Effect.runPromise(store.readStream(CHECKPOINT_STREAM))
  }
}

const message = (content: string, extra: Partial<Omit<EventDraft, "event">> = {}): EventDraft => ({
  event: { _tag: "MessageRecorded", messageId: `m-${content}`, role: "user", content, inputClassification: "trusted" },
  principal: "ada",
  ...extra
})

const KEY = testKeyRing(7)
const S1 = "astrid-session-one"
const S2 = "astrid-session-two"
const S3 = "astrid-workspace-w"

describe("EventLog.append", () => {
  it("stamps UUIDv7 ids, millisecond timestamps and the envelope defaults", async () => {
    const t = await setup(0)
    const before = Date.now()
    const batch = await t.run((log) => log.append(S1, "no_stream", [message("a", { sessionId: "one" }), message("b")]))
    const after = Date.now()
    expect(batch.stream).toBe(S1)
    expect(batch.events.map((e) => e.revision)).toEqual([0, 1])
    expect(batch.lastPosition).toBe(2)
    const [first, second] = batch.events.map((e) => decodeMetadata(e.metadata))
    if (first === undefined || second === undefined) throw new Error("two events expected")
    for (const [i, m] of [first, second].entries()) {
      expect(m.eventId).toMatch(UUID_V7)
      expect(m.eventId).toBe(batch.events[i]?.eventId)
      const ms = Date.parse(m.occurredAt)
      expect(m.occurredAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
      expect(ms).toBeGreaterThanOrEqual(before)
      expect(ms).toBeLessThanOrEqual(after)
      // The UUIDv7 carries the same millisecond time in its first 48 bits.
      expect(parseInt(m.eventId.replace(/-/g, "").slice(0, 12), 16)).toBe(ms)
      expect(m.principal).toBe("ada")
      expect(m.classification).toBe("trusted")
      expect(m.schemaVersion).toBe(1)
      // correlation defaults to the batch's first event id, causation to the correlation.
      expect(m.correlationId).toBe(first.eventId)
      expect(m.causationId).toBe(first.eventId)
    }
    expect(first.eventId).not.toBe(second.eventId)
    expect(first.sessionId).toBe("one")
    expect("sessionId" in second).toBe(false)
    expect(first.prevHash).toBe(t.crypto.blake3Hex(genesisPreimage(S1)))
    expect(second.prevHash).toBe(batch.events[0]?.hash)
  })

  it("keeps explicit correlation, causation and classification", async () => {
    const t = await setup(0)
    const batch = await t.run((log) =>
      log.append(S1, "any", [message("x", { correlationId: "corr-1", causationId: "cause-1", classification: "untrusted" }), message("y")])
    )
    const [x, y] = batch.events.map((e) => decodeMetadata(e.metadata))
    expect(x?.correlationId).toBe("corr-1")
    expect(x?.causationId).toBe("cause-1")
    expect(x?.classification).toBe("untrusted")
    expect(y?.correlationId).toBe("corr-1")
    expect(y?.causationId).toBe("corr-1")
    expect(y?.classification).toBe("trusted")
  })

  it("stores what it returned, and an untouched log verifies clean", async () => {
    const t = await setup(0)
    const batch = await t.run((log) => log.append(S1, "no_stream", [message("a"), message("b")]))
    const stored = await t.events()
    expect(stored.map(({ eventId, revision, type, data, metadata, hash }) => ({ eventId, revision, type, data, metadata, hash }))).toEqual(
      batch.events.map(({ eventId, revision, type, data, metadata, hash }) => ({ eventId, revision, type, data, metadata, hash }))
    )
    const report = await Effect.runPromise(
      verifyStore(t.store, { trustedKeys: new Map(), blake3Hex: t.crypto.blake3Hex, verifyText: t.crypto.verifyText })
    )
    expect(report.issues).toEqual([])
    expect(report.events).toBe(2)
    expect(report.uncheckpointedEvents).toBe(2)
  })

  it("refuses an invalid event with EventEncodingError and appends nothing of the batch", async () => {
    const t = await setup(0)
    const negative: AstridEvent = { _tag: "BudgetReserved", reservationId: "r", actionId: "a", amountMicros: -1 }
    const error = await t.fail((log) => log.append(S1, "no_stream", [message("fine"), { event: negative, principal: "ada" }]))
    expect(error._tag).toBe("EventEncodingError")
    expect(error.message).toContain("BudgetReserved")
    const fractional: AstridEvent = { _tag: "BudgetReserved", reservationId: "r", actionId: "a", amountMicros: 1.5 }
    expect((await t.fail((log) => log.append(S1, "any", [{ event: fractional, principal: "ada" }])))._tag).toBe("EventEncodingError")
    const notJson: AstridEvent = {
      _tag: "ActionProposed",
      actionId: "a",
      kind: "k",
      resource: "r",
      risk: "low",
      summary: "s",
      arguments: { n: Number.NaN },
      estimatedCostMicros: 0
    }
    expect((await t.fail((log) => log.append(S1, "any", [{ event: notJson, principal: "ada" }])))._tag).toBe("EventEncodingError")
    expect(await t.events()).toEqual([])
    expect((await Effect.runPromise(t.store.stats)).events).toBe(0)
  })

  it("refuses a bad stream name", async () => {
    const t = await setup(0)
    for (const stream of ["session-1", "astrid-", "astrid-a b", "astrid-ü", "ASTRID-x", `astrid-${"x".repeat(201)}`]) {
      const error = await t.fail((log) => log.append(stream, "any", [message("a")]))
      expect(error._tag).toBe("EventEncodingError")
    }
    expect(await t.events()).toEqual([])
  })

  it("enforces the expected revision", async () => {
    const t = await setup(0)
    await t.run((log) => log.append(S1, "no_stream", [message("a"), message("b")]))
    const again = await t.fail((log) => log.append(S1, "no_stream", [message("c")]))
    expect(again).toMatchObject({ _tag: "WrongExpectedRevision", stream: S1, expected: "no_stream", actual: 1 })
    const stale = await t.fail((log) => log.append(S1, 0, [message("c")]))
    expect(stale).toMatchObject({ _tag: "WrongExpectedRevision", actual: 1 })
    const ahead = await t.fail((log) => log.append(S1, 5, [message("c")]))
    expect(ahead).toMatchObject({ _tag: "WrongExpectedRevision", actual: 1 })
    const missing = await t.fail((log) => log.append(S2, 0, [message("c")]))
    expect(missing).toMatchObject({ _tag: "WrongExpectedRevision", actual: "no_stream" })
    expect((await t.events()).length).toBe(2)
    const ok = await t.run((log) => log.append(S1, 1, [message("c")]))
    expect(ok.events.map((e) => e.revision)).toEqual([2])
    const any = await t.run((log) => log.append(S1, "any", [message("d")]))
    expect(any.events.map((e) => e.revision)).toEqual([3])
  })
})

describe("EventLog checkpoints", () => {
  it("signs a checkpoint automatically every N events", async () => {
    const t = await setup(3)
    await t.run((log) => log.append(S1, "any", [message("1")]), KEY)
    await t.run((log) => log.append(S2, "any", [message("2")]), KEY)
    expect(await t.checkpoints()).toHaveLength(0)
    await t.run((log) => log.append(S1, "any", [message("3")]), KEY)
    const first = await t.checkpoints()
    expect(first).toHaveLength(1)
    const body = decodeCheckpoint(first[0]?.data)
    expect(body.heads.map((h) => [h.stream, h.revision])).toEqual([
      [S1, 1],
      [S2, 0]
    ])
    expect(body.globalPosition).toBe(3)
    expect(body.sequence).toBe(0)
    expect(body.prevCheckpointHash).toBeNull()
    expect(body.keyId).toBe(KEY.keyId)
    await t.run((log) => log.append(S3, "any", [message("4"), message("5")]), KEY)
    expect(await t.checkpoints()).toHaveLength(1)
    await t.run((log) => log.append(S3, "any", [message("6")]), KEY)
    const second = await t.checkpoints()
    expect(second).toHaveLength(2)
    const body2 = decodeCheckpoint(second[1]?.data)
    expect(body2.heads.map((h) => [h.stream, h.revision])).toEqual([[S3, 2]])
    expect(body2.prevCheckpointHash).toBe(first[0]?.hash)
    expect(body2.sequence).toBe(1)
  })

  it("names exactly the streams changed since the previous checkpoint, with their heads, root, position and signature", async () => {
    const t = await setup(0)
    await t.run((log) => log.append(S1, "any", [message("a"), message("b")]))
    await t.run((log) => log.append(S2, "any", [message("c")]))
    await t.run((log) => log.append(S3, "any", [message("d")]))
    const one = await t.run((log) => log.checkpoint, KEY)
    expect(one._tag).toBe("Signed")
    await t.run((log) => log.append(S3, "any", [message("e")]))
    const a = await t.run((log) => log.append(S1, "any", [message("f"), message("g")]))
    const c = await t.run((log) => log.append(S3, "any", [message("h")]))
    const two = await t.run((log) => log.checkpoint, KEY)
    if (two._tag !== "Signed" || one._tag !== "Signed") throw new Error("expected two signed checkpoints")
    const expectedHeads = [
      { stream: S1, revision: 3, hash: a.events[1]?.hash },
      { stream: S3, revision: 2, hash: c.events[0]?.hash }
    ]
    expect(two.body.heads).toEqual(expectedHeads)
    expect(two.body.globalPosition).toBe(c.lastPosition)
    expect(two.body.prevCheckpointHash).toBe(one.hash)
    expect(two.body.merkleRoot).toBe(merkleRoot(two.body.heads, t.crypto.blake3Hex))
    const stored = await t.checkpoints()
    expect(stored.map((e) => e.hash)).toEqual([one.hash, two.hash])
    const decoded = decodeCheckpoint(stored[1]?.data)
    const { signature, ...signed } = decoded
    expect(signed).toEqual(two.body)
    expect(t.crypto.verifyText(signature, checkpointSigningText(two.body), KEY.publicKeyHex)).toBe(true)
    expect(t.crypto.verifyText(signature, checkpointSigningText(one.body), KEY.publicKeyHex)).toBe(false)
  })

  it("returns NothingNew when nothing changed since the last checkpoint", async () => {
    const t = await setup(0)
    const empty = await t.run((log) => log.checkpoint, KEY)
    expect(empty).toEqual({ _tag: "NothingNew", lastRevision: undefined })
    await t.run((log) => log.append(S1, "any", [message("a")]))
    expect((await t.run((log) => log.checkpoint, KEY))._tag).toBe("Signed")
    expect(await t.run((log) => log.checkpoint, KEY)).toEqual({ _tag: "NothingNew", lastRevision: 0 })
    expect(await t.checkpoints()).toHaveLength(1)
  })

  it("fails with CheckpointError without a KeyRing; automatic checkpoints then do not fail the append", async () => {
    const t = await setup(0)
    await t.run((log) => log.append(S1, "any", [message("a")]))
    const error = await t.fail((log) => log.checkpoint)
    expect(error._tag).toBe("CheckpointError")
    expect(error.message).toContain("astrid keys generate")
    const auto = await setup(1)
    const batch = await auto.run((log) => log.append(S1, "any", [message("a")]))
    expect(batch.events).toHaveLength(1)
    expect(await auto.checkpoints()).toHaveLength(0)
    // The missed checkpoint is signed with the next append once a key is there.
    await auto.run((log) => log.append(S1, "any", [message("b")]), KEY)
    const cps = await auto.checkpoints()
    expect(cps).toHaveLength(1)
    const stored = await auto.events()
    expect(decodeCheckpoint(cps[0]?.data).heads).toEqual([{ stream: S1, revision: 1, hash: stored[1]?.hash }])
  })

  it("uses a KeyRing given to the EventLog layer, and prefers one provided at the call", async () => {
    const layerKey = testKeyRing(9)
    const t = await setup(0, layerKey)
    await t.run((log) => log.append(S1, "any", [message("a")]))
    const signed = await t.run((log) => log.checkpoint)
    if (signed._tag !== "Signed") throw new Error("expected a signed checkpoint")
    expect(signed.body.keyId).toBe(layerKey.keyId)
    await t.run((log) => log.append(S1, "any", [message("b")]))
    const callSite = await t.run((log) => log.checkpoint, KEY)
    if (callSite._tag !== "Signed") throw new Error("expected a signed checkpoint")
    expect(callSite.body.keyId).toBe(KEY.keyId)
  })

  it("signs with the runtime key from key files (generateKey, loadKeyRing), and verifyStore trusts it", async () => {
    const home = mkdtempSync(join(tmpdir(), "astrid-eventlog-"))
    try {
      const generated = await Effect.runPromise(generateKey(home, false, Date.now()))
      const keyRing = await Effect.runPromise(loadKeyRing(home))
      expect(keyRing.keyId).toBe(generated.keyId)
      const t = await setup(2)
      await t.run((log) => log.append(S1, "any", [message("a"), message("b")]), keyRing)
      const cps = await t.checkpoints()
      expect(cps).toHaveLength(1)
      expect(decodeCheckpoint(cps[0]?.data).keyId).toBe(generated.keyId)
      const options = { blake3Hex: t.crypto.blake3Hex, verifyText: t.crypto.verifyText }
      const trusted = await Effect.runPromise(verifyStore(t.store, { ...options, trustedKeys: new Map([[generated.keyId, generated.publicKey]]) }))
      expect(trusted.issues).toEqual([])
      expect(trusted.checkpoints).toBe(1)
      // The checkpoint covers both events; its own event is not counted as uncheckpointed.
      expect(trusted.uncheckpointedEvents).toBe(0)
      const untrusted = await Effect.runPromise(verifyStore(t.store, { ...options, trustedKeys: new Map() }))
      expect(untrusted.issues.map((i) => [i.kind, i.stream, i.revision])).toEqual([["untrusted_key", CHECKPOINT_STREAM, 0]])
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })
})
