/** Events that keep the log itself provable: signed checkpoints and the runtime keys that sign them. */
import { Schema } from "effect"
import { HashHex, Timestamp } from "../envelope.js"

export const StreamHead = Schema.Struct({
  stream: Schema.String,
  revision: Schema.NonNegativeInt,
  hash: HashHex
})
export type StreamHead = typeof StreamHead.Type

export const KeyId = Schema.String.pipe(Schema.pattern(/^ed25519:[0-9a-f]{16}$/, { message: () => "expected ed25519:<16 hex digits>" }))
export const PublicKeyHex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/, { message: () => "expected a 32-byte ed25519 public key in hex" }))
export const SignatureHex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{128}$/, { message: () => "expected a 64-byte ed25519 signature in hex" }))

/**
 * The signed part of a checkpoint: the heads of every stream changed since the previous checkpoint,
 * their Merkle root, the global position covered, and the previous checkpoint's event hash.
 */
export const CheckpointBody = Schema.Struct({
  sequence: Schema.NonNegativeInt,
  heads: Schema.Array(StreamHead),
  merkleRoot: HashHex,
  globalPosition: Schema.NonNegativeInt,
  prevCheckpointHash: Schema.NullOr(HashHex),
  keyId: KeyId,
  signedAt: Timestamp
})
export type CheckpointBody = typeof CheckpointBody.Type

export const CheckpointSigned = Schema.TaggedStruct("CheckpointSigned", {
  ...CheckpointBody.fields,
  signature: SignatureHex
})

/** A runtime signing key came into use; `replaces` names the key it rotated out, if any. */
export const RuntimeKeyGenerated = Schema.TaggedStruct("RuntimeKeyGenerated", {
  keyId: KeyId,
  algorithm: Schema.Literal("ed25519"),
  publicKey: PublicKeyHex,
  replaces: Schema.NullOr(KeyId)
})
