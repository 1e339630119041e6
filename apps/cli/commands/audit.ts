/**
 * `astrid audit list|show|verify|stats|export|checkpoint`: read, prove and export the event log. The log is
 * the store's whole history, for whoever may read the store; what it holds came partly from models and
 * tools, so text output prints it with control characters made visible.
 */
import { Clock, Effect, Either, Option } from "effect"
import { existsSync, statSync } from "node:fs"
import type { RecordedEvent } from "../../../domain/envelope.js"
import { CHECKPOINT_STREAM, STREAM_PREFIX } from "../../../domain/streams.js"
import type { EventStoreApi } from "../../../application/ports/eventStore.js"
import type { VerifyReport } from "../../../application/audit/verifier.js"
import { verifyStore } from "../../../application/audit/verifyStore.js"
import { exportBundle, verifyBundle } from "../../../infrastructure/bundle/auditBundle.js"
import { localTrustedKeys, loadPublicKey } from "../../../infrastructure/keys/keyFiles.js"
import { asCli, CliError, usageError } from "../cliError.js"
import { progressBar } from "../progress.js"
import { reportLines } from "../reportLines.js"
import { resolveTrustedKeys } from "../trustedKeys.js"
import { dim, printJson, printLines, table } from "../output.js"
import { printable } from "../printable.js"
import { config, crypto, eventLogFor, openStore, withKeyRing } from "../runtime.js"

const PAGE = 10_000

interface Envelope {
  readonly occurredAt: string
  readonly principal: string
}

const parseObject = (text: string): Record<string, unknown> => {
  try {
    const v: unknown = JSON.parse(text)
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v }
  } catch {
    return { unparsable: text }
  }
}

const envelopeOf = (e: RecordedEvent): Envelope => {
  const m = parseObject(e.metadata)
  return {
    occurredAt: typeof m["occurredAt"] === "string" ? m["occurredAt"] : "?",
    principal: typeof m["principal"] === "string" ? m["principal"] : "?"
  }
}

const eventJson = (e: RecordedEvent) => ({
  position: e.position,
  stream: e.stream,
  revision: e.revision,
  eventId: e.eventId,
  type: e.type,
  data: parseObject(e.data),
  metadata: parseObject(e.metadata),
  hash: e.hash
})

export interface ListArgs {
  readonly streams: ReadonlyArray<string>
  readonly types: ReadonlyArray<string>
  readonly limit: number
  readonly json: boolean
}

/** The newest `limit` events matching the filters, oldest first. */
export const list = (args: ListArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      if (!Number.isSafeInteger(args.limit) || args.limit < 1) return yield* Effect.fail(usageError(`--limit ${args.limit} must be a positive integer`))
      const cfg = yield* config
      const store = yield* openStore(cfg, "read")
      const types = new Set(args.types)
      const streams = new Set(args.streams)
      const keep: Array<RecordedEvent> = []
      const consider = (e: RecordedEvent): void => {
        if (types.size > 0 && !types.has(e.type)) return
        if (streams.size > 0 && !streams.has(e.stream)) return
        keep.push(e)
        if (keep.length > args.limit * 2) keep.splice(0, keep.length - args.limit)
      }
      if (streams.size === 1) {
        const [only] = streams
        const newest = yield* asCli(
          store.readStream(only ?? "", types.size > 0 ? { direction: "backward" } : { direction: "backward", maxCount: args.limit })
        )
        for (const e of [...newest].reverse()) consider(e)
      } else {
        yield* forEachEvent(store, consider)
      }
      const shown = keep.slice(-args.limit)
      if (args.json) return yield* printJson(shown.map(eventJson))
      if (shown.length === 0) return yield* printLines("no events match")
      yield* printLines(
        ...table(
          ["POSITION", "STREAM@REVISION", "TYPE", "OCCURRED AT", "PRINCIPAL"],
          shown.map((e) => {
            const env = envelopeOf(e)
            return [String(e.position), `${e.stream}@${e.revision}`, e.type, env.occurredAt, env.principal].map(printable)
          })
        )
      )
    })
  )

