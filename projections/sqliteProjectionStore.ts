/**
 * Where views live: `$ASTRID_HOME/projections.db`, a SQLite file of its own (WAL) beside the event
 * store. It holds each projection's tables and one `projection_checkpoints` row per projection; the
 * view rows of a batch and its checkpoint are written in one transaction, so they never disagree.
 * Everything here is a cache of the log: the file can be deleted at any time and is rebuilt from it.
 */
import Database from "better-sqlite3"
import { Context, Data, Effect, Either, Layer, Option, Schema } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import type { RecordedEvent } from "../domain/envelope.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { createTableSql, isSqlValue, type Projection, type SqlValue, type Table, type TableShape, type ViewChange, type ViewReader } from "./projection.js"

export const PROJECTIONS_FILE = "projections.db"
export const projectionsPath = (home: string): string => join(home, PROJECTIONS_FILE)

const FORMAT_NAME = "astrid-projections"
const FORMAT_VERSION = "1"

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS projection_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name          TEXT PRIMARY KEY,
  version       INTEGER NOT NULL,
  position      INTEGER NOT NULL CHECK (position >= 0),
  last_event_id TEXT,
  tables        TEXT NOT NULL
) STRICT;
`

export type ProjectionFailureKind = "missing" | "locked" | "corrupt" | "io" | "read_only" | "apply" | "unknown" | "invalid"

/** A view could not be read, written or built. `message` says what happened and what to do. */
export class ProjectionError extends Data.TaggedError("ProjectionError")<{
  readonly kind: ProjectionFailureKind
  readonly message: string
}> {}

/** How far a projection has read the log, and which tables its stored version created. */
export interface ProjectionCheckpoint {
  readonly name: string
  readonly version: number
  /** Global position of the last event folded in; 0 before the first. */
  readonly position: number
  /** Id of that event, so that a view built from another log (a replaced astrid.db) is recognised. */
  readonly lastEventId: string | null
  readonly tables: ReadonlyArray<string>
}

/** A recorded event with its typed form, decoded once for every projection of a batch. */
export interface DecodedEvent {
  readonly recorded: RecordedEvent
  /** Undefined for an event type this build does not know: projections skip it, checkpoints pass it. */
  readonly event: AstridEvent | undefined
}

/** Why `ensure` (re)created a view, or "current" when it kept it. */
export type EnsureOutcome = "created" | "current" | "version_changed" | "tables_missing"

export interface ProjectionStoreApi {
  readonly location: string
  readonly checkpoints: Effect.Effect<ReadonlyArray<ProjectionCheckpoint>, ProjectionError>
  readonly checkpoint: (name: string) => Effect.Effect<Option.Option<ProjectionCheckpoint>, ProjectionError>
  /**
   * Makes the projection's tables and checkpoint exist at its version: creates them when new; when the
   * stored version differs, drops the old version's tables and starts again from position 0.
   */
  readonly ensure: (projection: Projection) => Effect.Effect<{ readonly outcome: EnsureOutcome; readonly checkpoint: ProjectionCheckpoint }, ProjectionError>
  /**
   * Drops the projection's tables and sets its checkpoint to 0, in one transaction. With `onlyIf`, does
   * so only while the checkpoint is still that one (another process may have reset it already).
   */
  readonly reset: (projection: Projection, onlyIf?: ProjectionCheckpoint) => Effect.Effect<void, ProjectionError>
  /**
   * Folds `events` (read from the log after position `after`, in order) into each projection, and moves
   * each checkpoint to the last event, all in one transaction. A projection whose checkpoint is before
   * `after` (it was reset meanwhile) is left alone: folding would skip events. Returns every checkpoint
   * position after the batch.
   */
  readonly applyBatch: (
    projections: ReadonlyArray<Projection>,
    after: number,
    events: ReadonlyArray<DecodedEvent>
  ) => Effect.Effect<ReadonlyMap<string, number>, ProjectionError>
  /** Rows of a query on one view table, decoded with the table's row Schema. */
  readonly select: <A, I, K extends keyof A & string>(
    table: Table<A, I, K>,
    sql: string,
    params?: ReadonlyArray<SqlValue>
  ) => Effect.Effect<ReadonlyArray<A>, ProjectionError>
  /** Row count of each of the projection's tables (0 for a table not created yet). */
  readonly rowCounts: (projection: Projection) => Effect.Effect<Readonly<Record<string, number>>, ProjectionError>
  /** Every row of every table of the projection, in primary-key order: for comparing two builds. */
  readonly dump: (projection: Projection) => Effect.Effect<Readonly<Record<string, ReadonlyArray<unknown>>>, ProjectionError>
}

export class ProjectionStore extends Context.Tag("astrid/ProjectionStore")<ProjectionStore, ProjectionStoreApi>() {}

export interface ProjectionStoreOptions {
  readonly path: string
  /** "read" never creates or changes the file; "write" creates it (and its folder) when missing. */
  readonly mode: "read" | "write"
  readonly busyTimeoutMs?: number
}

const sqliteCode = (e: unknown): string => (typeof e === "object" && e !== null && "code" in e ? String(e.code) : "")
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Maps a SQLite failure to a one-line error; the remedy for a broken cache is always to rebuild it. */
export const describeFailure = (path: string, e: unknown): ProjectionError => {
  if (e instanceof ProjectionError) return e
  const code = sqliteCode(e)
  const fail = (kind: ProjectionFailureKind, message: string) => new ProjectionError({ kind, message })
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return fail("locked", `the projections database ${path} is locked by another process; wait for it to finish and try again`)
  }
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) {
    return fail("corrupt", `${path} is not a readable SQLite database (${messageOf(e)}); delete it, it is rebuilt from the event log`)
  }
  if (code.startsWith("SQLITE_READONLY")) {
    return fail("read_only", `the projections database ${path} cannot be written (${messageOf(e)}); check its permissions`)
  }
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_PERM")) {
    return fail("io", `cannot open the projections database ${path} (${messageOf(e)}); check that the path and its folder are writable`)
  }
  return fail("io", `the projections database ${path} failed: ${messageOf(e)}`)
}

const CheckpointRow = Schema.Struct({
  name: Schema.String,
  version: Schema.Int,
  position: Schema.NonNegativeInt,
  last_event_id: Schema.NullOr(Schema.String),
  tables: Schema.parseJson(Schema.Array(Schema.String))
})
const decodeCheckpointRow = Schema.decodeUnknownEither(CheckpointRow)
const MetaRow = Schema.Struct({ key: Schema.String, value: Schema.String })
const decodeMetaRows = Schema.decodeUnknownEither(Schema.Array(MetaRow))
const Count = Schema.NonNegativeInt
const decodeCount = Schema.decodeUnknownEither(Count)

const openDatabase = (options: ProjectionStoreOptions): Database.Database => {
  const { path, mode } = options
  const exists = existsSync(path)
  if (mode === "read" && !exists) {
    throw new ProjectionError({ kind: "missing", message: `no projections database at ${path}; 'astrid projections rebuild' builds it from the event log` })
  }
  let db: Database.Database | undefined
  try {
    if (!exists) mkdirSync(dirname(path), { recursive: true })
    db = new Database(path, { readonly: mode === "read", fileMustExist: exists })
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`)
    if (mode === "write") {
      db.pragma("journal_mode = WAL")
      // A view is a cache of the log: losing the last commits on power loss only means replaying them.
      // WAL keeps each commit atomic either way, so view rows and checkpoint still move together.
      db.pragma("synchronous = NORMAL")
      const handle = db
      handle
        .transaction(() => {
          handle.exec(SCHEMA_SQL)
          const put = handle.prepare("INSERT OR IGNORE INTO projection_meta (key, value) VALUES (?, ?)")
          put.run("format", FORMAT_NAME)
          put.run("format_version", FORMAT_VERSION)
        })
        .immediate()
    }
    const problem = checkFormat(db, path)
    if (problem !== undefined) throw problem
    return db
  } catch (e) {
    db?.close()
    throw describeFailure(path, e)
  }
}

