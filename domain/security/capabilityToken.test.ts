import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { createPublicKey, verify as nodeVerify } from "node:crypto"
import { Either } from "effect"
import { canonicalize } from "../canonicalJson.js"
import {
  type CapabilityToken,
  checkToken,
  DEFAULT_CLOCK_SKEW_MS,
  type TokenCheckContext,
  tokenCanonicalText,
  tokenCovers,
  tokenSigningText,
  type UnsignedCapabilityToken,
  validateResourcePattern
} from "./capabilityToken.js"
import type { Permission } from "./action.js"
import { testKeyRing } from "../../test/knownAnswerChain.js"
import { verify } from "../../infrastructure/crypto/ed25519.js"
import { fromHex } from "../../infrastructure/crypto/hex.js"

const KEY = testKeyRing(3)
const OTHER_KEY = testKeyRing(4)
const T0 = Date.parse("2026-11-25T10:00:00.000Z")
const HOUR = 3_600_000

const unsigned = (overrides: Partial<UnsignedCapabilityToken> = {}): UnsignedCapabilityToken => ({
  tokenId: "tok-1",
  principal: "ada",
  resource: "file:///home/ada/project/**",
  permissions: ["read", "write"],
  issuedAt: new Date(T0).toISOString(),
  expiresAt: new Date(T0 + HOUR).toISOString(),
  singleUse: false,
  approvalEventId: "01a2120a-61c0-7000-8000-0000000000aa",
  issuer: KEY.keyId,
  ...overrides
})

const signed = (overrides: Partial<UnsignedCapabilityToken> = {}, key = KEY): CapabilityToken => {
  const u = unsigned({ issuer: key.keyId, ...overrides })
  return { ...u, signature: key.signText(tokenSigningText(u)) }
}

const encoder = new TextEncoder()
const verifyWith = (trusted: ReadonlyMap<string, string>) => (token: CapabilityToken): boolean => {
  const publicKey = fromHex(trusted.get(token.issuer) ?? "")
  const signature = fromHex(token.signature)
  if (publicKey === undefined || signature === undefined) return false
  return verify(signature, encoder.encode(tokenSigningText(token)), publicKey)
}

const TRUSTED = new Map([[KEY.keyId, KEY.publicKeyHex]])

const context = (overrides: Partial<TokenCheckContext> = {}): TokenCheckContext => ({
  principal: "ada",
  resource: "file:///home/ada/project/src/main.ts",
  permission: "write",
  nowMs: T0 + 60_000,
  clockSkewMs: DEFAULT_CLOCK_SKEW_MS,
  trustedIssuers: TRUSTED,
  revoked: new Set<string>(),
  used: new Set<string>(),
  verifySignature: verifyWith(TRUSTED),
  ...overrides
})

const reasonOf = (token: CapabilityToken, ctx: TokenCheckContext): string => {
  const r = checkToken(token, ctx)
  return r._tag === "Valid" ? "valid" : r.reason
}

describe("tokenSigningText", () => {
  it("is the v1 tag and the JCS of every field but the signature (a known answer for outside verifiers)", () => {
    const u = unsigned({ permissions: ["write", "read"] })
    expect(tokenSigningText(u)).toBe(
      "astrid/token/v1\n" +
        '{"approvalEventId":"01a2120a-61c0-7000-8000-0000000000aa","expiresAt":"2026-11-25T11:00:00.000Z",' +
        `"issuedAt":"2026-11-25T10:00:00.000Z","issuer":"${KEY.keyId}","permissions":["write","read"],"principal":"ada",` +
        '"resource":"file:///home/ada/project/**","singleUse":false,"tokenId":"tok-1"}'
    )
    // The signature and any stray property stay out of the signed bytes.
    const token = signed()
    const withExtra = { ...token, note: "not signed" }
    expect(tokenSigningText(token)).toBe(tokenSigningText(unsigned()))
    expect(tokenSigningText(withExtra)).toBe(tokenSigningText(unsigned()))
  })

  it("produces signatures that node:crypto verifies over exactly those bytes", () => {
    const token = signed()
    const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(KEY.publicKeyHex, "hex")])
    const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" })
    expect(nodeVerify(null, Buffer.from(tokenSigningText(token), "utf8"), publicKey, Buffer.from(token.signature, "hex"))).toBe(true)
  })

  it("the canonical text (content hash input) includes the signature", () => {
    const token = signed()
    expect(tokenCanonicalText(token)).toBe(canonicalize({ ...token }))
    expect(tokenCanonicalText(token)).toContain(token.signature)
  })
})