const forEachEvent = (store: EventStoreApi, f: (e: RecordedEvent) => void) =>
  Effect.gen(function* () {
    let after = 0
    for (;;) {
      const page = yield* asCli(store.readAll({ after, maxCount: PAGE, streamPrefix: STREAM_PREFIX }))
      for (const e of page) f(e)
      const last = page[page.length - 1]
      if (last === undefined || page.length < PAGE) return
      after = last.position
    }
  })

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const show = (args: { readonly ref: string; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const at = args.ref.lastIndexOf("@")
      if (!UUID.test(args.ref) && at <= 0) {
        return yield* Effect.fail(usageError(`'${args.ref}' is neither an event id (a UUID) nor stream@revision, e.g. astrid-session-abc@3`))
      }
      const store = yield* openStore(cfg, "read")
      let found: Option.Option<RecordedEvent>
      if (UUID.test(args.ref)) {
        found = yield* asCli(store.findEvent(args.ref.toLowerCase()))
      } else {
        const stream = args.ref.slice(0, at)
        const revision = Number(args.ref.slice(at + 1))
        if (!Number.isSafeInteger(revision) || revision < 0) {
          return yield* Effect.fail(usageError(`'${args.ref.slice(at + 1)}' in '${args.ref}' is not a revision (a non-negative integer)`))
        }
        const page = yield* asCli(store.readStream(stream, { fromRevision: revision, maxCount: 1 }))
        found = Option.fromNullable(page.find((e) => e.revision === revision))
      }
      if (Option.isNone(found)) {
        return yield* Effect.fail(usageError(`no event ${args.ref} in ${store.location}; 'astrid audit list' shows what is there`))
      }
      const e = found.value
      if (args.json) return yield* printJson(eventJson(e))
      const env = parseObject(e.metadata)
      yield* printLines(
        ...[
          `${e.type}  ${e.stream}@${e.revision}  (position ${e.position})`,
          `event id     ${e.eventId}`,
          ...Object.entries(env)
            .filter(([k]) => k !== "eventId")
            .map(([k, v]) => `${k.padEnd(12)} ${typeof v === "string" ? v : JSON.stringify(v)}`),
          `hash         ${e.hash}`,
          "data:",
          JSON.stringify(parseObject(e.data), null, 2)
        ].map(printable)
      )
    })
  )

export interface VerifyArgs {
  readonly streams: ReadonlyArray<string>
  readonly trustedKeys: ReadonlyArray<string>
  readonly bundle: Option.Option<string>
  readonly json: boolean
}

export const verify = (args: VerifyArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const trusted = yield* resolveTrustedKeys(cfg.home, args.trustedKeys)
      const c = yield* crypto
      const options = {
        trustedKeys: trusted,
        blake3Hex: c.blake3Hex,
        verifyText: c.verifyText,
        ...(args.streams.length > 0 ? { streams: new Set(args.streams) } : {})
      }
      let report: VerifyReport
      let source: string
      if (Option.isSome(args.bundle)) {
        const path = args.bundle.value
        if (!existsSync(path)) return yield* Effect.fail(usageError(`no bundle at ${path}; check the path`))
        report = (yield* asCli(verifyBundle(path, options))).report
        source = path
      } else {
        // Opening the store first gives the usual one-line errors (missing, corrupt, not Astrid...).
        const store = yield* openStore(cfg, "read")
        const bar = yield* progressBar(50_000)
        const onProgress = (p: { readonly done: number; readonly total: number }) => bar?.update("verifying", p.done, p.total)
        // SQLite: every core reads and hashes a range of positions (same report as the reference verifier).
        const run =
          cfg.eventStore.url === null
            ? Effect.flatMap(
                Effect.promise(() => import("../../../infrastructure/event-store/sqliteParallelVerify.js")),
                (m) => m.verifySqliteParallel(cfg.eventStore.path, options, onProgress)
              )
            : verifyStore(store, options, onProgress)
        report = yield* asCli(run).pipe(Effect.ensuring(Effect.sync(() => bar?.stop())))
        source = store.location
      }
      if (!report.ok) process.exitCode = 1
      if (args.json) {
        return yield* printJson({ ...report, source, trustedKeys: [...trusted.keys()] })
      }
      const lines = reportLines({ ok: "log intact", bad: "log NOT intact" }, report)
      if (report.uncheckpointedEvents > 0) {
        lines.push(dim(`${report.uncheckpointedEvents} event(s) after the last checkpoint are chained but not yet signed; 'astrid audit checkpoint' signs them`))
      }
      if (trusted.size === 0) {
        lines.push(dim("no trusted key: run 'astrid keys generate' or pass --trusted-key to check checkpoint signatures"))
      }
      yield* printLines(...lines)
    })
  )

