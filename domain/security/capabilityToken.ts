/**
 * Capability tokens: a signed, expiring grant of some permissions on the resources matching one URI
 * glob, bound to one principal, optionally good for a single use (I5).
 *
 * Signature: ed25519 over the UTF-8 bytes of `tokenSigningText(token)` =
 *   "astrid/token/v1\n" || JCS(every field except `signature`)
 * so an outside verifier can recompute the signed bytes from the stored event alone.
 *
 * Resource patterns are URI globs: `file:///home/me/project/**`, `exec://cargo`, `mcp://fs:*`.
 *   `*`  matches any run of characters except `/` (stays inside one path segment)
 *   `**` matches any run of characters, `/` included; so `dir/**` covers everything below `dir`,
 *        but not `dir` itself
 * Everything else matches itself, case-sensitively (no `?`, no classes, no escapes). A pattern needs a
 * scheme, `file:` patterns need an absolute path (`file:///...`), and no pattern may hold a `.` or `..`
 * segment (also percent-encoded) or a backslash: a token for a folder must never reach outside it.
 *
 * Clock-skew tolerance: a token is accepted from `issuedAt - skew` until (excluding) `expiresAt + skew`,
 * skew = 30 s by default (`DEFAULT_CLOCK_SKEW_MS`). The issuer and the checker may be different
 * processes or machines sharing one event store, and their clocks drift; 30 s absorbs ordinary NTP
 * drift while adding at most 30 s to a token's life.
 */
import { Data, Either } from "effect"
import { canonicalize } from "../canonicalJson.js"
import { CapabilityToken } from "../events/tokenEvents.js"
import type { Permission } from "./action.js"
import { grantCovers } from "./commandGrant.js"

export { CapabilityToken }

export type UnsignedCapabilityToken = Omit<CapabilityToken, "signature">

export const TOKEN_SIGNATURE_TAG = "astrid/token/v1\n"
export const DEFAULT_CLOCK_SKEW_MS = 30_000
/** Allow Always mints tokens for one hour unless told otherwise. */
export const DEFAULT_TOKEN_TTL_MS = 60 * 60 * 1000
/** A longer-lived grant should be a policy rule, not a token. */
export const MAX_TOKEN_TTL_MS = 366 * 24 * 60 * 60 * 1000
const MAX_PATTERN_LENGTH = 2048

// Rebuilt from the known fields, so that nothing but them (not the signature, not a stray extra
// property) can ever enter the signed bytes.
const tokenSigningFields = (token: UnsignedCapabilityToken) => {
  const { tokenId, principal, resource, permissions, issuedAt, expiresAt, singleUse, approvalEventId, issuer } = token
  return { tokenId, principal, resource, permissions: [...permissions], issuedAt, expiresAt, singleUse, approvalEventId, issuer }
}

/** The text whose UTF-8 bytes a token's signature covers. A `signature` field, if present, is left out. */
export const tokenSigningText = (token: UnsignedCapabilityToken): string => TOKEN_SIGNATURE_TAG + canonicalize(tokenSigningFields(token))

/** The canonical text of the whole token, signature included: what its content hash is taken over. */
export const tokenCanonicalText = (token: CapabilityToken): string =>
  canonicalize({ ...tokenSigningFields(token), signature: token.signature })

// A Record over the Permission union: the compiler complains here when a permission is added to or
// removed from action.ts, so tokens never silently accept or drop one.
const PERMISSIONS: Readonly<Record<Permission, true>> = {
  read: true,
  write: true,
  delete: true,
  execute: true,
  connect: true,
  transmit: true,
  invoke: true,
  transact: true,
  admin: true,
  grant: true,
  spawn: true
}

export const isPermission = (value: string): value is Permission => Object.prototype.hasOwnProperty.call(PERMISSIONS, value)

