import Database from "better-sqlite3"
import { Effect, Either, Fiber, Option, Stream } from "effect"
import { existsSync } from "node:fs"
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { randomBytes } from "node:crypto"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it, vi } from "vitest"
import type { EventStoreApi } from "../../application/ports/eventStore.js"
import { appendNext, body, chainEvents, eventStoreContract, verifyAll } from "../../test/eventStoreContract.js"
import { loadBlake3 } from "../crypto/blake3.js"
import { openSqliteEventStore, type SqliteStoreOptions } from "./sqliteEventStore.js"

const blake3 = await loadBlake3()

const freshDir = (): Promise<string> => mkdtemp(join(tmpdir(), "astrid-sqlite-"))

eventStoreContract("sqlite", async () => {
  const dir = await freshDir()
  const opened = await Effect.runPromise(openSqliteEventStore({ path: join(dir, "astrid.db"), mode: "write" }))
  return {
    store: opened.api,
    close: async () => {
      opened.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
})

describe("the SQLite event-store file", () => {
  const cleanup: Array<() => void | Promise<void>> = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })

  /** A fresh temp dir, removed after the test. */
  const tempDir = async (): Promise<string> => {
    const dir = await freshDir()
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    return dir
  }

  /** Opens a store that is closed after the test. */
  const open = async (options: SqliteStoreOptions): Promise<EventStoreApi> => {
    const opened = await Effect.runPromise(openSqliteEventStore(options))
    cleanup.push(() => opened.close())
    return opened.api
  }

  /** A plain connection, outside the store, closed after the test. */
  const connect = (path: string, readonly = false): Database.Database => {
    const db = new Database(path, { readonly, fileMustExist: true })
    cleanup.push(() => {
      db.close()
    })
    return db
  }

  const openFailure = async (options: SqliteStoreOptions) => {
    const outcome = await Effect.runPromise(Effect.either(openSqliteEventStore(options)))
    if (Either.isRight(outcome)) {
      outcome.right.close()
      return expect.fail(`opening ${options.path} in ${options.mode} mode succeeded`)
    }
    return outcome.left
  }

  const fingerprint = async (path: string): Promise<string> => Buffer.from(blake3.bytesOf(await readFile(path))).toString("hex")

  it("has the documented tables and columns, and names its format", async () => {
    const path = join(await tempDir(), "astrid.db")
    const store = await open({ path, mode: "write" })
    await Effect.runPromise(appendNext(store, "astrid-session-s", 2))

    const db = connect(path, true)
    const columns = db.prepare("SELECT name FROM pragma_table_info('events') ORDER BY cid").pluck().all()
    expect(columns).toEqual(["global_position", "stream_id", "revision", "event_id", "type", "data", "metadata", "hash"])
    const meta = db.prepare("SELECT key, value FROM astrid_meta ORDER BY key").raw().all()
    expect(meta).toEqual([
      ["format", "astrid-event-store"],
      ["format_version", "1"]
    ])
    // An auditor with only a SQLite shell sees the canonical texts that were hashed.
    const [first] = await Effect.runPromise(store.readStream("astrid-session-s"))
    const row = db.prepare("SELECT stream_id, revision, event_id, data, metadata, hash FROM events WHERE global_position = ?").raw().get(first?.position)
    expect(row).toEqual(["astrid-session-s", 0, first?.eventId, first?.data, first?.metadata, first?.hash])
  })

  it("journals in WAL mode and syncs every commit (synchronous FULL) unless told otherwise", async () => {
    const dir = await tempDir()
    const connectionsOpenedBy = async (options: SqliteStoreOptions): Promise<Array<Database.Database>> => {
      const spy = vi.spyOn(Database.prototype, "pragma")
      try {
        await open(options)
        return [...new Set(spy.mock.contexts.flatMap((c) => (c instanceof Database ? [c] : [])))]
      } finally {
        spy.mockRestore()
      }
    }
    const [full, ...othersFull] = await connectionsOpenedBy({ path: join(dir, "full.db"), mode: "write" })
    const [normal, ...othersNormal] = await connectionsOpenedBy({ path: join(dir, "normal.db"), mode: "write", synchronous: "normal" })
    expect(othersFull).toEqual([])
    expect(othersNormal).toEqual([])
    // synchronous is a per-connection setting, so it is read on the store's own connection: 2 = FULL, 1 = NORMAL.
    expect(full?.pragma("synchronous", { simple: true })).toBe(2)
    expect(normal?.pragma("synchronous", { simple: true })).toBe(1)
    expect(full?.pragma("journal_mode", { simple: true })).toBe("wal")
    // journal_mode = WAL is stored in the file, so every other connection sees it.
    expect(connect(join(dir, "full.db"), true).pragma("journal_mode", { simple: true })).toBe("wal")
  })

  it("in read mode, a missing file fails with 'missing' and nothing is created", async () => {
    const dir = await tempDir()
    const path = join(dir, "home", "astrid.db")
    const error = await openFailure({ path, mode: "read" })
    expect(error.kind).toBe("missing")
    expect(error.message).toContain(path)
    expect(existsSync(path)).toBe(false)
    expect(await readdir(dir)).toEqual([])
  })

  it("a file of random bytes fails with 'corrupt' in both modes and is left byte for byte as it was", async () => {
    const dir = await tempDir()
    const path = join(dir, "astrid.db")
    await writeFile(path, randomBytes(16 * 1024))
    const before = await fingerprint(path)
    for (const mode of ["read", "write"] as const) {
      const error = await openFailure({ path, mode })
      expect(error.kind, mode).toBe("corrupt")
      expect(error.message).toContain(path)
    }
    expect(await fingerprint(path)).toBe(before)
    expect(await readdir(dir)).toEqual(["astrid.db"])
  })

  it("a SQLite database that is not an Astrid store fails with 'not_astrid' in both modes and is left as it was", async () => {
    const dir = await tempDir()
    const foreign = join(dir, "foreign.db")
    const otherFormat = join(dir, "other-format.db")
    const setUp = new Database(foreign)
    setUp.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('keep me')")
    setUp.close()
    const setUpOther = new Database(otherFormat)
    setUpOther.exec("CREATE TABLE astrid_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO astrid_meta VALUES ('format', 'astrid-event-store'), ('format_version', '999')")
    setUpOther.close()

    for (const path of [foreign, otherFormat]) {
      const before = await fingerprint(path)
      for (const mode of ["read", "write"] as const) {
        const error = await openFailure({ path, mode })
        expect(error.kind, `${path} in ${mode} mode`).toBe("not_astrid")
        expect(error.message).toContain(path)
      }
      expect(await fingerprint(path)).toBe(before)
    }
    expect((await readdir(dir)).sort()).toEqual(["foreign.db", "other-format.db"])
  })

  it("an append while another connection holds the write lock fails with 'locked' and writes nothing", async () => {
    const path = join(await tempDir(), "astrid.db")
    const store = await open({ path, mode: "write", busyTimeoutMs: 50 })
    const { events } = await Effect.runPromise(appendNext(store, "astrid-session-l", 2))

    const other = connect(path)
    other.exec("BEGIN EXCLUSIVE")
    const next = chainEvents("astrid-session-l", { revision: 1, hash: events[1]?.hash ?? "" }, 1)
    const outcome = await Effect.runPromise(Effect.either(store.append("astrid-session-l", 1, next)))
    if (Either.isRight(outcome)) return expect.fail("the append went through a held write lock")
    expect(outcome.left).toMatchObject({ _tag: "EventStoreError", kind: "locked" })
    // Readers are not blocked by a writer under WAL.
    expect((await Effect.runPromise(store.readStream("astrid-session-l"))).map(body)).toEqual(events)
    other.exec("ROLLBACK")

    expect((await Effect.runPromise(store.append("astrid-session-l", 1, next))).lastRevision).toBe(2)
  })

  it("read mode refuses appends with 'read_only' and still reads", async () => {
    const path = join(await tempDir(), "astrid.db")
    const writer = await open({ path, mode: "write" })
    const { events } = await Effect.runPromise(appendNext(writer, "astrid-session-r", 3))

    const reader = await open({ path, mode: "read" })
    const outcome = await Effect.runPromise(Effect.either(reader.append("astrid-session-r", 2, chainEvents("astrid-session-r", { revision: 2, hash: events[2]?.hash ?? "" }, 1))))
    if (Either.isRight(outcome)) return expect.fail("a read-only store accepted an append")
    expect(outcome.left).toMatchObject({ _tag: "EventStoreError", kind: "read_only" })
    expect((await Effect.runPromise(reader.readStream("astrid-session-r"))).map(body)).toEqual(events)
    expect(await Effect.runPromise(reader.stats)).toMatchObject({ events: 3, streams: 1 })
  })

  it("two connections racing to extend one stream at the same revision: exactly one wins, every time", async () => {
    const path = join(await tempDir(), "astrid.db")
    const a = await open({ path, mode: "write" })
    const b = await open({ path, mode: "write" })
    const stream = "astrid-session-shared"
    await Effect.runPromise(appendNext(a, stream, 2))

    for (let round = 0; round < 10; round++) {
      const [first, second] = round % 2 === 0 ? [a, b] : [b, a]
      const [headA, headB] = await Effect.runPromise(Effect.all([first.streamHead(stream), second.streamHead(stream)]))
      expect(headB).toEqual(headA)
      const head = Option.getOrUndefined(headA)
      if (head === undefined) return expect.fail("the shared stream has no head")
      const fromFirst = chainEvents(stream, head, 2, `first-${round}`)
      const fromSecond = chainEvents(stream, head, 3, `second-${round}`)
      const [o1, o2] = await Effect.runPromise(
        Effect.all([Effect.either(first.append(stream, head.revision, fromFirst)), Effect.either(second.append(stream, head.revision, fromSecond))], {
          concurrency: "unbounded"
        })
      )
      expect([o1, o2].filter(Either.isRight)).toHaveLength(1)
      const loser = [o1, o2].find(Either.isLeft)
      expect(loser?.left).toMatchObject({ _tag: "WrongExpectedRevision", expected: head.revision })
      const winner = Either.isRight(o1) ? fromFirst : fromSecond
      const tail = await Effect.runPromise(second.readStream(stream, { fromRevision: head.revision + 1 }))
      expect(tail.map(body)).toEqual(winner)
      expect(await Effect.runPromise(first.readStream(stream, { fromRevision: head.revision + 1 }))).toEqual(tail)
    }
    const report = await Effect.runPromise(verifyAll(b))
    expect(report.issues).toEqual([])
    expect(report.ok).toBe(true)
  })

  it("a subscription on one connection receives appends made through another (polling)", async () => {
    const path = join(await tempDir(), "astrid.db")
    const writer = await open({ path, mode: "write" })
    await Effect.runPromise(appendNext(writer, "astrid-session-before", 3))
    const watcher = await open({ path, mode: "read", pollMs: 20 })

    const received = await Effect.runPromise(
      Effect.gen(function* () {
        const subscriber = yield* watcher.subscribeToAll({ after: 0, streamPrefix: "astrid-" }).pipe(Stream.take(3 + 4 + 5), Stream.runCollect, Effect.fork)
        const live = [
          ...(yield* appendNext(writer, "astrid-session-x", 4)).events,
          ...(yield* appendNext(writer, "astrid-principal-y", 5)).events
        ]
        const got = yield* Fiber.join(subscriber).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the watcher never saw the other connection's appends") }))
        return { got: [...got], live }
      })
    )
    expect(received.got).toHaveLength(12)
    expect(received.got.slice(3).map((e) => e.eventId)).toEqual(received.live.map((e) => e.eventId))
    expect(received.got).toEqual(await Effect.runPromise(writer.readAll({ after: 0, maxCount: 100 })))
  })
})
