import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Effect, Layer } from "effect"
import { verifyStore } from "./verifyStore.js"
import { type Issue, type IssueKind, LogVerifier, type VerifierOptions, type VerifyReport } from "./verifier.js"
import { EventLog, type EventDraft, EventLogLive } from "../eventLog.js"
import { Crypto, type CryptoApi } from "../ports/crypto.js"
import { EventStore, type EventStoreApi } from "../ports/eventStore.js"
import { KeyRing } from "../ports/keyRing.js"
import { canonicalize } from "../../domain/canonicalJson.js"
import { eventPreimage, genesisPreimage } from "../../domain/chain.js"
import { checkpointSigningText, merkleRoot } from "../../domain/checkpoint.js"
import type { RecordedEvent } from "../../domain/envelope.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import type { StreamHead } from "../../domain/events/auditEvents.js"
import { CHECKPOINT_STREAM } from "../../domain/streams.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { IdsLive, uuidv7 } from "../../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../../infrastructure/event-store/memoryEventStore.js"
import { testKeyRing } from "../../test/knownAnswerChain.js"

const crypto: CryptoApi = await makeCrypto()
const h = crypto.blake3Hex
const KEY = testKeyRing(5)
const FOREIGN = testKeyRing(6)
const OPTIONS: VerifierOptions = {
  trustedKeys: new Map([[KEY.keyId, KEY.publicKeyHex]]),
  blake3Hex: h,
  verifyText: crypto.verifyText
}
const RUNS = 25

// ---------------------------------------------------------------------------------------------------------------
// Random stores: 1..5 streams, a random number of events each (stream 0 has at least 3), appended in a random
// interleaving through EventLog, with checkpoints signed by KEY at random points. One checkpoint always follows the
// last event of stream 0, so at least one stream is pinned at a revision >= 2.

interface Plan {
  /** Stream index of each append, in order. */
  readonly order: ReadonlyArray<number>
  /** Checkpoint after the append with the same index. */
  readonly checkpointAfter: ReadonlyArray<boolean>
  readonly texts: ReadonlyArray<string>
}

const planArb: fc.Arbitrary<Plan> = fc
  .tuple(fc.integer({ min: 3, max: 7 }), fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 4 }))
  .chain(([first, others]) => {
    const steps = [first, ...others].flatMap((count, stream) => Array.from({ length: count }, () => stream))
    const n = steps.length
    return fc.record({
      order: fc.shuffledSubarray(steps, { minLength: n, maxLength: n }),
      checkpointAfter: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      texts: fc.array(fc.string({ unit: "grapheme", maxLength: 12 }), { minLength: n, maxLength: n })
    })
  })

const streamName = (i: number): string => ["astrid-session-a", "astrid-principal-b", "astrid-workspace-c", "astrid-session-d", "astrid-approvals"][i] ?? `astrid-s-${i}`

const eventFor = (i: number, text: string, stream: number): AstridEvent => {
  switch (i % 4) {
    case 0:
      return { _tag: "MessageRecorded", messageId: `m-${i}`, role: "user", content: text, inputClassification: "untrusted" }
    case 1:
      return { _tag: "BudgetReserved", reservationId: `r-${i}`, actionId: `a-${stream}`, amountMicros: i * 1000 }
    case 2:
      return { _tag: "ToolResultRecorded", actionId: `a-${i}`, tool: "fs.read", ok: true, output: text, truncated: false, durationMs: i }
    default:
      return { _tag: "SessionEnded", sessionId: `s-${stream}`, reason: "completed", detail: text === "" ? null : text }
  }
}

const buildStore = async (plan: Plan): Promise<EventStoreApi> => {
  const store = makeMemoryEventStore()
  const deps = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, KEY))
  const program = Effect.gen(function* () {
    const log = yield* EventLog
    const lastOfFirst = plan.order.lastIndexOf(0)
    for (const [i, stream] of plan.order.entries()) {
      const draft: EventDraft = { event: eventFor(i, plan.texts[i] ?? "", stream), principal: "ada" }
      yield* log.append(streamName(stream), "any", [draft])
      if (plan.checkpointAfter[i] === true || i === lastOfFirst) yield* log.checkpoint
    }
  })
  await Effect.runPromise(program.pipe(Effect.provide(EventLogLive({ checkpointEvery: 0 }).pipe(Layer.provide(deps)))))
  return store
}