export const stats = (args: { readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const store = yield* openStore(cfg, "read")
      const s = yield* asCli(store.stats)
      const [last] = yield* asCli(store.readStream(CHECKPOINT_STREAM, { direction: "backward", maxCount: 1 }))
      let covered = 0
      let lastCheckpoint: { revision: number; hash: string; signedAt: string; keyId: string; globalPosition: number } | null = null
      if (last !== undefined) {
        const d = parseObject(last.data)
        covered = typeof d["globalPosition"] === "number" ? d["globalPosition"] : 0
        lastCheckpoint = {
          revision: last.revision,
          hash: last.hash,
          signedAt: typeof d["signedAt"] === "string" ? d["signedAt"] : "?",
          keyId: typeof d["keyId"] === "string" ? d["keyId"] : "?",
          globalPosition: covered
        }
      }
      let uncheckpointed = 0
      let after = covered
      for (;;) {
        const page = yield* asCli(store.readAll({ after, maxCount: PAGE, streamPrefix: STREAM_PREFIX }))
        uncheckpointed += page.filter((e) => e.stream !== CHECKPOINT_STREAM).length
        const tail = page[page.length - 1]
        if (tail === undefined || page.length < PAGE) break
        after = tail.position
      }
      const fileBytes = cfg.eventStore.url !== null ? null : [cfg.eventStore.path, `${cfg.eventStore.path}-wal`].reduce((n, p) => n + (existsSync(p) ? statSync(p).size : 0), 0)
      const key = yield* Effect.either(loadPublicKey(cfg.home))
      const result = {
        store: store.location,
        events: s.events,
        streams: s.streams,
        lastPosition: s.lastPosition,
        payloadBytes: s.bytes,
        fileBytes,
        checkpoints: last === undefined ? 0 : last.revision + 1,
        lastCheckpoint,
        uncheckpointedEvents: uncheckpointed,
        runtimeKey: Either.isRight(key) ? key.right.keyId : null,
        checkpointEvery: cfg.audit.checkpointEvery
      }
      if (args.json) return yield* printJson(result)
      yield* printLines(
        `store              ${result.store}`,
        `events             ${result.events} in ${result.streams} streams (last position ${result.lastPosition})`,
        `size               ${result.fileBytes === null ? "" : `${(result.fileBytes / 1024 / 1024).toFixed(2)} MiB on disk, `}${(result.payloadBytes / 1024 / 1024).toFixed(2)} MiB of event text`,
        `checkpoints        ${result.checkpoints}${lastCheckpoint === null ? "" : ` (last #${lastCheckpoint.revision} at ${lastCheckpoint.signedAt} by ${lastCheckpoint.keyId})`}`,
        `not checkpointed   ${uncheckpointed} event(s)`,
        `last checkpoint    ${lastCheckpoint?.hash ?? "none"}  (keep this hash elsewhere to pin the log's tail)`,
        `runtime key        ${result.runtimeKey ?? "none ('astrid keys generate')"}`,
        `checkpoint every   ${cfg.audit.checkpointEvery === 0 ? "on demand only" : `${cfg.audit.checkpointEvery} events`}`
      )
    })
  )

export const exportCommand = (args: { readonly out: string; readonly streams: ReadonlyArray<string>; readonly force: boolean; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      if (existsSync(args.out) && !args.force) {
        return yield* Effect.fail(usageError(`${args.out} already exists; choose another path or pass --force to replace it`))
      }
      const store = yield* openStore(cfg, "read")
      const trusted = yield* asCli(localTrustedKeys(cfg.home))
      const now = yield* Clock.currentTimeMillis
      const result = yield* asCli(
        exportBundle(store, args.out, {
          ...(args.streams.length > 0 ? { streams: args.streams } : {}),
          publicKeys: [...trusted].map(([keyId, publicKey]) => ({ keyId, publicKey })),
          nowMs: now
        })
      )
      if (args.json) return yield* printJson({ out: args.out, ...result })
      yield* printLines(
        `exported ${result.events} events (${(result.bytes / 1024).toFixed(1)} KiB) to ${args.out}`,
        dim(`verify it anywhere with: astrid audit verify --bundle ${args.out} --trusted-key <public key>`)
      )
    })
  )

export const checkpoint = (args: { readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const store = yield* openStore(cfg, "write")
      const { log, keyRing } = yield* eventLogFor(cfg, store, true)
      const outcome = yield* asCli(withKeyRing(log.checkpoint, keyRing))
      if (args.json) {
        return yield* printJson(
          outcome._tag === "Signed"
            ? { signed: true, revision: outcome.revision, hash: outcome.hash, ...outcome.body }
            : { signed: false, lastRevision: outcome.lastRevision ?? null }
        )
      }
      if (outcome._tag === "NothingNew") {
        return yield* printLines(
          outcome.lastRevision === undefined
            ? "nothing to checkpoint: the log holds no events yet"
            : `nothing new since checkpoint ${CHECKPOINT_STREAM}@${outcome.lastRevision}`
        )
      }
      yield* printLines(
        `signed checkpoint ${CHECKPOINT_STREAM}@${outcome.revision}: ${outcome.body.heads.length} stream head(s) up to position ${outcome.body.globalPosition}`,
        `  merkle root  ${outcome.body.merkleRoot}`,
        `  hash         ${outcome.hash}`,
        `  key          ${outcome.body.keyId}`
      )
    })
  )

export { CliError }