/** A resource pattern was refused; `reason` says which rule it broke. */
export class InvalidResourcePattern extends Data.TaggedError("InvalidResourcePattern")<{
  readonly pattern: string
  readonly reason: string
}> {
  override get message(): string {
    return `resource pattern '${this.pattern}' ${this.reason}; write an absolute URI glob such as file:///home/me/project/**, exec://cargo or mcp://fs:*`
  }
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/s
// C0 controls, DEL and the C1 range: invisible in a prompt, so an approver could not see them.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** `.` and `..`, also written with percent-encoded dots (%2e), which a server might decode later. */
const isDotSegment = (segment: string): boolean => {
  const decoded = segment.replace(/%2e/gi, ".")
  return decoded === "." || decoded === ".."
}

/**
 * Why `uri` is not an acceptable absolute resource URI, or undefined when it is. Shared by patterns and
 * by the resources checked against them: a resource with a `..` segment could match a pattern textually
 * while naming something outside it.
 */
const uriProblem = (uri: string): string | undefined => {
  if (uri.trim() === "") return "is empty"
  if (uri.length > MAX_PATTERN_LENGTH) return `is longer than ${MAX_PATTERN_LENGTH} characters`
  if (CONTROL.test(uri)) return "holds a control character"
  if (uri.includes("\\")) return "holds a backslash (a path separator on some systems)"
  const m = SCHEME.exec(uri)
  if (m === null) return "has no scheme (relative paths and bare names are not accepted)"
  const scheme = m[1] ?? ""
  const rest = m[2] ?? ""
  if (rest === "") return `names nothing after ${scheme}://`
  if (scheme === "file") {
    if (!rest.startsWith("/")) return "is not an absolute file URI (file:/// followed by an absolute path)"
    const segments = rest.slice(1).split("/")
    // A trailing slash is fine (a folder); an empty segment in the middle is not canonical.
    if (segments.slice(0, -1).some((s) => s === "")) return "has an empty path segment (//)"
    if (segments.some(isDotSegment)) return "has a '.' or '..' segment"
    return undefined
  }
  // Other schemes use ':' inside their authority (mcp://server:tool), so both separate segments here.
  if (rest.split(/[/:]/).some(isDotSegment)) return "has a '.' or '..' segment"
  return undefined
}

/** Why `pattern` is not an acceptable resource pattern, or undefined when it is. */
export const resourcePatternProblem = (pattern: string): string | undefined => {
  const problem = uriProblem(pattern)
  if (problem !== undefined) return problem
  if (pattern.includes("***")) return "has three or more '*' in a row (use * or **)"
  return undefined
}

export const validateResourcePattern = (pattern: string): Either.Either<string, InvalidResourcePattern> => {
  const reason = resourcePatternProblem(pattern)
  return reason === undefined ? Either.right(pattern) : Either.left(new InvalidResourcePattern({ pattern, reason }))
}

type GlobPart = { readonly kind: "literal"; readonly text: string } | { readonly kind: "star" } | { readonly kind: "globstar" }

const globParts = (pattern: string): ReadonlyArray<GlobPart> => {
  const parts: Array<GlobPart> = []
  let literal = ""
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== "*") {
      literal += pattern[i]
      continue
    }
    if (literal !== "") parts.push({ kind: "literal", text: literal })
    literal = ""
    if (pattern[i + 1] === "*") {
      parts.push({ kind: "globstar" })
      i++
    } else {
      parts.push({ kind: "star" })
    }
  }
  if (literal !== "") parts.push({ kind: "literal", text: literal })
  return parts
}

/**
 * Does the URI glob `pattern` match `uri` as a whole? Runs over the set of reachable positions in `uri`,
 * one part of the pattern at a time: linear in pattern parts times URI length, so no pattern can make it
 * backtrack exponentially.
 */
const uriGlobMatches = (pattern: string, uri: string): boolean => {
  const n = uri.length
  let reach = new Uint8Array(n + 1)
  reach[0] = 1
  for (const part of globParts(pattern)) {
    const next = new Uint8Array(n + 1)
    if (part.kind === "literal") {
      for (let i = 0; i + part.text.length <= n; i++) {
        if (reach[i] === 1 && uri.startsWith(part.text, i)) next[i + part.text.length] = 1
      }
    } else {
      let active = false
      for (let i = 0; i <= n; i++) {
        if (reach[i] === 1) active = true
        if (active) next[i] = 1
        if (part.kind === "star" && uri[i] === "/") active = false
      }
    }
    reach = next
  }
  return reach[n] === 1
}

const coveredUri = (pattern: string, uri: string): boolean => uriProblem(uri) === undefined && uriGlobMatches(pattern, uri)

/**
 * Does the token's pattern and permission set cover `permission` on `resource`? For a command line
 * (`command` given), the token must cover the whole line, every program it runs (commandGrant.ts, I9).
 */
export const tokenCovers = (
  token: Pick<CapabilityToken, "resource" | "permissions">,
  resource: string,
  permission: Permission,
  command?: string
): boolean =>
  token.permissions.includes(permission) &&
  resourcePatternProblem(token.resource) === undefined &&
  grantCovers(token.resource, command === undefined ? { resource } : { resource, command }, coveredUri)

export type TokenInvalidReason =
  | "expired"
  | "not_yet_valid"
  | "revoked"
  | "used"
  | "foreign_principal"
  | "untrusted_issuer"
  | "bad_signature"
  | "not_covering"
  | "malformed"

export type TokenCheck =
  | { readonly _tag: "Valid" }
  | { readonly _tag: "Invalid"; readonly reason: TokenInvalidReason; readonly detail: string }

/** Membership test of token ids; a ReadonlySet<string> or a ReadonlyMap keyed by token id fits. */
export interface TokenIdSet {
  readonly has: (tokenId: string) => boolean
}

/** keyId -> hex public key; a ReadonlyMap<string, string> fits. */
export interface TrustedIssuers {
  readonly get: (keyId: string) => string | undefined
  readonly has: (keyId: string) => boolean
}

/** What a token's standing depends on, apart from what it is used for. */
export interface TokenStandingContext {
  readonly nowMs: number
  /** Default DEFAULT_CLOCK_SKEW_MS; negative or non-finite values count as 0 (no tolerance). */
  readonly clockSkewMs?: number
  readonly trustedIssuers: TrustedIssuers
  readonly revoked: TokenIdSet
  readonly used: TokenIdSet
  /** Checks the ed25519 signature against the issuer's trusted key (the caller caches it). */
  readonly verifySignature: (token: CapabilityToken) => boolean
}

