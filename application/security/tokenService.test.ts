/**
 * TokenService on real stores: minting, covering, single use under concurrency, revocation, and the
 * refusals of I5 (untrusted issuer, foreign principal, expired, revoked, bad signature), including
 * after a restart over the same SQLite file.
 */
import { afterAll, describe, expect, it } from "vitest"
import { Effect, Layer, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLog, type EventLogApi, EventLogLive } from "../eventLog.js"
import { Crypto, type CryptoApi } from "../ports/crypto.js"
import { EventStore, type EventStoreApi } from "../ports/eventStore.js"
import { KeyRing, type KeyRingApi } from "../ports/keyRing.js"
import { makeTokenService, type TokenServiceApi, type TokenServiceConfig } from "./tokenService.js"
import type { CapabilityToken } from "../../domain/events/tokenEvents.js"
import { DEFAULT_CLOCK_SKEW_MS, tokenCanonicalText, tokenSigningText } from "../../domain/security/capabilityToken.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../../infrastructure/event-store/memoryEventStore.js"
import { openSqliteEventStore } from "../../infrastructure/event-store/sqliteEventStore.js"
import { testKeyRing } from "../../test/knownAnswerChain.js"

const KEY = testKeyRing(5)
const OTHER_KEY = testKeyRing(6)

const dirs: Array<string> = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const tempDb = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "astrid-tokens-"))
  dirs.push(dir)
  return join(dir, "astrid.db")
}

/** Yields before every read and append, so concurrent fibers interleave between checking and appending. */
const interleaving = (store: EventStoreApi): EventStoreApi => ({
  ...store,
  readStream: (stream, options) => Effect.zipRight(Effect.yieldNow(), store.readStream(stream, options)),
  streamHead: (stream) => Effect.zipRight(Effect.yieldNow(), store.streamHead(stream)),
  append: (stream, expected, events) => Effect.zipRight(Effect.yieldNow(), store.append(stream, expected, events))
})

interface Service {
  readonly tokens: TokenServiceApi
  readonly log: EventLogApi
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  readonly fail: <A, E>(effect: Effect.Effect<A, E>) => Promise<E>
}

/** A TokenService (and the EventLog under it) over `store`; `key` is the runtime KeyRing, if any. */
const service = async (store: EventStoreApi, options: { key?: KeyRingApi | null; config?: TokenServiceConfig; crypto?: CryptoApi } = {}): Promise<Service> => {
  const crypto = options.crypto ?? (await makeCrypto())
  const key = options.key === undefined ? KEY : options.key
  const base = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive)
  const withKey = key === null ? base : Layer.merge(base, Layer.succeed(KeyRing, key))
  const deps = Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), withKey)
  const { tokens, log } = await Effect.runPromise(
    Effect.all({ tokens: makeTokenService(options.config ?? {}), log: EventLog }).pipe(Effect.provide(deps))
  )
  return { tokens, log, run: (e) => Effect.runPromise(e), fail: (e) => Effect.runPromise(Effect.flip(e)) }
}

const mintRequest = {
  principal: "ada",
  resource: "file:///home/ada/project/**",
  permissions: ["read", "write"] as const,
  approvalEventId: "01a2120a-61c0-7000-8000-0000000000aa"
}

const query = (nowMs: number, overrides: Partial<{ principal: string; resource: string; permission: "read" | "write" | "execute" }> = {}) => ({
  principal: "ada",
  resource: "file:///home/ada/project/src/main.ts",
  permission: "write" as const,
  nowMs,
  ...overrides
})

const eventsOf = async (store: EventStoreApi, stream: string) => (await Effect.runPromise(store.readStream(stream))).map((e) => e.type)

const tokenIdOf = (o: Option.Option<{ readonly token: CapabilityToken }>): string | undefined => Option.getOrUndefined(Option.map(o, (c) => c.token.tokenId))

