/**
 * The parallel SQLite verifier must give exactly the report of the reference verifier (verifyStore with
 * LogVerifier) over the same file: on clean stores, and on stores tampered at random with SQL (changed
 * bytes, forged hashes, deleted rows, cut tails, moved revisions), including at the range boundaries.
 * Real SQLite files in a temp folder, written through EventLog and signed with a key from key files.
 */
import Database from "better-sqlite3"
import { Effect, Layer, Logger, LogLevel } from "effect"
import fc from "fast-check"
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { VerifyReport } from "../../application/audit/verifier.js"
import { verifyStore } from "../../application/audit/verifyStore.js"
import { EventLog, type EventDraft, EventLogLive } from "../../application/eventLog.js"
import { Crypto } from "../../application/ports/crypto.js"
import { EventStore } from "../../application/ports/eventStore.js"
import { KeyRing } from "../../application/ports/keyRing.js"
import { eventPreimage } from "../../domain/chain.js"
import { makeCrypto } from "../crypto/cryptoLive.js"
import { IdsLive } from "../crypto/uuidv7.js"
import { generateKey, loadKeyRing, localTrustedKeys } from "../keys/keyFiles.js"
import { splitPositions, verifySqliteParallel } from "./sqliteParallelVerify.js"
import { makePreimage, readPrevHash, readPrevHashByParse } from "./sqliteRangeVerify.js"
import { openSqliteEventStore } from "./sqliteEventStore.js"

const crypto = await makeCrypto()
const dir = mkdtempSync(join(tmpdir(), "astrid-parallel-verify-"))
const home = join(dir, "home")
let trustedKeys: ReadonlyMap<string, string> = new Map()

afterAll(() => rmSync(dir, { recursive: true, force: true }))

const STREAMS = ["astrid-session-a", "astrid-session-b", "astrid-principal-c", "astrid-workspace-d", "astrid-approvals", "astrid-session-e"]
// Non-ASCII, astral and escaped characters, so that text is not one byte per character.
const TEXTS = ["plain", "café ☕", "emoji 🦀 and \"quotes\"", "tab\tand\nnewline", "back\\slash", "日本語のテキスト"]

interface StoreShape {
  /** Events per append; each append goes to one stream. */
  readonly appends: number
  readonly batch: number
  readonly checkpointEvery: number
}

/** Builds a store through EventLog with the key in `home`; a final checkpoint pins every stream's head. */
const buildStore = async (path: string, shape: StoreShape): Promise<void> => {
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const keyRing = yield* loadKeyRing(home)
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "write", synchronous: "normal" }), (s) => Effect.sync(() => s.close()))
        const deps = Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, keyRing))
        const log = yield* EventLog.pipe(Effect.provide(EventLogLive({ checkpointEvery: shape.checkpointEvery }).pipe(Layer.provide(deps))))
        for (let a = 0; a < shape.appends; a++) {
          const stream = STREAMS[(a * 7 + (a >> 2)) % STREAMS.length] ?? "astrid-session-a"
          const drafts: Array<EventDraft> = Array.from({ length: shape.batch }, (_, j) => ({
            event: {
              _tag: "MessageRecorded",
              messageId: `m-${a}-${j}`,
              role: "user",
              content: `${TEXTS[(a + j) % TEXTS.length] ?? ""} #${a}.${j}`,
              inputClassification: "trusted"
            },
            principal: "ada",
            ...(j % 2 === 0 ? { sessionId: `s-${a % 3}` } : {})
          }))
          yield* log.append(stream, "any", drafts)
        }
        yield* log.checkpoint
      }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
    )
  )
}

const reference = (path: string, extra: { streams?: ReadonlySet<string>; maxIssues?: number } = {}): Promise<VerifyReport> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close()))
        return yield* verifyStore(store.api, { trustedKeys, blake3Hex: crypto.blake3Hex, verifyText: crypto.verifyText, ...extra })
      })
    )
  )

/** Why the last parallel run handed over to the reference verifier; undefined when it did not. */
let lastFallback: string | undefined

const parallel = (path: string, extra: { ranges?: number; workers?: boolean; streams?: ReadonlySet<string>; maxIssues?: number } = {}): Promise<VerifyReport> => {
  lastFallback = undefined
  return Effect.runPromise(
    verifySqliteParallel(path, {
      trustedKeys,
      ...extra,
      onFallback: (reason) => {
        lastFallback = reason
      }
    })
  )
}

const positions = (path: string): Array<number> => {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare("SELECT global_position FROM events ORDER BY global_position").pluck().all().filter((p): p is number => typeof p === "number")
  } finally {
    db.close()
  }
}