export interface TokenCheckContext extends TokenStandingContext {
  readonly principal: string
  readonly resource: string
  readonly permission: Permission
  /** The command line, when the action runs one: the token must cover all of it. */
  readonly command?: string
}

const VALID: TokenCheck = { _tag: "Valid" }
const invalid = (reason: TokenInvalidReason, detail: string): TokenCheck => ({ _tag: "Invalid", reason, detail })

/** Why a token is malformed (so no signature or time check can be trusted on it), or undefined. */
export const tokenProblem = (token: CapabilityToken): string | undefined => {
  if (token.tokenId === "") return "its token id is empty"
  if (token.principal === "") return "its principal is empty"
  if (token.approvalEventId === "") return "it names no approval event"
  const pattern = resourcePatternProblem(token.resource)
  if (pattern !== undefined) return `its resource pattern '${token.resource}' ${pattern}`
  if (token.permissions.length === 0) return "it grants no permission"
  const unknown = token.permissions.find((p) => !isPermission(p))
  if (unknown !== undefined) return `it grants an unknown permission '${unknown}'`
  const issued = Date.parse(token.issuedAt)
  const expires = Date.parse(token.expiresAt)
  if (!Number.isFinite(issued)) return `its issuedAt '${token.issuedAt}' is not a time`
  if (!Number.isFinite(expires)) return `its expiresAt '${token.expiresAt}' is not a time`
  if (expires <= issued) return "it expires before it is issued"
  return undefined
}

/** Well-formed, from a trusted issuer, and signed by it: only then is any field of the token believed. */
const checkAuthenticity = (token: CapabilityToken, ctx: TokenStandingContext): TokenCheck => {
  const problem = tokenProblem(token)
  if (problem !== undefined) return invalid("malformed", `token ${token.tokenId} is malformed: ${problem}`)
  if (!ctx.trustedIssuers.has(token.issuer)) {
    return invalid("untrusted_issuer", `token ${token.tokenId} was signed by ${token.issuer}, which is not a trusted token issuer`)
  }
  if (!ctx.verifySignature(token)) {
    return invalid("bad_signature", `token ${token.tokenId} does not carry a valid signature by ${token.issuer}; it was altered or forged`)
  }
  return VALID
}

/** Not revoked, not used up, and inside its validity window (widened by the clock-skew tolerance). */
const checkCurrency = (token: CapabilityToken, ctx: TokenStandingContext): TokenCheck => {
  if (ctx.revoked.has(token.tokenId)) return invalid("revoked", `token ${token.tokenId} was revoked`)
  if (token.singleUse && ctx.used.has(token.tokenId)) return invalid("used", `single-use token ${token.tokenId} was already used`)
  if (!Number.isFinite(ctx.nowMs)) return invalid("malformed", `the current time ${String(ctx.nowMs)} is not a number`)
  const given = ctx.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS
  const skew = Number.isFinite(given) && given > 0 ? given : 0
  if (ctx.nowMs < Date.parse(token.issuedAt) - skew) {
    return invalid("not_yet_valid", `token ${token.tokenId} is valid only from ${token.issuedAt} (clock skew tolerance ${skew} ms)`)
  }
  if (ctx.nowMs >= Date.parse(token.expiresAt) + skew) {
    return invalid("expired", `token ${token.tokenId} expired at ${token.expiresAt} (clock skew tolerance ${skew} ms)`)
  }
  return VALID
}

/**
 * Is the token sound and current, whatever it is used for and whoever holds it? Checks in order:
 * well-formed, trusted issuer, signature, revoked, used (single-use only), validity window.
 */
export const checkTokenStanding = (token: CapabilityToken, ctx: TokenStandingContext): TokenCheck => {
  const authentic = checkAuthenticity(token, ctx)
  return authentic._tag === "Invalid" ? authentic : checkCurrency(token, ctx)
}

/**
 * Does `token` authorize `ctx.principal` to use `ctx.permission` on `ctx.resource` now (I5)? Checks in
 * order: malformed, untrusted_issuer, bad_signature, foreign_principal, revoked, used, not_yet_valid,
 * expired, not_covering.
 */
export const checkToken = (token: CapabilityToken, ctx: TokenCheckContext): TokenCheck => {
  const authentic = checkAuthenticity(token, ctx)
  if (authentic._tag === "Invalid") return authentic
  if (token.principal !== ctx.principal) {
    return invalid("foreign_principal", `token ${token.tokenId} belongs to principal '${token.principal}', not '${ctx.principal}'`)
  }
  const current = checkCurrency(token, ctx)
  if (current._tag === "Invalid") return current
  if (!tokenCovers(token, ctx.resource, ctx.permission, ctx.command)) {
    const why = uriProblem(ctx.resource)
    return invalid(
      "not_covering",
      why !== undefined
        ? `resource '${ctx.resource}' ${why}, so no token covers it`
        : `token ${token.tokenId} grants [${token.permissions.join(", ")}] on '${token.resource}', not ${ctx.permission} on '${ctx.resource}'`
    )
  }
  return VALID
}
