/**
 * Store copy: moves a whole Astrid history from one event store to another (SQLite, EventStoreDB, memory, in
 * any direction), then verifies the copy with the log verifier.
 *
 * What is preserved: every event of every `astrid-` stream is appended to the target as the very ChainedEvent
 * the source holds (event id, stream, revision, type, data text, metadata text, hash), so every chain link and
 * every signed checkpoint verifies in the target exactly as in the source. Events are copied in the source's
 * global order, so the target's `astrid-` order is the source's.
 *
 * What is not: global positions. Each store numbers its own log (SQLite counts 1, 2, 3...; EventStoreDB uses
 * byte offsets), positions are not hashed, and no chain depends on them; the copy gets the target's positions.
 * One number does cross over: a signed checkpoint's `globalPosition` (inside the signed body, so it cannot be
 * rewritten) is in the numbering of the store it was signed in. Hashes, links and signatures verify the same;
 * only code that compares that number with the store's own positions (the verifier's count of events not yet
 * checkpointed, the checkpointer's starting point) sees a copy differently.
 *
 * Atomicity and resumption: the copy appends runs of consecutive events of one stream; each append is atomic in
 * every store, so an interruption leaves the target holding, for every stream, a prefix of the source's stream
 * (nothing half-written), and those prefixes together are a prefix of the source's global order. A new run
 * first checks that the target holds nothing else: for each target stream, its head (revision, event id, hash)
 * must be the source's event at that revision. Because each hash commits to the chain before it, an equal head
 * means an equal prefix in an intact target; a damaged target prefix is what the final verification reports.
 * Anything else (another event at a revision, a longer stream, a stream the source lacks) is refused before a
 * single event is written. The run then copies only what the target lacks.
 *
 * Exact order costs appends: consecutive events of different streams cannot share one append (no store has
 * multi-stream transactions), so interleaved sessions are copied nearly one event per append.
 *
 * A snapshot of the source's extent is taken at the start, as `audit verify` does: events appended to the
 * source while the copy runs are left for the next run, which picks them up.
 */
import { Data, Effect, Option } from "effect"
import type { ChainedEvent, RecordedEvent } from "../domain/envelope.js"
import { STREAM_PREFIX } from "../domain/streams.js"
import { type EventStoreApi, type EventStoreError, WrongExpectedRevision } from "./ports/eventStore.js"
import { verifyStore } from "./audit/verifyStore.js"
import type { VerifierOptions, VerifyReport } from "./audit/verifier.js"

export interface CopyProgress {
  readonly phase: "copy" | "verify"
  /** Source events handled so far (copy), or target events verified (verify). */
  readonly done: number
  readonly total: number
  readonly copied: number
  readonly skipped: number
}

export interface CopyEventsOptions {
  /** Most events in one append (default 500). */
  readonly batchEvents?: number
  /**
   * Most data + metadata characters in one append (default 256 Ki: at most 768 KiB of UTF-8 even if every
   * character takes three bytes, under EventStoreDB's default 1 MiB append limit); a larger event goes alone.
   */
  readonly batchChars?: number
  /** Events per read of the source (default 1000). */
  readonly pageSize?: number
  readonly onProgress?: (p: CopyProgress) => void
}

export interface CopyOptions extends CopyEventsOptions {
  /** How the copy is verified at the end: the trusted keys and crypto, as for `audit verify`. */
  readonly verify: VerifierOptions
}

export interface CopyCounts {
  readonly source: string
  readonly target: string
  /** Events appended by this run. */
  readonly copied: number
  /** Source events the target held already (from an earlier, interrupted or complete, run). */
  readonly skipped: number
  /** Streams of the copied history. */
  readonly streams: number
  readonly appends: number
}

export interface CopyReport extends CopyCounts {
  /** The log verifier's report on the whole target after the copy. */
  readonly verify: VerifyReport
}

