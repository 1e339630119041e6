/**
 * Full verification of a SQLite event store on every core, with the report LogVerifier gives through
 * verifyStore: the same issues in the same order, the same counts.
 *
 * Pass 1 (the checkpoint stream) runs in this thread through LogVerifier itself. Pass 2 splits the global
 * positions into contiguous ranges, each read on its own connection and verified with LogVerifier's
 * per-event rule: the first in this thread after pass 1, the others in worker threads (sqliteVerifyWorker.ts)
 * that start before pass 1 and receive its pins when it ends. The one verdict a range cannot give alone,
 * the link of each stream's first event in it to the stream's head before the range, is given here while
 * the ranges are joined in order, and so are the end-of-log checks against the checkpoints.
 *
 * Where the store holds something the range split does not model exactly (a revision that is not a number,
 * or a stream whose revisions go backwards across a range boundary), the reference verifier runs instead:
 * slower, never different.
 */
import { Effect, Either, Schema, type Scope } from "effect"
import { existsSync } from "node:fs"
import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads"
import { type Issue, type IssueKind, LogVerifier, type VerifierOptions, type VerifyReport } from "../../application/audit/verifier.js"
import { type Progress, verifyStore } from "../../application/audit/verifyStore.js"
import { EventStoreError } from "../../application/ports/eventStore.js"
import { genesisPreimage } from "../../domain/chain.js"
import { CHECKPOINT_STREAM, STREAM_PREFIX } from "../../domain/streams.js"
import { makeCrypto } from "../crypto/cryptoLive.js"
import { describeSqliteFailure, openSqliteEventStore } from "./sqliteEventStore.js"
import {
  type CheckpointPins,
  linkIssue,
  type PinnedHash,
  positionSpan,
  type RangeIssue,
  type RangeOutcome,
  type RangeTask,
  type StreamInRange,
  type StreamState,
  verifyRange
} from "./sqliteRangeVerify.js"
import type { WorkerInput } from "./sqliteVerifyWorker.js"

export interface ParallelVerifyOptions {
  /** keyId -> hex public key. Only these keys are trusted; keys in the data never are. */
  readonly trustedKeys: ReadonlyMap<string, string>
  /** Restrict checks to these streams (the checkpoint stream is always checked). */
  readonly streams?: ReadonlySet<string>
  readonly maxIssues?: number
  /** How many position ranges to verify apart. Default: min(cores, 4), and 1 for a store under 100,000 positions. */
  readonly ranges?: number
  /**
   * Verify the ranges after the first in worker threads while this thread, once pass 1 is done, verifies the
   * first (default when there is more than one range); or every range in this thread, one after the other.
   */
  readonly workers?: boolean
  /** Told why, when the store holds something only the reference verifier models and it runs instead. */
  readonly onFallback?: (reason: string) => void
}

/** Below this many positions one range in this thread is faster than starting workers. */
const SMALL_STORE = 100_000
const MAX_RANGES = 4
const CHECKPOINT_PAGE = 20_000

/**
 * Splits positions first..last into `count` contiguous ranges of nearly equal width, as (after, upTo]
 * pairs: the first starts after first - 1, the last ends at last, each starts where the previous ends.
 */
export const splitPositions = (first: number, last: number, count: number): ReadonlyArray<{ readonly after: number; readonly upTo: number }> => {
  const width = last - first + 1
  const n = Number.isFinite(count) && count >= 1 ? Math.min(Math.floor(count), width) : 1
  const ranges: Array<{ after: number; upTo: number }> = []
  let after = first - 1
  for (let i = 1; i <= n; i++) {
    const upTo = first - 1 + Math.round((width * i) / n)
    ranges.push({ after, upTo })
    after = upTo
  }
  return ranges
}

// ---- what pass 1 leaves for pass 2 ----

interface CheckpointFacts {
  readonly issues: ReadonlyArray<Issue>
  readonly pins: ReadonlyMap<string, ReadonlyMap<number, PinnedHash>>
  readonly coveredPosition: number
  readonly checkpoints: number
  readonly lastCheckpoint: VerifyReport["lastCheckpoint"]
}

/**
 * LogVerifier keeps what pass 1 learnt (pinned heads, the position checkpoints cover) private. Reading it
 * here, instead of re-deriving it, keeps this verifier exact while verifier.ts changes (which checkpoints
 * count, how they chain); a public accessor on LogVerifier would be the better home for this.
 */
const checkpointFacts = (verifier: LogVerifier): CheckpointFacts => {
  const issues = [...verifier["issues"]]
  const pins = verifier["pins"]
  const coveredPosition = verifier["coveredPosition"]
  // finish() with no events pushed only adds end-of-log issues, which pass 2 recomputes.
  const summary = verifier.finish()
  return { issues, pins, coveredPosition, checkpoints: summary.checkpoints, lastCheckpoint: summary.lastCheckpoint }
}

