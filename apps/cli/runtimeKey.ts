/**
 * The runtime signing key, created on first use by commands that need it (a chat's Allow Always answer
 * mints a signed token; checkpoints are signed). The key and its RuntimeKeyGenerated event are written
 * together, the event first, as `astrid keys generate` does.
 */
import { Clock, Effect } from "effect"
import { existsSync } from "node:fs"
import { RUNTIME_PRINCIPAL } from "../../application/audit/checkpointer.js"
import { keysStream } from "../../domain/streams.js"
import type { AstridConfig } from "../../infrastructure/config/astridConfig.js"
import { generateKey, secretKeyPath } from "../../infrastructure/keys/keyFiles.js"
import { asCli } from "./cliError.js"
import { eventLogFor, openStore } from "./runtime.js"

/** Creates the key when there is none; returns its id when it did, null when one existed. */
export const ensureRuntimeKey = (cfg: AstridConfig) =>
  Effect.scoped(
    Effect.gen(function* () {
      if (existsSync(secretKeyPath(cfg.home))) return null
      const store = yield* openStore(cfg, "write")
      const now = yield* Clock.currentTimeMillis
      const key = yield* asCli(generateKey(cfg.home, false, now))
      const { log } = yield* eventLogFor(cfg, store, false)
      yield* asCli(
        log.append(keysStream, "any", [
          { event: { _tag: "RuntimeKeyGenerated", keyId: key.keyId, algorithm: "ed25519", publicKey: key.publicKey, replaces: key.replaced }, principal: RUNTIME_PRINCIPAL }
        ])
      )
      return key.keyId
    })
  )