const pristine = join(dir, "pristine.db")

beforeAll(async () => {
  await Effect.runPromise(generateKey(home, false, Date.now()))
  trustedKeys = await Effect.runPromise(localTrustedKeys(home))
  // About 1,300 events in 6 streams, a checkpoint every 150: each range boundary falls inside streams.
  await buildStore(pristine, { appends: 160, batch: 8, checkpointEvery: 150 })
})

describe("splitPositions", () => {
  it("covers first..last with contiguous ranges of nearly equal width", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 8 }), (first, extra, count) => {
        const last = first + extra
        const ranges = splitPositions(first, last, count)
        expect(ranges[0]?.after).toBe(first - 1)
        expect(ranges[ranges.length - 1]?.upTo).toBe(last)
        for (let i = 1; i < ranges.length; i++) expect(ranges[i]?.after).toBe(ranges[i - 1]?.upTo)
        for (const r of ranges) expect(r.upTo - r.after).toBeGreaterThanOrEqual(Math.floor((extra + 1) / ranges.length))
        expect(ranges.length).toBe(Math.min(count, extra + 1))
      })
    )
  })
})

describe("readPrevHash", () => {
  const prevHash = fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string(), fc.integer())
  const flatMember = fc.tuple(fc.constantFrom("prevHash", "eventId", "a", "prevhash", "prevHash "), fc.oneof(fc.string(), fc.integer(), prevHash))
  const texts = fc.oneof(
    fc.json(),
    fc.string(),
    // Flat objects, sometimes with repeated keys (JSON.parse keeps the last).
    fc.array(flatMember, { maxLength: 6 }).map((members) => `{${members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`),
    // Canonical metadata, then a small edit: whitespace, a nested prevHash, an escaped key, a cut.
    fc
      .tuple(prevHash, fc.integer({ min: 0, max: 6 }), fc.nat())
      .map(([value, edit, at]) => {
        const canonical = `{"causationId":"c","classification":"trusted","eventId":"e","prevHash":${JSON.stringify(value)},"principal":"ada","schemaVersion":1}`
        switch (edit) {
          case 0:
            return canonical
          case 1:
            return canonical.replace(",", ", ")
          case 2:
            return canonical.replace('"principal":"ada"', '"principal":{"prevHash":"nested"}')
          case 3:
            return canonical.replace('"principal":"ada"', '"prev\\u0048ash":"escaped"')
          case 4:
            return canonical.replace('"schemaVersion":1', '"schemaVersion":1,"prevHash":7')
          case 5:
            return canonical.slice(0, at % canonical.length)
          default:
            return canonical.replace('"ada"', '"a\\"prevHash\\":\\"x"')
        }
      })
  )
  it("reads what JSON.parse reads, for any text", () => {
    fc.assert(
      fc.property(texts, (text) => {
        expect(readPrevHash(text)).toBe(readPrevHashByParse(text))
      }),
      { numRuns: 2_000 }
    )
  })
})

describe("makePreimage", () => {
  it("returns eventPreimage's text for any sequence of events", () => {
    const name = fc.oneof(fc.constantFrom(...STREAMS, "MessageRecorded", "CheckpointSigned"), fc.string({ unit: "binary", maxLength: 12 }))
    const event = fc.tuple(name, fc.integer({ min: -2, max: 2 ** 40 }), name, fc.string({ unit: "binary" }), fc.string({ unit: "binary" }))
    fc.assert(
      fc.property(fc.array(event, { maxLength: 20 }), (events) => {
        const preimage = makePreimage()
        for (const [stream, revision, type, data, metadata] of events) {
          expect(preimage(stream, revision, type, data, metadata)).toBe(eventPreimage(stream, revision, type, data, metadata))
        }
      })
    )
  })
})

