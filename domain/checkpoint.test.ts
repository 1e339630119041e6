import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { createPublicKey, verify as nodeVerify } from "node:crypto"
import { canonicalize } from "./canonicalJson.js"
import {
  CHECKPOINT_SIGNATURE_TAG,
  checkpointSigningText,
  keyIdFromDigest,
  MERKLE_EMPTY,
  MERKLE_LEAF_TAG,
  MERKLE_NODE_TAG,
  merkleRoot,
  sortHeads
} from "./checkpoint.js"
import type { StreamHead } from "./events/auditEvents.js"
import { buildKnownCheckpoint, KNOWN_SECRET_KEY, knownMerkleHeads, nobleHexOfText } from "../test/knownAnswerChain.js"
import { loadBlake3 } from "../infrastructure/crypto/blake3.js"
import { publicKeyOf, verify } from "../infrastructure/crypto/ed25519.js"
import { fromHex, toHex } from "../infrastructure/crypto/hex.js"
import { keyIdOf } from "../infrastructure/keys/keyFiles.js"

const h = nobleHexOfText
const leaf = (head: StreamHead): string => h(MERKLE_LEAF_TAG + canonicalize({ hash: head.hash, revision: head.revision, stream: head.stream }))
const node = (left: string, right: string): string => h(MERKLE_NODE_TAG + left + right)
const head = (i: number): StreamHead => ({ stream: `astrid-s-${String.fromCharCode(97 + i)}`, revision: i, hash: i.toString(16).padStart(2, "0").repeat(32) })

// Known answers, also printed in docs/audit-format.md.
const KNOWN_PUBLIC_KEY = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
const KNOWN_KEY_ID = "ed25519:83561adb398fd87f"
const KNOWN_ONE_HEAD_ROOT = "0a4cc16ce050738caa95097d67b2c2a43200771e4ae9ee71a88c4eb9d911e840"
const KNOWN_THREE_HEAD_ROOT = "4cb4560962de329255c674e0a3813e01b052a643e340ec9470b036569b457a18"
const KNOWN_EMPTY_ROOT = "9e60737d63252b9c75231b909e4f23bfab9e4c2cda82b8e053e6be3dd14b8e99"
const KNOWN_SIGNING_TEXT =
  'astrid/checkpoint/v1\n{"globalPosition":3,"heads":[{"hash":"95ea7b4abfcd2d54c248da4ea1348411a4d0a8fb4661da5dd8d393b59443871e",' +
  '"revision":2,"stream":"astrid-session-demo"}],"keyId":"ed25519:83561adb398fd87f",' +
  '"merkleRoot":"0a4cc16ce050738caa95097d67b2c2a43200771e4ae9ee71a88c4eb9d911e840","prevCheckpointHash":null,"sequence":0,' +
  '"signedAt":"2026-11-25T09:30:03.000Z"}'
const KNOWN_SIGNATURE =
  "67a2c50047598a9f45dd614c58a3498ae929fdc4d5073d57061f5c58b85ba8352fe53575687935e855204ffa1a8d4642a187913405434acdc0ba1727663ee50b"
const KNOWN_CHECKPOINT_METADATA =
  '{"causationId":"01a2120a-6d78-7000-8000-000000000004","classification":"trusted","correlationId":"01a2120a-6d78-7000-8000-000000000004",' +
  '"eventId":"01a2120a-6d78-7000-8000-000000000004","occurredAt":"2026-11-25T09:30:03.000Z",' +
  '"prevHash":"a6904cb37655dc74c04f7792f638814c5e41a7c9506400669bcb50dbc939daee","principal":"astrid-runtime","schemaVersion":1}'
const KNOWN_CHECKPOINT_HASH = "60ac9464efa9e4eaf2a2c15c00e69bf000a696449d7bc5f36ab8fac27be399a6"

