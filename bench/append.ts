/**
 * Appends to the SQLite store through EventLog (encode, envelope, chain hash, expected-revision append),
 * one event per append and 100 per append, at synchronous=FULL (the durable default) and NORMAL; beside
 * raw better-sqlite3 inserts of the very rows EventLog wrote, into a fresh file with the same schema,
 * indexes and pragmas, in transactions of the same size, in the same run.
 */
import Database from "better-sqlite3"
import { Effect, Layer } from "effect"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { EventLog, type EventDraft, EventLogLive } from "../application/eventLog.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore } from "../application/ports/eventStore.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { SCHEMA_SQL } from "../infrastructure/event-store/sqliteSchema.js"
import { draft, lcg } from "./lib/events.js"
import { benchDir, emit, round, seconds, summarize } from "./lib/measure.js"

const ROUNDS = 7
const STREAMS = 20

type Sync = "full" | "normal"

interface Shape {
  readonly name: string
  readonly batch: number
  /** Appends per round. */
  readonly appends: Record<Sync, number>
}

const SHAPES: ReadonlyArray<Shape> = [
  { name: "single", batch: 1, appends: { full: 300, normal: 1_000 } },
  { name: "batch100", batch: 100, appends: { full: 40, normal: 60 } }
]

const removeDb = (path: string): void => {
  for (const p of [path, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true })
}

interface Measured {
  /** Events per second, one sample per round. */
  readonly rates: Array<number>
  /** Milliseconds per append call. */
  readonly latencies: Array<number>
}

/** EventLog appends into a fresh store; returns its rates and the file it wrote. */
const throughEventLog = async (path: string, sync: Sync, shape: Shape): Promise<Measured> => {
  removeDb(path)
  const crypto = await makeCrypto()
  const random = lcg(7)
  const rates: Array<number> = []
  const latencies: Array<number> = []
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "write", synchronous: sync }), (s) => Effect.sync(() => s.close()))
        const deps = Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive)
        // No automatic checkpoints: this measures the append path alone.
        const log = yield* EventLog.pipe(Effect.provide(EventLogLive({ checkpointEvery: 0 }).pipe(Layer.provide(deps))))
        let i = 0
        for (let round = 0; round < ROUNDS; round++) {
          const started = performance.now()
          for (let a = 0; a < shape.appends[sync]; a++) {
            const session = `bench-${a % STREAMS}`
            const drafts: Array<EventDraft> = []
            for (let j = 0; j < shape.batch; j++) drafts.push(draft(random, session, i++))
            const t = performance.now()
            yield* log.append(`astrid-session-${session}`, "any", drafts)
            latencies.push(performance.now() - t)
          }
          rates.push((shape.appends[sync] * shape.batch) / seconds(started))
        }
      })
    )
  )
  return { rates, latencies }
}

type Row = [string, number, string, string, string, string, string]

const isRow = (r: unknown): r is Row =>
  Array.isArray(r) &&
  r.length === 7 &&
  typeof r[0] === "string" &&
  typeof r[1] === "number" &&
  r.slice(2).every((v) => typeof v === "string")

/** The same rows, inserted with prepared statements into a fresh file with the same schema and pragmas. */
const rawInserts = (source: string, path: string, sync: Sync, shape: Shape): Measured => {
  const from = new Database(source, { readonly: true })
  const all: Array<unknown> = from.prepare("SELECT stream_id, revision, event_id, type, data, metadata, hash FROM events ORDER BY global_position").raw().all()
  from.close()
  const rows = all.filter(isRow)
  removeDb(path)
  const db = new Database(path)
  try {
    db.pragma("busy_timeout = 5000")
    db.pragma("journal_mode = WAL")
    db.exec(SCHEMA_SQL)
    db.pragma(`synchronous = ${sync === "normal" ? "NORMAL" : "FULL"}`)
    const insert = db.prepare("INSERT INTO events (stream_id, revision, event_id, type, data, metadata, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")
    const tx = db.transaction((batch: ReadonlyArray<Row>) => {
      for (const r of batch) insert.run(...r)
    })
    const rates: Array<number> = []
    const latencies: Array<number> = []
    let i = 0
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now()
      for (let a = 0; a < shape.appends[sync]; a++) {
        const batch = rows.slice(i, i + shape.batch)
        i += shape.batch
        const t = performance.now()
        // IMMEDIATE, as the store's appends are.
        tx.immediate(batch)
        latencies.push(performance.now() - t)
      }
      rates.push((shape.appends[sync] * shape.batch) / seconds(started))
    }
    return { rates, latencies }
  } finally {
    db.close()
  }
}

export const run = async (): Promise<void> => {
  const dir = benchDir()
  const logPath = join(dir, `append-eventlog-${process.pid}.db`)
  const rawPath = join(dir, `append-raw-${process.pid}.db`)
  try {
    for (const sync of ["full", "normal"] as const) {
      for (const shape of SHAPES) {
        const viaLog = await throughEventLog(logPath, sync, shape)
        const viaRaw = rawInserts(logPath, rawPath, sync, shape)
        const ours = summarize(viaLog.rates, true)
        const peer = summarize(viaRaw.rates, true)
        const latency = summarize(viaLog.latencies, false)
        const peerLatency = summarize(viaRaw.latencies, false)
        emit({
          name: `append.${shape.name}.${sync}`,
          n: viaLog.latencies.length * shape.batch,
          median: ours.median,
          p99: ours.p99,
          unit: "events/s",
          eventsPerAppend: shape.batch,
          synchronous: sync,
          appendLatencyMs: latency,
          peer: {
            name: `raw better-sqlite3 INSERT of the same rows, ${shape.batch} per IMMEDIATE transaction, same schema and pragmas`,
            median: peer.median,
            p99: peer.p99,
            unit: "events/s"
          },
          peerLatencyMs: peerLatency,
          ratio: round(ours.median / peer.median),
          ratioMeaning: "EventLog events/s / raw insert events/s"
        })
      }
    }
  } finally {
    removeDb(logPath)
    removeDb(rawPath)
  }
}