export type StoreCopyFailure =
  /** The source and the target are one store. */
  | "same_store"
  /** The target holds events that are not the source's. */
  | "diverged"
  /** The source's own streams are not continuous; it must be verified and repaired first. */
  | "source_damaged"
  /** Something else wrote to the target while the copy ran. */
  | "target_moved"

/** The copy was refused or stopped; `message` says why and what to do. */
export class StoreCopyError extends Data.TaggedError("StoreCopyError")<{
  readonly kind: StoreCopyFailure
  readonly message: string
}> {}

/** What the target holds of one stream: the revision it expects next, and its head. */
interface TargetStream {
  next: number
  head: { readonly revision: number; readonly eventId: string; readonly hash: string } | undefined
}

const chained = (e: RecordedEvent): ChainedEvent => ({
  eventId: e.eventId,
  revision: e.revision,
  type: e.type,
  data: e.data,
  metadata: e.metadata,
  hash: e.hash
})

const short = (hash: string): string => `${hash.slice(0, 12)}…`

/** Every `astrid-` stream of the target with its head, after checking each is continuous from revision 0. */
const surveyTarget = (target: EventStoreApi, pageSize: number) =>
  Effect.gen(function* () {
    const streams = new Map<string, TargetStream>()
    let after = 0
    for (;;) {
      const page = yield* target.readAll({ after, maxCount: pageSize, streamPrefix: STREAM_PREFIX })
      for (const e of page) {
        const known = streams.get(e.stream) ?? { next: 0, head: undefined }
        if (e.revision !== known.next) {
          return yield* Effect.fail(
            new StoreCopyError({
              kind: "diverged",
              message: `the target ${target.location} has stream ${e.stream} at revision ${e.revision} after revision ${known.next - 1}, so it is not a copy of any intact history; copy into an empty store, or check the target with 'astrid audit verify'`
            })
          )
        }
        known.next = e.revision + 1
        known.head = { revision: e.revision, eventId: e.eventId, hash: e.hash }
        streams.set(e.stream, known)
      }
      const last = page[page.length - 1]
      if (last === undefined || page.length < pageSize) return streams
      after = last.position
    }
  })

/** Fails unless the target's head of `stream` is the source's event at the same revision. */
const checkHead = (source: EventStoreApi, target: EventStoreApi, stream: string, head: NonNullable<TargetStream["head"]>) =>
  Effect.gen(function* () {
    const [theirs] = yield* source.readStream(stream, { fromRevision: head.revision, maxCount: 1 })
    const differs = (what: string) =>
      Effect.fail(
        new StoreCopyError({
          kind: "diverged",
          message: `the target ${target.location} holds a different history: ${what}; copy into an empty store (a new SQLite file or an unused EventStoreDB), or resume only into the store an earlier copy of this history started`
        })
      )
    if (theirs === undefined || theirs.revision !== head.revision) {
      const sourceHead = Option.getOrUndefined(yield* source.streamHead(stream))
      return yield* differs(
        sourceHead === undefined
          ? `its stream ${stream} is not in the source ${source.location}`
          : `its stream ${stream} runs to revision ${head.revision}, the source's ends at revision ${sourceHead.revision}`
      )
    }
    if (theirs.eventId !== head.eventId || theirs.hash !== head.hash) {
      return yield* differs(
        `${stream}@${head.revision} is event ${head.eventId} (hash ${short(head.hash)}) there but event ${theirs.eventId} (hash ${short(theirs.hash)}) in the source`
      )
    }
  })

/**
 * Copies every `astrid-` event of `source` that `target` lacks, in the source's global order, without
 * verifying: for callers that verify the target through another handle (see `copyStore`).
 */