describe("Merkle rule", () => {
  it("uses the documented tags", () => {
    expect(MERKLE_LEAF_TAG).toBe("astrid/merkle/leaf\n")
    expect(MERKLE_NODE_TAG).toBe("astrid/merkle/node\n")
    expect(MERKLE_EMPTY).toBe("astrid/merkle/empty")
  })

  it("empty: BLAKE3 of the empty tag", () => {
    expect(merkleRoot([], h)).toBe(h("astrid/merkle/empty"))
    expect(merkleRoot([], h)).toBe(KNOWN_EMPTY_ROOT)
  })

  it("one leaf: the root is the leaf hash over the JCS text of {hash, revision, stream}", () => {
    const one = head(1)
    expect(merkleRoot([one], h)).toBe(leaf(one))
    expect(merkleRoot([one], h)).toBe(
      h(`astrid/merkle/leaf\n{"hash":"${"01".repeat(32)}","revision":1,"stream":"astrid-s-b"}`)
    )
  })

  it("two leaves: node(left, right) over the lowercase hex texts", () => {
    const [a, b] = [head(0), head(1)]
    expect(merkleRoot([a, b], h)).toBe(node(leaf(a), leaf(b)))
    expect(merkleRoot([a, b], h)).toBe(h(`astrid/merkle/node\n${leaf(a)}${leaf(b)}`))
  })

  it("three leaves: the odd last leaf is carried up unchanged, not duplicated", () => {
    const [a, b, c] = [head(0), head(1), head(2)]
    expect(merkleRoot([a, b, c], h)).toBe(node(node(leaf(a), leaf(b)), leaf(c)))
    expect(merkleRoot([a, b, c], h)).not.toBe(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(c))))
  })

  it("five leaves: carried up twice", () => {
    const [a, b, c, d, e] = [head(0), head(1), head(2), head(3), head(4)]
    expect(merkleRoot([a, b, c, d, e], h)).toBe(node(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d))), leaf(e)))
  })

  it("orders leaves by stream name, whatever the input order", () => {
    const heads = [0, 1, 2, 3, 4, 5, 6].map(head)
    const expected = merkleRoot(heads, h)
    fc.assert(
      fc.property(fc.shuffledSubarray(heads, { minLength: heads.length, maxLength: heads.length }), (shuffled) => {
        expect(merkleRoot(shuffled, h)).toBe(expected)
        expect(sortHeads(shuffled).map((x) => x.stream)).toEqual(heads.map((x) => x.stream))
      }),
      { numRuns: 100 }
    )
  })

  it("changes with any head's stream, revision or hash", () => {
    const heads = [head(0), head(1), head(2)]
    const root = merkleRoot(heads, h)
    expect(merkleRoot([head(0), { ...head(1), revision: 2 }, head(2)], h)).not.toBe(root)
    expect(merkleRoot([head(0), { ...head(1), hash: "ff".repeat(32) }, head(2)], h)).not.toBe(root)
    expect(merkleRoot([head(0), { ...head(1), stream: "astrid-s-bb" }, head(2)], h)).not.toBe(root)
    expect(merkleRoot([head(0), head(1)], h)).not.toBe(root)
  })

  it("known answer: three heads given out of order", async () => {
    const wasm = await loadBlake3()
    for (const hash of [h, wasm.hexOfText]) {
      const heads = knownMerkleHeads(hash)
      expect(merkleRoot(heads, hash)).toBe(KNOWN_THREE_HEAD_ROOT)
    }
    const sorted = sortHeads(knownMerkleHeads(h))
    expect(sorted.map((x) => x.stream)).toEqual(["astrid-principal-ada", "astrid-session-demo", "astrid-workspace-w1"])
    const [a, b, c] = sorted
    if (a === undefined || b === undefined || c === undefined) throw new Error("three heads expected")
    expect(leaf(a)).toBe("bf050aae84adab0a137c79660ec0fe73889571f8eba7e196df3a02f6330eb4f8")
    expect(leaf(b)).toBe(KNOWN_ONE_HEAD_ROOT)
    expect(leaf(c)).toBe("141a500fde74ebd3119f2fbd3154d142a734e14e4e4719d0a34f26491e0a0f3f")
    expect(node(leaf(a), leaf(b))).toBe("b14470e633c64b46849eafe00d77cfa34d227a5c87a1fd0ab6b68575ea167e0f")
    expect(node(node(leaf(a), leaf(b)), leaf(c))).toBe(KNOWN_THREE_HEAD_ROOT)
  })
})

