import { Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { printable, printableJson } from "./printable.js"

/** JSON text read back as an unknown value, through Schema like any outside data. */
const readJson = Schema.decodeUnknownSync(Schema.parseJson())

const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/

describe("printable", () => {
  it("shows escape sequences, C1 controls and bidirectional overrides as visible escapes; newlines and tabs stay", () => {
    expect(printable("a\u001b[2Jb\tc\nd\u0007\u009b31m\u202e\u007f")).toBe("a\\u001b[2Jb\tc\nd\\u0007\\u009b31m\\u202e\\u007f")
  })

  it("printableJson is JSON that reads back as the same value and carries no raw control character", () => {
    const evil = { text: "x\u009b2J\u202e\u007f\u001b]52;c;eA==\u0007", list: ["\u2066", 1, null] }
    expect(JSON.stringify(evil, null, 2)).toMatch(RAW)
    expect(printableJson(evil)).not.toMatch(RAW)
    expect(readJson(printableJson(evil))).toEqual(evil)
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: "binary" }), (value) => {
        const text = printableJson(value)
        expect(text).not.toMatch(RAW)
        expect(readJson(text)).toEqual(readJson(JSON.stringify(value)))
      })
    )
  })
})