const readAll = (store: EventStoreApi): Promise<ReadonlyArray<RecordedEvent>> => Effect.runPromise(store.readAll({ after: 0, maxCount: 1_000_000 }))

/** Runs a fresh verifier over events as a store would give them: checkpoints by revision, then all by position. */
const verifyEvents = (events: ReadonlyArray<RecordedEvent>, options: VerifierOptions = OPTIONS): VerifyReport => {
  const verifier = new LogVerifier(options)
  for (const e of events.filter((x) => x.stream === CHECKPOINT_STREAM).sort((a, b) => a.revision - b.revision)) verifier.addCheckpoint(e)
  for (const e of [...events].sort((a, b) => a.position - b.position)) verifier.push(e)
  return verifier.finish()
}

// ---------------------------------------------------------------------------------------------------------------
// Tampering helpers: what an attacker with write access to the store (and BLAKE3, but not KEY) can do.

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const parseRecord = (text: string): Record<string, unknown> => {
  const parsed: unknown = JSON.parse(text)
  if (!isRecord(parsed)) throw new Error(`not a JSON object: ${text}`)
  return parsed
}

const rehash = (e: Omit<RecordedEvent, "hash">): RecordedEvent => ({ ...e, hash: h(eventPreimage(e.stream, e.revision, e.type, e.data, e.metadata)) })

const withPrevHash = (e: RecordedEvent, prevHash: string): RecordedEvent => ({ ...e, metadata: canonicalize({ ...parseRecord(e.metadata), prevHash }) })

const streamEvents = (events: ReadonlyArray<RecordedEvent>, stream: string): ReadonlyArray<RecordedEvent> =>
  events.filter((e) => e.stream === stream).sort((a, b) => a.revision - b.revision)

const streamsOf = (events: ReadonlyArray<RecordedEvent>): ReadonlyArray<string> => [...new Set(events.map((e) => e.stream))].sort()

/** Every (stream, revision, hash) pinned by a checkpoint of an untampered store. */
const pinsOf = (events: ReadonlyArray<RecordedEvent>): ReadonlyArray<StreamHead> =>
  events
    .filter((e) => e.stream === CHECKPOINT_STREAM)
    .flatMap((e) => {
      const heads = parseRecord(e.data)["heads"]
      if (!Array.isArray(heads)) throw new Error("checkpoint without heads")
      return heads.map((x: unknown): StreamHead => {
        if (!isRecord(x) || typeof x["stream"] !== "string" || typeof x["revision"] !== "number" || typeof x["hash"] !== "string") {
          throw new Error("malformed head")
        }
        return { stream: x["stream"], revision: x["revision"], hash: x["hash"] }
      })
    })

/** The highest pinned revision of each pinned stream. */
const highestPins = (events: ReadonlyArray<RecordedEvent>): ReadonlyMap<string, number> => {
  const highest = new Map<string, number>()
  for (const p of pinsOf(events)) highest.set(p.stream, Math.max(highest.get(p.stream) ?? -1, p.revision))
  return highest
}

const pick = <A>(items: ReadonlyArray<A>, seed: number): A => {
  const item = items[seed % items.length]
  if (item === undefined) throw new Error("pick from an empty list")
  return item
}

const at = (kind: IssueKind, stream: string, revision: number | null) => expect.objectContaining({ kind, stream, revision })

const describeIssues = (issues: ReadonlyArray<Issue>): string => issues.map((i) => `${i.kind} ${i.stream}@${String(i.revision)}`).join(", ")

// ---------------------------------------------------------------------------------------------------------------

