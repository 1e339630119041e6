/** `astrid keys generate|show`: the runtime's ed25519 signing key. */
import { Clock, Effect, Either } from "effect"
import { keysStream } from "../../../domain/streams.js"
import { generateKey, loadPublicKey, localTrustedKeys, secretKeyPath } from "../../../infrastructure/keys/keyFiles.js"
import { RUNTIME_PRINCIPAL } from "../../../application/audit/checkpointer.js"
import { asCli, CliError } from "../cliError.js"
import { printJson, printLines } from "../output.js"
import { config, eventLogFor, openStore } from "../runtime.js"


export const generate = (args: { readonly force: boolean; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      // Open the store first: if it cannot record the new key, no key is written either.
      const store = yield* openStore(cfg, "write")
      const now = yield* Clock.currentTimeMillis
      const key = yield* asCli(generateKey(cfg.home, args.force, now))
      const { log } = yield* eventLogFor(cfg, store, false)
      yield* asCli(
        log.append(keysStream, "any", [
          {
            event: { _tag: "RuntimeKeyGenerated", keyId: key.keyId, algorithm: "ed25519", publicKey: key.publicKey, replaces: key.replaced },
            principal: RUNTIME_PRINCIPAL
          }
        ])
      )
      if (args.json) {
        return yield* printJson({ keyId: key.keyId, publicKey: key.publicKey, path: key.path, replaced: key.replaced })
      }
      yield* printLines(
        `generated runtime key ${key.keyId}`,
        `  public key  ${key.publicKey}`,
        `  secret key  ${key.path} (mode 0600)`,
        ...(key.replaced === null ? [] : [`  replaces    ${key.replaced} (kept as a trusted public key for old checkpoints)`])
      )
    })
  )

export const show = (args: { readonly json: boolean }) =>
  Effect.gen(function* () {
    const cfg = yield* config
    const current = yield* Effect.either(loadPublicKey(cfg.home))
    if (Either.isLeft(current)) return yield* Effect.fail(new CliError({ message: current.left.message, exitCode: 2 }))
    const trusted = yield* asCli(localTrustedKeys(cfg.home))
    const retired = [...trusted].filter(([id]) => id !== current.right.keyId).map(([keyId, publicKey]) => ({ keyId, publicKey }))
    if (args.json) {
      return yield* printJson({ keyId: current.right.keyId, publicKey: current.right.publicKey, path: secretKeyPath(cfg.home), retired })
    }
    yield* printLines(
      `key id      ${current.right.keyId}`,
      `public key  ${current.right.publicKey}`,
      `secret key  ${secretKeyPath(cfg.home)}`,
      ...retired.map((r) => `retired     ${r.keyId} ${r.publicKey}`)
    )
  })