// ---- messages from workers ----

const ISSUE_KINDS = {
  hash_mismatch: true,
  broken_link: true,
  bad_genesis: true,
  revision_gap: true,
  bad_signature: true,
  untrusted_key: true,
  truncated_stream: true,
  missing_stream: true,
  checkpoint_mismatch: true,
  malformed_event: true
} satisfies Record<IssueKind, true>

const isIssueKind = (s: string): s is IssueKind => Object.hasOwn(ISSUE_KINDS, s)

const RangeIssueSchema = Schema.Struct({
  order: Schema.Number,
  kind: Schema.String.pipe(Schema.filter(isIssueKind)),
  stream: Schema.String,
  revision: Schema.NullOr(Schema.Number),
  detail: Schema.String
})

const StreamInRangeSchema = Schema.Struct({
  stream: Schema.String,
  firstPosition: Schema.Number,
  firstRevision: Schema.Number,
  firstHashOk: Schema.Boolean,
  firstPrevHash: Schema.NullOr(Schema.String),
  lastRevision: Schema.Number,
  lastHash: Schema.String
})

const RangeOutcomeSchema = Schema.Union(
  Schema.TaggedStruct("Verified", {
    scanned: Schema.Number,
    events: Schema.Number,
    uncheckpointed: Schema.Number,
    issues: Schema.Array(RangeIssueSchema),
    issueCount: Schema.Number,
    streams: Schema.Array(StreamInRangeSchema)
  }),
  Schema.TaggedStruct("Unusual", { reason: Schema.String })
)

const WorkerMessageSchema = Schema.Union(
  Schema.TaggedStruct("Progress", { scanned: Schema.Number }),
  Schema.TaggedStruct("Done", { outcome: RangeOutcomeSchema }),
  Schema.TaggedStruct("Failed", { code: Schema.String, message: Schema.String })
)
const decodeWorkerMessage = Schema.decodeUnknownEither(WorkerMessageSchema)

// ---- running ranges ----

const failure = (path: string, code: string, message: string): EventStoreError =>
  describeSqliteFailure(path, Object.assign(new Error(message), { code }))

/** Where the bundled worker can be: beside the bundle's entry, or one folder up from a split-off chunk. */
const BUNDLED_WORKER = ["./sqliteVerifyWorker.mjs", "../sqliteVerifyWorker.mjs"]

/**
 * The bundled worker (dist/sqliteVerifyWorker.mjs) when this code runs from the bundle; otherwise the
 * TypeScript source, loaded through tsx. On Node 20 a worker does not take `--import tsx` from execArgv,
 * and tsx's `register()` followed by `import()` failed to resolve the file in about one start in eight
 * under load; `tsImport` never did (360 starts).
 */
