/**
 * Wiring for CLI commands: configuration, the store opened in the mode a command needs, crypto, ids,
 * the runtime key. Every failure becomes a CliError with a one-line message.
 */
import { Effect, Layer, type Scope } from "effect"
import { existsSync } from "node:fs"
import { EventLog, EventLogLive } from "../../application/eventLog.js"
import { Crypto } from "../../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../../application/ports/eventStore.js"
import { Ids } from "../../application/ports/ids.js"
import { KeyRing } from "../../application/ports/keyRing.js"
import { type AstridConfig, loadConfig } from "../../infrastructure/config/astridConfig.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { uuidv7 } from "../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore, type OpenMode } from "../../infrastructure/event-store/sqliteEventStore.js"
import { loadKeyRing } from "../../infrastructure/keys/keyFiles.js"
import { asCli, type CliError } from "./cliError.js"


export const config: Effect.Effect<AstridConfig, CliError> = asCli(loadConfig(process.env))

export const crypto = Effect.promise(makeCrypto)

/** Whether there is a store to read: a configured URL, or the SQLite file on disk. */
export const storeExists = (cfg: AstridConfig): boolean => cfg.eventStore.url !== null || existsSync(cfg.eventStore.path)

/**
 * The configured store, closed when the surrounding scope ends: EventStoreDB / KurrentDB when
 * `[event_store] url` (or ASTRID_EVENT_STORE_URL) is set, else the embedded SQLite file. The gRPC client
 * is loaded only then, so SQLite users never pay its start-up.
 */
export const openStore = (cfg: AstridConfig, mode: OpenMode): Effect.Effect<EventStoreApi, CliError, Scope.Scope> => {
  const url = cfg.eventStore.url
  if (url !== null) {
    return Effect.promise(() => import("../../infrastructure/event-store/esdbEventStore.js")).pipe(
      Effect.flatMap((m) => asCli(Effect.acquireRelease(m.connectEsdbEventStore(url), (s) => Effect.promise(() => s.close())))),
      Effect.map((s) => s.api)
    )
  }
  return asCli(
    Effect.acquireRelease(
      openSqliteEventStore({
        path: cfg.eventStore.path,
        mode,
        synchronous: cfg.eventStore.synchronous,
        busyTimeoutMs: cfg.eventStore.busyTimeoutMs
      }),
      (s) => Effect.sync(() => s.close())
    )
  ).pipe(Effect.map((s) => s.api))
}

/** An EventLog over `store`, signing checkpoints with the runtime key when one exists. */
export const eventLogFor = (cfg: AstridConfig, store: EventStoreApi, withKey: boolean) =>
  Effect.gen(function* () {
    const cryptoApi = yield* crypto
    const base = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, cryptoApi), Layer.succeed(Ids, { uuidv7 }))
    const log = yield* EventLog.pipe(Effect.provide(EventLogLive({ checkpointEvery: cfg.audit.checkpointEvery }).pipe(Layer.provide(base))))
    const keyRing = withKey ? yield* asCli(loadKeyRing(cfg.home)) : undefined
    return { log, keyRing }
  })

export const withKeyRing = <A, E, R>(effect: Effect.Effect<A, E, R>, keyRing: Parameters<typeof KeyRing.of>[0] | undefined) =>
  keyRing === undefined ? effect : Effect.provideService(effect, KeyRing, keyRing)
