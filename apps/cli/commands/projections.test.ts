/**
 * `astrid projections rebuild|status` and `caughtUpViews`, run in-process against a real ASTRID_HOME
 * (the command is wired into main.ts separately; the bin's own tests cover argument parsing).
 */
import { Effect, Either } from "effect"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it, vi } from "vitest"
import { budgetReserved, deferralQueued, type Harness, noise, openHarness, tokenGranted } from "../../../test/projectionFixtures.js"
import { listPending } from "../../../projections/pendingApprovalsView.js"
import { config } from "../runtime.js"
import { caughtUpViews, rebuild, status } from "./projections.js"

const cleanup: Array<() => void> = []
afterEach(() => {
  for (const c of cleanup.splice(0).reverse()) c()
  vi.restoreAllMocks()
})

const home = async (): Promise<Harness> => {
  const h = await openHarness()
  cleanup.push(() => h.close())
  process.env["ASTRID_HOME"] = h.dir
  return h
}

/** Runs a command, returning what it printed to stdout. */
const stdoutOf = async <E>(effect: Effect.Effect<void, E>): Promise<string> => {
  let out = ""
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk)
    return true
  })
  try {
    await Effect.runPromise(effect)
  } finally {
    vi.restoreAllMocks()
  }
  return out
}

const jsonOf = async <E>(effect: Effect.Effect<void, E>): Promise<unknown> => JSON.parse(await stdoutOf(effect))

const seed = async (h: Harness): Promise<void> => {
  for (const e of [tokenGranted("alice", "t1"), budgetReserved("session", "s1", "r1", 5), deferralQueued("q1", "alice", 3), noise(1)]) {
    await h.append(e.stream, [e.draft])
  }
}

describe("astrid projections", () => {
  it("status reports views not built yet without creating anything", async () => {
    const h = await home()
    await seed(h)
    const report = await jsonOf(status({ json: true }))
    expect(report).toMatchObject({
      exists: false,
      logEnd: 4,
      projections: [
        { name: "budgets", version: 2, storedVersion: null, state: "not built", position: 0, logEnd: 4, behind: 4, rows: 0 },
        { name: "tokens", state: "not built", behind: 4, rows: 0, tables: { tokens: 0 } },
        { name: "pending-approvals", state: "not built", behind: 4, rows: 0 },
        { name: "sessions", state: "not built", behind: 4, rows: 0, tables: { sessions: 0 } }
      ]
    })
    expect(existsSync(join(h.dir, "projections.db"))).toBe(false)
    const text = await stdoutOf(status({ json: false }))
    expect(text).toMatch(/^PROJECTION\s+VERSION\s+STATE\s+POSITION\s+LOG END\s+BEHIND\s+ROWS\n/)
    expect(text).toMatch(/\nbudgets\s+2\s+not built\s+0\s+4\s+4\s+0\n/)
  })

  it("rebuild builds every view to the end of the log; status then shows them current, then behind", async () => {
    const h = await home()
    await seed(h)
    const rebuilt = await jsonOf(rebuild({ names: [], json: true }))
    expect(rebuilt).toMatchObject({
      database: join(h.dir, "projections.db"),
      projections: [
        { name: "budgets", position: 4, events: 4, rebuilt: "requested", rows: 2, tables: { budget_streams: 1, budget_reservations: 1 } },
        { name: "tokens", position: 4, rows: 1 },
        { name: "pending-approvals", position: 4, rows: 1 },
        { name: "sessions", position: 4 }
      ]
    })
    expect(await jsonOf(status({ json: true }))).toMatchObject({
      exists: true,
      projections: [
        { name: "budgets", state: "current", storedVersion: 2, position: 4, behind: 0, rows: 2 },
        { name: "tokens", state: "current", behind: 0 },
        { name: "pending-approvals", state: "current", behind: 0 },
        { name: "sessions", state: "current", behind: 0 }
      ]
    })
    await h.append(noise(2).stream, [noise(2).draft])
    expect(await jsonOf(status({ json: true }))).toMatchObject({ logEnd: 5, projections: [{ state: "behind", behind: 1 }, {}, {}, {}] })

    const one = await stdoutOf(rebuild({ names: ["tokens", "tokens"], json: false }))
    expect(one).toMatch(/^PROJECTION\s+VERSION\s+EVENTS READ\s+POSITION\s+ROWS\ntokens\s+1\s+5\s+5\s+1\n/)
  })

  it("refuses unknown names with one line and exit code 2, before touching anything", async () => {
    const h = await home()
    await seed(h)
    const failed = await Effect.runPromise(Effect.either(rebuild({ names: ["budgets", "nope"], json: false })))
    expect(Either.isLeft(failed)).toBe(true)
    if (Either.isLeft(failed)) {
      expect(failed.left.exitCode).toBe(2)
      expect(failed.left.message).toBe(
        "unknown projection 'nope'; the projections are budgets, tokens, pending-approvals, sessions ('astrid projections status' lists them)"
      )
    }
    expect(existsSync(join(h.dir, "projections.db"))).toBe(false)
  })

  it("caughtUpViews gives views that include every event appended so far", async () => {
    const h = await home()
    await seed(h)
    const q = deferralQueued("q2", "alice", 7)
    await h.append(q.stream, [q.draft])
    const pending = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const views = yield* caughtUpViews(yield* config)
          return yield* listPending(views, { principal: "alice" })
        })
      )
    )
    expect(pending.map((r) => r.request_id)).toEqual(["q2", "q1"])
  })

  it("treats a home without an event store as an empty log", async () => {
    const dir = mkdtempSync(join(tmpdir(), "astrid-empty-"))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    process.env["ASTRID_HOME"] = dir
    expect(await jsonOf(status({ json: true }))).toMatchObject({ exists: false, logEnd: 0, projections: [{ behind: 0 }, {}, {}, {}] })
    expect(await jsonOf(rebuild({ names: ["budgets"], json: true }))).toMatchObject({ projections: [{ name: "budgets", position: 0, rows: 0 }] })
    expect(existsSync(join(dir, "astrid.db"))).toBe(false)
  })
})