export const copyEvents = (
  source: EventStoreApi,
  target: EventStoreApi,
  options: CopyEventsOptions = {}
): Effect.Effect<CopyCounts, StoreCopyError | EventStoreError> =>
  Effect.gen(function* () {
    // A best-effort guard for a clear message: a copy onto itself would find every stream complete and write
    // nothing anyway, because every head it compares is equal.
    if (source === target || source.location === target.location) {
      return yield* Effect.fail(
        new StoreCopyError({
          kind: "same_store",
          message: `the source and the target are the same store (${source.location}); give another target`
        })
      )
    }
    const pageSize = options.pageSize ?? 1000
    const batchEvents = Math.max(1, options.batchEvents ?? 500)
    const batchChars = Math.max(1, options.batchChars ?? 256 * 1024)
    const report = options.onProgress ?? (() => undefined)

    const streams = yield* surveyTarget(target, pageSize)
    // Checked before anything is written, so a refused target is left exactly as it was.
    yield* Effect.forEach(
      [...streams].flatMap(([stream, known]) => (known.head === undefined ? [] : [[stream, known.head] as const])),
      ([stream, head]) => checkHead(source, target, stream, head),
      { concurrency: 8, discard: true }
    )

    const { events: total, lastPosition: end } = yield* source.stats
    const sourceStreams = new Set<string>()
    let copied = 0
    let skipped = 0
    let appends = 0
    let run: Array<ChainedEvent> = []
    let runStream = ""
    let runChars = 0

    const flush = Effect.gen(function* () {
      const first = run[0]
      if (first === undefined) return
      const batch = run
      const stream = runStream
      run = []
      runChars = 0
      yield* target.append(stream, first.revision === 0 ? "no_stream" : first.revision - 1, batch).pipe(
        Effect.catchIf(
          (e): e is WrongExpectedRevision => e instanceof WrongExpectedRevision,
          (e) =>
            Effect.fail(
              new StoreCopyError({
                kind: "target_moved",
                message: `stream ${stream} in the target ${target.location} is at revision ${String(e.actual)}, not ${first.revision - 1} as the copy left it: something else writes to the target; stop it, then run the copy again to resume`
              })
            )
        )
      )
      copied += batch.length
      appends++
    })

    let after = 0
    let done = 0
    scan: for (;;) {
      const page = yield* source.readAll({ after, maxCount: pageSize, streamPrefix: STREAM_PREFIX })
      for (const e of page) {
        if (e.position > end) break scan
        after = e.position
        done++
        sourceStreams.add(e.stream)
        let known = streams.get(e.stream)
        if (known === undefined) streams.set(e.stream, (known = { next: 0, head: undefined }))
        if (known.head !== undefined && e.revision <= known.head.revision) {
          skipped++
          continue
        }
        if (e.revision !== known.next) {
          return yield* Effect.fail(
            new StoreCopyError({
              kind: "source_damaged",
              message: `the source ${source.location} has stream ${e.stream} at revision ${e.revision} where revision ${known.next} belongs (position ${e.position}); run 'astrid audit verify' on the source: a damaged history is not copied`
            })
          )
        }
        const size = e.data.length + e.metadata.length
        if (run.length > 0 && (runStream !== e.stream || run.length >= batchEvents || runChars + size > batchChars)) yield* flush
        runStream = e.stream
        run.push(chained(e))
        runChars += size
        known.next = e.revision + 1
      }
      // Flushing at each page end keeps what is reported as copied actually in the target.
      yield* flush
      report({ phase: "copy", done, total, copied, skipped })
      if (page.length < pageSize) break
    }
    yield* flush
    report({ phase: "copy", done, total, copied, skipped })
    return { source: source.location, target: target.location, copied, skipped, streams: sourceStreams.size, appends }
  })

/**
 * Copies every `astrid-` event of `source` that `target` lacks, in the source's global order, then verifies
 * the whole target. Safe to run again after any interruption, and a no-op (apart from verification) once
 * complete.
 */
export const copyStore = (
  source: EventStoreApi,
  target: EventStoreApi,
  options: CopyOptions
): Effect.Effect<CopyReport, StoreCopyError | EventStoreError> =>
  Effect.gen(function* () {
    const counts = yield* copyEvents(source, target, options)
    const { copied, skipped } = counts
    const verify = yield* verifyStore(target, options.verify, (p) =>
      options.onProgress?.({ phase: "verify", done: p.done, total: p.total, copied, skipped })
    )
    return { ...counts, verify }
  })
