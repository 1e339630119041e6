/**
 * The embedded EventStore: one SQLite file (WAL, synchronous=FULL by default so an acknowledged append
 * survives power loss). Appends run in an IMMEDIATE transaction that re-reads the stream head, so two
 * writers, in one process or many, can never both extend the same revision.
 */
import Database from "better-sqlite3"
import { Effect, Layer, Option } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { dirname } from "node:path"
import type { RecordedEvent } from "../../domain/envelope.js"
import {
  EventStore,
  type EventStoreApi,
  EventStoreError,
  expectationHolds,
  type StoreFailureKind,
  WrongExpectedRevision
} from "../../application/ports/eventStore.js"
import { ChangeSignal, pagedSubscription } from "./changeSignal.js"
import { FORMAT_NAME, FORMAT_VERSION, SCHEMA_SQL } from "./sqliteSchema.js"
import { messageOf } from "../../domain/errorMessage.js"

export type OpenMode =
  /** Read only; the file must exist and be an Astrid store. Never modifies anything. */
  | "read"
  /** Read and write; creates the file (and its folder) when missing. */
  | "write"

export interface SqliteStoreOptions {
  readonly path: string
  readonly mode: OpenMode
  /** "full" (default) syncs every commit; "normal" may lose the last commits on power loss, never on a crash. */
  readonly synchronous?: "full" | "normal"
  readonly busyTimeoutMs?: number
  /** How often a subscription polls for other processes' appends. */
  readonly pollMs?: number
}

type Row = [number, string, number, string, string, string, string, string]

const SELECT = "SELECT global_position, stream_id, revision, event_id, type, data, metadata, hash FROM events"

const toRecorded = (r: Row): RecordedEvent => ({
  position: r[0],
  stream: r[1],
  revision: r[2],
  eventId: r[3],
  type: r[4],
  data: r[5],
  metadata: r[6],
  hash: r[7]
})

const sqliteCode = (e: unknown): string => (typeof e === "object" && e !== null && "code" in e ? String(e.code) : "")

/** Maps a SQLite failure to a one-line error that says what to do. */
export const describeSqliteFailure = (path: string, e: unknown): EventStoreError => {
  const code = sqliteCode(e)
  const fail = (kind: StoreFailureKind, message: string) => new EventStoreError({ kind, message })
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return fail("locked", `the event store ${path} is locked by another process; wait for it to finish, or stop it, and try again`)
  }
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) {
    return fail("corrupt", `${path} is not a readable SQLite database (${messageOf(e)}); restore it from a backup or point ASTRID_HOME elsewhere`)
  }
  if (code.startsWith("SQLITE_READONLY")) {
    return fail("read_only", `the event store ${path} cannot be written (${messageOf(e)}); check its permissions`)
  }
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_PERM")) {
    return fail("io", `cannot open the event store ${path} (${messageOf(e)}); check that the path and its folder are readable`)
  }
  return fail("io", `the event store ${path} failed: ${messageOf(e)}`)
}