describe("resource patterns", () => {
  const ok = ["file:///home/me/project/**", "file:///home/me/notes.txt", "exec://cargo", "exec://*", "mcp://fs:*", "net://*.example.com/**", "capsule://weather:http"]
  const bad: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["file:///home/me/project/../../etc/**", /'\.' or '\.\.' segment/],
    ["file:///home/me/project/..", /'\.' or '\.\.' segment/],
    ["file:///home/me/./project/**", /'\.' or '\.\.' segment/],
    ["file:///home/me/%2e%2E/etc/passwd", /'\.' or '\.\.' segment/],
    ["exec://../bin/sh", /'\.' or '\.\.' segment/],
    ["mcp://fs:..", /'\.' or '\.\.' segment/],
    ["src/**", /no scheme/],
    ["./src/**", /no scheme/],
    ["/home/me/project/**", /no scheme/],
    ["file://src/**", /not an absolute file URI/],
    ["file://./src/**", /not an absolute file URI/],
    ["file:///home//me/**", /empty path segment/],
    ["file:///C:\\Users\\me\\**", /backslash/],
    ["exec://", /names nothing/],
    ["file:///home/me/\u0000x", /control character/],
    ["file:///home/me/***", /three or more/]
  ]

  it("accepts absolute URI globs", () => {
    for (const p of ok) expect(Either.isRight(validateResourcePattern(p)), p).toBe(true)
  })

  it("rejects `..` segments, empty and relative patterns, with a message that says what to write", () => {
    for (const [p, reason] of bad) {
      const r = validateResourcePattern(p)
      expect(Either.isLeft(r), p).toBe(true)
      if (Either.isLeft(r)) {
        expect(r.left.reason).toMatch(reason)
        expect(r.left.message).toContain("file:///home/me/project/**")
      }
    }
  })

  it("a token whose pattern has `..` is malformed even when properly signed", () => {
    const token = signed({ resource: "file:///home/ada/project/../../etc/**" })
    expect(reasonOf(token, context({ resource: "file:///etc/passwd" }))).toBe("malformed")
  })
})

