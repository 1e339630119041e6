/**
 * Full verification of a 1,000,000-event SQLite store with the parallel path, beside raw BLAKE3 over the
 * same preimage bytes (one event at a time, one thread: the hashing the verifier cannot avoid) measured in
 * the same run; also the same path on one thread, the reference LogVerifier (verifyStore), and the built
 * CLI's `astrid audit verify` on the same store.
 *
 * The store is built once through EventLog (checkpoint every 10,000 events, signed) as an ASTRID_HOME in
 * the bench folder, keyed by the store format and this fixture's version; ASTRID_BENCH_VERIFY_EVENTS
 * changes its size.
 */
import Database from "better-sqlite3"
import { Effect, Layer } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { isDeepStrictEqual } from "node:util"
import { EventLog, type EventDraft, EventLogLive } from "../application/eventLog.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore } from "../application/ports/eventStore.js"
import { KeyRing } from "../application/ports/keyRing.js"
import { verifyStore } from "../application/audit/verifyStore.js"
import type { VerifyReport } from "../application/audit/verifier.js"
import { eventPreimage } from "../domain/chain.js"
import { loadBlake3 } from "../infrastructure/crypto/blake3.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { verifySqliteParallel } from "../infrastructure/event-store/sqliteParallelVerify.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { FORMAT_VERSION } from "../infrastructure/event-store/sqliteSchema.js"
import { generateKey, loadKeyRing, localTrustedKeys } from "../infrastructure/keys/keyFiles.js"
import { draft, lcg } from "./lib/events.js"
import { benchDir, emit, median, round, seconds, summarize } from "./lib/measure.js"

/** Bump when the events the fixture writes change, so an old cached store is not reused. */
const FIXTURE_VERSION = 1
const EVENTS = Number(process.env["ASTRID_BENCH_VERIFY_EVENTS"] ?? 1_000_000)
const STREAMS = 1_000
const BATCH = 100
const FAST_RUNS = 5
const PEER_RUNS = 5
const ONE_THREAD_RUNS = 3

interface Fixture {
  readonly path: string
  readonly home: string
  readonly built: boolean
  readonly buildSeconds: number
}

const fixture = async (): Promise<Fixture> => {
  // An ASTRID_HOME (store at astrid.db, signing key under keys/), so the CLI can verify it too.
  const home = join(benchDir(), `verify-f${FIXTURE_VERSION}-s${FORMAT_VERSION}-${EVENTS}`)
  const path = join(home, "astrid.db")
  const complete = join(home, "complete")
  if (existsSync(complete) && existsSync(path)) return { path, home, built: false, buildSeconds: 0 }
  rmSync(home, { recursive: true, force: true })
  mkdirSync(home, { recursive: true })
  const started = performance.now()
  const crypto = await makeCrypto()
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        yield* generateKey(home, false, Date.now())
        const keyRing = yield* loadKeyRing(home)
        // A fixture, not a durability test: synchronous=normal builds it about twice as fast.
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "write", synchronous: "normal" }), (s) => Effect.sync(() => s.close()))
        const deps = Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, keyRing))
        const log = yield* EventLog.pipe(Effect.provide(EventLogLive({ checkpointEvery: 10_000 }).pipe(Layer.provide(deps))))
        const random = lcg(1)
        let i = 0
        for (let batch = 0; i < EVENTS; batch++) {
          const session = `bench-${batch % STREAMS}`
          const drafts: Array<EventDraft> = []
          for (let j = 0; j < BATCH && i < EVENTS; j++, i++) drafts.push(draft(random, session, i))
          yield* log.append(`astrid-session-${session}`, "any", drafts)
        }
        // Everything signed: the verification then also checks every stream's pinned head.
        yield* log.checkpoint
      })
    )
  )
  writeFileSync(complete, `${new Date().toISOString()}\n`)
  return { path, home, built: true, buildSeconds: seconds(started) }
}

/**
 * Raw BLAKE3 over every event's preimage, one event at a time in this thread, with the same hasher the
 * verifier uses. Preimages are assembled in chunks first (not timed); only the hashing loop is timed.
 */