const checkFormat = (db: Database.Database, path: string): ProjectionError | undefined => {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projection_meta'").get()
  const rows = hasMeta === undefined ? Either.right([]) : decodeMetaRows(db.prepare("SELECT key, value FROM projection_meta").all())
  const meta = new Map(Either.isRight(rows) ? rows.right.map((r) => [r.key, r.value]) : [])
  if (meta.get("format") !== FORMAT_NAME || meta.get("format_version") !== FORMAT_VERSION) {
    return new ProjectionError({
      kind: "corrupt",
      message: `${path} is not an Astrid projections database of format ${FORMAT_VERSION}; delete it, it is rebuilt from the event log`
    })
  }
  return undefined
}

export const openSqliteProjectionStore = (
  options: ProjectionStoreOptions
): Effect.Effect<{ readonly api: ProjectionStoreApi; readonly close: () => void }, ProjectionError> =>
  Effect.try({
    try: () => {
      const db = openDatabase(options)
      return { api: makeApi(db, options), close: () => db.close() }
    },
    catch: (e) => describeFailure(options.path, e)
  })

/** The store, closed when the scope ends. */
export const scopedSqliteProjectionStore = (options: ProjectionStoreOptions) =>
  Effect.acquireRelease(openSqliteProjectionStore(options), (s) => Effect.sync(() => s.close())).pipe(Effect.map((s) => s.api))

export const SqliteProjectionStoreLive = (options: ProjectionStoreOptions): Layer.Layer<ProjectionStore, ProjectionError> =>
  Layer.scoped(ProjectionStore, scopedSqliteProjectionStore(options))

