/** `astrid tokens list|show|revoke`: the capability tokens recorded on the principals' streams. */
import { Effect, Either, Layer, Option } from "effect"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventLog } from "../../../application/eventLog.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { Ids } from "../../../application/ports/ids.js"
import { makeTokenService, type TokenRecord } from "../../../application/security/tokenService.js"
import type { AstridConfig } from "../../../infrastructure/config/astridConfig.js"
import { uuidv7 } from "../../../infrastructure/crypto/uuidv7.js"
import type { OpenMode } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { loadKeyRing, localTrustedKeys } from "../../../infrastructure/keys/keyFiles.js"
import { asCli, usageError } from "../cliError.js"
import { currentPrincipal } from "../principal.js"
import { dim, green, printJson, printLines, red, table } from "../output.js"
import { config, crypto, eventLogFor, openStore, storeExists, withKeyRing } from "../runtime.js"

export { currentPrincipal }

/** A TokenService over the configured store, trusting the local runtime keys (current and retired). */
const tokenService = (cfg: AstridConfig, mode: OpenMode) =>
  Effect.gen(function* () {
    const store = yield* openStore(cfg, mode)
    const trustedIssuers = yield* asCli(localTrustedKeys(cfg.home))
    const { log } = yield* eventLogFor(cfg, store, false)
    const cryptoApi = yield* crypto
    const deps = Layer.mergeAll(Layer.succeed(EventLog, log), Layer.succeed(EventStore, store), Layer.succeed(Crypto, cryptoApi), Layer.succeed(Ids, { uuidv7 }))
    return yield* makeTokenService({ trustedIssuers }).pipe(Effect.provide(deps))
  })

const recordJson = (r: TokenRecord) => ({
  ...r.token,
  status: r.status,
  detail: r.detail,
  hash: r.hash,
  stream: r.stream,
  grantedEventId: r.grantedEventId,
  used: r.used,
  revoked: r.revoked
})

const statusText = (r: TokenRecord): string => (r.status === "active" ? green("active") : red(r.status.replace(/_/g, " ")))

const useText = (r: TokenRecord): string => (r.token.singleUse ? (r.used === null ? "single-use" : "single-use, used") : "reusable")

export const list = (args: { readonly principal?: string | undefined; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const principal = args.principal ?? currentPrincipal()
      const cfg = yield* config
      // No store yet means no token yet, not an error.
      const records = storeExists(cfg) ? yield* asCli((yield* tokenService(cfg, "read")).list(principal)) : []
      if (args.json) return yield* printJson(records.map(recordJson))
      if (records.length === 0) return yield* printLines(`no capability tokens for principal '${principal}'`)
      yield* printLines(
        ...table(
          ["TOKEN", "STATUS", "PERMISSIONS", "RESOURCE", "EXPIRES", "USE"],
          records.map((r) => [r.token.tokenId, statusText(r), r.token.permissions.join(","), r.token.resource, r.token.expiresAt, useText(r)])
        ),
        dim(`principal '${principal}'; 'astrid tokens show ID' for details, 'astrid tokens revoke ID' to revoke`)
      )
    })
  )

const notFound = (tokenId: string, where: string) =>
  usageError(`no capability token ${tokenId} in ${where}; 'astrid tokens list' shows the tokens there are`)

const detailLines = (r: TokenRecord): Array<string> => [
  `token         ${r.token.tokenId}`,
  `status        ${statusText(r)}${r.detail === null ? "" : ` (${r.detail})`}`,
  `principal     ${r.token.principal}`,
  `resource      ${r.token.resource}`,
  `permissions   ${r.token.permissions.join(", ")}`,
  `issued        ${r.token.issuedAt}`,
  `expires       ${r.token.expiresAt}`,
  `use           ${useText(r)}${r.used === null ? "" : ` by action ${r.used.actionId} in session ${r.used.sessionId}`}`,
  `approval      ${r.token.approvalEventId}`,
  `issuer        ${r.token.issuer}`,
  `hash          ${r.hash}`,
  `granted by    ${r.stream} event ${r.grantedEventId}`,
  ...(r.revoked === null ? [] : [`revoked by    ${r.revoked.by}${r.revoked.reason === null ? "" : `: ${r.revoked.reason}`} (event ${r.revoked.eventId})`])
]

export const show = (args: { readonly tokenId: string; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      if (!storeExists(cfg)) return yield* Effect.fail(notFound(args.tokenId, cfg.eventStore.path))
      const found = yield* asCli((yield* tokenService(cfg, "read")).get(args.tokenId))
      // Another principal's token is reported exactly like a missing one (I7).
      if (Option.isNone(found) || found.value.token.principal !== currentPrincipal()) return yield* Effect.fail(notFound(args.tokenId, cfg.eventStore.path))
      if (args.json) return yield* printJson(recordJson(found.value))
      yield* printLines(...detailLines(found.value))
    })
  )

export const revoke = (args: { readonly tokenId: string; readonly reason?: string | undefined; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      if (!storeExists(cfg)) return yield* Effect.fail(notFound(args.tokenId, cfg.eventStore.path))
      const service = yield* tokenService(cfg, "write")
      const existing = yield* asCli(service.get(args.tokenId))
      if (Option.isNone(existing) || existing.value.token.principal !== currentPrincipal()) return yield* Effect.fail(notFound(args.tokenId, cfg.eventStore.path))
      // The key only signs an automatic checkpoint the revocation may trigger; revoking works without one.
      const keyRing = Either.getOrUndefined(yield* Effect.either(loadKeyRing(cfg.home)))
      const by = currentPrincipal()
      const record = yield* asCli(withKeyRing(service.revoke(args.tokenId, by, args.reason ?? null), keyRing))
      if (args.json) return yield* printJson(recordJson(record))
      yield* printLines(
        `revoked token ${record.token.tokenId} of principal '${record.token.principal}' (${record.token.permissions.join(",")} on ${record.token.resource})`,
        dim(`recorded on ${record.stream} by '${by}'; it authorizes nothing from now on`)
      )
    })
  )
