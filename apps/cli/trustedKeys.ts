/** --trusted-key: a hex ed25519 public key or a file holding one; none given means the local runtime keys. */
import { Effect } from "effect"
import { existsSync, readFileSync, statSync } from "node:fs"
import { localTrustedKeys, trustedKeyEntry } from "../../infrastructure/keys/keyFiles.js"
import { asCli, usageError } from "./cliError.js"

export const resolveTrustedKeys = (home: string, given: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    if (given.length === 0) return yield* asCli(localTrustedKeys(home))
    const trusted = new Map<string, string>()
    for (const item of given) {
      let text = item
      if (!/^[0-9a-fA-F]{64}$/.test(item.trim())) {
        if (!existsSync(item) || !statSync(item).isFile()) {
          return yield* Effect.fail(usageError(`--trusted-key '${item}' is neither a 64-hex-digit ed25519 public key nor a file holding one`))
        }
        text = yield* Effect.try({ try: () => readFileSync(item, "utf8"), catch: () => usageError(`cannot read the key file ${item}`) })
      }
      const entry = yield* Effect.promise(() => trustedKeyEntry(text))
      if (entry === undefined) return yield* Effect.fail(usageError(`--trusted-key '${item}' does not hold a 32-byte ed25519 public key in hex`))
      trusted.set(entry[0], entry[1])
    }
    return trusted
  })