describe("verifySqliteParallel on clean stores", () => {
  it("equals the reference verifier for 1 to 5 ranges, and reports the log intact", async () => {
    const expected = await reference(pristine)
    expect(expected.ok).toBe(true)
    expect(expected.events).toBeGreaterThan(1_000)
    expect(expected.checkpoints).toBeGreaterThan(5)
    for (let ranges = 1; ranges <= 5; ranges++) {
      expect(await parallel(pristine, { ranges, workers: false })).toStrictEqual(expected)
      expect(lastFallback).toBeUndefined()
    }
  })

  it("equals the reference verifier in worker threads (run from TypeScript through tsx)", async () => {
    const expected = await reference(pristine)
    expect(await parallel(pristine, { ranges: 3, workers: true })).toStrictEqual(expected)
    expect(lastFallback).toBeUndefined()
  })

  it("equals the reference verifier with a stream filter", async () => {
    const streams = new Set(["astrid-session-b", "astrid-workspace-d"])
    const expected = await reference(pristine, { streams })
    expect(expected.streams).toBe(3)
    expect(await parallel(pristine, { ranges: 4, workers: false, streams })).toStrictEqual(expected)
  })

  it("equals the reference verifier on an empty store and on a one-event store", async () => {
    const empty = join(dir, "empty.db")
    await Effect.runPromise(openSqliteEventStore({ path: empty, mode: "write" }).pipe(Effect.map((s) => s.close())))
    expect(await parallel(empty, { ranges: 3, workers: false })).toStrictEqual(await reference(empty))
    const one = join(dir, "one.db")
    await buildStore(one, { appends: 1, batch: 1, checkpointEvery: 0 })
    expect(await parallel(one, { ranges: 3, workers: false })).toStrictEqual(await reference(one))
  })

  it("opens the file read-only and leaves it byte for byte as it was", async () => {
    const before = readFileSync(pristine)
    const mtime = statSync(pristine).mtimeMs
    await parallel(pristine, { ranges: 2, workers: true })
    await parallel(pristine, { ranges: 3, workers: false })
    expect(readFileSync(pristine).equals(before)).toBe(true)
    expect(statSync(pristine).mtimeMs).toBe(mtime)
  })

  it("fails with the store's own error when the file is missing or not a store", async () => {
    const error = await Effect.runPromise(Effect.flip(verifySqliteParallel(join(dir, "nothing.db"), { trustedKeys })))
    expect(error.kind).toBe("missing")
    const other = join(dir, "other.db")
    new Database(other).exec("CREATE TABLE t (x)")
    expect((await Effect.runPromise(Effect.flip(verifySqliteParallel(other, { trustedKeys })))).kind).toBe("not_astrid")
  })
})

// ---- tampering ----

type Column = "data" | "metadata"

type Tamper =
  /** One byte replaced, stored as text (possibly invalid UTF-8) or as a blob. */
  | { readonly _tag: "Byte"; readonly at: number; readonly column: Column; readonly offset: number; readonly byte: number; readonly asBlob: boolean }
  /** The data changed and the hash recomputed over it: the hash verifies, the next link does not. */
  | { readonly _tag: "Forge"; readonly at: number; readonly metadata: number }
  | { readonly _tag: "Delete"; readonly at: number }
  | { readonly _tag: "Rehash"; readonly at: number; readonly how: "random" | "upper" | "short" }
  /** A stream loses its tail from a revision on (all of it at revision 0). */
  | { readonly _tag: "Truncate"; readonly at: number }
  | { readonly _tag: "Revision"; readonly at: number; readonly how: "shift" | "swap" | "text" | "real" }
  | { readonly _tag: "Restream"; readonly at: number; readonly how: "other" | "foreign" | "new" }

/** A position: anywhere, or next to a boundary between ranges (picked when the store is known). */
const atArb = fc.oneof(fc.record({ boundary: fc.constant(false), pick: fc.nat() }), fc.record({ boundary: fc.constant(true), pick: fc.nat() }))

const tamperArb = (at: number): fc.Arbitrary<Tamper> =>
  fc.oneof(
    fc.record({
      _tag: fc.constant("Byte" as const),
      at: fc.constant(at),
      column: fc.constantFrom<Column>("data", "metadata"),
      offset: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      asBlob: fc.boolean()
    }),
    fc.record({ _tag: fc.constant("Forge" as const), at: fc.constant(at), metadata: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ _tag: fc.constant("Delete" as const), at: fc.constant(at) }),
    fc.record({ _tag: fc.constant("Rehash" as const), at: fc.constant(at), how: fc.constantFrom("random" as const, "upper" as const, "short" as const) }),
    fc.record({ _tag: fc.constant("Truncate" as const), at: fc.constant(at) }),
    fc.record({ _tag: fc.constant("Revision" as const), at: fc.constant(at), how: fc.constantFrom("shift" as const, "swap" as const, "text" as const, "real" as const) }),
    fc.record({ _tag: fc.constant("Restream" as const), at: fc.constant(at), how: fc.constantFrom("other" as const, "foreign" as const, "new" as const) })
  )

