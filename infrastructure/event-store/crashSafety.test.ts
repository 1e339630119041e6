/**
 * Crash safety of the SQLite store: a real child process (test/fixtures/appendLoop.ts) appends batches
 * through EventLog until it is SIGKILLed mid-loop; the store is then reopened and must hold every
 * acknowledged event, no partial batch, and a log that verifies with zero issues. Three kills, at
 * different moments, on the same file: each child also starts on a store its predecessor crashed on.
 */
import { Effect, Either, Option, Schema } from "effect"
import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { verifyStore } from "../../application/audit/verifyStore.js"
import { makeCrypto } from "../crypto/cryptoLive.js"
import { generateSecretKey, publicKeyOf } from "../crypto/ed25519.js"
import { toHex } from "../crypto/hex.js"
import { keyIdOf } from "../keys/keyFiles.js"
import { openSqliteEventStore } from "./sqliteEventStore.js"

const FIXTURE = fileURLToPath(new URL("../../test/fixtures/appendLoop.ts", import.meta.url))
// Shapes the fixture uses (kept in step with test/fixtures/appendLoop.ts).
const BATCH = 5
const STREAMS = ["astrid-session-crash-a", "astrid-session-crash-b", "astrid-principal-crash-c"]

const Ack = Schema.Struct({ stream: Schema.String, revisions: Schema.Array(Schema.Int), eventIds: Schema.Array(Schema.String) })
type Ack = typeof Ack.Type
const decodeAck = Schema.decodeUnknownEither(Schema.parseJson(Ack))
const decodeCorrelation = Schema.decodeUnknownEither(Schema.parseJson(Schema.Struct({ correlationId: Schema.String })))

interface ChildRun {
  readonly acks: ReadonlyArray<Ack>
  /** Complete stdout lines that were not acknowledgements (warnings, errors). */
  readonly otherLines: ReadonlyArray<string>
  readonly stderr: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** Runs the append loop and SIGKILLs it once `killAfter` appends have been acknowledged. */
const runUntilKilled = (path: string, secretHex: string, killAfter: number): Promise<ChildRun> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", FIXTURE, path], {
      env: { ...process.env, ASTRID_TEST_SECRET_KEY: secretHex },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const acks: Array<Ack> = []
    const otherLines: Array<string> = []
    let stderr = ""
    let pending = ""
    // A child that never gets there is killed too; the test then fails on the count.
    const giveUp = setTimeout(() => child.kill("SIGKILL"), 20_000)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      pending += chunk
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        const ack = line.startsWith("ACK ") ? decodeAck(line.slice(4)) : undefined
        if (ack !== undefined && Either.isRight(ack)) acks.push(ack.right)
        else otherLines.push(line)
      }
      if (acks.length >= killAfter) child.kill("SIGKILL")
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("error", reject)
    // "close" comes after stdout has been read to its end, so every line the child wrote is counted.
    child.on("close", (code, signal) => {
      clearTimeout(giveUp)
      resolve({ acks, otherLines, stderr, code, signal })
    })
  })

describe("SQLite store under SIGKILL", () => {
  let dir = ""
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "astrid-crash-"))
  })
  afterAll(async () => {
    if (dir !== "") await rm(dir, { recursive: true, force: true })
  })

  it("keeps every acknowledged append, never a partial batch, and a clean chain, over three kills", async () => {
    const path = join(dir, "astrid.db")
    const secret = generateSecretKey()
    const publicKey = publicKeyOf(secret)
    const trustedKeys = new Map([[await keyIdOf(publicKey), toHex(publicKey)]])
    const crypto = await makeCrypto()
    const acknowledged: Array<Ack> = []

    for (const killAfter of [230, 370, 510]) {
      const run = await runUntilKilled(path, toHex(secret), killAfter)
      const context = `kill after ${killAfter}: exit ${String(run.code)} ${String(run.signal)}; stderr: ${run.stderr}`
      expect(run.signal, context).toBe("SIGKILL")
      expect(run.acks.length, context).toBeGreaterThanOrEqual(killAfter)
      expect(run.otherLines, context).toEqual([])
      for (const ack of run.acks) {
        expect(ack.eventIds).toHaveLength(BATCH)
        expect(STREAMS).toContain(ack.stream)
      }
      acknowledged.push(...run.acks)

      const opened = await Effect.runPromise(openSqliteEventStore({ path, mode: "read" }))
      try {
        const store = opened.api
        const check = Effect.gen(function* () {
          for (const ack of acknowledged) {
            for (const [k, eventId] of ack.eventIds.entries()) {
              const found = yield* store.findEvent(eventId)
              if (Option.isNone(found)) return expect.fail(`acknowledged event ${eventId} (${ack.stream}@${String(ack.revisions[k])}) is gone`)
              expect({ stream: found.value.stream, revision: found.value.revision }).toEqual({ stream: ack.stream, revision: ack.revisions[k] })
            }
          }

          for (const stream of STREAMS) {
            const events = yield* store.readStream(stream)
            expect(events.length % BATCH, `${stream} holds ${events.length} events`).toBe(0)
            // EventLog gives every event of one append the same correlation id: each batch is all there.
            const batches = new Map<string, Array<number>>()
            for (const e of events) {
              const meta = decodeCorrelation(e.metadata)
              if (Either.isLeft(meta)) return expect.fail(`${stream}@${e.revision} has unreadable metadata`)
              batches.set(meta.right.correlationId, [...(batches.get(meta.right.correlationId) ?? []), e.revision])
            }
            for (const [correlationId, revisions] of batches) {
              const first = revisions[0] ?? -1
              expect(revisions, `batch ${correlationId} in ${stream}`).toEqual(Array.from({ length: BATCH }, (_, i) => first + i))
            }
          }

          const report = yield* verifyStore(store, { trustedKeys, blake3Hex: crypto.blake3Hex, verifyText: crypto.verifyText })
          expect(report.issues).toEqual([])
          expect(report.ok).toBe(true)
          expect(report.checkpoints).toBeGreaterThan(0)
          expect(report.events).toBeGreaterThanOrEqual(acknowledged.length * BATCH)
        })
        await Effect.runPromise(check)
      } finally {
        opened.close()
      }
    }
    // Each child went on from where the last one was killed, so the rounds add up.
    expect(new Set(acknowledged.flatMap((a) => a.eventIds)).size).toBe(acknowledged.length * BATCH)
  })
})
