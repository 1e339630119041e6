/**
 * `astrid sessions list|show|delete|cleanup` handlers, run in-process against a real SQLite file in a
 * temporary ASTRID_HOME: one session recorded by `astrid run` itself (scripted model, real interceptor),
 * others appended through the real EventLog, some with the clock moved back 40 days. The command
 * definitions are parsed by @effect/cli in the last test (main.ts wires them into the bin).
 */
import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Option, Schema } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { useCliCapture } from "../../../test/cliCapture.js"
import { shiftedClock } from "../../../test/securityHarness.js"
import { type EventDraft, EventLog, EventLogLive } from "../../../application/eventLog.js"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { AstridEvent } from "../../../domain/events/astridEvent.js"
import { sessionStream } from "../../../domain/streams.js"
import { makeCrypto } from "../../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { tempHome } from "../../../test/seedStore.js"
import type { CliError } from "../cliError.js"
import { initCommand, sessionsCommand } from "../commandDefs.js"
import { run as runScript } from "./run.js"
import { cleanup, deleteSession, formatMicros, list, printable, show } from "./sessions.js"

const capture = useCliCapture()
const homes = capture.homes

const DAY = 86_400_000
const decodeEvent = Schema.decodeUnknownSync(AstridEvent)

/** A clock `offsetMs` away from the real one, for events recorded "40 days ago". */
const shifted = shiftedClock

/** Appends events to session streams of `home`'s store through the real EventLog, at a shifted clock. */
const append = (home: string, sessionId: string, principal: string, events: ReadonlyArray<Record<string, unknown>>, offsetMs = 0) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const crypto = yield* Effect.promise(makeCrypto)
        const store = yield* Effect.acquireRelease(Effect.orDie(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "write" })), (s) =>
          Effect.sync(() => s.close())
        )
        const layer = EventLogLive({ checkpointEvery: 0 }).pipe(Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, crypto), IdsLive)))
        const log = yield* EventLog.pipe(Effect.provide(layer))
        const drafts = events.map((e): EventDraft => ({ principal, sessionId, event: decodeEvent(e) }))
        yield* Effect.orDie(log.append(sessionStream(sessionId), "any", drafts).pipe(Effect.withClock(shifted(offsetMs))))
      })
    )
  )

const readStream = (home: string, sessionId: string) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Effect.acquireRelease(Effect.orDie(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "read" })), (s) =>
          Effect.sync(() => s.close())
        )
        return yield* Effect.orDie(store.api.readStream(sessionStream(sessionId)))
      })
    )
  )

const startedBy = (sessionId: string, workspace: string) => [
  { _tag: "SessionStarted", sessionId, workspace, parentSessionId: null, model: "claude-sonnet-4-5" },
  { _tag: "MessageRecorded", messageId: `m-${sessionId}`, role: "user", content: `hello from ${sessionId}`, inputClassification: "trusted" }
]

const captured = async <A>(effect: Effect.Effect<A, CliError>): Promise<string> => {
  capture.reset()
  await Effect.runPromise(effect)
  return capture.output()
}
const json = async <A>(effect: Effect.Effect<A, CliError>): Promise<unknown> => JSON.parse(await captured(effect))

const cliFailure = async (effect: Effect.Effect<unknown, CliError>): Promise<CliError> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected the command to fail")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a CliError, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

interface Seeded {
  readonly home: string
  readonly workspace: string
  /** Recorded by `astrid run`: a read_file call allowed by the guided workspace, then an answer. */
  readonly live: string
}

/**
 * ada: `live` (astrid run), `old-1` (40 days ago), `budget-1` (spend from a committed budget);
 * bob: `bob-old` (40 days ago).
 */
const seeded = async (): Promise<Seeded> => {
  const home = tempHome()
  homes.push(home)
  process.env["ASTRID_HOME"] = home
  process.env["ASTRID_PRINCIPAL"] = "ada"
  process.env["NO_COLOR"] = "1"
  // The workspace lies outside ASTRID_HOME: the runtime's own state is off limits to agent tools.
  const workspace = join(tempHome(), "ws")
  mkdirSync(workspace)
  writeFileSync(join(workspace, "notes.txt"), "the launch is on Tuesday\n")
  await append(home, "old-1", "ada", startedBy("old-1", workspace), -40 * DAY)
  await append(home, "bob-old", "bob", startedBy("bob-old", workspace), -40 * DAY)
  await append(home, "budget-1", "ada", [
    ...startedBy("budget-1", workspace),
    { _tag: "BudgetReserved", reservationId: "r1", actionId: "a1", amountMicros: 2_000_000 },
    { _tag: "BudgetCommitted", reservationId: "r1", amountMicros: 1_500_000 },
    { _tag: "LlmUsageRecorded", provider: "anthropic", model: "claude-sonnet-4-5", inputTokens: 10, outputTokens: 5, costMicros: 12_345 }
  ])
  const script = join(home, "read.jsonl")
  writeFileSync(
    script,
    [
      { content: [{ type: "text", text: "Reading." }, { type: "tool_call", name: "read_file", input: { path: "notes.txt" } }] },
      { content: [{ type: "text", text: "The launch is on \u001b[31mTuesday." }] }
    ]
      .map((t) => JSON.stringify(t))
      .join("\n")
  )
  const ran = await json(runScript({ script, workspace, prompt: "when is the launch?", json: true }))
  const live = typeof ran === "object" && ran !== null && "sessionId" in ran && typeof ran.sessionId === "string" ? ran.sessionId : ""
  expect(live).not.toBe("")
  return { home, workspace, live }
}

