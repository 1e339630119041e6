import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { canonicalize, CanonicalJsonError, isCanonical } from "./canonicalJson.js"

describe("canonicalize (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units and drops whitespace", () => {
    expect(canonicalize({ b: 1, a: [true, null, "x"], "\u20ac": 1, "\ud83d\ude00": 2, "\u0080": 3 })).toBe(
      '{"a":[true,null,"x"],"b":1,"\u0080":3,"\u20ac":1,"\ud83d\ude00":2}'
    )
  })

  it("writes numbers in the ECMAScript form the RFC prescribes", () => {
    expect(canonicalize([1e21, 1e-7, -0, 0.1, 333333333.33333329, 4.5, 2e-3])).toBe("[1e+21,1e-7,0,0.1,333333333.3333333,4.5,0.002]")
  })

  it("escapes only what JSON requires", () => {
    expect(canonicalize("\u0000\b\t\n\f\r\"\\/\u001f\u007f é")).toBe('"\\u0000\\b\\t\\n\\f\\r\\"\\\\/\\u001f\u007f é"')
  })

  it("rejects what JSON cannot hold", () => {
    expect(() => canonicalize({ a: Number.NaN })).toThrow(CanonicalJsonError)
    expect(() => canonicalize([Number.POSITIVE_INFINITY])).toThrow(CanonicalJsonError)
    expect(() => canonicalize({ a: undefined })).toThrow(/\$\.a/)
    expect(() => canonicalize("\ud800")).toThrow(/surrogate/)
    expect(() => canonicalize(new Date(0))).toThrow(/plain objects/)
    const cyclic: Record<string, unknown> = {}
    cyclic["self"] = cyclic
    expect(() => canonicalize(cyclic)).toThrow(/cyclic/)
  })

  it("is idempotent and agrees with JSON.parse for any JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalize(value)
        expect(isCanonical(text)).toBe(true)
        expect(canonicalize(JSON.parse(text))).toBe(text)
      }),
      { numRuns: 500 }
    )
  })
})
