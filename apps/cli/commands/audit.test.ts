/**
 * `astrid audit list|show` handlers in-process against a real SQLite file in a temporary ASTRID_HOME: what a
 * person reads of recorded events (names, ids, a model's or a tool's text) never carries a raw control character.
 */
import { Effect, Layer, Schema } from "effect"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { useCliCapture } from "../../../test/cliCapture.js"
import { type EventDraft, EventLog, EventLogLive } from "../../../application/eventLog.js"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { AstridEvent } from "../../../domain/events/astridEvent.js"
import { sessionStream } from "../../../domain/streams.js"
import { makeCrypto } from "../../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { tempHome } from "../../../test/seedStore.js"
import { list, show } from "./audit.js"

const capture = useCliCapture()

const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
const ESC = "\u001b]52;c;cm0gLXJmIH4=\u0007\u009b2J\u202e\u007f"

const seeded = async (): Promise<string> => {
  const home = tempHome()
  capture.homes.push(home)
  process.env["ASTRID_HOME"] = home
  process.env["NO_COLOR"] = "1"
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const crypto = yield* Effect.promise(makeCrypto)
        const store = yield* Effect.acquireRelease(Effect.orDie(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "write" })), (s) => Effect.sync(() => s.close()))
        const layer = EventLogLive({ checkpointEvery: 0 }).pipe(Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive)))
        const log = yield* EventLog.pipe(Effect.provide(layer))
        const events = [
          { _tag: "SessionStarted", sessionId: "s1", workspace: `/ws${ESC}`, parentSessionId: null, model: "m" },
          { _tag: "MessageRecorded", messageId: "m1", role: "assistant", content: `text${ESC}`, inputClassification: "untrusted" }
        ]
        const drafts = events.map((e): EventDraft => ({ principal: `ada${ESC}`, sessionId: "s1", event: Schema.decodeUnknownSync(AstridEvent)(e) }))
        yield* Effect.orDie(log.append(sessionStream("s1"), "any", drafts))
      })
    )
  )
  return home
}

describe("astrid audit output", () => {
  it("list and show print recorded text with its control characters as visible escapes", async () => {
    await seeded()
    await Effect.runPromise(list({ streams: [], types: [], limit: 10, json: false }))
    await Effect.runPromise(show({ ref: `${sessionStream("s1")}@1`, json: false }))
    const out = capture.output()
    expect(out).toContain("MessageRecorded")
    expect(out).toContain("text\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u009b2J\\u202e\\u007f")
    expect(out).toContain("ada\\u001b]52;c;")
    expect(out).not.toMatch(RAW_CONTROL)
  })

  it("--json carries the same text, every control character as a JSON escape", async () => {
    await seeded()
    await Effect.runPromise(show({ ref: `${sessionStream("s1")}@1`, json: true }))
    const out = capture.output()
    expect(out).not.toMatch(RAW_CONTROL)
    expect(Schema.decodeUnknownSync(Schema.parseJson())(out)).toMatchObject({ data: { content: `text${ESC}` }, metadata: { principal: `ada${ESC}` } })
  })
})
