/**
 * EventStoreDB back end beside SQLite, in one run: appends through EventLog (100-event batches) and full
 * verification. The EventStoreDB side runs the real @eventstore/db-client against the in-process protocol
 * STAND-IN (infrastructure/event-store/esdbStandIn.ts), which shares this process and its two cores: these
 * figures measure the adapter and the client over loopback gRPC, and say nothing about a real cluster.
 */
import { Effect, Layer } from "effect"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { EventLog, EventLogLive } from "../application/eventLog.js"
import { verifyStore } from "../application/audit/verifyStore.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../application/ports/eventStore.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { connectEsdbEventStore } from "../infrastructure/event-store/esdbEventStore.js"
import { startEsdbStandIn } from "../infrastructure/event-store/esdbStandIn.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { draft, lcg } from "./lib/events.js"
import { benchDir, emit, round, seconds, summarize } from "./lib/measure.js"

const EVENTS = Number(process.env["ASTRID_BENCH_ESDB_EVENTS"] ?? 20_000)
const BATCH = 100
const STREAMS = 20
const ROUNDS = 3
const LABEL = "stand-in: the real client against an in-process gRPC stand-in on loopback; not a real cluster's speed"

const crypto = await makeCrypto()

/** Appends EVENTS events in BATCH-event appends, round-robin over STREAMS streams; events per second. */
const appendRate = (store: EventStoreApi, tag: string) =>
  Effect.gen(function* () {
    const layer = EventLogLive({ checkpointEvery: 0 }).pipe(Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive)))
    const log = yield* EventLog.pipe(Effect.provide(layer))
    const random = lcg(7)
    const started = performance.now()
    for (let i = 0; i < EVENTS / BATCH; i++) {
      const session = `${tag}-${i % STREAMS}`
      const drafts = Array.from({ length: BATCH }, (_, k) => draft(random, session, i * BATCH + k))
      yield* log.append(`astrid-session-${session}`, "any", drafts)
    }
    return EVENTS / seconds(started)
  })

const verifyRate = (store: EventStoreApi) =>
  Effect.gen(function* () {
    const started = performance.now()
    const report = yield* verifyStore(store, { trustedKeys: new Map(), blake3Hex: crypto.blake3Hex, verifyText: crypto.verifyText })
    if (!report.ok) throw new Error(`verification found issues: ${JSON.stringify(report.issues.slice(0, 3))}`)
    return report.events / seconds(started)
  })

export const run = async (): Promise<void> => {
  const standIn = await startEsdbStandIn()
  const rates = { esdbAppend: [] as Array<number>, sqliteAppend: [] as Array<number>, esdbVerify: [] as Array<number>, sqliteVerify: [] as Array<number> }
  try {
    for (let r = 0; r < ROUNDS; r++) {
      standIn.reset()
      const esdb = await Effect.runPromise(connectEsdbEventStore(standIn.url))
      const path = join(benchDir(), `esdb-peer-${process.pid}-${r}.db`)
      const sqlite = await Effect.runPromise(openSqliteEventStore({ path, mode: "write" }))
      try {
        rates.esdbAppend.push(await Effect.runPromise(appendRate(esdb.api, `r${r}`)))
        rates.sqliteAppend.push(await Effect.runPromise(appendRate(sqlite.api, `r${r}`)))
        rates.esdbVerify.push(await Effect.runPromise(verifyRate(esdb.api)))
        rates.sqliteVerify.push(await Effect.runPromise(verifyRate(sqlite.api)))
      } finally {
        await esdb.close()
        sqlite.close()
        for (const p of [path, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true })
      }
    }
  } finally {
    await standIn.close()
  }
  for (const [what, esdb, sqlite] of [
    ["append", rates.esdbAppend, rates.sqliteAppend],
    ["verify", rates.esdbVerify, rates.sqliteVerify]
  ] as const) {
    const e = summarize(esdb, true)
    const s = summarize(sqlite, true)
    emit({
      name: `esdb.${what}`,
      n: EVENTS,
      median: e.median,
      p99: e.p99,
      unit: "events/s",
      figures: LABEL,
      ...(what === "append" ? { batch: BATCH } : {}),
      rounds: ROUNDS,
      peer: { name: `SQLite (synchronous=FULL), same events, same run`, median: s.median, p99: s.p99, unit: "events/s" },
      ratio: round(e.median / s.median),
      ratioMeaning: "stand-in / SQLite"
    })
  }
}