const rawHashing = async (path: string): Promise<{ rates: Array<number>; bytes: number; events: number }> => {
  const blake3 = await loadBlake3()
  const encoder = new TextEncoder()
  const db = new Database(path, { readonly: true, fileMustExist: true })
  const page = db
    .prepare("SELECT global_position, stream_id, revision, type, data, metadata FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?")
    .raw()
  const CHUNK = 50_000
  const runSeconds = Array.from({ length: PEER_RUNS }, () => 0)
  let after = 0
  let bytes = 0
  let events = 0
  try {
    for (;;) {
      const rows: Array<unknown> = page.all(after, CHUNK)
      if (rows.length === 0) break
      const views: Array<Uint8Array> = []
      let buffer = new Uint8Array(CHUNK * 1024)
      let offset = 0
      for (const row of rows) {
        if (!Array.isArray(row)) continue
        const [position, stream, revision, type, data, metadata]: Array<unknown> = row
        if (typeof position === "number") after = position
        if (typeof stream !== "string" || typeof revision !== "number" || typeof type !== "string" || typeof data !== "string" || typeof metadata !== "string") continue
        const preimage = eventPreimage(stream, revision, type, data, metadata)
        if (offset + preimage.length * 3 > buffer.length) {
          const grown = new Uint8Array(buffer.length * 2)
          grown.set(buffer.subarray(0, offset))
          buffer = grown
        }
        const { written } = encoder.encodeInto(preimage, buffer.subarray(offset))
        views.push(buffer.subarray(offset, offset + written))
        offset += written
      }
      bytes += offset
      events += views.length
      for (let run = 0; run < PEER_RUNS; run++) {
        const started = performance.now()
        for (const view of views) blake3.bytesOf(view)
        runSeconds[run] = (runSeconds[run] ?? 0) + seconds(started)
      }
    }
  } finally {
    db.close()
  }
  return { rates: runSeconds.map((s) => events / s), bytes, events }
}

/** CPU seconds this process (every thread of it) used since `from`. */
const cpuSeconds = (from: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(from)
  return (used.user + used.system) / 1e6
}

const referenceVerify = (path: string, trustedKeys: ReadonlyMap<string, string>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const crypto = yield* Effect.promise(makeCrypto)
      const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close()))
      return yield* verifyStore(store.api, { trustedKeys, blake3Hex: crypto.blake3Hex, verifyText: crypto.verifyText })
    })
  )

const CLI_RUNS = 2
const root = fileURLToPath(new URL("..", import.meta.url))

/** `astrid audit verify --json` on the fixture's home, as a user runs it: whichever path the CLI takes. */
const cliVerify = (home: string): { readonly rates: Array<number>; readonly events: number; readonly error?: string } => {
  const bin = join(root, "bin", "astrid.mjs")
  if (!existsSync(bin) || !existsSync(join(root, "dist", "astrid.mjs"))) return { rates: [], events: 0, error: "the CLI is not built; run 'npm run build'" }
  const rates: Array<number> = []
  let events = 0
  for (let i = 0; i < CLI_RUNS; i++) {
    const started = performance.now()
    const result = spawnSync(process.execPath, [bin, "audit", "verify", "--json"], {
      cwd: root,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      env: { PATH: process.env["PATH"] ?? "", ASTRID_HOME: home, NO_COLOR: "1" }
    })
    const elapsed = seconds(started)
    let parsed: unknown
    try {
      parsed = JSON.parse(result.stdout)
    } catch {
      parsed = undefined
    }
    const counted = typeof parsed === "object" && parsed !== null && "events" in parsed && typeof parsed.events === "number" ? parsed.events : undefined
    if (result.status !== 0 || counted === undefined) {
      const why = (result.stderr || result.stdout || String(result.error ?? "")).trim().split("\n")[0] ?? ""
      return { rates, events, error: `astrid audit verify exited with ${String(result.status)}: ${why}` }
    }
    events = counted
    rates.push(events / elapsed)
  }
  return { rates, events }
}