describe("checkpoint signature", () => {
  it("derives the fixed key's public key and key id (ed25519:<16 hex of BLAKE3(public key)>)", async () => {
    const publicKey = publicKeyOf(KNOWN_SECRET_KEY)
    expect(toHex(publicKey)).toBe(KNOWN_PUBLIC_KEY)
    expect(await keyIdOf(publicKey)).toBe(KNOWN_KEY_ID)
    expect(keyIdFromDigest(toHex((await loadBlake3()).bytesOf(publicKey)))).toBe(KNOWN_KEY_ID)
  })

  it("signs the known checkpoint body deterministically, and the signature verifies", async () => {
    const wasm = await loadBlake3()
    for (const hash of [h, wasm.hexOfText]) {
      const { body, signingText, signature, keyRing } = buildKnownCheckpoint(hash)
      expect(keyRing.keyId).toBe(KNOWN_KEY_ID)
      expect(body.merkleRoot).toBe(KNOWN_ONE_HEAD_ROOT)
      expect(signingText).toBe(KNOWN_SIGNING_TEXT)
      expect(checkpointSigningText(body)).toBe(CHECKPOINT_SIGNATURE_TAG + canonicalize(body))
      expect(signature).toBe(KNOWN_SIGNATURE)
    }
    const message = new TextEncoder().encode(KNOWN_SIGNING_TEXT)
    const signature = fromHex(KNOWN_SIGNATURE) ?? new Uint8Array()
    const publicKey = fromHex(KNOWN_PUBLIC_KEY) ?? new Uint8Array()
    expect(verify(signature, message, publicKey)).toBe(true)
    // An independent ed25519 implementation (OpenSSL through node:crypto) agrees.
    const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(KNOWN_PUBLIC_KEY, "hex")])
    expect(nodeVerify(null, message, createPublicKey({ key: spki, format: "der", type: "spki" }), Buffer.from(KNOWN_SIGNATURE, "hex"))).toBe(true)
  })

  it("does not verify over a changed body or under another key", () => {
    const message = new TextEncoder().encode(KNOWN_SIGNING_TEXT.replace('"sequence":0', '"sequence":1'))
    const signature = fromHex(KNOWN_SIGNATURE) ?? new Uint8Array()
    expect(verify(signature, message, fromHex(KNOWN_PUBLIC_KEY) ?? new Uint8Array())).toBe(false)
    const other = publicKeyOf(new Uint8Array(32).fill(2))
    expect(verify(signature, new TextEncoder().encode(KNOWN_SIGNING_TEXT), other)).toBe(false)
  })

  it("records the known checkpoint as revision 0 of astrid-checkpoints with the literal metadata and hash", () => {
    const { event, signature } = buildKnownCheckpoint(h)
    expect(h("astrid/genesis/astrid-checkpoints")).toBe("a6904cb37655dc74c04f7792f638814c5e41a7c9506400669bcb50dbc939daee")
    expect(event.revision).toBe(0)
    expect(event.metadata).toBe(KNOWN_CHECKPOINT_METADATA)
    // The stored data is the signed body plus `signature`, in JCS key order (sequence < signature < signedAt).
    expect(event.data).toBe(
      '{"globalPosition":3,"heads":[{"hash":"95ea7b4abfcd2d54c248da4ea1348411a4d0a8fb4661da5dd8d393b59443871e",' +
        '"revision":2,"stream":"astrid-session-demo"}],"keyId":"ed25519:83561adb398fd87f",' +
        '"merkleRoot":"0a4cc16ce050738caa95097d67b2c2a43200771e4ae9ee71a88c4eb9d911e840","prevCheckpointHash":null,"sequence":0,' +
        `"signature":"${KNOWN_SIGNATURE}","signedAt":"2026-11-25T09:30:03.000Z"}`
    )
    expect(signature).toBe(KNOWN_SIGNATURE)
    expect(event.hash).toBe(KNOWN_CHECKPOINT_HASH)
  })
})