describe("URI glob coverage", () => {
  const covers = (pattern: string, resource: string, permission: Permission = "read") =>
    tokenCovers({ resource: pattern, permissions: ["read", "execute", "invoke"] }, resource, permission)

  it("`*` stays within one segment, `**` crosses segments", () => {
    expect(covers("file:///home/me/project/*", "file:///home/me/project/a.txt")).toBe(true)
    expect(covers("file:///home/me/project/*", "file:///home/me/project/src/a.txt")).toBe(false)
    expect(covers("file:///home/me/project/**", "file:///home/me/project/src/deep/a.txt")).toBe(true)
    expect(covers("file:///home/me/project/**", "file:///home/me/project")).toBe(false)
    expect(covers("file:///home/me/project/**", "file:///home/me/projectile/a.txt")).toBe(false)
    expect(covers("file:///home/me/*/src/*.ts", "file:///home/me/app/src/main.ts")).toBe(true)
    expect(covers("file:///home/me/*/src/*.ts", "file:///home/me/app/lib/src/main.ts")).toBe(false)
    expect(covers("file:///home/me/**/*.ts", "file:///home/me/a/b/c.ts")).toBe(true)
    expect(covers("file:///home/me/**/*.ts", "file:///home/me/a/b/c.tsx")).toBe(false)
  })

  it("`exec://cargo` covers the program cargo and nothing else", () => {
    expect(covers("exec://cargo", "exec://cargo", "execute")).toBe(true)
    expect(covers("exec://cargo", "exec://cargo-watch", "execute")).toBe(false)
    expect(covers("exec://cargo", "exec://cargox", "execute")).toBe(false)
    expect(covers("exec://cargo", "exec://car", "execute")).toBe(false)
    expect(covers("exec://cargo*", "exec://cargo-watch", "execute")).toBe(true)
  })

  it("`mcp://fs:*` covers every tool of the fs server only", () => {
    expect(covers("mcp://fs:*", "mcp://fs:read_file", "invoke")).toBe(true)
    expect(covers("mcp://fs:*", "mcp://fsx:read_file", "invoke")).toBe(false)
    expect(covers("mcp://fs:*", "mcp://other:read_file", "invoke")).toBe(false)
  })

  it("needs the permission too", () => {
    expect(covers("exec://cargo", "exec://cargo", "write")).toBe(false)
  })

  it("never covers a resource that walks out with `..`", () => {
    expect(covers("file:///home/me/project/**", "file:///home/me/project/../secrets/key")).toBe(false)
    expect(covers("file:///home/me/project/**", "file:///home/me/project/%2e%2e/secrets/key")).toBe(false)
    expect(reasonOf(signed({ resource: "file:///home/ada/project/**" }), context({ resource: "file:///home/ada/project/../.ssh/id" }))).toBe("not_covering")
  })

  it("agrees with a regular-expression model on random paths", () => {
    const segment = fc.constantFrom("a", "b", "ab", "x.ts", "")
    const patternPart = fc.constantFrom("a", "b", "*", "**", "x.ts", "a*", "*b")
    fc.assert(
      fc.property(fc.array(patternPart, { minLength: 1, maxLength: 5 }), fc.array(segment, { minLength: 1, maxLength: 6 }), (parts, segments) => {
        const pattern = `file:///r/${parts.join("/")}`
        const resource = `file:///r/${segments.join("/")}`
        fc.pre(validateResourcePattern(pattern)._tag === "Right" && !segments.slice(0, -1).includes(""))
        const regex = new RegExp(
          `^${pattern
            .split("**")
            .map((chunk) => chunk.split("*").map((lit) => lit.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*"))
            .join(".*")}$`
        )
        expect(covers(pattern, resource)).toBe(regex.test(resource))
      }),
      { numRuns: 500 }
    )
  })

  it("stays fast on patterns built to make a backtracking matcher explode", () => {
    const pattern = `file:///${"*a".repeat(40)}b`
    const resource = `file:///${"a".repeat(1500)}`
    const started = performance.now()
    expect(covers(pattern, resource)).toBe(false)
    // Generous bound: the point is polynomial, not exponential, time.
    expect(performance.now() - started).toBeLessThan(1000)
  })
})

