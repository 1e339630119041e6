/**
 * A fixed, fully specified piece of log: three events on one session stream, a checkpoint over its head
 * signed by a fixed ed25519 key, and a three-leaf Merkle example. Every value derived from these inputs
 * is written out literally in domain/chain.test.ts, domain/checkpoint.test.ts and docs/audit-format.md,
 * so an independent verifier can be checked against the same numbers.
 *
 * The BLAKE3 function is a parameter: the tests run these inputs through both hash-wasm and @noble/hashes.
 */
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js"
import { canonicalize } from "../domain/canonicalJson.js"
import { linkEvents, type UnchainedEvent } from "../domain/chain.js"
import { checkpointSigningText, keyIdFromDigest, merkleRoot } from "../domain/checkpoint.js"
import type { CheckpointBody, StreamHead } from "../domain/events/auditEvents.js"
import type { KeyRingApi } from "../application/ports/keyRing.js"
import { publicKeyOf, sign } from "../infrastructure/crypto/ed25519.js"
import { toHex } from "../infrastructure/crypto/hex.js"

export type HashText = (text: string) => string

/** BLAKE3 over the UTF-8 bytes of `text`, by @noble/hashes (synchronous, independent of hash-wasm). */
export const nobleHexOfText: HashText = (text) => toHex(nobleBlake3(new TextEncoder().encode(text)))

export const KNOWN_STREAM = "astrid-session-demo"

const ID_0 = "01a2120a-61c0-7000-8000-000000000001"
const ID_1 = "01a2120a-66a2-7000-8000-000000000002"
const ID_2 = "01a2120a-6b84-7000-8000-000000000003"
export const KNOWN_CHECKPOINT_EVENT_ID = "01a2120a-6d78-7000-8000-000000000004"

/** The three events as the runtime would record them, before chaining (data already canonical). */
export const KNOWN_EVENTS: ReadonlyArray<UnchainedEvent> = [
  {
    eventId: ID_0,
    type: "SessionStarted",
    dataText: canonicalize({ sessionId: "demo", workspace: "/home/ada/project", parentSessionId: null, model: "scripted" }),
    metadata: {
      eventId: ID_0,
      occurredAt: "2026-11-25T09:30:00.000Z",
      principal: "ada",
      sessionId: "demo",
      correlationId: ID_0,
      causationId: ID_0,
      classification: "trusted",
      schemaVersion: 1
    }
  },
  {
    eventId: ID_1,
    type: "MessageRecorded",
    // Non-ASCII on purpose: the hash covers UTF-8 bytes, and JCS leaves these characters unescaped.
    dataText: canonicalize({ messageId: "m-1", role: "user", content: "List the files in src/ — café \"ok\"\n", inputClassification: "trusted" }),
    metadata: {
      eventId: ID_1,
      occurredAt: "2026-11-25T09:30:01.250Z",
      principal: "ada",
      sessionId: "demo",
      correlationId: ID_1,
      causationId: ID_0,
      classification: "trusted",
      schemaVersion: 1
    }
  },
  {
    eventId: ID_2,
    type: "ActionProposed",
    dataText: canonicalize({
      actionId: "a-1",
      kind: "fs.list",
      resource: "src/",
      risk: "low",
      summary: "list src/",
      arguments: { path: "src/", recursive: false, depth: 2 },
      estimatedCostMicros: 0
    }),
    metadata: {
      eventId: ID_2,
      occurredAt: "2026-11-25T09:30:02.500Z",
      principal: "ada",
      sessionId: "demo",
      correlationId: ID_1,
      causationId: ID_1,
      classification: "untrusted",
      schemaVersion: 1
    }
  }
]

export const buildKnownChain = (hash: HashText) => linkEvents(KNOWN_STREAM, undefined, KNOWN_EVENTS, canonicalize, hash)

/** The fixed signing key of the known answers: 32 bytes of 0x01. Never use a key like this for real. */
export const KNOWN_SECRET_KEY: Uint8Array = new Uint8Array(32).fill(1)

/** A KeyRing over a raw 32-byte ed25519 secret key; the key id is derived with @noble/hashes BLAKE3. */
export const keyRingFromSecret = (secretKey: Uint8Array): KeyRingApi => {
  const publicKey = publicKeyOf(secretKey)
  const encoder = new TextEncoder()
  return {
    keyId: keyIdFromDigest(toHex(nobleBlake3(publicKey))),
    publicKeyHex: toHex(publicKey),
    signText: (text) => toHex(sign(encoder.encode(text), secretKey))
  }
}

/** A test key from one seed byte (secret key = 32 copies of it). */
export const testKeyRing = (seedByte: number): KeyRingApi => keyRingFromSecret(new Uint8Array(32).fill(seedByte))

/**
 * The first checkpoint of a log holding only the known chain (at global positions 1..3): one head,
 * signed by the known key, recorded as revision 0 of astrid-checkpoints.
 */
export const buildKnownCheckpoint = (hash: HashText) => {
  const chain = buildKnownChain(hash)
  const last = chain[chain.length - 1]
  if (last === undefined) throw new Error("the known chain is empty")
  const keyRing = keyRingFromSecret(KNOWN_SECRET_KEY)
  const heads: ReadonlyArray<StreamHead> = [{ stream: KNOWN_STREAM, revision: last.revision, hash: last.hash }]
  const body: CheckpointBody = {
    sequence: 0,
    heads,
    merkleRoot: merkleRoot(heads, hash),
    globalPosition: 3,
    prevCheckpointHash: null,
    keyId: keyRing.keyId,
    signedAt: "2026-11-25T09:30:03.000Z"
  }
  const signingText = checkpointSigningText(body)
  const signature = keyRing.signText(signingText)
  const [event] = linkEvents(
    "astrid-checkpoints",
    undefined,
    [
      {
        eventId: KNOWN_CHECKPOINT_EVENT_ID,
        type: "CheckpointSigned",
        dataText: canonicalize({ ...body, signature }),
        metadata: {
          eventId: KNOWN_CHECKPOINT_EVENT_ID,
          occurredAt: body.signedAt,
          principal: "astrid-runtime",
          correlationId: KNOWN_CHECKPOINT_EVENT_ID,
          causationId: KNOWN_CHECKPOINT_EVENT_ID,
          classification: "trusted",
          schemaVersion: 1
        }
      }
    ],
    canonicalize,
    hash
  )
  if (event === undefined) throw new Error("the known checkpoint was not linked")
  return { keyRing, body, signingText, signature, event }
}

/** Three heads (given out of order on purpose) for a Merkle known answer with an odd carry-up. */
export const knownMerkleHeads = (hash: HashText): ReadonlyArray<StreamHead> => {
  const last = buildKnownChain(hash)[2]
  if (last === undefined) throw new Error("the known chain is short")
  return [
    { stream: "astrid-workspace-w1", revision: 4, hash: "22".repeat(32) },
    { stream: KNOWN_STREAM, revision: last.revision, hash: last.hash },
    { stream: "astrid-principal-ada", revision: 0, hash: "11".repeat(32) }
  ]
}