export const run = async (): Promise<void> => {
  const fx = await fixture()
  const trustedKeys = await Effect.runPromise(localTrustedKeys(fx.home))
  const fileMB = statSync(fx.path).size / 1e6

  // The peer first: it also reads the whole file, so every measured run below starts from a warm page cache.
  const peer = await rawHashing(fx.path)
  const mb = peer.bytes / 1e6

  const fastRates: Array<number> = []
  const fastCpu: Array<number> = []
  let fastReport: VerifyReport | undefined
  for (let i = 0; i < FAST_RUNS; i++) {
    const started = performance.now()
    const cpu = process.cpuUsage()
    fastReport = await Effect.runPromise(verifySqliteParallel(fx.path, { trustedKeys }))
    fastRates.push(fastReport.events / seconds(started))
    fastCpu.push(cpuSeconds(cpu))
  }

  // The same path on one range in this thread: what one core does, against what one core can hash.
  const oneThreadRates: Array<number> = []
  for (let i = 0; i < ONE_THREAD_RUNS; i++) {
    const started = performance.now()
    const report = await Effect.runPromise(verifySqliteParallel(fx.path, { trustedKeys, ranges: 1, workers: false }))
    oneThreadRates.push(report.events / seconds(started))
  }

  const refStarted = performance.now()
  const refReport = await Effect.runPromise(referenceVerify(fx.path, trustedKeys))
  const refRate = refReport.events / seconds(refStarted)

  const cli = cliVerify(fx.home)

  const fast = summarize(fastRates, true)
  const raw = summarize(peer.rates, true)
  const fixtureFacts = {
    storeMB: round(fileMB),
    preimageMB: round(mb),
    avgPreimageBytes: round(peer.bytes / peer.events),
    fixtureBuilt: fx.built,
    ...(fx.built ? { fixtureBuildSeconds: round(fx.buildSeconds) } : {})
  }
  emit({
    name: "verify.sqlite.parallel",
    n: fastReport?.events ?? 0,
    median: fast.median,
    p99: fast.p99,
    unit: "events/s",
    runs: FAST_RUNS,
    mbPerSecond: round((fast.median * mb) / peer.events),
    ok: fastReport?.ok ?? false,
    identicalToReference: isDeepStrictEqual(fastReport, refReport),
    peer: { name: "raw BLAKE3 (hash-wasm) per event, single thread, same preimage bytes", median: raw.median, p99: raw.p99, unit: "events/s" },
    ratio: round(fast.median / raw.median),
    ratioMeaning: "full verification events/s on all cores / raw per-event hashing events/s on one core",
    // Events per CPU second (all threads): what the path costs whatever else the machine is running.
    eventsPerCpuSecond: round((fastReport?.events ?? 0) / median(fastCpu)),
    coresUsed: round(median(fastCpu) / ((fastReport?.events ?? 0) / fast.median)),
    ...fixtureFacts
  })
  const oneThread = summarize(oneThreadRates, true)
  emit({
    name: "verify.sqlite.one-thread",
    n: fastReport?.events ?? 0,
    median: oneThread.median,
    p99: oneThread.p99,
    unit: "events/s",
    runs: ONE_THREAD_RUNS,
    mbPerSecond: round((oneThread.median * mb) / peer.events),
    peer: { name: "raw BLAKE3 (hash-wasm) per event, single thread, same preimage bytes", median: raw.median, p99: raw.p99, unit: "events/s" },
    ratio: round(oneThread.median / raw.median),
    ratioMeaning: "the parallel path's work on one range in one thread / raw per-event hashing on one core (the share of a core's time spent hashing)"
  })
  emit({
    name: "verify.sqlite.reference",
    n: refReport.events,
    median: round(refRate),
    p99: round(refRate),
    unit: "events/s",
    runs: 1,
    mbPerSecond: round((refRate * mb) / peer.events),
    peer: { name: "verify.sqlite.parallel", median: fast.median, unit: "events/s" },
    ratio: round(refRate / fast.median),
    ratioMeaning: "reference LogVerifier (verifyStore, one thread) / parallel path"
  })
  const cliStats = summarize(cli.rates, true)
  emit({
    name: "verify.cli",
    n: cli.events,
    median: cliStats.median,
    p99: cliStats.p99,
    unit: "events/s",
    runs: cli.rates.length,
    command: "node bin/astrid.mjs audit verify --json (ASTRID_HOME = the fixture), wall time including start-up",
    ...(cli.error === undefined ? {} : { error: cli.error }),
    peer: { name: "verify.sqlite.parallel", median: fast.median, unit: "events/s" },
    ratio: round(cliStats.median / fast.median),
    ratioMeaning: "the CLI as built / the parallel path called in process"
  })
  emit({
    name: "verify.raw-blake3",
    n: peer.events,
    median: raw.median,
    p99: raw.p99,
    unit: "events/s",
    runs: PEER_RUNS,
    mbPerSecond: round((raw.median * mb) / peer.events),
    note: "hash-wasm init/update/digest per event over preassembled preimages, one thread; the limit one core can reach"
  })
}
