/**
 * `astrid tokens list|show|revoke` handlers, run in-process against a real SQLite file in a temporary
 * ASTRID_HOME (the commands are wired into main.ts separately; the bin's own tests cover wiring).
 */
import { describe, expect, it } from "vitest"
import { useCliCapture } from "../../../test/cliCapture.js"
import { Cause, Effect, Exit, Layer, Option } from "effect"

import { join } from "node:path"
import { EventLogLive } from "../../../application/eventLog.js"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { KeyRing } from "../../../application/ports/keyRing.js"
import { makeTokenService } from "../../../application/security/tokenService.js"
import type { CapabilityToken } from "../../../domain/events/tokenEvents.js"
import { makeCrypto } from "../../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, loadKeyRing } from "../../../infrastructure/keys/keyFiles.js"
import { tempHome } from "../../../test/seedStore.js"
import { CliError } from "../cliError.js"
import { currentPrincipal, list, revoke, show } from "./tokens.js"

const capture = useCliCapture()
const homes = capture.homes

/** A home with a runtime key and tokens minted for ada (two) and bob (one). */
const seeded = async (): Promise<{ home: string; ada: ReadonlyArray<CapabilityToken>; bob: CapabilityToken }> => {
  const home = tempHome()
  homes.push(home)
  process.env["ASTRID_HOME"] = home
  process.env["ASTRID_PRINCIPAL"] = "ada"
  process.env["NO_COLOR"] = "1"
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        yield* Effect.orDie(generateKey(home, false, Date.now()))
        const keyRing = yield* Effect.orDie(loadKeyRing(home))
        const store = yield* Effect.acquireRelease(Effect.orDie(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "write" })), (s) =>
          Effect.sync(() => s.close())
        )
        const crypto = yield* Effect.promise(makeCrypto)
        const base = Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, keyRing))
        const tokens = yield* makeTokenService().pipe(Effect.provide(Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), base)))
        const request = { approvalEventId: "01a2120a-61c0-7000-8000-0000000000aa", permissions: ["read", "write"] as const }
        const a1 = yield* Effect.orDie(tokens.mint({ ...request, principal: "ada", resource: "file:///home/ada/project/**" }))
        const a2 = yield* Effect.orDie(tokens.mint({ ...request, principal: "ada", resource: "exec://cargo", permissions: ["execute"], singleUse: true }))
        const b1 = yield* Effect.orDie(tokens.mint({ ...request, principal: "bob", resource: "mcp://fs:*", permissions: ["invoke"] }))
        return { home, ada: [a1, a2], bob: b1 }
      })
    )
  )
}

const cliFailure = async (effect: Effect.Effect<unknown, CliError>): Promise<CliError> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected the command to fail")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a CliError, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

const parsed = (): unknown => JSON.parse(capture.output())