describe("TokenService.mint and findCovering", () => {
  it("mints a signed token as a CapabilityTokenGranted event on the principal's stream and finds it", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    const before = Date.now()
    const token = await s.run(s.tokens.mint(mintRequest))
    expect(token).toMatchObject({ principal: "ada", resource: mintRequest.resource, permissions: ["read", "write"], singleUse: false, issuer: KEY.keyId })
    // Allow Always defaults to one hour.
    expect(Date.parse(token.expiresAt) - Date.parse(token.issuedAt)).toBe(3_600_000)
    expect(Date.parse(token.issuedAt)).toBeGreaterThanOrEqual(before - 1)
    const crypto = await makeCrypto()
    expect(crypto.verifyText(token.signature, tokenSigningText(token), KEY.publicKeyHex)).toBe(true)
    const recorded = await Effect.runPromise(store.readStream("astrid-principal-ada"))
    expect(recorded.map((e) => e.type)).toEqual(["CapabilityTokenGranted"])
    expect(JSON.parse(recorded[0]?.metadata ?? "{}")).toMatchObject({ principal: "ada", causationId: mintRequest.approvalEventId })
    const found = await s.run(s.tokens.findCovering(query(Date.now())))
    expect(Option.getOrUndefined(found)).toEqual({ token, hash: crypto.blake3Hex(tokenCanonicalText(token)) })
    expect(s.tokens.hashOf(token)).toBe(crypto.blake3Hex(tokenCanonicalText(token)))
  })

  it("finds nothing for another resource, another permission, or another principal", async () => {
    const s = await service(makeMemoryEventStore())
    await s.run(s.tokens.mint(mintRequest))
    const now = Date.now()
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { resource: "file:///home/ada/other/x" }))))).toBe(true)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { permission: "execute" }))))).toBe(true)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { principal: "bob" }))))).toBe(true)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { principal: "not a principal!" }))))).toBe(true)
  })

  it("`exec://cargo` covers the program cargo only", async () => {
    const s = await service(makeMemoryEventStore())
    const token = await s.run(s.tokens.mint({ ...mintRequest, resource: "exec://cargo", permissions: ["execute"] }))
    const now = Date.now()
    expect(tokenIdOf(await s.run(s.tokens.findCovering(query(now, { resource: "exec://cargo", permission: "execute" }))))).toBe(token.tokenId)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { resource: "exec://cargo-watch", permission: "execute" }))))).toBe(true)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { resource: "exec://cargox", permission: "execute" }))))).toBe(true)
  })

  it("prefers a reusable token over a single-use one that also covers", async () => {
    const s = await service(makeMemoryEventStore())
    await s.run(s.tokens.mint({ ...mintRequest, singleUse: true }))
    const reusable = await s.run(s.tokens.mint(mintRequest))
    expect(tokenIdOf(await s.run(s.tokens.findCovering(query(Date.now()))))).toBe(reusable.tokenId)
  })

  it("refuses to mint a pattern with `..`, a relative path, no permission, a bad lifetime or principal; writes nothing", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    const refused = [
      { ...mintRequest, resource: "file:///home/ada/project/../../etc/**" },
      { ...mintRequest, resource: "project/**" },
      { ...mintRequest, resource: "" },
      { ...mintRequest, permissions: [] },
      { ...mintRequest, ttlMs: 0 },
      { ...mintRequest, ttlMs: Number.NaN },
      { ...mintRequest, ttlMs: 400 * 24 * 3_600_000 },
      { ...mintRequest, principal: "ada smith" },
      { ...mintRequest, approvalEventId: "" }
    ]
    for (const request of refused) {
      const error = await s.fail(s.tokens.mint(request))
      expect(error._tag, JSON.stringify(request)).toBe("InvalidTokenRequest")
      expect(error.message).toMatch(/^cannot mint a token: /)
    }
    expect((await s.fail(s.tokens.mint({ ...mintRequest, resource: "file:///home/ada/../../etc/**" }))).message).toContain("'..'")
    expect((await Effect.runPromise(store.stats)).events).toBe(0)
  })

  it("refuses to mint without a runtime key, or with one the service does not trust", async () => {
    const none = await service(makeMemoryEventStore(), { key: null })
    expect(await none.fail(none.tokens.mint(mintRequest))).toMatchObject({ _tag: "TokenSigningUnavailable", message: expect.stringContaining("astrid keys generate") })
    const untrusted = await service(makeMemoryEventStore(), { config: { trustedIssuers: new Map([[OTHER_KEY.keyId, OTHER_KEY.publicKeyHex]]) } })
    expect((await untrusted.fail(untrusted.tokens.mint(mintRequest)))._tag).toBe("TokenSigningUnavailable")
  })
})