const startWorker = (input: WorkerInput): Worker => {
  const options = { workerData: input, transferList: [input.pinsPort] }
  for (const candidate of BUNDLED_WORKER) {
    const bundled = new URL(candidate, import.meta.url)
    if (bundled.protocol === "file:" && existsSync(fileURLToPath(bundled))) return new Worker(bundled, options)
  }
  const source = new URL("./sqliteVerifyWorker.ts", import.meta.url).href
  let tsx = "tsx/esm/api"
  try {
    tsx = import.meta.resolve(tsx)
  } catch {
    // Resolved from the working directory then; only a source checkout runs this path.
  }
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ tsImport }) => tsImport(${JSON.stringify(source)}, ${JSON.stringify(import.meta.url)}))`
  return new Worker(bootstrap, { ...options, eval: true })
}

/**
 * Starts a worker on a range and listens to it at once (so no message is missed); gives back the port for
 * the pins and the wait for its outcome. The worker is terminated when the scope closes.
 */
const spawnWorker = (
  path: string,
  task: RangeTask,
  onScanned: (scanned: number) => void
): Effect.Effect<{ readonly pinsPort: MessagePort; readonly outcome: Effect.Effect<RangeOutcome, EventStoreError> }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const channel = new MessageChannel()
      const worker = startWorker({ task, checkpointStream: CHECKPOINT_STREAM, pinsPort: channel.port2 })
      const outcome = new Promise<Effect.Effect<RangeOutcome, EventStoreError>>((resolve) => {
        let settled = false
        const settle = (result: Effect.Effect<RangeOutcome, EventStoreError>): void => {
          if (settled) return
          settled = true
          resolve(result)
        }
        worker.on("message", (raw: unknown) => {
          const decoded = decodeWorkerMessage(raw)
          if (Either.isLeft(decoded)) return settle(Effect.fail(failure(path, "", "a verification worker sent a message this verifier does not understand")))
          const message = decoded.right
          if (message._tag === "Progress") onScanned(message.scanned)
          else if (message._tag === "Done") settle(Effect.succeed(message.outcome))
          else settle(Effect.fail(failure(path, message.code, message.message)))
        })
        worker.on("error", (e) => settle(Effect.fail(failure(path, "", `a verification worker failed: ${e.message}`))))
        worker.on("exit", (code) => settle(Effect.fail(failure(path, "", `a verification worker stopped (exit code ${code}) before it finished`))))
      })
      return { worker, pinsPort: channel.port1, outcome }
    }),
    ({ worker, pinsPort }) =>
      Effect.promise(() => {
        pinsPort.close()
        return worker.terminate()
      })
  ).pipe(Effect.map(({ pinsPort, outcome }) => ({ pinsPort, outcome: Effect.flatten(Effect.promise(() => outcome)) })))

const inThisThread = (path: string, task: RangeTask, pins: CheckpointPins, onScanned: (scanned: number) => void): Effect.Effect<RangeOutcome, EventStoreError> =>
  Effect.tryPromise({
    try: () => verifyRange(task, CHECKPOINT_STREAM, { poll: () => pins, wait: () => Promise.resolve(pins) }, onScanned),
    catch: (e) => describeSqliteFailure(path, e)
  })

// ---- joining the ranges ----

type Verified = Extract<RangeOutcome, { _tag: "Verified" }>

/**
 * Joins range outcomes, in position order, into LogVerifier's report; fails when a stream's revisions go
 * backwards across a boundary (its events after the boundary would be judged against a head the range
 * never saw).
 */
const join = (
  ranges: ReadonlyArray<Verified>,
  facts: CheckpointFacts,
  maxIssues: number,
  genesisOf: (stream: string) => string
): Either.Either<VerifyReport, string> => {
  const states = new Map<string, StreamState>()
  const eventIssues: Array<RangeIssue> = []
  let eventIssueCount = 0
  let events = 0
  let uncheckpointed = 0
  for (const range of ranges) {
    events += range.events
    uncheckpointed += range.uncheckpointed
    eventIssueCount += range.issueCount
    for (const issue of range.issues) eventIssues.push(issue)
    for (const s of range.streams) {
      const before = states.get(s.stream)
      if (before !== undefined && before.lastRevision > s.firstRevision) {
        return Either.left(`${s.stream} goes back from revision ${before.lastRevision} to ${s.firstRevision} at position ${s.firstPosition}`)
      }
      if (s.firstHashOk) {
        const found = linkIssue(s.stream, s.firstRevision, s.firstPrevHash ?? undefined, before, genesisOf)
        if (found !== undefined) {
          eventIssueCount++
          eventIssues.push({ order: s.firstPosition * 2, kind: found.kind, stream: s.stream, revision: found.revision, detail: found.detail })
        }
      }
      joinState(states, s)
    }
  }
  // Array.prototype.sort is stable, and orders never repeat: at most one chain and one checkpoint issue per event.
  eventIssues.sort((a, b) => a.order - b.order)
  const endIssues = endOfLogIssues(facts.pins, states)
  const all: Array<Issue> = [...facts.issues]
  for (const { kind, stream, revision, detail } of eventIssues) all.push({ kind, stream, revision, detail })
  all.push(...endIssues)
  // Each range kept its first maxIssues issues, so the first maxIssues of the joined list are the true ones.
  const issues = all.slice(0, maxIssues)
  const total = facts.issues.length + eventIssueCount + endIssues.length
  return Either.right({
    ok: total === 0,
    streams: states.size,
    events,
    checkpoints: facts.checkpoints,
    issues,
    issuesOmitted: total - issues.length,
    uncheckpointedEvents: uncheckpointed,
    lastCheckpoint: facts.lastCheckpoint
  })
}

/** A stream's head after a range: the higher revision wins, and at an equal one the later range. */
const joinState = (states: Map<string, StreamState>, s: StreamInRange): void => {
  const before = states.get(s.stream)
  if (before === undefined) states.set(s.stream, { lastRevision: s.lastRevision, lastHash: s.lastHash })
  else if (s.lastRevision >= before.lastRevision) {
    before.lastRevision = s.lastRevision
    before.lastHash = s.lastHash
  }
}

/** LogVerifier.finish's checks: every pinned stream is still there, up to its highest pinned revision. */
const endOfLogIssues = (pins: ReadonlyMap<string, ReadonlyMap<number, PinnedHash>>, states: ReadonlyMap<string, StreamState>): Array<Issue> => {
  const issues: Array<Issue> = []
  for (const [stream, byRevision] of pins) {
    const state = states.get(stream)
    let highest: [number, PinnedHash] | undefined
    for (const entry of byRevision) if (highest === undefined || entry[0] > highest[0]) highest = entry
    if (highest === undefined) continue
    const [revision, pin] = highest
    if (state === undefined) {
      issues.push({
        kind: "missing_stream",
        stream,
        revision: null,
        detail: `checkpoint ${CHECKPOINT_STREAM}@${pin.checkpointRevision} recorded this stream at revision ${revision}, but it is not in the store`
      })
    } else if (state.lastRevision < revision) {
      issues.push({
        kind: "truncated_stream",
        stream,
        revision: state.lastRevision + 1,
        detail: `checkpoint ${CHECKPOINT_STREAM}@${pin.checkpointRevision} recorded revision ${revision}, but the stream ends at ${state.lastRevision}`
      })
    }
  }
  return issues
}

// ---- the entry point ----

/**
 * Verifies the SQLite event store at `path` (opened read-only) and returns what verifyStore with LogVerifier
 * would. `onProgress` counts rows read; its total is the span of global positions.
 */
export const verifySqliteParallel = (
  path: string,
  options: ParallelVerifyOptions,
  onProgress?: (p: Progress) => void
): Effect.Effect<VerifyReport, EventStoreError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const crypto = yield* Effect.promise(makeCrypto)
      const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close()))
      const maxIssues = options.maxIssues ?? 10_000
      const verifierOptions: VerifierOptions = {
        trustedKeys: options.trustedKeys,
        blake3Hex: crypto.blake3Hex,
        verifyText: crypto.verifyText,
        maxIssues,
        ...(options.streams === undefined ? {} : { streams: options.streams })
      }

      // The log's extent first, as verifyStore takes it: later appends are left for the next verification,
      // so both passes see one history.
      const span = yield* Effect.try({ try: () => positionSpan(path), catch: (e) => describeSqliteFailure(path, e) })
      const end = span === null ? 0 : span.last
      const width = span === null ? 0 : span.last - span.first + 1
      const count = options.ranges ?? (width < SMALL_STORE ? 1 : Math.min(availableParallelism(), MAX_RANGES))
      const ranges = span === null ? [] : splitPositions(span.first, span.last, count)
      const useWorkers = options.workers ?? ranges.length > 1
      const tasks = ranges.map(
        (r): RangeTask => ({
          path,
          after: r.after,
          upTo: r.upTo,
          prefix: STREAM_PREFIX,
          streams: options.streams === undefined ? null : [CHECKPOINT_STREAM, ...options.streams],
          maxIssues
        })
      )
      const scanned = ranges.map(() => 0)
      const progress = (index: number) => (n: number) => {
        scanned[index] = n
        onProgress?.({ done: scanned.reduce((a, b) => a + b, 0), total: width })
      }

      // Workers start before pass 1 and begin hashing at once; the pins follow through each worker's port.
      // This thread takes the first range itself once pass 1 is done: about the time a worker needs to start.
      const here = useWorkers && tasks.length > 1 ? 1 : useWorkers ? 0 : tasks.length
      const workers = yield* Effect.forEach(tasks.slice(here), (task, i) => spawnWorker(path, task, progress(here + i)))

      // Pass 1, read as verifyStore reads it. Uncapped: the cap applies to the joined list.
      const pass1 = new LogVerifier({ ...verifierOptions, maxIssues: Number.MAX_SAFE_INTEGER })
      let fromRevision = 0
      for (;;) {
        const page = yield* store.api.readStream(CHECKPOINT_STREAM, { fromRevision, maxCount: CHECKPOINT_PAGE })
        for (const e of page) if (e.position <= end) pass1.addCheckpoint(e)
        if (page.length < CHECKPOINT_PAGE) break
        fromRevision = (page[page.length - 1]?.revision ?? 0) + 1
      }
      const facts = checkpointFacts(pass1)
      const pins: CheckpointPins = { pins: facts.pins, coveredPosition: facts.coveredPosition }

      for (const w of workers) w.pinsPort.postMessage(pins)
      const outcomes = [
        ...(yield* Effect.forEach(tasks.slice(0, here), (task, i) => inThisThread(path, task, pins, progress(i)))),
        ...(yield* Effect.all(workers.map((w) => w.outcome), { concurrency: "unbounded" }))
      ]

      const verified: Array<Verified> = []
      let unusual: string | undefined
      for (const o of outcomes) {
        if (o._tag === "Verified") verified.push(o)
        else unusual ??= o.reason
      }
      const genesisOf = (stream: string): string => crypto.blake3Hex(genesisPreimage(stream))
      const joined = unusual === undefined ? join(verified, facts, maxIssues, genesisOf) : Either.left(unusual)
      if (Either.isRight(joined)) return joined.right
      options.onFallback?.(joined.left)
      // The reference verifier, on the same read-only store: what this function promises to equal.
      return yield* verifyStore(store.api, verifierOptions, onProgress)
    })
  )