/** Metadata a forger might write; each must be read as JSON.parse reads it. */
const forgedMetadata = (metadata: string, how: number): string => {
  const parsed: unknown = JSON.parse(metadata)
  const prev = typeof parsed === "object" && parsed !== null && "prevHash" in parsed ? String(parsed.prevHash) : ""
  switch (how) {
    case 0:
      return metadata.replace(`"prevHash":"${prev}"`, `"prevHash":"${"0".repeat(64)}"`)
    case 1:
      return metadata.replace(`"prevHash":"${prev}"`, `"prevHash":"${prev}","prevHash":"${"1".repeat(64)}"`)
    case 2:
      return metadata.replace(`"prevHash":"${prev}",`, "")
    case 3:
      return metadata.replace(`"prevHash":"${prev}"`, `"prevHash":7`)
    case 4:
      return metadata.replace(`"prevHash":"${prev}"`, `"prev\\u0048ash":"${prev}"`)
    case 5:
      return metadata.replace(`"principal":`, `"nested":{"prevHash":"${"2".repeat(64)}"},"principal":`)
    case 6:
      return `${metadata.slice(0, -1)}, "x":1}`
    default:
      return metadata.slice(0, -1)
  }
}

const applyTamper = (path: string, t: Tamper): void => {
  const db = new Database(path)
  try {
    const row = db.prepare("SELECT stream_id, revision, type, data, metadata, hash FROM events WHERE global_position = ?").get(t.at)
    if (typeof row !== "object" || row === null) return
    const value = (key: string): unknown => (key in row ? Reflect.get(row, key) : undefined)
    const stream = String(value("stream_id"))
    const revision = Number(value("revision"))
    switch (t._tag) {
      case "Byte": {
        const bytes = Buffer.from(String(value(t.column)), "utf8")
        if (bytes.length === 0) return
        bytes[t.offset % bytes.length] = t.byte
        const sql = t.asBlob ? `UPDATE events SET ${t.column} = ? WHERE global_position = ?` : `UPDATE events SET ${t.column} = CAST(? AS TEXT) WHERE global_position = ?`
        db.prepare(sql).run(bytes, t.at)
        return
      }
      case "Forge": {
        const data = String(value("data")).replace("}", ',"forged":true}')
        const metadata = forgedMetadata(String(value("metadata")), t.metadata)
        const hash = crypto.blake3Hex(eventPreimage(stream, revision, String(value("type")), data, metadata))
        db.prepare("UPDATE events SET data = ?, metadata = ?, hash = ? WHERE global_position = ?").run(data, metadata, hash, t.at)
        return
      }
      case "Delete":
        db.prepare("DELETE FROM events WHERE global_position = ?").run(t.at)
        return
      case "Rehash": {
        const hash = String(value("hash"))
        const next = t.how === "upper" ? hash.toUpperCase() : t.how === "short" ? hash.slice(0, 63) : crypto.blake3Hex(`random ${t.at}`)
        db.prepare("UPDATE events SET hash = ? WHERE global_position = ?").run(next, t.at)
        return
      }
      case "Truncate":
        db.prepare("DELETE FROM events WHERE stream_id = ? AND revision >= ?").run(stream, revision)
        return
      case "Revision": {
        if (t.how === "text") db.prepare("UPDATE events SET revision = 'seven' WHERE global_position = ?").run(t.at)
        else if (t.how === "real") db.prepare("UPDATE events SET revision = revision + 0.5 WHERE global_position = ?").run(t.at)
        else if (t.how === "shift") db.prepare("UPDATE events SET revision = revision + 1000 WHERE global_position = ?").run(t.at)
        else {
          // The stream's last event takes this revision and this one the last's: revisions go backwards in position order.
          const last = db.prepare("SELECT global_position, revision FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1").raw().get(stream)
          if (!Array.isArray(last) || last[0] === t.at) return
          db.transaction(() => {
            db.prepare("UPDATE events SET revision = 1000000000 WHERE global_position = ?").run(last[0])
            db.prepare("UPDATE events SET revision = ? WHERE global_position = ?").run(last[1], t.at)
            db.prepare("UPDATE events SET revision = ? WHERE global_position = ?").run(revision, last[0])
          })()
        }
        return
      }
      case "Restream": {
        const target = t.how === "foreign" ? "elsewhere-stream" : t.how === "new" ? "astrid-session-new" : STREAMS.find((s) => s !== stream) ?? stream
        db.prepare("UPDATE events SET stream_id = ?, revision = revision + 100000 WHERE global_position = ?").run(target, t.at)
        return
      }
    }
  } catch (e) {
    // A tamper that breaks a constraint (a revision taken twice) is simply not applied.
    if (!(e instanceof Error && "code" in e && String(e.code).startsWith("SQLITE_CONSTRAINT"))) throw e
  } finally {
    db.close()
  }
}

