import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js"
import { loadBlake3 } from "./blake3.js"
import { toHex } from "./hex.js"

/** The input of the official BLAKE3 test vectors (test_vectors.json): byte i is i % 251. */
const vectorInput = (length: number): Uint8Array => {
  const bytes = new Uint8Array(length)
  for (let i = 0; i < length; i++) bytes[i] = i % 251
  return bytes
}

/** The first 32 bytes of the official BLAKE3 test vectors' `hash` field (unkeyed, default output length). */
const OFFICIAL_VECTORS: ReadonlyArray<readonly [number, string]> = [
  [0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"],
  [1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"],
  [1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"],
  [1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"],
  [1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"],
  [2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"],
  [31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"]
]

const nobleHexOfText = (text: string): string => toHex(nobleBlake3(new TextEncoder().encode(text)))

describe("BLAKE3 (hash-wasm) known answers", () => {
  for (const [length, expected] of OFFICIAL_VECTORS) {
    it(`matches the official vector for ${length} bytes, and so does @noble/hashes`, async () => {
      const blake3 = await loadBlake3()
      const input = vectorInput(length)
      expect(toHex(blake3.bytesOf(input))).toBe(expected)
      expect(toHex(nobleBlake3(input))).toBe(expected)
    })
  }

  it("hashes text as its UTF-8 bytes: empty text and 'abc'", async () => {
    const blake3 = await loadBlake3()
    expect(blake3.hexOfText("")).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    expect(blake3.hexOfText("abc")).toBe("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")
    expect(toHex(blake3.bytesOf(new TextEncoder().encode("abc")))).toBe("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")
  })

  it("returns a fresh digest each time (a later hash does not overwrite an earlier result)", async () => {
    const blake3 = await loadBlake3()
    const first = blake3.bytesOf(vectorInput(1))
    const copy = Uint8Array.from(first)
    blake3.bytesOf(vectorInput(1024))
    expect(first).toEqual(copy)
    expect(first.length).toBe(32)
  })

  it("hashes texts longer than the reused encoding buffer, including multi-byte characters", async () => {
    const blake3 = await loadBlake3()
    // 64 KiB is the initial scratch size; these cross it with 1-, 2-, 3- and 4-byte UTF-8 characters.
    for (const unit of ["a", "é", "€", "\u{1F600}"]) {
      const text = unit.repeat(70_000)
      expect(blake3.hexOfText(text)).toBe(nobleHexOfText(text))
    }
    // After growing, short inputs still hash correctly.
    expect(blake3.hexOfText("abc")).toBe("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")
  })
})

describe("BLAKE3 (hash-wasm) agrees with @noble/hashes", () => {
  it("on random strings (ASCII, any code point, lone surrogates)", async () => {
    const blake3 = await loadBlake3()
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary-ascii", maxLength: 300 }),
          fc.string({ unit: "grapheme", maxLength: 300 }),
          fc.string({ unit: "binary", maxLength: 300 }),
          fc.string({ unit: "binary", minLength: 2000, maxLength: 30_000 })
        ),
        (text) => {
          expect(blake3.hexOfText(text)).toBe(nobleHexOfText(text))
        }
      ),
      { numRuns: 300 }
    )
  })

  it("on random bytes", async () => {
    const blake3 = await loadBlake3()
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2100 }), fc.uint8Array({ minLength: 4000, maxLength: 70_000 })), (bytes) => {
        expect(toHex(blake3.bytesOf(bytes))).toBe(toHex(nobleBlake3(bytes)))
      }),
      { numRuns: 200 }
    )
  })
})
