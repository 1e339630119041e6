/**
 * `astrid store copy` as a user meets it: the built bin run as a child process, a real SQLite store under a
 * temporary ASTRID_HOME, and the EventStoreDB protocol stand-in (an in-process gRPC server on loopback,
 * standing in for a server that cannot run here) started by this test. Run `npm run build` first.
 */
import { spawn } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EventStoreApi, EventStoreError } from "../../application/ports/eventStore.js"
import { copyEvents } from "../../application/storeCopy.js"
import type { RecordedEvent } from "../../domain/envelope.js"
import { STREAM_PREFIX } from "../../domain/streams.js"
import { type EsdbStandIn, startEsdbStandIn } from "../../infrastructure/event-store/esdbStandIn.js"
import { openSqliteEventStore } from "../../infrastructure/event-store/sqliteEventStore.js"
import { readEverything } from "../../test/eventStoreContract.js"
import { seedStore, tempHome } from "../../test/seedStore.js"

const BIN = fileURLToPath(new URL("../../bin/astrid.mjs", import.meta.url))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI without blocking this process, which serves the stand-in the CLI talks to. */
const astrid = (home: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env["PATH"] ?? "", ASTRID_HOME: home, ASTRID_BUSY_TIMEOUT_MS: "300", NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const json = (r: Run): Record<string, unknown> => {
  const v: unknown = JSON.parse(r.stdout)
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`expected a JSON object, got ${r.stdout}`)
  return Object.fromEntries(Object.entries(v))
}

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? Object.fromEntries(Object.entries(value))[key] : undefined

/** A one-line error on stderr, no stack trace, nothing on stdout. */
const expectOneLineError = (r: Run, pattern: RegExp): void => {
  expect(r.code).toBe(2)
  expect(r.stdout).toBe("")
  const lines = r.stderr.trimEnd().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^astrid: /)
  expect(lines[0]).toMatch(pattern)
}

/** Every astrid- event of a SQLite store, without positions (which are each store's own). */
const historyOf = (path: string) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close()))
        const events = yield* readEverything(store.api, 1000, STREAM_PREFIX)
        return events.map(({ position: _position, ...rest }: RecordedEvent) => rest)
      })
    )
  )

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

let standIn: EsdbStandIn
let home: string
let original: Awaited<ReturnType<typeof historyOf>>

beforeAll(async () => {
  standIn = await startEsdbStandIn()
  home = tempHome()
  // Two rounds, each signed: four streams, two checkpoints, streams interleaved across rounds.
  await seedStore(home, { streams: ["astrid-session-s1", "astrid-session-s2"], perStream: 4, checkpoint: true })
  await seedStore(home, { streams: ["astrid-session-s3", "astrid-session-s1"], perStream: 3, checkpoint: true, withKey: false })
  original = await historyOf(join(home, "astrid.db"))
})

afterAll(async () => {
  await standIn.close()
})