describe("checkToken (I5)", () => {
  it("accepts a trusted, signed, current, covering token", () => {
    expect(checkToken(signed(), context())).toEqual({ _tag: "Valid" })
  })

  it("refuses an expired token once the clock-skew tolerance has passed too", () => {
    const token = signed()
    const expiry = T0 + HOUR
    expect(reasonOf(token, context({ nowMs: expiry + DEFAULT_CLOCK_SKEW_MS - 1 }))).toBe("valid")
    expect(reasonOf(token, context({ nowMs: expiry + DEFAULT_CLOCK_SKEW_MS }))).toBe("expired")
    expect(reasonOf(token, context({ nowMs: expiry + DEFAULT_CLOCK_SKEW_MS + HOUR }))).toBe("expired")
    expect(reasonOf(token, context({ nowMs: expiry, clockSkewMs: 0 }))).toBe("expired")
    // A nonsensical tolerance counts as none, never as "forever".
    expect(reasonOf(token, context({ nowMs: expiry, clockSkewMs: Number.NaN }))).toBe("expired")
    expect(reasonOf(token, context({ nowMs: expiry, clockSkewMs: -5 }))).toBe("expired")
  })

  it("refuses a token from the future beyond the tolerance", () => {
    const token = signed()
    expect(reasonOf(token, context({ nowMs: T0 - DEFAULT_CLOCK_SKEW_MS }))).toBe("valid")
    expect(reasonOf(token, context({ nowMs: T0 - DEFAULT_CLOCK_SKEW_MS - 1 }))).toBe("not_yet_valid")
  })

  it("refuses a revoked token", () => {
    expect(reasonOf(signed(), context({ revoked: new Set(["tok-1"]) }))).toBe("revoked")
  })

  it("refuses a used single-use token, but a reusable token ignores uses", () => {
    expect(reasonOf(signed({ singleUse: true }), context({ used: new Set(["tok-1"]) }))).toBe("used")
    expect(reasonOf(signed({ singleUse: true }), context())).toBe("valid")
    expect(reasonOf(signed({ singleUse: false }), context({ used: new Set(["tok-1"]) }))).toBe("valid")
  })

  it("refuses another principal's token", () => {
    const r = checkToken(signed(), context({ principal: "bob" }))
    expect(r).toMatchObject({ _tag: "Invalid", reason: "foreign_principal" })
  })

  it("refuses a token from an untrusted issuer, even with a valid signature by that issuer", () => {
    const token = signed({}, OTHER_KEY)
    const both = new Map([...TRUSTED, [OTHER_KEY.keyId, OTHER_KEY.publicKeyHex]])
    expect(reasonOf(token, context({ verifySignature: verifyWith(both) }))).toBe("untrusted_issuer")
    expect(reasonOf(token, context({ trustedIssuers: both, verifySignature: verifyWith(both) }))).toBe("valid")
  })

  it("refuses a token whose fields were changed after signing, or whose signature was swapped", () => {
    const token = signed()
    expect(reasonOf({ ...token, resource: "file:///**" }, context())).toBe("bad_signature")
    expect(reasonOf({ ...token, expiresAt: "2027-11-25T10:00:00.000Z" }, context())).toBe("bad_signature")
    expect(reasonOf({ ...token, principal: "bob" }, context({ principal: "bob" }))).toBe("bad_signature")
    expect(reasonOf({ ...token, signature: signed({ tokenId: "tok-2" }).signature }, context())).toBe("bad_signature")
    // An issuer field pointing at a trusted key does not help a signature made by another key.
    expect(reasonOf({ ...signed({}, OTHER_KEY), issuer: KEY.keyId }, context())).toBe("bad_signature")
  })

  it("refuses a token that does not cover the resource or the permission", () => {
    expect(reasonOf(signed(), context({ resource: "file:///home/ada/other/x" }))).toBe("not_covering")
    expect(reasonOf(signed(), context({ permission: "delete" }))).toBe("not_covering")
  })

  it("reports malformed tokens before believing anything in them", () => {
    expect(reasonOf(signed({ permissions: [] }), context())).toBe("malformed")
    expect(reasonOf(signed({ permissions: ["read", "fly"] }), context())).toBe("malformed")
    expect(reasonOf(signed({ expiresAt: new Date(T0 - 1).toISOString() }), context())).toBe("malformed")
    expect(reasonOf(signed({ issuedAt: "2026-13-45T10:00:00.000Z" }), context())).toBe("malformed")
    expect(reasonOf(signed({ approvalEventId: "" }), context())).toBe("malformed")
    expect(reasonOf(signed(), context({ nowMs: Number.NaN }))).toBe("malformed")
  })

  it("never calls the signature check for an untrusted issuer", () => {
    let calls = 0
    const r = checkToken(signed({}, OTHER_KEY), context({ verifySignature: () => (calls++, true) }))
    expect(r).toMatchObject({ reason: "untrusted_issuer" })
    expect(calls).toBe(0)
  })
})
