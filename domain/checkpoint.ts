/**
 * Checkpoint rules: the Merkle root over stream heads and the exact bytes a checkpoint signature covers.
 * BLAKE3 is passed in (domain has no crypto); every input is text, hashed as UTF-8.
 *
 *   leaf(h)   = BLAKE3("astrid/merkle/leaf\n" || JCS({hash, revision, stream}))
 *   node(l,r) = BLAKE3("astrid/merkle/node\n" || hex(l) || hex(r))
 *   empty     = BLAKE3("astrid/merkle/empty")
 *
 * Leaves are taken in stream-name order; a level with an odd count carries its last node up unchanged.
 */
import { canonicalize } from "./canonicalJson.js"
import type { CheckpointBody, StreamHead } from "./events/auditEvents.js"

export type HashText = (text: string) => string

export const MERKLE_LEAF_TAG = "astrid/merkle/leaf\n"
export const MERKLE_NODE_TAG = "astrid/merkle/node\n"
export const MERKLE_EMPTY = "astrid/merkle/empty"
export const CHECKPOINT_SIGNATURE_TAG = "astrid/checkpoint/v1\n"

/** Heads in the order the Merkle tree and the checkpoint list them. */
export const sortHeads = (heads: ReadonlyArray<StreamHead>): ReadonlyArray<StreamHead> =>
  [...heads].sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0))

export const merkleRoot = (heads: ReadonlyArray<StreamHead>, hash: HashText): string => {
  if (heads.length === 0) return hash(MERKLE_EMPTY)
  let level = sortHeads(heads).map((h) =>
    hash(MERKLE_LEAF_TAG + canonicalize({ hash: h.hash, revision: h.revision, stream: h.stream }))
  )
  while (level.length > 1) {
    const next: Array<string> = []
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as string
      const right = level[i + 1]
      next.push(right === undefined ? left : hash(MERKLE_NODE_TAG + left + right))
    }
    level = next
  }
  return level[0] as string
}

/** The text whose UTF-8 bytes a checkpoint's ed25519 signature covers. */
export const checkpointSigningText = (body: CheckpointBody | Readonly<Record<string, unknown>>): string =>
  CHECKPOINT_SIGNATURE_TAG + canonicalize(body)

/** The key id of an ed25519 public key: "ed25519:" and the first 16 hex digits of BLAKE3(public key). */
export const keyIdFromDigest = (publicKeyDigestHex: string): string => `ed25519:${publicKeyDigestHex.slice(0, 16)}`
