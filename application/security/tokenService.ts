/**
 * TokenService: capability tokens as events on the principal's stream (`astrid-principal-<id>`):
 * minted (CapabilityTokenGranted), spent (CapabilityTokenUsed, single-use tokens only) and revoked
 * (CapabilityTokenRevoked). Because they are events, a new service over the same store, after a
 * restart or in another process, sees every token and every revocation.
 *
 * Only tokens signed by a configured issuer key are believed (the key is never taken from the token),
 * and each signature is verified once per service: verified tokens are remembered by content hash
 * (BLAKE3 of the canonical token, signature included), so a changed byte is a different token.
 */
import { Clock, Context, Data, Effect, HashMap, Layer, Option } from "effect"
import type { RecordedEvent } from "../../domain/envelope.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import type { Permission } from "../../domain/security/action.js"
import { commandLineResource } from "../../domain/security/commandGrant.js"
import {
  type CapabilityToken,
  checkToken,
  checkTokenStanding,
  DEFAULT_CLOCK_SKEW_MS,
  DEFAULT_TOKEN_TTL_MS,
  isPermission,
  MAX_TOKEN_TTL_MS,
  resourcePatternProblem,
  type TokenIdSet,
  type TokenInvalidReason,
  tokenCanonicalText,
  tokenCovers,
  tokenSigningText,
  type TokenStandingContext,
  type UnsignedCapabilityToken
} from "../../domain/security/capabilityToken.js"
import { principalStream, STREAM_PREFIX } from "../../domain/streams.js"
import { EventEncodingError, EventLog } from "../eventLog.js"
import { Crypto } from "../ports/crypto.js"
import { EventStore, type EventStoreError, WrongExpectedRevision } from "../ports/eventStore.js"
import { Ids } from "../ports/ids.js"
import { KeyRing } from "../ports/keyRing.js"
import { decodeRecorded, makeStreamStateCache } from "../streamState.js"

export interface TokenServiceConfig {
  /**
   * keyId -> hex ed25519 public key of every issuer whose tokens are accepted. Default: the KeyRing's
   * own key when one is provided, else none. Apps pass `localTrustedKeys(home)` (current and retired
   * runtime keys).
   */
  readonly trustedIssuers?: ReadonlyMap<string, string>
  /** Default DEFAULT_CLOCK_SKEW_MS (30 s); see domain/security/capabilityToken.ts. */
  readonly clockSkewMs?: number
}

export interface MintRequest {
  readonly principal: string
  /** A URI glob, e.g. file:///home/me/project/**, exec://cargo, mcp://fs:* */
  readonly resource: string
  readonly permissions: ReadonlyArray<Permission>
  /** Default one hour (DEFAULT_TOKEN_TTL_MS), at most MAX_TOKEN_TTL_MS. */
  readonly ttlMs?: number
  /** Default false. */
  readonly singleUse?: boolean
  /** The approval (e.g. an Allow Always answer) that created the token. */
  readonly approvalEventId: string
  /** The session the approval came from, recorded in the grant event's envelope. */
  readonly sessionId?: string
}

export interface CoveringQuery {
  readonly principal: string
  readonly resource: string
  readonly permission: Permission
  readonly nowMs: number
  /** The command line, when the action runs one: a token must cover every program in it (I9). */
  readonly command?: string
  /** Only a token for exactly `command` (`cmdline://…`) counts, never a program grant. */
  readonly exactLine?: boolean
}

/** A token that covers a query, with its content hash (the `tokenHash` of a TokenCovered proof). */
export interface CoveringToken {
  readonly token: CapabilityToken
  readonly hash: string
}

export interface TokenUse {
  readonly actionId: string
  readonly sessionId: string
}

export type TokenStatus = "active" | Exclude<TokenInvalidReason, "not_covering">

/** A token as the principal's stream tells it, with its standing now. */
export interface TokenRecord {
  readonly token: CapabilityToken
  readonly hash: string
  readonly status: TokenStatus
  /** Why it is not active; null when it is. */
  readonly detail: string | null
  readonly stream: string
  readonly grantedEventId: string
  readonly used: { readonly actionId: string; readonly sessionId: string; readonly eventId: string } | null
  readonly revoked: { readonly by: string; readonly reason: string | null; readonly eventId: string } | null
}

/** A mint request was refused before anything was signed or written. */
export class InvalidTokenRequest extends Data.TaggedError("InvalidTokenRequest")<{ readonly message: string }> {}

