/**
 * Audit bundles: a self-contained JSON Lines export of a history (events and checkpoints, plus the
 * public keys that signed them, for information) that anyone can verify offline from the format spec
 * (docs/audit-format.md). The verifier never trusts the keys a bundle carries.
 */
import { Data, Effect, Either, Option, Schema } from "effect"
import { closeSync, createReadStream, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs"
import { createInterface } from "node:readline"
import type { RecordedEvent } from "../../domain/envelope.js"
import { CHECKPOINT_STREAM, STREAM_PREFIX } from "../../domain/streams.js"
import type { EventStoreApi, EventStoreError } from "../../application/ports/eventStore.js"
import { LogVerifier, type VerifierOptions, type VerifyReport } from "../../application/audit/verifier.js"
import { messageOf } from "../../domain/errorMessage.js"

export const BUNDLE_FORMAT = "astrid-audit-bundle"
export const BUNDLE_VERSION = 1

export class BundleError extends Data.TaggedError("BundleError")<{ readonly message: string }> {}

const BundleHeader = Schema.Struct({
  format: Schema.Literal(BUNDLE_FORMAT),
  version: Schema.Literal(BUNDLE_VERSION),
  exportedAt: Schema.String,
  scope: Schema.NullOr(Schema.Array(Schema.String)),
  events: Schema.NonNegativeInt,
  publicKeys: Schema.Array(Schema.Struct({ keyId: Schema.String, publicKey: Schema.String }))
})
export type BundleHeader = typeof BundleHeader.Type

const BundleEvent = Schema.Struct({
  stream: Schema.String,
  revision: Schema.NonNegativeInt,
  position: Schema.NonNegativeInt,
  eventId: Schema.String,
  type: Schema.String,
  data: Schema.String,
  metadata: Schema.String,
  hash: Schema.String
})

const decodeHeader = Schema.decodeUnknownEither(Schema.parseJson(BundleHeader))
const decodeEvent = Schema.decodeUnknownEither(Schema.parseJson(BundleEvent))

const PAGE = 10_000

const eventLine = (e: RecordedEvent): string =>
  JSON.stringify({
    stream: e.stream,
    revision: e.revision,
    position: e.position,
    eventId: e.eventId,
    type: e.type,
    data: e.data,
    metadata: e.metadata,
    hash: e.hash
  })

export interface ExportOptions {
  /** Streams to export (the checkpoint stream always comes along); undefined exports everything. */
  readonly streams?: ReadonlyArray<string>
  readonly publicKeys: ReadonlyArray<{ readonly keyId: string; readonly publicKey: string }>
  readonly nowMs: number
}


/** Writes a bundle to `outPath` atomically (a temporary file renamed into place once synced). */
export const exportBundle = (
  store: EventStoreApi,
  outPath: string,
  options: ExportOptions
): Effect.Effect<{ readonly events: number; readonly bytes: number }, BundleError | EventStoreError> =>
  Effect.gen(function* () {
    const scope = options.streams === undefined ? undefined : new Set([...options.streams, CHECKPOINT_STREAM])
    let total = 0
    if (scope === undefined) {
      total = (yield* store.stats).events
    } else {
      for (const stream of scope) {
        const head = yield* store.streamHead(stream)
        if (Option.isNone(head) && stream !== CHECKPOINT_STREAM) {
          return yield* Effect.fail(new BundleError({ message: `stream ${stream} is not in the store; 'astrid audit list' shows the streams there are` }))
        }
        total += Option.match(head, { onNone: () => 0, onSome: (h) => h.revision + 1 })
      }
    }
    const temp = `${outPath}.partial-${process.pid}`
    const fd = yield* Effect.try({
      try: () => openSync(temp, "w", 0o644),
      catch: (e) => new BundleError({ message: `cannot write ${outPath}: ${messageOf(e)}` })
    })
    let bytes = 0
    let written = 0
    const write = (line: string): void => {
      bytes += writeSync(fd, `${line}\n`)
    }
    const body = Effect.gen(function* () {
      const header: BundleHeader = {
        format: BUNDLE_FORMAT,
        version: BUNDLE_VERSION,
        exportedAt: new Date(options.nowMs).toISOString(),
        scope: scope === undefined ? null : [...scope].sort(),
        events: total,
        publicKeys: options.publicKeys
      }
      write(JSON.stringify(header))
      let after = 0
      for (;;) {
        const page = yield* store.readAll({ after, maxCount: PAGE, streamPrefix: STREAM_PREFIX })
        const lines: Array<string> = []
        for (const e of page) {
          if (scope !== undefined && !scope.has(e.stream)) continue
          lines.push(eventLine(e))
          written++
        }
        if (lines.length > 0) write(lines.join("\n"))
        const last = page[page.length - 1]
        if (last === undefined || page.length < PAGE) break
        after = last.position
      }
      if (written !== total) {
        return yield* Effect.fail(new BundleError({ message: `the store changed during export (expected ${total} events, read ${written}); run the export again` }))
      }
      fsyncSync(fd)
    })
    yield* body.pipe(
      Effect.ensuring(Effect.sync(() => closeSync(fd))),
      Effect.tapError(() => Effect.sync(() => rmSync(temp, { force: true }))),
      Effect.catchAllDefect((d) => Effect.fail(new BundleError({ message: `cannot write ${outPath}: ${messageOf(d)}` })))
    )
    yield* Effect.try({
      try: () => renameSync(temp, outPath),
      catch: (e) => new BundleError({ message: `cannot move the bundle into place at ${outPath}: ${messageOf(e)}` })
    })
    return { events: written, bytes }
  })

/** Calls `onEvent` for every event line, in file order; returns the header. */
const scanBundle = (path: string, onEvent: (e: RecordedEvent) => void): Effect.Effect<BundleHeader, BundleError> =>
  Effect.tryPromise({
    try: async () => {
      const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity })
      let header: BundleHeader | undefined
      let lineNo = 0
      let count = 0
      let lastPosition = 0
      for await (const line of lines) {
        lineNo++
        if (header === undefined) {
          const decoded = decodeHeader(line)
          if (Either.isLeft(decoded)) throw new BundleError({ message: `${path} is not an Astrid audit bundle (line 1 is not a version ${BUNDLE_VERSION} bundle header)` })
          header = decoded.right
          continue
        }
        if (line === "") continue
        const decoded = decodeEvent(line)
        if (Either.isLeft(decoded)) throw new BundleError({ message: `${path} line ${lineNo} is not a bundle event; the bundle is damaged, export it again` })
        if (decoded.right.position <= lastPosition) throw new BundleError({ message: `${path} line ${lineNo} is out of position order; the bundle is damaged, export it again` })
        lastPosition = decoded.right.position
        count++
        onEvent(decoded.right)
      }
      if (header === undefined) throw new BundleError({ message: `${path} is empty; it is not an Astrid audit bundle` })
      if (count !== header.events) {
        throw new BundleError({ message: `${path} is incomplete: its header announces ${header.events} events, it holds ${count}; export it again` })
      }
      return header
    },
    catch: (e) =>
      e instanceof BundleError
        ? e
        : new BundleError({ message: `cannot read the bundle ${path}: ${messageOf(e)}` })
  })

/**
 * Verifies a bundle with no database: the same checks as a live store, restricted to the bundle's
 * scope. `options.streams` narrows further.
 */
export const verifyBundle = (path: string, options: VerifierOptions): Effect.Effect<{ header: BundleHeader; report: VerifyReport }, BundleError> =>
  Effect.gen(function* () {
    const checkpoints: Array<RecordedEvent> = []
    const header = yield* scanBundle(path, (e) => {
      if (e.stream === CHECKPOINT_STREAM) checkpoints.push(e)
    })
    const bundleScope = header.scope === null ? undefined : new Set(header.scope)
    const streams = options.streams ?? bundleScope
    const verifier = new LogVerifier(streams === undefined ? options : { ...options, streams })
    checkpoints.sort((a, b) => a.revision - b.revision)
    for (const c of checkpoints) verifier.addCheckpoint(c)
    yield* scanBundle(path, (e) => verifier.push(e))
    return { header, report: verifier.finish() }
  })