describe("astrid tokens", () => {
  it("list shows the current principal's tokens (ASTRID_PRINCIPAL), and --principal naming that principal does too", async () => {
    const { ada, bob } = await seeded()
    await Effect.runPromise(list({ json: false }))
    expect(capture.output()).toContain(ada[0]?.tokenId)
    expect(capture.output()).toContain(ada[1]?.tokenId)
    expect(capture.output()).not.toContain(bob.tokenId)
    expect(capture.output()).toMatch(/TOKEN\s+STATUS\s+PERMISSIONS\s+RESOURCE\s+EXPIRES\s+USE/)
    expect(capture.output()).toContain("single-use")
    capture.reset()
    process.env["ASTRID_PRINCIPAL"] = "bob"
    await Effect.runPromise(list({ principal: "bob", json: true }))
    expect(parsed()).toEqual([expect.objectContaining({ tokenId: bob.tokenId, principal: "bob", status: "active", resource: "mcp://fs:*", used: null, revoked: null })])
  })

  it("list --principal of another principal is refused, saying whose and what to do, and shows nothing", async () => {
    const { bob } = await seeded()
    for (const json of [false, true]) {
      const error = await cliFailure(list({ principal: "bob", json }))
      expect(error.exitCode).toBe(2)
      expect(error.message).toBe("the capability tokens of principal 'bob' are not yours to list: you are 'ada', and a principal lists only its own; drop --principal to list yours, or run the command as 'bob'")
      expect(capture.output()).not.toContain(bob.tokenId)
    }
  })

  it("show and revoke of another principal's token are refused, and the token stays as it was", async () => {
    const { bob } = await seeded()
    for (const run of [show({ tokenId: bob.tokenId, json: false }), revoke({ tokenId: bob.tokenId, reason: "mine now", json: false })]) {
      const error = await cliFailure(run)
      expect(error.exitCode).toBe(2)
      expect(error.message).toBe(`capability token ${bob.tokenId} belongs to another principal; you ('ada') can see and revoke only your own: 'astrid tokens list' shows them`)
    }
    expect(capture.output()).toBe("")
    process.env["ASTRID_PRINCIPAL"] = "bob"
    await Effect.runPromise(show({ tokenId: bob.tokenId, json: true }))
    expect(parsed()).toMatchObject({ tokenId: bob.tokenId, status: "active", revoked: null })
  })

  it("text output shows control characters in a token's recorded fields as visible escapes", async () => {
    const { ada } = await seeded()
    const id = ada[0]?.tokenId ?? ""
    // The mint refuses them in a resource; a revocation's reason is recorded as given.
    await Effect.runPromise(revoke({ tokenId: id, reason: "done \u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u009b31m\u202eevil", json: false }))
    await Effect.runPromise(show({ tokenId: id, json: false }))
    const out = capture.output()
    expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/)
    expect(out).toContain("done \\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2J\\u009b31m\\u202eevil")
  })

  it("list says so when a principal has no tokens, and when there is no store yet", async () => {
    await seeded()
    process.env["ASTRID_PRINCIPAL"] = "carol"
    await Effect.runPromise(list({ json: false }))
    expect(capture.output().trim()).toBe("no capability tokens for principal 'carol'")
    const empty = tempHome()
    homes.push(empty)
    process.env["ASTRID_HOME"] = empty
    capture.reset()
    await Effect.runPromise(list({ json: true }))
    expect(parsed()).toEqual([])
  })

  it("show prints one token in full, as text and JSON", async () => {
    const { ada } = await seeded()
    const id = ada[0]?.tokenId ?? ""
    await Effect.runPromise(show({ tokenId: id, json: false }))
    expect(capture.output()).toMatch(new RegExp(`^token\\s+${id}$`, "m"))
    expect(capture.output()).toMatch(/^status\s+active$/m)
    expect(capture.output()).toMatch(/^resource\s+file:\/\/\/home\/ada\/project\/\*\*$/m)
    capture.reset()
    await Effect.runPromise(show({ tokenId: id, json: true }))
    expect(parsed()).toMatchObject({ tokenId: id, status: "active", stream: "astrid-principal-ada", hash: expect.stringMatching(/^[0-9a-f]{64}$/) })
  })

  it("show of an unknown token is a one-line usage error (exit 2)", async () => {
    await seeded()
    const error = await cliFailure(show({ tokenId: "nope", json: false }))
    expect(error.exitCode).toBe(2)
    expect(error.message).toMatch(/^no capability token nope in .*astrid\.db; 'astrid tokens list' shows the tokens there are$/)
    expect(error.message).not.toContain("\n")
  })

  it("revoke records who revoked and why; the token is revoked from then on; a second revoke is an error", async () => {
    const { ada } = await seeded()
    const id = ada[1]?.tokenId ?? ""
    await Effect.runPromise(revoke({ tokenId: id, reason: "no longer needed", json: true }))
    expect(parsed()).toMatchObject({ tokenId: id, status: "revoked", revoked: { by: "ada", reason: "no longer needed" } })
    capture.reset()
    await Effect.runPromise(show({ tokenId: id, json: false }))
    expect(capture.output()).toMatch(/^status\s+revoked/m)
    expect(capture.output()).toMatch(/^revoked by\s+ada: no longer needed/m)
    const again = await cliFailure(revoke({ tokenId: id, json: false }))
    expect(again.exitCode).toBe(2)
    expect(again.message).toContain("already revoked")
    const unknown = await cliFailure(revoke({ tokenId: "nope", json: false }))
    expect(unknown.message).toContain("no capability token nope")
  })

  it("the principal defaults to ASTRID_PRINCIPAL, else the OS user name", () => {
    process.env["ASTRID_PRINCIPAL"] = "zed"
    expect(currentPrincipal()).toBe("zed")
    delete process.env["ASTRID_PRINCIPAL"]
    expect(currentPrincipal()).toMatch(/\S/)
  })
})
