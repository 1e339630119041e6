/**
 * Wiring of the security services for CLI commands: the interceptor with the settings of one workspace
 * (user config tightened by the workspace's), the token and budget services, over the configured store.
 */
import { Effect, Either, Layer } from "effect"
import { EventLog } from "../../application/eventLog.js"
import { Crypto } from "../../application/ports/crypto.js"
import { EventStore } from "../../application/ports/eventStore.js"
import { Ids } from "../../application/ports/ids.js"
import { KeyRing } from "../../application/ports/keyRing.js"
import { BudgetService, BudgetServiceLive } from "../../application/security/budgetService.js"
import { SecurityInterceptor, SecurityInterceptorLive } from "../../application/security/securityInterceptor.js"
import { TokenService, TokenServiceLive } from "../../application/security/tokenService.js"
import type { AstridConfig } from "../../infrastructure/config/astridConfig.js"
import { loadSecuritySettings } from "../../infrastructure/config/securityConfig.js"
import { uuidv7 } from "../../infrastructure/crypto/uuidv7.js"
import { loadKeyRing, localTrustedKeys, trustedKeyEntry } from "../../infrastructure/keys/keyFiles.js"
import { PathResolverLive } from "../../infrastructure/workspace/pathResolver.js"
import { asCli } from "./cliError.js"
import { crypto, eventLogFor, openStore } from "./runtime.js"

/** Trusted token issuers: those named in [security.tokens], else the local runtime keys. */
export const trustedIssuers = (cfg: AstridConfig, configured: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    if (configured.length === 0) return yield* asCli(localTrustedKeys(cfg.home))
    const map = new Map<string, string>()
    for (const key of configured) {
      const entry = yield* Effect.promise(() => trustedKeyEntry(key))
      if (entry !== undefined) map.set(entry[0], entry[1])
    }
    return map
  })

/** The interceptor and token service for `workspaceRoot`, and the store and log they write to (opened for writing). */
export const securityFor = (cfg: AstridConfig, workspaceRoot: string | null) =>
  Effect.gen(function* () {
    const loaded = yield* asCli(loadSecuritySettings(cfg.home, workspaceRoot))
    const store = yield* openStore(cfg, "write")
    const { log } = yield* eventLogFor(cfg, store, false)
    // Without a runtime key everything works except minting Allow Always tokens, which then fails closed.
    const keyRing = Either.getOrUndefined(yield* Effect.either(loadKeyRing(cfg.home)))
    const issuers = yield* trustedIssuers(cfg, loaded.trustedIssuerKeys)
    const cryptoApi = yield* crypto
    const base = Layer.mergeAll(
      Layer.succeed(EventLog, log),
      Layer.succeed(EventStore, store),
      Layer.succeed(Crypto, cryptoApi),
      Layer.succeed(Ids, { uuidv7 }),
      PathResolverLive,
      keyRing === undefined ? Layer.empty : Layer.succeed(KeyRing, keyRing)
    )
    const services = Layer.provideMerge(
      Layer.mergeAll(BudgetServiceLive, TokenServiceLive({ trustedIssuers: issuers, clockSkewMs: loaded.clockSkewMs })),
      base
    )
    const full = Layer.provideMerge(SecurityInterceptorLive(loaded.settings), services)
    const built = yield* Effect.all({ interceptor: SecurityInterceptor, tokens: TokenService, budget: BudgetService }).pipe(Effect.provide(full))
    return { ...built, store, log, settings: loaded.settings, crypto: cryptoApi }
  })
