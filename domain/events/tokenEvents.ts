/** Capability tokens on a principal's stream: granted, used (single-use tokens once), revoked. */
import { Schema } from "effect"
import { Timestamp } from "../envelope.js"
import { KeyId, SignatureHex } from "./auditEvents.js"

/**
 * A signed grant: `principal` may use `permissions` on resources matching the glob `resource` between
 * `issuedAt` and `expiresAt`. `issuer` is the key id that signed it; the signature covers every other
 * field (domain/security/capabilityToken.ts has the rules).
 */
export const CapabilityToken = Schema.Struct({
  tokenId: Schema.String,
  principal: Schema.String,
  resource: Schema.String,
  permissions: Schema.Array(Schema.String),
  issuedAt: Timestamp,
  expiresAt: Timestamp,
  singleUse: Schema.Boolean,
  approvalEventId: Schema.String,
  issuer: KeyId,
  signature: SignatureHex
})
export type CapabilityToken = typeof CapabilityToken.Type

export const CapabilityTokenGranted = Schema.TaggedStruct("CapabilityTokenGranted", {
  token: CapabilityToken
})

export const CapabilityTokenUsed = Schema.TaggedStruct("CapabilityTokenUsed", {
  tokenId: Schema.String,
  actionId: Schema.String,
  sessionId: Schema.String
})

export const CapabilityTokenRevoked = Schema.TaggedStruct("CapabilityTokenRevoked", {
  tokenId: Schema.String,
  revokedBy: Schema.String,
  reason: Schema.NullOr(Schema.String)
})
