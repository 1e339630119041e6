/**
 * `astrid store copy`: moves a whole history to another store (a SQLite file or EventStoreDB / KurrentDB,
 * either way) with every hash as it is, resumes an interrupted copy, and verifies the copy.
 */
import { Clock, Effect, type Scope } from "effect"
import { existsSync, realpathSync } from "node:fs"
import { resolve } from "node:path"
import type { EventStoreApi } from "../../../application/ports/eventStore.js"
import { verifyStore } from "../../../application/audit/verifyStore.js"
import { copyEvents } from "../../../application/storeCopy.js"
import type { AstridConfig } from "../../../infrastructure/config/astridConfig.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { asCli, type CliError, usageError } from "../cliError.js"
import { progressBar } from "../progress.js"
import { reportLines } from "../reportLines.js"
import { resolveTrustedKeys } from "../trustedKeys.js"
import { dim, printJson, printLines } from "../output.js"
import { config, crypto, openStore } from "../runtime.js"

export interface CopyArgs {
  readonly to: string
  readonly from?: string | undefined
  readonly json: boolean
  readonly trustedKeys: ReadonlyArray<string>
}

/** Where a store lives: a SQLite file, or an EventStoreDB / KurrentDB URL. */
type Place = { readonly kind: "sqlite"; readonly path: string } | { readonly kind: "esdb"; readonly url: string }

const placeOf = (given: string): Place =>
  /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(given.trim()) ? { kind: "esdb", url: given.trim() } : { kind: "sqlite", path: resolve(given) }

const configuredPlace = (cfg: AstridConfig): Place =>
  cfg.eventStore.url === null ? { kind: "sqlite", path: cfg.eventStore.path } : { kind: "esdb", url: cfg.eventStore.url }

const redact = (url: string): string => url.replace(/^([a-z+]+:\/\/[^:@/]+):[^@/]*@/i, "$1:***@")

/**
 * A name that is equal for two spellings of one store: the real path of a file (through links), or the
 * sorted hosts of a URL (without scheme, credentials or options). Different host names for one server are
 * not caught here; copying onto the same store writes nothing anyway (every stream is found complete).
 */
const identityOf = (place: Place): string => {
  if (place.kind === "sqlite") return `file:${existsSync(place.path) ? realpathSync.native(place.path) : place.path}`
  const authority = place.url.replace(/^[A-Za-z+]+:\/\//, "").split(/[/?#]/)[0] ?? ""
  const hosts = authority.replace(/^[^@]*@/, "").toLowerCase().split(",").sort()
  return `esdb:${hosts.join(",")}`
}

const describePlace = (place: Place): string => (place.kind === "sqlite" ? place.path : redact(place.url))

/**
 * Opens a store closed with the scope; the gRPC client is loaded only for a URL.
 *
 * A SQLite target is written with synchronous=NORMAL: a copy of interleaved sessions appends nearly one event
 * per transaction, and syncing each one made a 5,000-event copy forty times slower (13 s instead of 0.3 s).
 * WAL keeps every transaction atomic on a crash or a power loss (which can only lose the last transactions;
 * the next run copies them again), and closing the writer checkpoints the WAL with a sync, so the copy is
 * durable before it is verified and reported.
 *
 * An EventStoreDB target skips the adapter's store-wide event-id check (a read of `$all`'s tail before every
 * append, which doubled the time of a copy): the ids copied are the source's, unique in the source, and the
 * target's `astrid-` streams have been found to be the source's own prefixes, so the check could only find
 * what the final verification reports anyway.
 */
const openPlace = (cfg: AstridConfig, place: Place, mode: "read" | "write"): Effect.Effect<EventStoreApi, CliError, Scope.Scope> => {
  if (place.kind === "esdb") {
    const url = place.url
    return Effect.promise(() => import("../../../infrastructure/event-store/esdbEventStore.js")).pipe(
      Effect.flatMap((m) => asCli(Effect.acquireRelease(m.connectEsdbEventStore(url, mode === "write" ? { eventIds: "batch" } : {}), (s) => Effect.promise(() => s.close())))),
      Effect.map((s) => s.api)
    )
  }
  return asCli(
    Effect.acquireRelease(
      openSqliteEventStore({ path: place.path, mode, synchronous: "normal", busyTimeoutMs: cfg.eventStore.busyTimeoutMs }),
      (s) => Effect.sync(() => s.close())
    )
  ).pipe(Effect.map((s) => s.api))
}

export const copy = (args: CopyArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      if (args.to.trim() === "") return yield* Effect.fail(usageError("--to is empty; give a SQLite file path or an esdb:// / kurrentdb:// URL"))
      const to = placeOf(args.to)
      const from = args.from === undefined ? configuredPlace(cfg) : placeOf(args.from)
      if (args.from !== undefined && from.kind === "sqlite" && !existsSync(from.path)) {
        return yield* Effect.fail(usageError(`--from ${from.path}: no such file; give an Astrid SQLite store or an esdb:// / kurrentdb:// URL`))
      }
      if (identityOf(to) === identityOf(from)) {
        return yield* Effect.fail(
          usageError(`the source and the target are the same store (${describePlace(from)}); give --to another SQLite file or EventStoreDB URL`)
        )
      }
      const trusted = yield* resolveTrustedKeys(cfg.home, args.trustedKeys)
      const c = yield* crypto
      // The source first: a source that cannot be read must not leave a new, empty target file behind.
      const source = args.from === undefined ? yield* openStore(cfg, "read") : yield* openPlace(cfg, from, "read")
      const bar = yield* progressBar(1_000)
      const started = yield* Clock.currentTimeMillis
      const result = yield* Effect.gen(function* () {
        // Copied through one handle, verified through a fresh one: closing the writer makes a SQLite copy durable
        // (see openPlace), and verification then reads what any later reader of the target will read.
        const counts = yield* Effect.scoped(
          Effect.flatMap(openPlace(cfg, to, "write"), (target) => asCli(copyEvents(source, target, { onProgress: (p) => bar?.update("copying  ", p.done, p.total) })))
        )
        const target = yield* openPlace(cfg, to, "read")
        const verify = yield* asCli(
          verifyStore(target, { trustedKeys: trusted, blake3Hex: c.blake3Hex, verifyText: c.verifyText }, (p) =>
            bar?.update("verifying", p.done, p.total)
          )
        )
        return { ...counts, verify }
      }).pipe(Effect.ensuring(Effect.sync(() => bar?.stop())))
      const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
      const report = result.verify
      if (!report.ok) process.exitCode = 1
      if (args.json) {
        return yield* printJson({
          source: result.source,
          target: result.target,
          copied: result.copied,
          skipped: result.skipped,
          streams: result.streams,
          appends: result.appends,
          seconds,
          ok: report.ok,
          verify: { ...report, trustedKeys: [...trusted.keys()] }
        })
      }
      const lines: Array<string> = [
        `copied ${result.copied} event(s) in ${result.streams} stream(s) from ${result.source} to ${result.target} in ${seconds.toFixed(1)} s` +
          (result.skipped > 0 ? ` (${result.skipped} already there, skipped)` : "")
      ]
      lines.push(...reportLines({ ok: "copy verified", bad: "copy NOT intact" }, report))
      if (trusted.size === 0) lines.push(dim("no trusted key: run 'astrid keys generate' or pass --trusted-key to check checkpoint signatures"))
      yield* printLines(...lines)
    })
  )
