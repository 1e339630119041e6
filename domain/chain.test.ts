import { describe, expect, it } from "vitest"
import { Schema } from "effect"
import { canonicalize, isCanonical } from "./canonicalJson.js"
import { EVENT_HASH_TAG, eventPreimage, GENESIS_TAG, genesisPreimage, HASH_HEX_PATTERN, linkEvents } from "./chain.js"
import { EventMetadata } from "./envelope.js"
import { AstridEvent } from "./events/astridEvent.js"
import { buildKnownChain, KNOWN_EVENTS, KNOWN_STREAM, nobleHexOfText } from "../test/knownAnswerChain.js"
import { loadBlake3 } from "../infrastructure/crypto/blake3.js"

// The known answers below are also printed in docs/audit-format.md; change both together, and only with a new
// chain-rule version (EVENT_HASH_TAG), because every recorded log depends on them.
const GENESIS = "80a139bcef2935b6e2a6d30d2cec63d69a5735f20beaefefc0810e1310dc583b"
const PREIMAGE_0 =
  'astrid/event/v1\n{"data":{"model":"scripted","parentSessionId":null,"sessionId":"demo","workspace":"/home/ada/project"},' +
  '"metadata":{"causationId":"01a2120a-61c0-7000-8000-000000000001","classification":"trusted","correlationId":"01a2120a-61c0-7000-8000-000000000001",' +
  '"eventId":"01a2120a-61c0-7000-8000-000000000001","occurredAt":"2026-11-25T09:30:00.000Z",' +
  '"prevHash":"80a139bcef2935b6e2a6d30d2cec63d69a5735f20beaefefc0810e1310dc583b","principal":"ada","schemaVersion":1,"sessionId":"demo"},' +
  '"revision":0,"stream":"astrid-session-demo","type":"SessionStarted"}'

const EXPECTED = [
  {
    type: "SessionStarted",
    data: '{"model":"scripted","parentSessionId":null,"sessionId":"demo","workspace":"/home/ada/project"}',
    metadata:
      '{"causationId":"01a2120a-61c0-7000-8000-000000000001","classification":"trusted","correlationId":"01a2120a-61c0-7000-8000-000000000001",' +
      '"eventId":"01a2120a-61c0-7000-8000-000000000001","occurredAt":"2026-11-25T09:30:00.000Z",' +
      '"prevHash":"80a139bcef2935b6e2a6d30d2cec63d69a5735f20beaefefc0810e1310dc583b","principal":"ada","schemaVersion":1,"sessionId":"demo"}',
    hash: "f3f1898af8d991a82f3a8b6bf373c35fcd83eb2ed39583a51ca6b2899479a869"
  },
  {
    type: "MessageRecorded",
    data: '{"content":"List the files in src/ \u2014 caf\u00e9 \\"ok\\"\\n","inputClassification":"trusted","messageId":"m-1","role":"user"}',
    metadata:
      '{"causationId":"01a2120a-61c0-7000-8000-000000000001","classification":"trusted","correlationId":"01a2120a-66a2-7000-8000-000000000002",' +
      '"eventId":"01a2120a-66a2-7000-8000-000000000002","occurredAt":"2026-11-25T09:30:01.250Z",' +
      '"prevHash":"f3f1898af8d991a82f3a8b6bf373c35fcd83eb2ed39583a51ca6b2899479a869","principal":"ada","schemaVersion":1,"sessionId":"demo"}',
    hash: "23bf05b6b621c7bf317db1dd6c0bd51fa6757f879b90a1f53beb3f3f8c2b5438"
  },
  {
    type: "ActionProposed",
    data:
      '{"actionId":"a-1","arguments":{"depth":2,"path":"src/","recursive":false},"estimatedCostMicros":0,"kind":"fs.list",' +
      '"resource":"src/","risk":"low","summary":"list src/"}',
    metadata:
      '{"causationId":"01a2120a-66a2-7000-8000-000000000002","classification":"untrusted","correlationId":"01a2120a-66a2-7000-8000-000000000002",' +
      '"eventId":"01a2120a-6b84-7000-8000-000000000003","occurredAt":"2026-11-25T09:30:02.500Z",' +
      '"prevHash":"23bf05b6b621c7bf317db1dd6c0bd51fa6757f879b90a1f53beb3f3f8c2b5438","principal":"ada","schemaVersion":1,"sessionId":"demo"}',
    hash: "95ea7b4abfcd2d54c248da4ea1348411a4d0a8fb4661da5dd8d393b59443871e"
  }
] as const