const checkFormat = (db: Database.Database, path: string): EventStoreError | undefined => {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'astrid_meta'").get()
  if (hasMeta === undefined) {
    return new EventStoreError({
      kind: "not_astrid",
      message: `${path} is a SQLite database but not an Astrid event store (no astrid_meta table); point ASTRID_HOME at an Astrid home`
    })
  }
  const rows = db.prepare("SELECT key, value FROM astrid_meta").all() as Array<{ key: string; value: string }>
  const meta = new Map(rows.map((r) => [r.key, r.value]))
  if (meta.get("format") !== FORMAT_NAME) {
    return new EventStoreError({ kind: "not_astrid", message: `${path} is not an Astrid event store (format '${meta.get("format") ?? "none"}')` })
  }
  if (meta.get("format_version") !== FORMAT_VERSION) {
    return new EventStoreError({
      kind: "not_astrid",
      message: `${path} has event-store format version ${meta.get("format_version") ?? "none"}, this astrid reads version ${FORMAT_VERSION}; use a matching astrid release`
    })
  }
  return undefined
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdirSync never returns for a path under /proc (it loops
 * on the kernel's answer), and a plain mkdir there fails as it should.
 */
const makeParents = (dir: string): void => {
  if (existsSync(dir)) return
  const parent = dirname(dir)
  if (parent !== dir) makeParents(parent)
  mkdirSync(dir)
}

/** Opens (and in write mode creates) the database file. Fails with a typed, user-readable error. */
const openDatabase = (options: SqliteStoreOptions): Database.Database => {
  const { path, mode } = options
  const exists = existsSync(path)
  if (mode === "read" && !exists) {
    throw new EventStoreError({
      kind: "missing",
      message: `no event store at ${path}; nothing has been recorded in this ASTRID_HOME yet (run a command that records events, or set ASTRID_HOME)`
    })
  }
  let db: Database.Database | undefined
  try {
    if (!exists) makeParents(dirname(path))
    db = new Database(path, { readonly: mode === "read", fileMustExist: exists })
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`)
    const isNew = !exists || db.prepare("SELECT count(*) AS n FROM sqlite_master").pluck().get() === 0
    if (isNew && mode === "write") {
      db.pragma("journal_mode = WAL")
      db.transaction(() => {
        db?.exec(SCHEMA_SQL)
        // Two processes may both find the file new; the second one's IMMEDIATE transaction waits for the
        // first and then finds the schema in place.
        const put = db?.prepare("INSERT OR IGNORE INTO astrid_meta (key, value) VALUES (?, ?)")
        put?.run("format", FORMAT_NAME)
        put?.run("format_version", FORMAT_VERSION)
      }).immediate()
    } else {
      const problem = checkFormat(db, path)
      if (problem !== undefined) throw problem
      if (mode === "write") db.pragma("journal_mode = WAL")
    }
    db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`)
    return db
  } catch (e) {
    db?.close()
    if (e instanceof EventStoreError) throw e
    throw describeSqliteFailure(path, e)
  }
}

export const openSqliteEventStore = (options: SqliteStoreOptions): Effect.Effect<{ api: EventStoreApi; close: () => void }, EventStoreError> =>
  Effect.try({
    try: () => {
      const db = openDatabase(options)
      return { api: makeApi(db, options), close: () => db.close() }
    },
    catch: (e) => (e instanceof EventStoreError ? e : describeSqliteFailure(options.path, e))
  })

const makeApi = (db: Database.Database, options: SqliteStoreOptions): EventStoreApi => {
  const { path } = options
  const signal = new ChangeSignal()
  const guard = <A>(f: () => A): Effect.Effect<A, EventStoreError> =>
    Effect.try({ try: f, catch: (e) => describeSqliteFailure(path, e) })

  const head = db.prepare("SELECT revision, hash FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1")
  const readForward = db.prepare(`${SELECT} WHERE stream_id = ? AND revision >= ? ORDER BY revision ASC LIMIT ?`).raw()
  const readBackward = db.prepare(`${SELECT} WHERE stream_id = ? AND revision <= ? ORDER BY revision DESC LIMIT ?`).raw()
  const readAll = db.prepare(`${SELECT} WHERE global_position > ? ORDER BY global_position ASC LIMIT ?`).raw()
  const readAllPrefix = db
    .prepare(`${SELECT} WHERE global_position > ? AND substr(stream_id, 1, length(?)) = ? ORDER BY global_position ASC LIMIT ?`)
    .raw()
  const byId = db.prepare(`${SELECT} WHERE event_id = ?`).raw()
  const stats = db.prepare(
    "SELECT count(*), count(DISTINCT stream_id), coalesce(max(global_position), 0), coalesce(sum(length(data) + length(metadata)), 0) FROM events"
  ).raw()

  const readOnly = options.mode === "read"
  const insert = readOnly
    ? undefined
    : db.prepare("INSERT INTO events (stream_id, revision, event_id, type, data, metadata, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")

  const appendTx = db.transaction(
    (stream: string, expected: Parameters<EventStoreApi["append"]>[1], events: Parameters<EventStoreApi["append"]>[2]) => {
      const current = head.get(stream) as { revision: number; hash: string } | undefined
      const currentRevision = current?.revision
      const next = currentRevision === undefined ? 0 : currentRevision + 1
      if (!expectationHolds(expected, currentRevision) || !events.every((e, i) => e.revision === next + i)) {
        return new WrongExpectedRevision({ stream, expected, actual: currentRevision ?? "no_stream" })
      }
      let lastPosition = 0
      for (const e of events) {
        lastPosition = Number(insert?.run(stream, e.revision, e.eventId, e.type, e.data, e.metadata, e.hash).lastInsertRowid)
      }
      return { lastRevision: next + events.length - 1, lastPosition }
    }
  )

  /** Names the id that broke the event_id constraint: one already stored, or one the batch repeats. */
  const duplicateIdError = (events: Parameters<EventStoreApi["append"]>[2]): EventStoreError => {
    const batchIds = new Set<string>()
    for (const e of events) {
      const stored = byId.get(e.eventId) !== undefined
      if (stored || batchIds.has(e.eventId)) {
        const where = stored ? `is already in the event store ${path}` : "appears twice in the batch"
        return new EventStoreError({ kind: "invalid", message: `event ${e.eventId} ${where}; an event id can be appended only once` })
      }
      batchIds.add(e.eventId)
    }
    return new EventStoreError({ kind: "invalid", message: `an event id of the batch is already in the event store ${path}; an event id can be appended only once` })
  }

  const readAllSync = (after: number, maxCount: number, prefix: string | undefined): ReadonlyArray<RecordedEvent> =>
    ((prefix === undefined ? readAll.all(after, maxCount) : readAllPrefix.all(after, prefix, prefix, maxCount)) as Array<Row>).map(toRecorded)

  return {
    location: path,
    append: (stream, expected, events) => {
      if (readOnly) {
        return Effect.fail(new EventStoreError({ kind: "read_only", message: `the event store ${path} was opened read-only` }))
      }
      return Effect.try({
        try: () => appendTx.immediate(stream, expected, events),
        // The stream head is checked inside the transaction, so the only constraint left to break is event_id.
        catch: (e) => (sqliteCode(e) === "SQLITE_CONSTRAINT_UNIQUE" ? duplicateIdError(events) : describeSqliteFailure(path, e))
      }).pipe(
        Effect.flatMap((r) => (r instanceof WrongExpectedRevision ? Effect.fail(r) : Effect.succeed(r))),
        Effect.tap(() => Effect.sync(() => signal.notify()))
      )
    },
    readStream: (stream, opts = {}) =>
      guard(() => {
        const max = opts.maxCount ?? -1
        const rows =
          opts.direction === "backward"
            ? readBackward.all(stream, opts.fromRevision ?? Number.MAX_SAFE_INTEGER, max)
            : readForward.all(stream, opts.fromRevision ?? 0, max)
        return (rows as Array<Row>).map(toRecorded)
      }),
    readAll: ({ after, maxCount, streamPrefix }) => guard(() => readAllSync(after, maxCount, streamPrefix)),
    subscribeToAll: ({ after, streamPrefix }) =>
      pagedSubscription(after, (from) => guard(() => readAllSync(from, 1000, streamPrefix)), signal, options.pollMs ?? 50),
    streamHead: (stream) =>
      guard(() => Option.fromNullable(head.get(stream) as { revision: number; hash: string } | undefined)),
    findEvent: (eventId) => guard(() => Option.map(Option.fromNullable(byId.get(eventId) as Row | undefined), toRecorded)),
    stats: guard(() => {
      const r = stats.get() as [number, number, number, number]
      return { events: r[0], streams: r[1], lastPosition: r[2], bytes: r[3] }
    })
  }
}

/** A scoped layer: the database is closed when the scope ends. */
export const SqliteEventStoreLive = (options: SqliteStoreOptions): Layer.Layer<EventStore, EventStoreError> =>
  Layer.scoped(
    EventStore,
    Effect.acquireRelease(openSqliteEventStore(options), (s) => Effect.sync(() => s.close())).pipe(Effect.map((s) => s.api))
  )