/** No key to sign with, or one that verifiers would not trust. */
export class TokenSigningUnavailable extends Data.TaggedError("TokenSigningUnavailable")<{ readonly message: string }> {}

export class TokenNotFound extends Data.TaggedError("TokenNotFound")<{ readonly tokenId: string }> {
  override get message(): string {
    return `no capability token ${this.tokenId} in the event store; 'astrid tokens list' shows the tokens there are`
  }
}

/** The token cannot be used (or revoked) as asked; `detail` says why. */
export class TokenRejected extends Data.TaggedError("TokenRejected")<{
  readonly tokenId: string
  /** `not_granted`: the token is not the one granted on its principal's stream. */
  readonly reason: TokenInvalidReason | "not_granted"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

export interface TokenServiceApi {
  /** Signs a token with the runtime key and appends CapabilityTokenGranted on the principal's stream. */
  readonly mint: (
    request: MintRequest
  ) => Effect.Effect<CapabilityToken, InvalidTokenRequest | TokenSigningUnavailable | EventStoreError | EventEncodingError | WrongExpectedRevision>
  /**
   * The first token on the principal's stream that authorizes `permission` on `resource` at `nowMs`.
   * Reusable tokens come before single-use ones (so those are not spent needlessly), older before newer.
   */
  readonly findCovering: (query: CoveringQuery) => Effect.Effect<Option.Option<CoveringToken>, EventStoreError>
  /**
   * Re-checks the token against its principal's stream and, for a single-use token, appends
   * CapabilityTokenUsed with the revision it checked: of two concurrent uses exactly one succeeds.
   */
  readonly use: (
    token: CoveringToken | CapabilityToken,
    use: TokenUse
  ) => Effect.Effect<void, TokenRejected | EventStoreError | EventEncodingError | WrongExpectedRevision>
  readonly revoke: (
    tokenId: string,
    by: string,
    reason?: string | null
  ) => Effect.Effect<TokenRecord, TokenNotFound | TokenRejected | EventStoreError | EventEncodingError | WrongExpectedRevision>
  /** Every token granted on the principal's stream, oldest first. */
  readonly list: (principal: string) => Effect.Effect<ReadonlyArray<TokenRecord>, EventStoreError>
  /** A token by id, whichever principal's stream holds it. */
  readonly get: (tokenId: string) => Effect.Effect<Option.Option<TokenRecord>, EventStoreError>
  /** BLAKE3 of the canonical token, signature included. */
  readonly hashOf: (token: CapabilityToken) => string
}

export class TokenService extends Context.Tag("astrid/TokenService")<TokenService, TokenServiceApi>() {}

interface Granted {
  readonly token: CapabilityToken
  readonly eventId: string
  readonly revision: number
}

interface PrincipalTokens {
  readonly granted: HashMap.HashMap<string, Granted>
  readonly used: HashMap.HashMap<string, { readonly actionId: string; readonly sessionId: string; readonly eventId: string }>
  readonly revoked: HashMap.HashMap<string, { readonly by: string; readonly reason: string | null; readonly eventId: string }>
}

const initialTokens: PrincipalTokens = { granted: HashMap.empty(), used: HashMap.empty(), revoked: HashMap.empty() }

// Persistent maps: the cached state is shared and must never be mutated, and copying a plain Map per
// event would make folding a long stream quadratic.
const evolveTokens = (state: PrincipalTokens, event: AstridEvent, recorded: RecordedEvent): PrincipalTokens => {
  switch (event._tag) {
    case "CapabilityTokenGranted":
      // The first grant of an id wins; a later event reusing the id cannot replace a token.
      if (HashMap.has(state.granted, event.token.tokenId)) return state
      return { ...state, granted: HashMap.set(state.granted, event.token.tokenId, { token: event.token, eventId: recorded.eventId, revision: recorded.revision }) }
    case "CapabilityTokenUsed":
      if (HashMap.has(state.used, event.tokenId)) return state
      return { ...state, used: HashMap.set(state.used, event.tokenId, { actionId: event.actionId, sessionId: event.sessionId, eventId: recorded.eventId }) }
    case "CapabilityTokenRevoked":
      if (HashMap.has(state.revoked, event.tokenId)) return state
      return { ...state, revoked: HashMap.set(state.revoked, event.tokenId, { by: event.revokedBy, reason: event.reason, eventId: recorded.eventId }) }
    default:
      return state
  }
}

const idsOf = (map: HashMap.HashMap<string, unknown>): TokenIdSet => ({ has: (id) => HashMap.has(map, id) })

const PRINCIPAL_PREFIX = `${STREAM_PREFIX}principal-`
const VERIFIED_CACHE_MAX = 10_000
const MAX_CONFLICT_RETRIES = 100
const INDEX_PAGE = 1000

/** The principal's stream name, or undefined for an id no stream can have (so it holds no tokens). */
const streamOf = (principal: string): string | undefined => {
  try {
    return principalStream(principal)
  } catch {
    return undefined
  }
}

const retryConflicts = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.retry(effect, { times: MAX_CONFLICT_RETRIES, while: (e) => e instanceof WrongExpectedRevision })

export const makeTokenService = (config: TokenServiceConfig = {}) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const store = yield* EventStore
    const crypto = yield* Crypto
    const ids = yield* Ids
    const keyRing = Option.getOrUndefined(yield* Effect.serviceOption(KeyRing))
    const trusted: ReadonlyMap<string, string> =
      config.trustedIssuers ?? (keyRing === undefined ? new Map() : new Map([[keyRing.keyId, keyRing.publicKeyHex]]))
    const clockSkewMs = config.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS
    const streams = makeStreamStateCache<PrincipalTokens>(store, {
      initial: initialTokens,
      evolve: evolveTokens,
      types: new Set(["CapabilityTokenGranted", "CapabilityTokenUsed", "CapabilityTokenRevoked"])
    })

