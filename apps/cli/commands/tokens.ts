/**
 * `astrid tokens list|show|revoke`: the current principal's capability tokens. Another principal's tokens
 * are refused, never shown or revoked (I7), and text output prints what came from outside (a resource
 * names whatever command or path an approval was for) with its control characters made visible.
 */
import { commandOfResource } from "../../../domain/security/commandGrant.js"
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
import { printable } from "../printable.js"
import { config, crypto, eventLogFor, openStore, storeExists, withKeyRing } from "../runtime.js"

/** A line grant reads as the command line it names; any other resource as it is. */
const shownResource = (resource: string): string => {
  const command = commandOfResource(resource)
  return command === undefined ? resource : `the command line ${JSON.stringify(command)}`
}

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

const notYours = (principal: string, you: string) =>
  usageError(
    `the capability tokens of principal '${printable(principal)}' are not yours to list: you are '${printable(you)}', and a principal lists only its own; drop --principal to list yours, or run the command as '${printable(principal)}'`
  )

export const list = (args: { readonly principal?: string | undefined; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const principal = currentPrincipal()
      if (args.principal !== undefined && args.principal !== principal) return yield* Effect.fail(notYours(args.principal, principal))
      const cfg = yield* config
      // No store yet means no token yet, not an error.
      const records = storeExists(cfg) ? yield* asCli((yield* tokenService(cfg, "read")).list(principal)) : []
      if (args.json) return yield* printJson(records.map(recordJson))
      if (records.length === 0) return yield* printLines(`no capability tokens for principal '${printable(principal)}'`)
      yield* printLines(
        ...table(
          ["TOKEN", "STATUS", "PERMISSIONS", "RESOURCE", "EXPIRES", "USE"],
          records.map((r) => [printable(r.token.tokenId), statusText(r), printable(r.token.permissions.join(",")), printable(shownResource(r.token.resource)), printable(r.token.expiresAt), useText(r)])
        ),
        dim(`principal '${printable(principal)}'; 'astrid tokens show ID' for details, 'astrid tokens revoke ID' to revoke`)
      )
    })
  )

const notFound = (tokenId: string, where: string) =>
  usageError(`no capability token ${printable(tokenId)} in ${where}; 'astrid tokens list' shows the tokens there are`)

const notYourToken = (tokenId: string, you: string) =>
  usageError(`capability token ${printable(tokenId)} belongs to another principal; you ('${printable(you)}') can see and revoke only your own: 'astrid tokens list' shows them`)

/** The token `tokenId` if it is the current principal's; a missing one and another's are told apart, neither shown. */
const ownToken = (found: Option.Option<TokenRecord>, tokenId: string, where: string) => {
  if (Option.isNone(found)) return Effect.fail(notFound(tokenId, where))
  const you = currentPrincipal()
  return found.value.token.principal === you ? Effect.succeed(found.value) : Effect.fail(notYourToken(tokenId, you))
}

const detailLines = (r: TokenRecord): Array<string> =>
  [
    `token         ${r.token.tokenId}`,
    `status        ${statusText(r)}${r.detail === null ? "" : ` (${r.detail})`}`,
    `principal     ${r.token.principal}`,
    `resource      ${shownResource(r.token.resource)}`,
    `permissions   ${r.token.permissions.join(", ")}`,
    `issued        ${r.token.issuedAt}`,
    `expires       ${r.token.expiresAt}`,
    `use           ${useText(r)}${r.used === null ? "" : ` by action ${r.used.actionId} in session ${r.used.sessionId}`}`,
    `approval      ${r.token.approvalEventId}`,
    `issuer        ${r.token.issuer}`,
    `hash          ${r.hash}`,
    `granted by    ${r.stream} event ${r.grantedEventId}`,
    ...(r.revoked === null ? [] : [`revoked by    ${r.revoked.by}${r.revoked.reason === null ? "" : `: ${r.revoked.reason}`} (event ${r.revoked.eventId})`])
  ].map(printable)

export const show = (args: { readonly tokenId: string; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      if (!storeExists(cfg)) return yield* Effect.fail(notFound(args.tokenId, cfg.eventStore.path))
      const found = yield* ownToken(yield* asCli((yield* tokenService(cfg, "read")).get(args.tokenId)), args.tokenId, cfg.eventStore.path)
      if (args.json) return yield* printJson(recordJson(found))
      yield* printLines(...detailLines(found))
    })
  )

export const revoke = (args: { readonly tokenId: string; readonly reason?: string | undefined; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      if (!storeExists(cfg)) return yield* Effect.fail(notFound(args.tokenId, cfg.eventStore.path))
      const service = yield* tokenService(cfg, "write")
      yield* ownToken(yield* asCli(service.get(args.tokenId)), args.tokenId, cfg.eventStore.path)
      // The key only signs an automatic checkpoint the revocation may trigger; revoking works without one.
      const keyRing = Either.getOrUndefined(yield* Effect.either(loadKeyRing(cfg.home)))
      const by = currentPrincipal()
      const record = yield* asCli(withKeyRing(service.revoke(args.tokenId, by, args.reason ?? null), keyRing))
      if (args.json) return yield* printJson(recordJson(record))
      yield* printLines(
        printable(`revoked token ${record.token.tokenId} of principal '${record.token.principal}' (${record.token.permissions.join(",")} on ${shownResource(record.token.resource)})`),
        dim(printable(`recorded on ${record.stream} by '${by}'; it authorizes nothing from now on`))
      )
    })
  )