describe("chain rule: known answers", () => {
  it("uses the documented tags", () => {
    expect(EVENT_HASH_TAG).toBe("astrid/event/v1\n")
    expect(GENESIS_TAG).toBe("astrid/genesis/")
  })

  it("derives the genesis hash from the stream name", () => {
    expect(genesisPreimage(KNOWN_STREAM)).toBe("astrid/genesis/astrid-session-demo")
    expect(nobleHexOfText("astrid/genesis/astrid-session-demo")).toBe(GENESIS)
  })

  it("links the three known events to the literal metadata texts and hashes (with @noble/hashes and hash-wasm)", async () => {
    const wasm = await loadBlake3()
    for (const hash of [nobleHexOfText, wasm.hexOfText]) {
      const chain = buildKnownChain(hash)
      expect(chain.map((e) => ({ type: e.type, data: e.data, metadata: e.metadata, hash: e.hash }))).toEqual(EXPECTED)
      expect(chain.map((e) => e.revision)).toEqual([0, 1, 2])
      expect(chain.map((e) => e.eventId)).toEqual(KNOWN_EVENTS.map((e) => e.eventId))
    }
  })

  it("hashes exactly the literal preimage of event 0", () => {
    const first = EXPECTED[0]
    expect(eventPreimage(KNOWN_STREAM, 0, first.type, first.data, first.metadata)).toBe(PREIMAGE_0)
    // Recomputed straight from the literal text, with no Astrid code in between.
    expect(nobleHexOfText(PREIMAGE_0)).toBe(first.hash)
  })

  it("builds each preimage as the tag followed by the RFC 8785 text of {data, metadata, revision, stream, type}", () => {
    EXPECTED.forEach((e, revision) => {
      const preimage = eventPreimage(KNOWN_STREAM, revision, e.type, e.data, e.metadata)
      const jcs = canonicalize({ data: JSON.parse(e.data), metadata: JSON.parse(e.metadata), revision, stream: KNOWN_STREAM, type: e.type })
      expect(preimage).toBe(EVENT_HASH_TAG + jcs)
      expect(nobleHexOfText(preimage)).toBe(e.hash)
    })
  })

  it("stores canonical texts that decode as valid events and envelopes, with metadata without a hash", () => {
    const chain = buildKnownChain(nobleHexOfText)
    for (const e of chain) {
      expect(isCanonical(e.data)).toBe(true)
      expect(isCanonical(e.metadata)).toBe(true)
      const data: unknown = JSON.parse(e.data)
      expect(Schema.is(AstridEvent)(typeof data === "object" && data !== null ? { ...data, _tag: e.type } : data)).toBe(true)
      const metadata: unknown = JSON.parse(e.metadata)
      expect(Schema.is(EventMetadata)(metadata)).toBe(true)
      expect(e.metadata).not.toContain('"hash"')
      expect(e.hash).toMatch(HASH_HEX_PATTERN)
    }
  })
})

describe("linkEvents", () => {
  it("continues an existing stream from its head: revision head+1, prevHash = head hash", () => {
    const whole = buildKnownChain(nobleHexOfText)
    const [first, ...rest] = KNOWN_EVENTS
    expect(first).toBeDefined()
    const head = whole[0]
    if (head === undefined) throw new Error("no head")
    const continued = linkEvents(KNOWN_STREAM, { revision: head.revision, hash: head.hash }, rest, canonicalize, nobleHexOfText)
    expect(continued).toEqual(whole.slice(1))
  })

  it("gives a different hash to the same event on another stream or at another revision", () => {
    const e = EXPECTED[0]
    const base = nobleHexOfText(eventPreimage(KNOWN_STREAM, 0, e.type, e.data, e.metadata))
    expect(nobleHexOfText(eventPreimage("astrid-session-demo2", 0, e.type, e.data, e.metadata))).not.toBe(base)
    expect(nobleHexOfText(eventPreimage(KNOWN_STREAM, 1, e.type, e.data, e.metadata))).not.toBe(base)
    expect(nobleHexOfText(eventPreimage(KNOWN_STREAM, 0, "SessionEnded", e.data, e.metadata))).not.toBe(base)
  })

  it("links an empty batch to nothing", () => {
    expect(linkEvents(KNOWN_STREAM, undefined, [], canonicalize, nobleHexOfText)).toEqual([])
  })
})