describe("astrid store copy", () => {
  it("copies the configured SQLite store into a new SQLite file with every hash, and copies nothing the second time", async () => {
    const target = join(tempHome(), "nested", "copy.db")
    const first = await astrid(home, ["store", "copy", "--to", target, "--json"])
    expect(first.stderr).toBe("")
    expect(first.code).toBe(0)
    const r = json(first)
    expect(r).toMatchObject({ copied: original.length, skipped: 0, streams: 4, ok: true, target })
    expect(field(r["verify"], "checkpoints")).toBe(2)
    expect(field(r["verify"], "issues")).toEqual([])
    expect(await historyOf(target)).toEqual(original)

    const again = await astrid(home, ["store", "copy", "--to", target])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(new RegExp(`^copied 0 event\\(s\\) in 4 stream\\(s\\) from .* to ${target} in [0-9.]+ s \\(${original.length} already there, skipped\\)\\n`))
    expect(again.stdout).toContain(`copy verified: ${original.length} events in 4 streams, 2 checkpoints`)
    expect(await historyOf(target)).toEqual(original)
  })

  it("copies to EventStoreDB, where `audit verify` proves it, and back to SQLite unchanged", async () => {
    standIn.reset()
    const to = await astrid(home, ["store", "copy", "--to", standIn.url, "--json"])
    expect(to.code).toBe(0)
    expect(json(to)).toMatchObject({ copied: original.length, ok: true })

    // The copied history, verified by the ordinary command against the stand-in with the home's key.
    const verified = await astrid(home, ["audit", "verify", "--json"], { ASTRID_EVENT_STORE_URL: standIn.url })
    expect(verified.code).toBe(0)
    expect(json(verified)).toMatchObject({ ok: true, events: original.length, streams: 4, checkpoints: 2, issues: [] })

    // kurrentdb:// names the same server: the copy finds everything there.
    const kurrent = standIn.url.replace(/^esdb:/, "kurrentdb:")
    expect(json(await astrid(home, ["store", "copy", "--to", kurrent, "--json"]))).toMatchObject({ copied: 0, skipped: original.length, ok: true })

    const back = join(tempHome(), "back.db")
    const returned = await astrid(home, ["store", "copy", "--from", standIn.url, "--to", back, "--json"])
    expect(returned.code).toBe(0)
    expect(json(returned)).toMatchObject({ copied: original.length, ok: true })
    expect(await historyOf(back)).toEqual(original)
  })

  it("resumes a copy that an earlier run left half done", async () => {
    const target = join(tempHome(), "partial.db")
    // An earlier run stopped after 3 appends: the target holds a prefix of the history, whole events only.
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const open = (path: string, mode: "read" | "write") =>
            Effect.acquireRelease(openSqliteEventStore({ path, mode }), (s) => Effect.sync(() => s.close()))
          const from = yield* open(join(home, "astrid.db"), "read")
          const to = yield* open(target, "write")
          let appends = 0
          const stopping: EventStoreApi = {
            ...to.api,
            append: (stream, expected, events) =>
              ++appends > 3 ? Effect.fail(new EventStoreError({ kind: "io", message: "interrupted" })) : to.api.append(stream, expected, events)
          }
          yield* Effect.either(copyEvents(from.api, stopping, { batchEvents: 2 }))
        })
      )
    )
    const partial = await historyOf(target)
    expect(partial.length).toBe(6)
    const r = await astrid(home, ["store", "copy", "--to", target, "--json"])
    expect(r.code).toBe(0)
    expect(json(r)).toMatchObject({ copied: original.length - 6, skipped: 6, ok: true })
    expect(await historyOf(target)).toEqual(original)
  })

  it("exits 1 when the copy does not verify under the keys it is told to trust", async () => {
    const stranger = "ab".repeat(32)
    const r = await astrid(home, ["store", "copy", "--to", join(tempHome(), "c.db"), "--trusted-key", stranger])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/copy NOT intact: 2 issue\(s\)/)
    expect(r.stdout).toMatch(/untrusted_key/)
  })

  it("refuses bad targets in one line with exit 2", async () => {
    const dir = tempHome()
    const notAStore = join(dir, "notes.txt")
    writeFileSync(notAStore, "not a database, just text that is long enough to not look like an empty file\n".repeat(20))
    mkdirSync(join(dir, "a-folder"))
    const port = await freePort()

    expectOneLineError(await astrid(home, ["store", "copy", "--to", "ftp://example.org/store"]), /not an EventStoreDB URL; use esdb:\/\//)
    expectOneLineError(await astrid(home, ["store", "copy", "--to", `esdb://127.0.0.1:${port}?tls=false`]), /cannot reach the event store at esdb:\/\/127\.0\.0\.1/)
    expectOneLineError(await astrid(home, ["store", "copy", "--to", notAStore]), /notes\.txt is not a readable SQLite database/)
    expect(readFileSync(notAStore, "utf8")).toMatch(/^not a database/)
    expectOneLineError(await astrid(home, ["store", "copy", "--to", join(dir, "a-folder")]), /a-folder/)
    expectOneLineError(await astrid(home, ["store", "copy", "--to", join(home, "astrid.db")]), /the source and the target are the same store/)
    expectOneLineError(await astrid(home, ["store", "copy", "--to", join(dir, "x.db"), "--from", join(dir, "missing.db")]), /--from .*missing\.db: no such file/)
  })

  it("refuses a target that holds another history, and leaves it as it was", async () => {
    const otherHome = tempHome()
    await seedStore(otherHome, { streams: ["astrid-session-s1"], perStream: 2, checkpoint: false })
    const before = await historyOf(join(otherHome, "astrid.db"))
    const r = await astrid(home, ["store", "copy", "--to", join(otherHome, "astrid.db")])
    expectOneLineError(r, /holds a different history: astrid-session-s1@1 is event .* there but event .* in the source/)
    expect(await historyOf(join(otherHome, "astrid.db"))).toEqual(before)
  })
})