const ids = (value: unknown): ReadonlyArray<unknown> =>
  Array.isArray(value) ? value.map((s: unknown) => (typeof s === "object" && s !== null && "sessionId" in s ? s.sessionId : null)) : []

describe("astrid sessions", () => {
  it("list shows the principal's sessions newest first, with counts, spend and status, never another principal's", async () => {
    const { live, workspace } = await seeded()
    const rows = await json(list({ all: false, json: true }))
    expect(ids(rows)).toEqual([live, "budget-1", "old-1"])
    expect(rows).toEqual([
      expect.objectContaining({ sessionId: live, principal: "ada", status: "active", workspace, messages: 3, toolCalls: 1, model: "scripted" }),
      expect.objectContaining({ sessionId: "budget-1", llmCostMicros: 12_345, committedMicros: 1_500_000, spendMicros: 1_512_345 }),
      expect.objectContaining({ sessionId: "old-1", messages: 1 })
    ])
    const text = await captured(list({ all: false, json: false }))
    expect(text).toMatch(/SESSION\s+STARTED\s+LAST ACTIVE\s+MSGS\s+TOOLS\s+SPEND\s+STATUS\s+WORKSPACE/)
    expect(text).toMatch(/budget-1 .* \$1\.512345\s+active/)
    expect(text).not.toContain("bob-old")
    process.env["ASTRID_PRINCIPAL"] = "bob"
    expect(ids(await json(list({ all: false, json: true })))).toEqual(["bob-old"])
  })

  it("show prints the summary and the conversation in order: messages, tool calls, decisions, results", async () => {
    const { live } = await seeded()
    const text = await captured(show({ id: live, json: false }))
    expect(text).toMatch(new RegExp(`^session\\s+${live}$`, "m"))
    expect(text).toMatch(/^status\s+active$/m)
    const order = ["user       when is the launch?", "assistant  Reading.", "call     read_file", "proposed", "allowed", "result   ok", "assistant  The launch is on"]
    const at = order.map((s) => text.indexOf(s))
    expect(at.every((i) => i >= 0)).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    // A model's escape sequence is shown, never sent to the terminal.
    expect(text).not.toContain("\u001b[31m")
    expect(text).toContain("\\u001b[31mTuesday")

    const shown = await json(show({ id: live.slice(0, 20), json: true }))
    expect(shown).toMatchObject({
      session: { sessionId: live, principal: "ada", toolCalls: 1 },
      timeline: expect.arrayContaining([
        expect.objectContaining({ type: "MessageRecorded", role: "user", text: "when is the launch?", principal: "ada" }),
        expect.objectContaining({ type: "MessageRecorded", role: "assistant", text: "Reading.", toolCalls: [expect.objectContaining({ name: "read_file" })] }),
        expect.objectContaining({ type: "ActionAllowed" })
      ])
    })
  })

  it("show and delete refuse another principal's session, unknown and malformed ids, with one line and exit 2", async () => {
    await seeded()
    const foreign = await cliFailure(show({ id: "bob-old", json: false }))
    expect(foreign.exitCode).toBe(2)
    expect(foreign.message).toBe("session bob-old is not yours (you are 'ada'); a principal can only see and delete its own sessions")
    expect((await cliFailure(deleteSession({ id: "bob-old", json: false }))).message).toContain("is not yours")
    // A prefix only ever matches the principal's own sessions.
    expect((await cliFailure(show({ id: "bob", json: false }))).message).toBe("no session 'bob' for principal 'ada'; 'astrid sessions list --all' shows yours")
    expect((await cliFailure(show({ id: "nope", json: false }))).message).toContain("no session 'nope'")
    expect((await cliFailure(show({ id: "../etc", json: false }))).message).toContain("is not a session id")
    const ambiguous = await cliFailure(show({ id: "", json: false }))
    expect(ambiguous.exitCode).toBe(2)
    for (const e of [foreign, ambiguous]) expect(e.message).not.toContain("\n")
    const events = await readStream(process.env["ASTRID_HOME"] ?? "", "bob-old")
    expect(events).toHaveLength(2)
  })

  it("delete records who and why on the session's stream, keeps every event, hides it from list; a second delete changes nothing", async () => {
    const { home, live } = await seeded()
    const before = await readStream(home, live)
    const deleted = await json(deleteSession({ id: live, reason: "contains a secret", json: true }))
    expect(deleted).toMatchObject({ deleted: true, alreadyDeleted: false, session: { sessionId: live, status: "deleted", endDetail: "contains a secret", endedBy: "ada" } })
    const after = await readStream(home, live)
    expect(after.slice(0, before.length)).toEqual(before)
    expect(after).toHaveLength(before.length + 1)
    expect(after[after.length - 1]?.type).toBe("SessionEnded")
    expect(JSON.parse(after[after.length - 1]?.data ?? "{}")).toEqual({ sessionId: live, reason: "deleted", detail: "contains a secret" })

    expect(ids(await json(list({ all: false, json: true })))).not.toContain(live)
    expect(await captured(list({ all: false, json: false }))).toContain("1 deleted hidden (--all shows them)")
    expect(await json(list({ all: true, json: true }))).toEqual(expect.arrayContaining([expect.objectContaining({ sessionId: live, status: "deleted" })]))
    expect(await captured(show({ id: live, json: false }))).toMatch(/^status\s+deleted by ada at .* \(contains a secret\)$/m)

    const again = await captured(deleteSession({ id: live, json: false }))
    expect(again).toMatch(new RegExp(`^session ${live} was already deleted by ada at .* \\(contains a secret\\); nothing changed\\n$`))
    expect(await readStream(home, live)).toHaveLength(after.length)
    expect(await json(deleteSession({ id: live, json: true }))).toMatchObject({ deleted: false, alreadyDeleted: true })
  })

  it("cleanup deletes only the principal's sessions inactive for N days; --dry-run changes nothing", async () => {
    const { home, live } = await seeded()
    const dry = await json(cleanup({ olderThanDays: 30, dryRun: true, json: true }))
    expect(dry).toMatchObject({ principal: "ada", olderThanDays: 30, dryRun: true, deleted: 0 })
    expect(ids(typeof dry === "object" && dry !== null && "sessions" in dry ? dry.sessions : [])).toEqual(["old-1"])
    expect(await readStream(home, "old-1")).toHaveLength(2)
    expect(await captured(cleanup({ olderThanDays: 30, dryRun: true, json: false }))).toContain("would delete 1 session(s) of 'ada' inactive for 30 days")

    expect(await captured(cleanup({ olderThanDays: 30, dryRun: false, json: false }))).toMatch(/^deleted 1 session\(s\) of 'ada' inactive for 30 days:\n/)
    const old = await readStream(home, "old-1")
    expect(JSON.parse(old[old.length - 1]?.data ?? "{}")).toEqual({ sessionId: "old-1", reason: "deleted", detail: "cleanup: inactive 30 days" })
    expect(await readStream(home, "bob-old")).toHaveLength(2)
    expect(ids(await json(list({ all: false, json: true })))).toEqual([live, "budget-1"])
    expect(await captured(cleanup({ olderThanDays: 30, dryRun: false, json: false }))).toContain("nothing to clean up")
    expect(await json(cleanup({ olderThanDays: 50, dryRun: false, json: true }))).toMatchObject({ deleted: 0, sessions: [] })
    expect((await cliFailure(cleanup({ olderThanDays: 0, dryRun: false, json: false }))).message).toContain("--older-than must be a whole number of days, at least 1")
  })

  it("works before any event store exists: nothing listed, nothing to show", async () => {
    const home = tempHome()
    homes.push(home)
    process.env["ASTRID_HOME"] = home
    process.env["ASTRID_PRINCIPAL"] = "ada"
    expect(await json(list({ all: true, json: true }))).toEqual([])
    expect(await captured(list({ all: false, json: false }))).toContain("no sessions for principal 'ada'")
    expect((await cliFailure(show({ id: "s1", json: false }))).message).toContain("no session 's1'")
    expect(await json(cleanup({ olderThanDays: 30, dryRun: false, json: true }))).toMatchObject({ sessions: [] })
  })

  it("counts a model call's spend once (its llm- reservation is not tool spend), and a sub-agent's carve-out once", async () => {
    const home = tempHome()
    homes.push(home)
    process.env["ASTRID_HOME"] = home
    process.env["ASTRID_PRINCIPAL"] = "ada"
    process.env["NO_COLOR"] = "1"
    await append(home, "priced-1", "ada", [
      ...startedBy("priced-1", join(tempHome(), "ws")),
      // 1,000 tokens in and 1,000 out at $3 / $15 per million: $0.018, reserved and committed as the call's budget.
      { _tag: "BudgetReserved", reservationId: "m1", actionId: "llm-0001", amountMicros: 18_000 },
      { _tag: "LlmUsageRecorded", provider: "anthropic", model: "claude-sonnet-4-5", inputTokens: 1000, outputTokens: 1000, costMicros: 18_000 },
      { _tag: "BudgetCommitted", reservationId: "m1", amountMicros: 18_000 }
    ])
    expect(await json(list({ all: false, json: true }))).toEqual([expect.objectContaining({ sessionId: "priced-1", llmCostMicros: 18_000, committedMicros: 0, spendMicros: 18_000 })])
    expect(await captured(show({ id: "priced-1", json: false }))).toMatch(/^spend\s+\$0\.018 \(model \$0\.018, tools \$0, sub-agents \$0\)$/m)

    await append(home, "priced-1", "ada", [
      { _tag: "BudgetReserved", reservationId: "c1", actionId: "subagent-child-1", amountMicros: 100_000 },
      { _tag: "SubAgentStarted", childSessionId: "child-1", description: "review", tools: ["read_file"], paths: [], budgetMicros: 100_000, timeoutSeconds: 60, depth: 1, reservationId: "c1" },
      { _tag: "SubAgentFinished", childSessionId: "child-1", outcome: "completed", costMicros: 7_000, detail: null },
      { _tag: "BudgetCommitted", reservationId: "c1", amountMicros: 7_000 },
      { _tag: "BudgetReserved", reservationId: "t1", actionId: "a1", amountMicros: 500 },
      { _tag: "BudgetCommitted", reservationId: "t1", amountMicros: 500 }
    ])
    expect(await json(list({ all: false, json: true }))).toEqual([expect.objectContaining({ sessionId: "priced-1", llmCostMicros: 18_000, committedMicros: 500, spendMicros: 25_500 })])
  })

  it("show prints every recorded name and id with its control characters as visible escapes", async () => {
    const { home, workspace } = await seeded()
    const esc = "\u001b]0;x\u0007\u009b2J\u202e"
    await append(home, "esc-1", "ada", [
      ...startedBy("esc-1", workspace),
      { _tag: "ActionAllowed", actionId: "a1", proof: { _tag: "HumanApproved", approvalEventId: "e1", approver: `eve${esc}` } },
      { _tag: "ActionAllowed", actionId: "a2", proof: { _tag: "PolicyAllowed", rule: `rule${esc}` } },
      { _tag: "ActionAllowed", actionId: "a3", proof: { _tag: "TokenCovered", tokenId: `tok${esc}`, tokenHash: "h" } },
      { _tag: "ActionDeferred", actionId: "a4", requestId: `req${esc}`, priority: 1, reason: "no_channel" },
      { _tag: "SessionEnded", sessionId: "esc-1", reason: "completed", detail: null }
    ])
    const text = await captured(show({ id: "esc-1", json: false }))
    expect(text).toContain("approved by eve\\u001b]0;x")
    expect(text).toContain("rule\\u001b]0;x")
    expect(text).toContain("tok\\u001b]0;x")
    expect(text).toContain("req\\u001b]0;x")
    expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/)
  })

  it("formats money exactly and defuses control characters", () => {
    expect([0, 1, 12_345, 1_500_000, 2_000_000, 123_456_789].map(formatMicros)).toEqual(["$0", "$0.000001", "$0.012345", "$1.50", "$2.00", "$123.456789"])
    expect(printable("a\u001b[2Jb\tc\nd\u0007")).toBe("a\\u001b[2Jb\tc\nd\\u0007")
  })

  it("the command definitions parse their options and run the handlers", async () => {
    const { live } = await seeded()
    const root = Command.make("astrid").pipe(Command.withSubcommands([sessionsCommand, initCommand]))
    const cli = Command.run(root, { name: "astrid", version: "test" })
    const runCli = (...args: ReadonlyArray<string>) => captured(cli(["node", "astrid", ...args]).pipe(Effect.provide(NodeContext.layer), Effect.orDie))
    expect(JSON.parse(await runCli("sessions", "list", "--json"))).toHaveLength(3)
    expect(JSON.parse(await runCli("sessions", "cleanup", "--older-than", "35", "--dry-run", "--json"))).toMatchObject({ olderThanDays: 35, dryRun: true })
    expect(JSON.parse(await runCli("sessions", "delete", live, "--reason", "done", "--json"))).toMatchObject({ deleted: true, session: { endDetail: "done" } })
    expect(JSON.parse(await runCli("sessions", "list", "--all", "--json"))).toHaveLength(3)
    expect(JSON.parse(await runCli("sessions", "show", "old-1", "--json"))).toMatchObject({ session: { sessionId: "old-1" } })
  })
})