    // Tokens in the folded state are the same objects from check to check, so their hash is kept with them.
    const hashes = new WeakMap<CapabilityToken, string>()
    const hashOf = (token: CapabilityToken): string => {
      let hash = hashes.get(token)
      if (hash === undefined) {
        hash = crypto.blake3Hex(tokenCanonicalText(token))
        hashes.set(token, hash)
      }
      return hash
    }

    // Only successes are remembered: a forged token costs a verification each time, but cannot grow memory.
    const verified = new Set<string>()
    const verifySignature = (token: CapabilityToken): boolean => {
      const publicKey = trusted.get(token.issuer)
      if (publicKey === undefined) return false
      const hash = hashOf(token)
      if (verified.has(hash)) return true
      const ok = crypto.verifyText(token.signature, tokenSigningText(token), publicKey)
      if (ok) {
        if (verified.size >= VERIFIED_CACHE_MAX) {
          const oldest = verified.values().next()
          if (oldest.done !== true) verified.delete(oldest.value)
        }
        verified.add(hash)
      }
      return ok
    }

    const standingContext = (state: PrincipalTokens, nowMs: number): TokenStandingContext => ({
      nowMs,
      clockSkewMs,
      trustedIssuers: trusted,
      revoked: idsOf(state.revoked),
      used: idsOf(state.used),
      verifySignature
    })

    const recordOf = (stream: string, owner: string, state: PrincipalTokens, granted: Granted, nowMs: number): TokenRecord => {
      const { token } = granted
      const standing = checkTokenStanding(token, standingContext(state, nowMs))
      let status: TokenStatus = "active"
      let detail: string | null = null
      if (standing._tag === "Invalid") {
        status = standing.reason === "not_covering" ? "malformed" : standing.reason
        detail = standing.detail
      } else if (token.principal !== owner) {
        status = "foreign_principal"
        detail = `token ${token.tokenId} names principal '${token.principal}' but sits on ${stream}`
      }
      return {
        token,
        hash: hashOf(token),
        status,
        detail,
        stream,
        grantedEventId: granted.eventId,
        used: Option.getOrNull(HashMap.get(state.used, token.tokenId)),
        revoked: Option.getOrNull(HashMap.get(state.revoked, token.tokenId))
      }
    }