describe("I5: tokens that never authorize", () => {
  it("an expired token, once the clock-skew tolerance has passed", async () => {
    const s = await service(makeMemoryEventStore())
    const token = await s.run(s.tokens.mint({ ...mintRequest, ttlMs: 60_000 }))
    const expiry = Date.parse(token.expiresAt)
    expect(Option.isSome(await s.run(s.tokens.findCovering(query(expiry + DEFAULT_CLOCK_SKEW_MS - 1))))).toBe(true)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(expiry + DEFAULT_CLOCK_SKEW_MS))))).toBe(true)
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(expiry + 24 * 3_600_000))))).toBe(true)
  })

  it("a token from an issuer this service does not trust, even though it is on the stream and well signed", async () => {
    const store = makeMemoryEventStore()
    const both = new Map([
      [KEY.keyId, KEY.publicKeyHex],
      [OTHER_KEY.keyId, OTHER_KEY.publicKeyHex]
    ])
    const elsewhere = await service(store, { key: OTHER_KEY, config: { trustedIssuers: both } })
    const token = await elsewhere.run(elsewhere.tokens.mint(mintRequest))
    expect(Option.isSome(await elsewhere.run(elsewhere.tokens.findCovering(query(Date.now()))))).toBe(true)
    const here = await service(store)
    expect(Option.isNone(await here.run(here.tokens.findCovering(query(Date.now()))))).toBe(true)
    const [record] = await here.run(here.tokens.list("ada"))
    expect(record).toMatchObject({ status: "untrusted_issuer", token: { tokenId: token.tokenId } })
    expect(await here.fail(here.tokens.use(token, { actionId: "x", sessionId: "s" }))).toMatchObject({ _tag: "TokenRejected", reason: "untrusted_issuer" })
  })

  it("another principal's token, even when it is placed on this principal's stream", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    const alices = await s.run(s.tokens.mint({ ...mintRequest, principal: "alice" }))
    // A properly signed token of alice's, appended to bob's stream by someone with write access.
    await s.run(s.log.append("astrid-principal-bob", "any", [{ principal: "bob", event: { _tag: "CapabilityTokenGranted", token: alices } }]))
    const now = Date.now()
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { principal: "bob" }))))).toBe(true)
    expect(Option.isSome(await s.run(s.tokens.findCovering(query(now, { principal: "alice" }))))).toBe(true)
    expect((await s.run(s.tokens.list("bob")))[0]?.status).toBe("foreign_principal")
  })

  it("a token whose fields were changed after signing (bad signature)", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    const genuine = await s.run(s.tokens.mint(mintRequest))
    const widened: CapabilityToken = { ...genuine, tokenId: "forged-1", resource: "file:///**", permissions: ["read", "write", "delete"] }
    await s.run(s.log.append("astrid-principal-ada", "any", [{ principal: "ada", event: { _tag: "CapabilityTokenGranted", token: widened } }]))
    const now = Date.now()
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(now, { resource: "file:///etc/passwd", permission: "read" }))))).toBe(true)
    const records = await s.run(s.tokens.list("ada"))
    expect(records.map((r) => [r.token.tokenId, r.status])).toEqual([
      [genuine.tokenId, "active"],
      ["forged-1", "bad_signature"]
    ])
  })

  it("a revoked token; revoking twice or an unknown token is an error", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    const token = await s.run(s.tokens.mint(mintRequest))
    const record = await s.run(s.tokens.revoke(token.tokenId, "admin", "laptop lost"))
    expect(record).toMatchObject({ status: "revoked", revoked: { by: "admin", reason: "laptop lost" } })
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(Date.now()))))).toBe(true)
    expect(await s.fail(s.tokens.revoke(token.tokenId, "admin"))).toMatchObject({ _tag: "TokenRejected", reason: "revoked" })
    expect(await s.fail(s.tokens.revoke("no-such-token", "admin"))).toMatchObject({ _tag: "TokenNotFound", message: expect.stringContaining("astrid tokens list") })
    expect(await eventsOf(store, "astrid-principal-ada")).toEqual(["CapabilityTokenGranted", "CapabilityTokenRevoked"])
  })

  it("a token revoked between findCovering and use", async () => {
    const s = await service(makeMemoryEventStore())
    await s.run(s.tokens.mint(mintRequest))
    const found = Option.getOrThrow(await s.run(s.tokens.findCovering(query(Date.now()))))
    await s.run(s.tokens.revoke(found.token.tokenId, "admin"))
    expect(await s.fail(s.tokens.use(found, { actionId: "a1", sessionId: "s1" }))).toMatchObject({ _tag: "TokenRejected", reason: "revoked" })
  })

  it("a look-alike of a granted token (same id, other content) cannot be used", async () => {
    const s = await service(makeMemoryEventStore())
    const token = await s.run(s.tokens.mint({ ...mintRequest, singleUse: true }))
    const unsigned = { ...token, resource: "file:///**" }
    const lookAlike: CapabilityToken = { ...unsigned, signature: KEY.signText(tokenSigningText(unsigned)) }
    expect(await s.fail(s.tokens.use(lookAlike, { actionId: "a1", sessionId: "s1" }))).toMatchObject({ _tag: "TokenRejected", reason: "not_granted" })
  })
})