describe("verifySqliteParallel on tampered stores", () => {
  const all = (): Array<number> => positions(pristine)

  it("equals the reference verifier under random tampering, at random places and at range boundaries", async () => {
    const known = all()
    const first = known[0] ?? 1
    const last = known[known.length - 1] ?? 1
    let run = 0
    let fallbacks = 0
    let failingWithoutFallback = 0
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(atArb, tamperArb(0)), { minLength: 1, maxLength: 4 }),
        fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        async (ranges, picks, maxIssues) => {
          const bounds = splitPositions(first, last, ranges).flatMap((r) => [r.upTo, r.upTo + 1])
          const path = join(dir, `tampered-${run++}.db`)
          copyFileSync(pristine, path)
          try {
            for (const [{ boundary, pick }, spec] of picks) {
              const at = boundary ? (bounds[pick % bounds.length] ?? first) : (known[pick % known.length] ?? first)
              applyTamper(path, { ...spec, at })
            }
            const options = maxIssues === undefined ? {} : { maxIssues }
            const expected = await reference(path, options)
            const actual = await parallel(path, { ranges, workers: false, ...options })
            expect(actual).toStrictEqual(expected)
            if (lastFallback !== undefined) fallbacks++
            else if (!expected.ok) failingWithoutFallback++
          } finally {
            rmSync(path, { force: true })
          }
        }
      ),
      { numRuns: 60 }
    )
    // Most tampered stores are judged by the parallel path itself, not handed to the reference verifier.
    expect(failingWithoutFallback).toBeGreaterThan(30)
    expect(fallbacks).toBeLessThan(30)
  })

  it("finds each kind of tampering (the property above is not vacuous)", async () => {
    const known = all()
    const at = known[Math.floor(known.length / 2)] ?? 1
    const kinds = new Set<string>()
    // [tamper, whether the parallel path hands over to the reference verifier]
    const cases: ReadonlyArray<readonly [Tamper, boolean]> = [
      [{ _tag: "Byte", at, column: "data", offset: 3, byte: 0xff, asBlob: false }, false],
      [{ _tag: "Byte", at, column: "metadata", offset: 40, byte: 0x41, asBlob: true }, false],
      [{ _tag: "Forge", at, metadata: 0 }, false],
      [{ _tag: "Delete", at }, false],
      [{ _tag: "Truncate", at }, false],
      [{ _tag: "Revision", at, how: "swap" }, true],
      [{ _tag: "Revision", at, how: "text" }, true],
      [{ _tag: "Rehash", at, how: "upper" }, false]
    ]
    for (const [i, [t, fallsBack]] of cases.entries()) {
      const path = join(dir, `kind-${i}.db`)
      copyFileSync(pristine, path)
      applyTamper(path, t)
      const expected = await reference(path)
      expect(expected.ok, t._tag).toBe(false)
      expect(await parallel(path, { ranges: 3, workers: false })).toStrictEqual(expected)
      expect(lastFallback !== undefined, `${t._tag} falls back: ${String(lastFallback)}`).toBe(fallsBack)
      for (const issue of expected.issues) kinds.add(issue.kind)
      rmSync(path, { force: true })
    }
    expect([...kinds].sort()).toEqual(
      expect.arrayContaining(["broken_link", "checkpoint_mismatch", "hash_mismatch", "revision_gap", "truncated_stream"])
    )
  })

  it("equals the reference verifier when one tampered event sits exactly on each range boundary, in worker threads", async () => {
    const known = all()
    const first = known[0] ?? 1
    const last = known[known.length - 1] ?? 1
    const path = join(dir, "boundaries.db")
    copyFileSync(pristine, path)
    const bounds = splitPositions(first, last, 4)
    for (const [i, r] of bounds.entries()) {
      if (i === bounds.length - 1) break
      applyTamper(path, i % 2 === 0 ? { _tag: "Delete", at: r.upTo } : { _tag: "Forge", at: r.upTo + 1, metadata: 1 })
    }
    const expected = await reference(path)
    expect(expected.ok).toBe(false)
    expect(await parallel(path, { ranges: 4, workers: true })).toStrictEqual(expected)
    rmSync(path, { force: true })
  })

  it("keeps the first maxIssues issues in log order and counts the rest", async () => {
    const path = join(dir, "many.db")
    copyFileSync(pristine, path)
    const db = new Database(path)
    db.prepare("UPDATE events SET hash = upper(hash) WHERE global_position % 37 = 0").run()
    db.close()
    for (const maxIssues of [1, 5, 10_000]) {
      const expected = await reference(path, { maxIssues })
      expect(expected.issues.length + expected.issuesOmitted).toBeGreaterThan(30)
      expect(await parallel(path, { ranges: 5, workers: false, maxIssues })).toStrictEqual(expected)
    }
    rmSync(path, { force: true })
  })
})