    const mint: TokenServiceApi["mint"] = (request) =>
      Effect.gen(function* () {
        const invalid = (message: string) => Effect.fail(new InvalidTokenRequest({ message: `cannot mint a token: ${message}` }))
        const stream = streamOf(request.principal)
        if (stream === undefined) return yield* invalid(`'${request.principal}' is not a valid principal id (letters, digits and . _ : @ -)`)
        const patternProblem = resourcePatternProblem(request.resource)
        if (patternProblem !== undefined) {
          return yield* invalid(`resource pattern '${request.resource}' ${patternProblem}; use an absolute URI glob such as file:///home/me/project/**`)
        }
        const permissions = [...new Set(request.permissions)]
        if (permissions.length === 0) return yield* invalid("no permission given; name at least one (read, write, execute, ...)")
        const unknown = permissions.find((p) => !isPermission(p))
        if (unknown !== undefined) return yield* invalid(`'${unknown}' is not a permission`)
        const ttlMs = request.ttlMs ?? DEFAULT_TOKEN_TTL_MS
        if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
          return yield* invalid(`ttlMs ${String(ttlMs)} must be a whole number of milliseconds from 1 to ${MAX_TOKEN_TTL_MS} (366 days)`)
        }
        if (request.approvalEventId === "") return yield* invalid("it must name the approval event that created it")
        const signer = Option.getOrUndefined(yield* Effect.serviceOption(KeyRing)) ?? keyRing
        if (signer === undefined) {
          return yield* Effect.fail(new TokenSigningUnavailable({ message: "cannot mint a token: no runtime signing key; run 'astrid keys generate'" }))
        }
        if (trusted.get(signer.keyId) !== signer.publicKeyHex) {
          return yield* Effect.fail(
            new TokenSigningUnavailable({
              message: `cannot mint a token: the runtime key ${signer.keyId} is not a trusted token issuer here, so its tokens would be refused; add it to the trusted issuers`
            })
          )
        }
        const now = yield* Clock.currentTimeMillis
        const unsigned: UnsignedCapabilityToken = {
          tokenId: ids.uuidv7(now),
          principal: request.principal,
          resource: request.resource,
          permissions,
          issuedAt: new Date(now).toISOString(),
          expiresAt: new Date(now + ttlMs).toISOString(),
          singleUse: request.singleUse ?? false,
          approvalEventId: request.approvalEventId,
          issuer: signer.keyId
        }
        const token: CapabilityToken = { ...unsigned, signature: signer.signText(tokenSigningText(unsigned)) }
        yield* log.append(stream, "any", [
          {
            event: { _tag: "CapabilityTokenGranted", token },
            principal: request.principal,
            causationId: request.approvalEventId,
            ...(request.sessionId === undefined ? {} : { sessionId: request.sessionId })
          }
        ])
        return token
      })

    const findCovering: TokenServiceApi["findCovering"] = (query) =>
      Effect.gen(function* () {
        const stream = streamOf(query.principal)
        if (stream === undefined) return Option.none()
        const { state } = yield* streams.load(stream)
        // Cheap filters first; the full check (signature included) runs only on what could cover.
        const candidates = [...HashMap.values(state.granted)]
          .filter(
            (g) =>
              g.token.principal === query.principal &&
              !HashMap.has(state.revoked, g.token.tokenId) &&
              !(g.token.singleUse && HashMap.has(state.used, g.token.tokenId)) &&
              tokenCovers(g.token, query.resource, query.permission, query.command) &&
              (query.exactLine !== true || (query.command !== undefined && g.token.resource === commandLineResource(query.command)))
          )
          .sort((a, b) => Number(a.token.singleUse) - Number(b.token.singleUse) || a.revision - b.revision)
        const ctx = {
          ...standingContext(state, query.nowMs),
          principal: query.principal,
          resource: query.resource,
          permission: query.permission,
          ...(query.command === undefined ? {} : { command: query.command })
        }
        for (const candidate of candidates) {
          if (checkToken(candidate.token, ctx)._tag === "Valid") return Option.some({ token: candidate.token, hash: hashOf(candidate.token) })
        }
        return Option.none()
      })

    const use: TokenServiceApi["use"] = (given, usage) => {
      const token = "signature" in given ? given : given.token
      const reject = (reason: TokenRejected["reason"], detail: string) => Effect.fail(new TokenRejected({ tokenId: token.tokenId, reason, detail }))
      const attempt = Effect.gen(function* () {
        const stream = streamOf(token.principal)
        if (stream === undefined) return yield* reject("not_granted", `token ${token.tokenId} names principal '${token.principal}', which has no token stream`)
        const loaded = yield* streams.load(stream)
        const granted = Option.getOrUndefined(HashMap.get(loaded.state.granted, token.tokenId))
        // The token must be the very one granted, not a look-alike with the same id.
        if (granted === undefined || hashOf(granted.token) !== hashOf(token)) {
          return yield* reject("not_granted", `token ${token.tokenId} was not granted on ${stream}; only minted tokens can be used`)
        }
        const now = yield* Clock.currentTimeMillis
        const standing = checkTokenStanding(token, standingContext(loaded.state, now))
        if (standing._tag === "Invalid") return yield* reject(standing.reason, standing.detail)
        if (!token.singleUse) return
        // Appended at the revision that was checked: a concurrent use, or a revocation, makes this fail,
        // and the retry reloads and sees it.
        yield* log.append(stream, loaded.revision ?? "no_stream", [
          {
            event: { _tag: "CapabilityTokenUsed", tokenId: token.tokenId, actionId: usage.actionId, sessionId: usage.sessionId },
            principal: token.principal,
            sessionId: usage.sessionId,
            correlationId: usage.actionId
          }
        ])
      })
      return retryConflicts(attempt)
    }

    // tokenId -> principal stream, built from the principal streams' grants as they come, so a token can be
    // found by id alone (revoke, show) without reading every stream each time.
    const index = new Map<string, string>()
    let indexedUpTo = 0
    const indexLock = yield* Effect.makeSemaphore(1)
    const refreshIndex = indexLock.withPermits(1)(
      Effect.gen(function* () {
        for (;;) {
          const page = yield* store.readAll({ after: indexedUpTo, maxCount: INDEX_PAGE, streamPrefix: PRINCIPAL_PREFIX })
          for (const recorded of page) {
            indexedUpTo = recorded.position
            if (recorded.type !== "CapabilityTokenGranted") continue
            const event = decodeRecorded(recorded)
            if (event?._tag === "CapabilityTokenGranted" && !index.has(event.token.tokenId)) index.set(event.token.tokenId, recorded.stream)
          }
          if (page.length < INDEX_PAGE) return
        }
      })
    )

    const locate = (tokenId: string) =>
      Effect.gen(function* () {
        if (!index.has(tokenId)) yield* refreshIndex
        const stream = index.get(tokenId)
        if (stream === undefined) return undefined
        const loaded = yield* streams.load(stream)
        const granted = Option.getOrUndefined(HashMap.get(loaded.state.granted, tokenId))
        return granted === undefined ? undefined : { stream, owner: stream.slice(PRINCIPAL_PREFIX.length), loaded, granted }
      })

    const get: TokenServiceApi["get"] = (tokenId) =>
      Effect.gen(function* () {
        const found = yield* locate(tokenId)
        if (found === undefined) return Option.none()
        const now = yield* Clock.currentTimeMillis
        return Option.some(recordOf(found.stream, found.owner, found.loaded.state, found.granted, now))
      })

    const revoke: TokenServiceApi["revoke"] = (tokenId, by, reason = null) =>
      retryConflicts(
        Effect.gen(function* () {
          const found = yield* locate(tokenId)
          if (found === undefined) return yield* Effect.fail(new TokenNotFound({ tokenId }))
          const { stream, owner, loaded } = found
          const already = Option.getOrUndefined(HashMap.get(loaded.state.revoked, tokenId))
          if (already !== undefined) {
            return yield* Effect.fail(
              new TokenRejected({ tokenId, reason: "revoked", detail: `token ${tokenId} is already revoked (by ${already.by}); nothing to do` })
            )
          }
          // At the loaded revision, so that two revocations racing leave exactly one event.
          yield* log.append(stream, loaded.revision ?? "no_stream", [
            { event: { _tag: "CapabilityTokenRevoked", tokenId, revokedBy: by, reason }, principal: owner }
          ])
          const after = yield* streams.load(stream)
          const granted = Option.getOrElse(HashMap.get(after.state.granted, tokenId), () => found.granted)
          const now = yield* Clock.currentTimeMillis
          return recordOf(stream, owner, after.state, granted, now)
        })
      )

    const list: TokenServiceApi["list"] = (principal) =>
      Effect.gen(function* () {
        const stream = streamOf(principal)
        if (stream === undefined) return []
        const { state } = yield* streams.load(stream)
        const now = yield* Clock.currentTimeMillis
        return [...HashMap.values(state.granted)].sort((a, b) => a.revision - b.revision).map((g) => recordOf(stream, principal, state, g, now))
      })

    return { mint, findCovering, use, revoke, list, get, hashOf } satisfies TokenServiceApi
  })

/** Needs EventLog, EventStore, Crypto and Ids; a KeyRing, when provided, signs minted tokens. */
export const TokenServiceLive = (config: TokenServiceConfig = {}) => Layer.effect(TokenService, makeTokenService(config))