describe("LogVerifier on random stores", () => {
  it("an untouched store verifies with zero issues (verifyStore and a fresh verifier alike)", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, async (plan) => {
        const store = await buildStore(plan)
        const report = await Effect.runPromise(verifyStore(store, OPTIONS))
        expect(report.issues).toEqual([])
        expect(report.ok).toBe(true)
        expect(report.events).toBe(plan.order.length + report.checkpoints)
        expect(report.checkpoints).toBeGreaterThanOrEqual(1)
        const events = await readAll(store)
        expect(verifyEvents(events).issues).toEqual([])
        // Without the key, every checkpoint is untrusted, and nothing else is reported.
        const untrusted = verifyEvents(events, { ...OPTIONS, trustedKeys: new Map([[FOREIGN.keyId, FOREIGN.publicKeyHex]]) })
        expect(new Set(untrusted.issues.map((i) => i.kind))).toEqual(new Set(["untrusted_key"]))
        expect(untrusted.issues).toHaveLength(report.checkpoints)
      }),
      { numRuns: RUNS }
    )
  })

  it("any single-byte change to data or metadata: hash_mismatch at that event, nothing at another stream", async () => {
    await fc.assert(
      fc.asyncProperty(
        planArb,
        fc.nat(),
        fc.constantFrom("data" as const, "metadata" as const),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (plan, which, field, offset, delta) => {
          const events = await readAll(await buildStore(plan))
          const target = pick(events, which)
          const bytes = new TextEncoder().encode(target[field])
          const i = offset % bytes.length
          bytes[i] = ((bytes[i] ?? 0) + delta) % 256
          const changed = new TextDecoder().decode(bytes)
          fc.pre(changed !== target[field])
          const tampered = events.map((e) => (e === target ? { ...e, [field]: changed } : e))
          const report = verifyEvents(tampered)
          expect(report.issues, describeIssues(report.issues)).toContainEqual(at("hash_mismatch", target.stream, target.revision))
          expect(report.issues.filter((x) => x.stream !== target.stream), describeIssues(report.issues)).toEqual([])
        }
      ),
      { numRuns: RUNS * 4 }
    )
  })

  it("an event deleted from the middle of a stream: revision_gap at the deleted revision", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.nat(), async (plan, s, r) => {
        const events = await readAll(await buildStore(plan))
        const candidates = streamsOf(events).filter((name) => streamEvents(events, name).length >= 3)
        const stream = pick(candidates, s)
        const length = streamEvents(events, stream).length
        const revision = 1 + (r % (length - 2))
        const report = verifyEvents(events.filter((e) => !(e.stream === stream && e.revision === revision)))
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("revision_gap", stream, revision))
        expect(report.issues.filter((x) => x.stream !== stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("two events of one stream reordered (revision numbers swapped): hash_mismatch at both revisions", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.nat(), fc.nat(), async (plan, s, a, b) => {
        const events = await readAll(await buildStore(plan))
        const stream = pick(
          streamsOf(events).filter((name) => streamEvents(events, name).length >= 2),
          s
        )
        const length = streamEvents(events, stream).length
        const i = a % length
        const j = (i + 1 + (b % (length - 1))) % length
        const tampered = events.map((e) =>
          e.stream !== stream ? e : e.revision === i ? { ...e, revision: j } : e.revision === j ? { ...e, revision: i } : e
        )
        const report = verifyEvents(tampered)
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("hash_mismatch", stream, i))
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("hash_mismatch", stream, j))
        expect(report.issues.filter((x) => x.stream !== stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("an inserted forged event (hash and prevHash right, later events renumbered and rehashed): broken_link at k+1", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.nat(), async (plan, s, r) => {
        const events = await readAll(await buildStore(plan))
        const stream = pick(streamsOf(events), s)
        const own = streamEvents(events, stream)
        const k = r % own.length
        const displaced = own[k]
        if (displaced === undefined) throw new Error("no event at k")
        const prevHash = k === 0 ? h(genesisPreimage(stream)) : (own[k - 1]?.hash ?? "")
        const eventId = uuidv7(Date.now())
        const forged = rehash({
          stream,
          revision: k,
          position: displaced.position - 0.5,
          eventId,
          type: "MessageRecorded",
          data: canonicalize({ content: "forged", inputClassification: "trusted", messageId: "m-forged", role: "user" }),
          metadata: canonicalize({
            causationId: eventId,
            classification: "trusted",
            correlationId: eventId,
            eventId,
            occurredAt: new Date().toISOString(),
            prevHash,
            principal: "ada",
            schemaVersion: 1
          })
        })
        const shifted = events.map((e) => (e.stream === stream && e.revision >= k ? rehash({ ...e, revision: e.revision + 1 }) : e))
        const report = verifyEvents([...shifted, forged])
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("broken_link", stream, k + 1))
        // The forged event itself links and hashes correctly (only a checkpoint that pinned revision k could tell).
        expect(report.issues.filter((x) => x.stream === stream && x.revision === k && x.kind !== "checkpoint_mismatch")).toEqual([])
        expect(report.issues.filter((x) => x.stream !== stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("a stream's tail cut after a checkpoint named it: truncated_stream at the first missing revision", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.nat(), async (plan, s, r) => {
        const events = await readAll(await buildStore(plan))
        const pinned = [...highestPins(events)].filter(([, revision]) => revision >= 1)
        const [stream, highest] = pick(pinned, s)
        const cut = 1 + (r % highest)
        const report = verifyEvents(events.filter((e) => !(e.stream === stream && e.revision >= cut)))
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("truncated_stream", stream, cut))
        expect(report.issues.filter((x) => x.stream !== stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("a whole stream deleted after a checkpoint named it: missing_stream", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), async (plan, s) => {
        const events = await readAll(await buildStore(plan))
        const stream = pick([...highestPins(events).keys()], s)
        const report = verifyEvents(events.filter((e) => e.stream !== stream))
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("missing_stream", stream, null))
        expect(report.issues.filter((x) => x.stream !== stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("a checkpoint re-signed with a foreign key: untrusted_key at astrid-checkpoints@revision", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.boolean(), async (plan, c, falseClaim) => {
        const events = await readAll(await buildStore(plan))
        const target = pick(streamEvents(events, CHECKPOINT_STREAM), c)
        const { signature: _old, ...body } = parseRecord(target.data)
        // The forger may also make the checkpoint claim heads that never existed; a foreign signature must not
        // make such a claim count against the streams it names.
        const heads = body["heads"]
        const claimed = falseClaim && Array.isArray(heads) ? heads.map((x: unknown) => (isRecord(x) && typeof x["revision"] === "number" ? { ...x, revision: x["revision"] + 5 } : x)) : heads
        const forgedBody = { ...body, heads: claimed, keyId: FOREIGN.keyId }
        const signature = FOREIGN.signText(checkpointSigningText(forgedBody))
        const tampered = events.map((e) => (e === target ? rehash({ ...e, data: canonicalize({ ...forgedBody, signature }) }) : e))
        const report = verifyEvents(tampered)
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("untrusted_key", CHECKPOINT_STREAM, target.revision))
        expect(report.issues.filter((x) => x.stream !== CHECKPOINT_STREAM)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("a checkpoint whose signature bytes are altered (same keyId): bad_signature at astrid-checkpoints@revision", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.nat(), fc.integer({ min: 1, max: 15 }), async (plan, c, offset, delta) => {
        const events = await readAll(await buildStore(plan))
        const target = pick(streamEvents(events, CHECKPOINT_STREAM), c)
        const record = parseRecord(target.data)
        const signature = record["signature"]
        if (typeof signature !== "string") throw new Error("checkpoint without signature")
        const i = offset % signature.length
        const digit = ((parseInt(signature[i] ?? "0", 16) + delta) % 16).toString(16)
        const altered = signature.slice(0, i) + digit + signature.slice(i + 1)
        const tampered = events.map((e) => (e === target ? rehash({ ...e, data: canonicalize({ ...record, signature: altered }) }) : e))
        const report = verifyEvents(tampered)
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("bad_signature", CHECKPOINT_STREAM, target.revision))
        expect(report.issues.filter((x) => x.stream !== CHECKPOINT_STREAM)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("a genesis event with a wrong prevHash and a recomputed hash: bad_genesis at revision 0", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.stringMatching(/^[0-9a-f]{64}$/), async (plan, s, wrong) => {
        const events = await readAll(await buildStore(plan))
        const stream = pick(streamsOf(events), s)
        fc.pre(wrong !== h(genesisPreimage(stream)))
        const tampered = events.map((e) => (e.stream === stream && e.revision === 0 ? rehash(withPrevHash(e, wrong)) : e))
        const report = verifyEvents(tampered)
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("bad_genesis", stream, 0))
        expect(report.issues.filter((x) => x.stream !== stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })

  it("a pinned head rewritten with a recomputed hash: checkpoint_mismatch at that stream and revision", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, fc.nat(), fc.string({ minLength: 1, maxLength: 8 }), async (plan, p, text) => {
        const events = await readAll(await buildStore(plan))
        const pin = pick(pinsOf(events), p)
        const tampered = events.map((e) =>
          e.stream === pin.stream && e.revision === pin.revision
            ? rehash({ ...e, data: canonicalize({ ...parseRecord(e.data), rewritten: text }) })
            : e
        )
        const report = verifyEvents(tampered)
        expect(report.issues, describeIssues(report.issues)).toContainEqual(at("checkpoint_mismatch", pin.stream, pin.revision))
        expect(report.issues.filter((x) => x.stream !== pin.stream)).toEqual([])
      }),
      { numRuns: RUNS }
    )
  })
})

describe("LogVerifier on crafted checkpoints", () => {
  const oneStream = async (): Promise<ReadonlyArray<RecordedEvent>> =>
    readAll(await buildStore({ order: [0, 0, 0], checkpointAfter: [false, false, true], texts: ["a", "b", "c"] }))

  it("reports, and does not crash on, a checkpoint body that cannot be canonicalized (lone surrogate)", async () => {
    const events = await oneStream()
    const [checkpoint] = streamEvents(events, CHECKPOINT_STREAM)
    if (checkpoint === undefined) throw new Error("no checkpoint")
    const data = checkpoint.data.replace('"stream":"astrid-session-a"', '"stream":"astrid-session-a\\ud800"')
    expect(data).not.toBe(checkpoint.data)
    const report = verifyEvents(events.map((e) => (e === checkpoint ? rehash({ ...e, data }) : e)))
    expect(report.issues.map((i) => [i.kind, i.stream, i.revision])).toContainEqual(["checkpoint_mismatch", CHECKPOINT_STREAM, 0])
    expect(report.issues.filter((x) => x.stream !== CHECKPOINT_STREAM)).toEqual([])
  })

  it("checks the link to a previous checkpoint whose body is unreadable", async () => {
    const store = await buildStore({ order: [0, 0, 0, 1], checkpointAfter: [true, false, false, true], texts: ["a", "b", "c", "d"] })
    const events = await readAll(store)
    const [first, second] = streamEvents(events, CHECKPOINT_STREAM)
    if (first === undefined || second === undefined) throw new Error("two checkpoints expected")
    const record = parseRecord(second.data)
    const wrongPrev = canonicalize({ ...record, prevCheckpointHash: "00".repeat(32) })
    // The first body is garbled in place (its stored hash kept); the second names a wrong predecessor, rehashed.
    const tampered = events.map((e) => (e === first ? { ...e, data: "not json" } : e === second ? rehash({ ...e, data: wrongPrev }) : e))
    const report = verifyEvents(tampered)
    expect(report.issues).toContainEqual(at("checkpoint_mismatch", CHECKPOINT_STREAM, 0))
    expect(report.issues).toContainEqual(at("hash_mismatch", CHECKPOINT_STREAM, 0))
    expect(report.issues.filter((i) => i.stream === CHECKPOINT_STREAM && i.revision === 1).map((i) => i.kind)).toContain("checkpoint_mismatch")
  })

  it("a Merkle root that does not match the signed heads is a checkpoint_mismatch", async () => {
    const events = await oneStream()
    const [checkpoint] = streamEvents(events, CHECKPOINT_STREAM)
    if (checkpoint === undefined) throw new Error("no checkpoint")
    const { signature: _s, ...body } = parseRecord(checkpoint.data)
    const bad = { ...body, merkleRoot: merkleRoot([], h) }
    const data = canonicalize({ ...bad, signature: KEY.signText(checkpointSigningText(bad)) })
    const report = verifyEvents(events.map((e) => (e === checkpoint ? rehash({ ...e, data }) : e)))
    expect(report.issues.map((i) => [i.kind, i.stream, i.revision])).toEqual([["checkpoint_mismatch", CHECKPOINT_STREAM, 0]])
  })

  it("restricts checks to the streams asked for, but keeps checking the checkpoint stream", async () => {
    const events = await readAll(await buildStore({ order: [0, 1, 0, 1], checkpointAfter: [false, false, false, true], texts: ["a", "b", "c", "d"] }))
    const other = streamName(1)
    const tampered = events.filter((e) => e.stream !== other)
    expect(verifyEvents(tampered).issues).toContainEqual(at("missing_stream", other, null))
    const scoped = verifyEvents(tampered, { ...OPTIONS, streams: new Set([streamName(0)]) })
    expect(scoped.issues).toEqual([])
    expect(scoped.streams).toBe(2)
  })
})