describe("single-use tokens", () => {
  it("work once: the first use is recorded, the second is refused, and findCovering stops finding it", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    await s.run(s.tokens.mint({ ...mintRequest, singleUse: true }))
    const found = Option.getOrThrow(await s.run(s.tokens.findCovering(query(Date.now()))))
    await s.run(s.tokens.use(found, { actionId: "a1", sessionId: "s1" }))
    expect(await s.fail(s.tokens.use(found, { actionId: "a2", sessionId: "s1" }))).toMatchObject({ _tag: "TokenRejected", reason: "used" })
    expect(Option.isNone(await s.run(s.tokens.findCovering(query(Date.now()))))).toBe(true)
    expect(await eventsOf(store, "astrid-principal-ada")).toEqual(["CapabilityTokenGranted", "CapabilityTokenUsed"])
    expect((await s.run(s.tokens.list("ada")))[0]).toMatchObject({ status: "used", used: { actionId: "a1", sessionId: "s1" } })
  })

  it("a reusable token is not spent by use and records nothing", async () => {
    const store = makeMemoryEventStore()
    const s = await service(store)
    const token = await s.run(s.tokens.mint(mintRequest))
    await s.run(s.tokens.use(token, { actionId: "a1", sessionId: "s1" }))
    await s.run(s.tokens.use(token, { actionId: "a2", sessionId: "s1" }))
    expect(await eventsOf(store, "astrid-principal-ada")).toEqual(["CapabilityTokenGranted"])
  })

  for (const kind of ["memory", "sqlite"] as const) {
    it(`of 2 and of 10 concurrent uses exactly one succeeds (${kind} store)`, async () => {
      let close = () => {}
      let raw: EventStoreApi
      if (kind === "memory") raw = makeMemoryEventStore()
      else {
        const opened = await Effect.runPromise(openSqliteEventStore({ path: tempDb(), mode: "write", synchronous: "normal" }))
        raw = opened.api
        close = opened.close
      }
      try {
        const s = await service(interleaving(raw))
        for (const n of [2, 10]) {
          const token = await s.run(s.tokens.mint({ ...mintRequest, singleUse: true }))
          const results = await s.run(
            Effect.forEach(
              Array.from({ length: n }, (_, i) => i),
              (i) => Effect.either(s.tokens.use(token, { actionId: `a${i}`, sessionId: "s1" })),
              { concurrency: "unbounded" }
            )
          )
          expect(results.filter((r) => r._tag === "Right")).toHaveLength(1)
          const refusals = results.flatMap((r) => (r._tag === "Left" ? [r.left] : []))
          expect(refusals.map((e) => e._tag === "TokenRejected" && e.reason)).toEqual(Array.from({ length: n - 1 }, () => "used"))
          const used = (await Effect.runPromise(raw.readStream("astrid-principal-ada"))).filter((e) => e.type === "CapabilityTokenUsed" && e.data.includes(token.tokenId))
          expect(used).toHaveLength(1)
        }
      } finally {
        close()
      }
    })
  }
})