/** A failure inside a batch, carried out of the transaction (which it rolled back) with what it hit. */
class ApplyFailure extends Error {}

const makeApi = (db: Database.Database, options: ProjectionStoreOptions): ProjectionStoreApi => {
  const { path } = options
  const readOnly = options.mode === "read"
  const guard = <A>(f: () => A): Effect.Effect<A, ProjectionError> =>
    Effect.try({
      try: f,
      catch: (e) => (e instanceof ApplyFailure ? new ProjectionError({ kind: "apply", message: e.message }) : describeFailure(path, e))
    })
  const writable = <A>(f: () => A): Effect.Effect<A, ProjectionError> =>
    readOnly ? Effect.fail(new ProjectionError({ kind: "read_only", message: `the projections database ${path} was opened read-only` })) : guard(f)

  const statements = new Map<string, Database.Statement>()
  const prepared = (sql: string): Database.Statement => {
    let s = statements.get(sql)
    if (s === undefined) {
      s = db.prepare(sql)
      statements.set(sql, s)
    }
    return s
  }

  const readCheckpoint = (name: string): ProjectionCheckpoint | undefined => {
    const raw: unknown = prepared("SELECT name, version, position, last_event_id, tables FROM projection_checkpoints WHERE name = ?").get(name)
    if (raw === undefined) return undefined
    const row = decodeCheckpointRow(raw)
    if (Either.isLeft(row)) {
      throw new ProjectionError({ kind: "corrupt", message: `the checkpoint of projection ${name} in ${path} is malformed; delete ${path}, it is rebuilt from the event log` })
    }
    const r = row.right
    return { name: r.name, version: r.version, position: r.position, lastEventId: r.last_event_id, tables: r.tables }
  }

  const writeCheckpoint = (c: ProjectionCheckpoint): void => {
    prepared(
      "INSERT INTO projection_checkpoints (name, version, position, last_event_id, tables) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (name) DO UPDATE SET version = excluded.version, position = excluded.position, last_event_id = excluded.last_event_id, tables = excluded.tables"
    ).run(c.name, c.version, c.position, c.lastEventId, JSON.stringify(c.tables))
  }

  const tableExists = (name: string): boolean =>
    prepared("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined

  const dropTables = (names: ReadonlyArray<string>): void => {
    for (const name of names) db.exec(`DROP TABLE IF EXISTS "${name}"`)
    // Statements on dropped tables are invalid now.
    statements.clear()
  }

  const createTables = (tables: ReadonlyArray<TableShape>): void => {
    for (const t of tables) for (const sql of createTableSql(t)) db.exec(sql)
  }

  /** Drops whatever the stored version created and what this version needs, then creates this version's tables. */
  const recreate = (p: Projection, stored: ProjectionCheckpoint | undefined): ProjectionCheckpoint => {
    dropTables([...(stored?.tables ?? []), ...p.tables.map((t) => t.name)])
    createTables(p.tables)
    const fresh = { name: p.name, version: p.version, position: 0, lastEventId: null, tables: p.tables.map((t) => t.name) }
    writeCheckpoint(fresh)
    return fresh
  }

  const ensureTx = db.transaction((p: Projection): { outcome: EnsureOutcome; checkpoint: ProjectionCheckpoint } => {
    const stored = readCheckpoint(p.name)
    if (stored !== undefined && stored.version === p.version && p.tables.every((t) => tableExists(t.name))) {
      return { outcome: "current", checkpoint: stored }
    }
    const outcome: EnsureOutcome = stored === undefined ? "created" : stored.version !== p.version ? "version_changed" : "tables_missing"
    return { outcome, checkpoint: recreate(p, stored) }
  })

  const resetTx = db.transaction((p: Projection, onlyIf: ProjectionCheckpoint | undefined): void => {
    const stored = readCheckpoint(p.name)
    if (onlyIf !== undefined && (stored?.position !== onlyIf.position || stored.lastEventId !== onlyIf.lastEventId)) return
    recreate(p, stored)
  })

  // Statements per table: lookup by primary key, upsert, delete.
  const getSql = (t: TableShape) => `SELECT * FROM "${t.name}" WHERE ${t.primaryKey.map((c) => `"${c}" = ?`).join(" AND ")}`
  const upsertSql = (t: TableShape) => {
    const cols = Object.keys(t.columns)
    return `INSERT OR REPLACE INTO "${t.name}" (${cols.map((c) => `"${c}"`).join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`
  }
  const deleteSql = (t: TableShape) => `DELETE FROM "${t.name}" WHERE ${t.primaryKey.map((c) => `"${c}" = ?`).join(" AND ")}`

  const bind = (table: string, column: string, value: unknown): SqlValue => {
    if (!isSqlValue(value)) throw new Error(`column ${table}.${column} was given ${typeof value === "number" ? String(value) : typeof value}, not a string, finite number or null`)
    return value
  }

  const reader = (owned: ReadonlyMap<string, TableShape>): ViewReader => ({
    get: (table, key) => {
      const shape = owned.get(table.name)
      if (shape === undefined) throw new Error(`table ${table.name} does not belong to this projection`)
      const k: Readonly<Record<string, unknown>> = { ...key }
      const raw: unknown = prepared(getSql(shape)).get(...shape.primaryKey.map((c) => bind(shape.name, c, k[c])))
      if (raw === undefined) return undefined
      return Schema.decodeUnknownSync(table.row)(raw)
    }
  })

  const applyChange = (owned: ReadonlyMap<string, TableShape>, change: ViewChange): void => {
    const shape = owned.get(change.table)
    if (shape === undefined) throw new Error(`table ${change.table} does not belong to this projection`)
    if (change._tag === "Upsert") {
      prepared(upsertSql(shape)).run(...Object.keys(shape.columns).map((c) => bind(shape.name, c, change.row[c])))
    } else {
      prepared(deleteSql(shape)).run(...shape.primaryKey.map((c) => bind(shape.name, c, change.key[c])))
    }
  }

  const applyTx = db.transaction(
    (projections: ReadonlyArray<Projection>, after: number, events: ReadonlyArray<DecodedEvent>): ReadonlyMap<string, number> => {
      const positions = new Map<string, number>()
      const last = events[events.length - 1]
      for (const p of projections) {
        const stored = readCheckpoint(p.name)
        if (stored === undefined || stored.version !== p.version) {
          throw new ProjectionError({
            kind: "invalid",
            message: `projection ${p.name} was removed or changed version in ${path} by another process while this one ran; run the command again`
          })
        }
        if (last === undefined || stored.position < after || stored.position >= last.recorded.position) {
          positions.set(p.name, stored.position)
          continue
        }
        const owned = new Map(p.tables.map((t) => [t.name, t]))
        const view = reader(owned)
        for (const { recorded, event } of events) {
          if (recorded.position <= stored.position || event === undefined) continue
          try {
            for (const change of p.evolve(view, event, recorded)) applyChange(owned, change)
          } catch (e) {
            throw new ApplyFailure(
              `projection ${p.name} failed on ${recorded.type} at ${recorded.stream}@${recorded.revision} (position ${recorded.position}): ${messageOf(e)}; ` +
                "nothing of this batch was kept; fix the projection and run 'astrid projections rebuild " +
                `${p.name}'`
            )
          }
        }
        writeCheckpoint({ ...stored, position: last.recorded.position, lastEventId: last.recorded.eventId })
        positions.set(p.name, last.recorded.position)
      }
      return positions
    }
  )

  const countOf = (table: string): number => {
    if (!tableExists(table)) return 0
    const n = decodeCount(db.prepare(`SELECT count(*) FROM "${table}"`).pluck().get())
    return Either.isRight(n) ? n.right : 0
  }

  return {
    location: path,
    checkpoints: guard(() => {
      const raw: ReadonlyArray<unknown> = prepared("SELECT name FROM projection_checkpoints ORDER BY name").pluck().all()
      return raw.flatMap((name) => {
        const c = typeof name === "string" ? readCheckpoint(name) : undefined
        return c === undefined ? [] : [c]
      })
    }),
    checkpoint: (name) => guard(() => Option.fromNullable(readCheckpoint(name))),
    ensure: (projection) => writable(() => ensureTx.immediate(projection)),
    reset: (projection, onlyIf) => writable(() => resetTx.immediate(projection, onlyIf)),
    applyBatch: (projections, after, events) => writable(() => applyTx.immediate(projections, after, events)),
    select: (table, sql, params = []) =>
      guard(() => {
        const raw: ReadonlyArray<unknown> = db.prepare(sql).all(...params)
        const decoded = Schema.decodeUnknownEither(Schema.Array(table.row))(raw)
        if (Either.isLeft(decoded)) {
          throw new ProjectionError({
            kind: "corrupt",
            message: `view table ${table.name} in ${path} holds a row this build cannot read; run 'astrid projections rebuild'`
          })
        }
        return decoded.right
      }),
    rowCounts: (projection) => guard(() => Object.fromEntries(projection.tables.map((t) => [t.name, countOf(t.name)]))),
    dump: (projection) =>
      guard(() =>
        Object.fromEntries(
          projection.tables.map((t): [string, ReadonlyArray<unknown>] => [
            t.name,
            tableExists(t.name)
              ? db.prepare(`SELECT * FROM "${t.name}" ORDER BY ${t.primaryKey.map((c) => `"${c}"`).join(", ")}`).all()
              : []
          ])
        )
      )
  }
}
