/** Test helper: writes real chained events (and checkpoints) into a SQLite store under a temp ASTRID_HOME. */
import { Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLog, type EventDraft, EventLogLive } from "../application/eventLog.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore } from "../application/ports/eventStore.js"
import { KeyRing } from "../application/ports/keyRing.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, loadKeyRing } from "../infrastructure/keys/keyFiles.js"

export const tempHome = (): string => mkdtempSync(join(tmpdir(), "astrid-test-"))

export const toolResult = (actionId: string, output = "ok"): EventDraft => ({
  principal: "alice",
  sessionId: "s1",
  classification: "untrusted",
  event: { _tag: "ToolResultRecorded", actionId, tool: "read_file", ok: true, output, truncated: false, durationMs: 1 }
})

/**
 * Generates a runtime key in `home` (unless `withKey` is false) and appends `perStream` events to each
 * of `streams`, then signs a checkpoint when asked.
 */
export const seedStore = (
  home: string,
  options: { streams: ReadonlyArray<string>; perStream: number; checkpoint?: boolean; withKey?: boolean }
): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        if (options.withKey !== false) yield* Effect.orDie(generateKey(home, false, Date.now()))
        const crypto = yield* Effect.promise(makeCrypto)
        const store = yield* Effect.acquireRelease(Effect.orDie(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "write" })), (s) =>
          Effect.sync(() => s.close())
        )
        const layer = EventLogLive({ checkpointEvery: 0 }).pipe(
          Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive))
        )
        const log = yield* EventLog.pipe(Effect.provide(layer))
        for (const stream of options.streams) {
          const drafts = Array.from({ length: options.perStream }, (_, i) => toolResult(`${stream}-${i}`))
          yield* Effect.orDie(log.append(stream, "any", drafts))
        }
        if (options.checkpoint === true) {
          const keyRing = yield* Effect.orDie(loadKeyRing(home))
          yield* Effect.orDie(log.checkpoint.pipe(Effect.provideService(KeyRing, keyRing)))
        }
      })
    )
  )