describe("tokens survive restarts", () => {
  it("an Allow Always token minted by one service is found by a new service over the same SQLite file; so is its revocation", async () => {
    const path = tempDb()
    const first = await Effect.runPromise(openSqliteEventStore({ path, mode: "write" }))
    const a = await service(first.api)
    const token = await a.run(a.tokens.mint(mintRequest))
    const other = await a.run(a.tokens.mint({ ...mintRequest, resource: "exec://cargo", permissions: ["execute"] }))
    first.close()

    const second = await Effect.runPromise(openSqliteEventStore({ path, mode: "write" }))
    try {
      // A fresh process: new crypto, new caches, the key only as a trusted public key.
      const b = await service(second.api, { key: null, config: { trustedIssuers: new Map([[KEY.keyId, KEY.publicKeyHex]]) } })
      expect(tokenIdOf(await b.run(b.tokens.findCovering(query(Date.now()))))).toBe(token.tokenId)
      expect(Option.getOrUndefined(await b.run(b.tokens.get(other.tokenId)))?.status).toBe("active")
      await b.run(b.tokens.revoke(other.tokenId, "ada", null))
    } finally {
      second.close()
    }

    const third = await Effect.runPromise(openSqliteEventStore({ path, mode: "read" }))
    try {
      const c = await service(third.api)
      expect(Option.isNone(await c.run(c.tokens.findCovering(query(Date.now(), { resource: "exec://cargo", permission: "execute" }))))).toBe(true)
      expect(Option.getOrUndefined(await c.run(c.tokens.get(other.tokenId)))).toMatchObject({ status: "revoked", revoked: { by: "ada", reason: null } })
      expect((await c.run(c.tokens.list("ada"))).map((r) => r.status)).toEqual(["active", "revoked"])
    } finally {
      third.close()
    }
  })
})

describe("signature verification cache", () => {
  it("verifies each token once per service, and a changed token again", async () => {
    const real = await makeCrypto()
    let verifications = 0
    const counting: CryptoApi = {
      blake3Hex: real.blake3Hex,
      verifyText: (signature, text, publicKey) => {
        verifications++
        return real.verifyText(signature, text, publicKey)
      }
    }
    const s = await service(makeMemoryEventStore(), { crypto: counting })
    await s.run(s.tokens.mint(mintRequest))
    for (let i = 0; i < 5; i++) expect(Option.isSome(await s.run(s.tokens.findCovering(query(Date.now()))))).toBe(true)
    expect(verifications).toBe(1)
    await s.run(s.tokens.mint({ ...mintRequest, resource: "exec://cargo", permissions: ["execute"] }))
    await s.run(s.tokens.findCovering(query(Date.now(), { resource: "exec://cargo", permission: "execute" })))
    expect(verifications).toBe(2)
  })
})

describe("get and list", () => {
  it("get finds a token by id on whichever principal's stream it is; list is per principal, oldest first", async () => {
    const s = await service(makeMemoryEventStore())
    const ada1 = await s.run(s.tokens.mint(mintRequest))
    const bob1 = await s.run(s.tokens.mint({ ...mintRequest, principal: "bob" }))
    const ada2 = await s.run(s.tokens.mint({ ...mintRequest, resource: "mcp://fs:*", permissions: ["invoke"] }))
    expect(Option.getOrUndefined(await s.run(s.tokens.get(bob1.tokenId)))).toMatchObject({ stream: "astrid-principal-bob", status: "active" })
    expect(Option.isNone(await s.run(s.tokens.get("missing")))).toBe(true)
    expect((await s.run(s.tokens.list("ada"))).map((r) => r.token.tokenId)).toEqual([ada1.tokenId, ada2.tokenId])
    expect(await s.run(s.tokens.list("carol"))).toEqual([])
    expect(await s.run(s.tokens.list("not a principal!"))).toEqual([])
  })
})
