/**
 * `astrid run` end to end: the built CLI as a child process, a temp ASTRID_HOME with a real SQLite store, a
 * temp workspace, scripted model turns and approvals answered from a file.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { openSqliteEventStore } from "../../infrastructure/event-store/sqliteEventStore.js"
import { tempHome } from "../../test/seedStore.js"

const BIN = fileURLToPath(new URL("../../bin/astrid.mjs", import.meta.url))

const astrid = (home: string, args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", ASTRID_HOME: home, ASTRID_PRINCIPAL: "alice", NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 90_000
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const parse = (text: string): unknown => JSON.parse(text)

/** A home, a workspace and a scratch dir outside it for scripts, answers and out-of-workspace writes. */
const setup = () => {
  const home = tempHome()
  // The workspace lies outside ASTRID_HOME: the runtime's own state is off limits to agent tools.
  const workspace = join(tempHome(), "ws")
  mkdirSync(workspace)
  const outside = mkdtempSync(join(tmpdir(), "astrid-run-outside-"))
  const file = (name: string, content: string) => {
    const path = join(outside, name)
    writeFileSync(path, content)
    return path
  }
  return { home, workspace, outside, file }
}

const jsonl = (...turns: ReadonlyArray<unknown>) => turns.map((t) => JSON.stringify(t)).join("\n")

const writeScript = (target: string) =>
  jsonl(
    { content: [{ type: "tool_call", id: "w1", name: "write_file", input: { path: target, content: "from the script\n" } }] },
    { content: [{ type: "text", text: "written" }] }
  )

const decisionsOf = (stdout: string): ReadonlyArray<unknown> => {
  const out = parse(stdout)
  return typeof out === "object" && out !== null && "decisions" in out && Array.isArray(out.decisions) ? out.decisions : []
}

describe("astrid run", () => {
  it("replays a script that reads a workspace file, prints the answer, and leaves an intact log", () => {
    const { home, workspace, file } = setup()
    writeFileSync(join(workspace, "notes.txt"), "the launch is on Tuesday\n")
    const script = file(
      "read.jsonl",
      jsonl(
        { content: [{ type: "text", text: "Reading." }, { type: "tool_call", name: "read_file", input: { path: "notes.txt" } }] },
        { content: [{ type: "text", text: "The launch is on Tuesday." }] }
      )
    )
    const r = astrid(home, ["run", "--script", script, "--workspace", workspace, "--prompt", "when is the launch?"])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("The launch is on Tuesday.")
    expect(r.stdout).toMatch(/notes\.txt: allowed/)
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })

  it("an 'always' answer allows a write outside the workspace, and a second run passes on the token alone", () => {
    const { home, workspace, outside, file } = setup()
    expect(astrid(home, ["keys", "generate"]).code).toBe(0)
    const target = join(outside, "out.txt")
    const script = file("write.jsonl", writeScript(target))
    const answers = file("answers.json", JSON.stringify([{ answer: "always", match: target }]))

    const first = astrid(home, ["run", "--script", script, "--workspace", workspace, "--answers", answers, "--json"])
    expect(first.code).toBe(0)
    expect(decisionsOf(first.stdout)).toEqual([expect.objectContaining({ decision: "Allowed", detail: expect.stringContaining("answers-file") })])
    expect(readFileSync(target, "utf8")).toBe("from the script\n")

    const second = astrid(home, ["run", "--script", script, "--workspace", workspace, "--answers", file("none.json", "[]"), "--json"])
    expect(second.code).toBe(0)
    expect(decisionsOf(second.stdout)).toEqual([expect.objectContaining({ decision: "Allowed", detail: "token" })])
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })

  it("without --answers the write is deferred, nothing is written, and the queue shows it", () => {
    const { home, workspace, outside, file } = setup()
    const target = join(outside, "deferred.txt")
    const r = astrid(home, ["run", "--script", file("write.jsonl", writeScript(target)), "--workspace", workspace, "--json"])
    expect(r.code).toBe(0)
    expect(decisionsOf(r.stdout)).toEqual([expect.objectContaining({ decision: "Deferred" })])
    expect(existsSync(target)).toBe(false)
    const queue = parse(astrid(home, ["approvals", "list", "--json"]).stdout)
    expect(queue).toEqual([expect.objectContaining({ summary: expect.stringContaining(target), reason: "no_channel" })])
  })

  it("an answer whose match does not fit the action is not used, so the action is deferred", () => {
    const { home, workspace, outside, file } = setup()
    const target = join(outside, "other.txt")
    const answers = file("answers.json", JSON.stringify([{ answer: "once", match: "something-else" }]))
    const r = astrid(home, ["run", "--script", file("write.jsonl", writeScript(target)), "--workspace", workspace, "--answers", answers, "--json"])
    expect(r.code).toBe(0)
    expect(decisionsOf(r.stdout)).toEqual([expect.objectContaining({ decision: "Deferred" })])
    expect(existsSync(target)).toBe(false)
  })

  it("a missing or malformed script, or a malformed answers file, is one line on stderr and exit 2", () => {
    const { home, workspace, file } = setup()
    const missing = astrid(home, ["run", "--script", join(workspace, "nope.jsonl"), "--workspace", workspace])
    expect(missing.code).toBe(2)
    expect(missing.stderr.trim().split("\n")).toHaveLength(1)
    expect(missing.stderr).toContain("nope.jsonl")

    const malformed = astrid(home, ["run", "--script", file("bad.jsonl", "{not json\n"), "--workspace", workspace])
    expect(malformed.code).toBe(2)
    expect(malformed.stderr.trim().split("\n")).toHaveLength(1)

    const script = file("ok.jsonl", jsonl({ content: [{ type: "text", text: "hi" }] }))
    const badAnswers = astrid(home, ["run", "--script", script, "--workspace", workspace, "--answers", file("a.json", '[{"answer":"maybe"}]')])
    expect(badAnswers.code).toBe(2)
    expect(badAnswers.stderr.trim().split("\n")).toHaveLength(1)
  })

  describe("model calls paid from the budget, as in chat", () => {
    /**
     * A home whose config prices the scripted model at 1 micro-dollar per input token and per output token,
     * and a workspace of its own (outside the home, which agent tools may not touch).
     */
    const pricedSetup = (budget: string) => {
      const ctx = setup()
      writeFileSync(
        join(ctx.home, "config.toml"),
        `[llm]\nmax_tokens = 100\n\n[llm.prices.scripted]\ninput_per_million = 1000000\noutput_per_million = 1000000\n\n[security.budget]\n${budget}\n`
      )
      return { ...ctx, workspace: mkdtempSync(join(tmpdir(), "astrid-run-ws-")) }
    }

    interface TimelineEntry {
      readonly type: string
      readonly data?: Record<string, unknown>
    }
    const showSession = (home: string, sessionId: string) => {
      const shown = astrid(home, ["sessions", "show", sessionId, "--json"])
      expect(shown.code).toBe(0)
      const out = parse(shown.stdout)
      if (typeof out !== "object" || out === null || !("timeline" in out) || !Array.isArray(out.timeline) || !("session" in out)) throw new Error(`unexpected show output: ${shown.stdout}`)
      const timeline: ReadonlyArray<TimelineEntry> = out.timeline
      return { timeline, session: out.session }
    }
    /** Budget events on the workspace streams, read from the SQLite file itself. */
    const workspaceBudgetEvents = async (home: string) => {
      const opened = await Effect.runPromise(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "read" }))
      try {
        const all = await Effect.runPromise(opened.api.readAll({ after: 0, maxCount: 10_000 }))
        return all
          .filter((e) => e.stream.startsWith("astrid-workspace-") && e.type.startsWith("Budget"))
          .map((e) => {
            const data: unknown = JSON.parse(e.data)
            if (typeof data !== "object" || data === null) throw new Error(`event data is not an object: ${e.data}`)
            return { type: e.type, data: Object.fromEntries(Object.entries(data)) }
          })
      } finally {
        opened.close()
      }
    }
    const sessionIdOf = (stdout: string): string => {
      const out = parse(stdout)
      if (typeof out !== "object" || out === null || !("sessionId" in out) || typeof out.sessionId !== "string") throw new Error(`no session id in ${stdout}`)
      return out.sessionId
    }

    it("reserves before each model call and commits what its usage cost, on the session and the workspace", async () => {
      const { home, workspace, file } = pricedSetup("per_session_micros = 10000000")
      const script = file(
        "priced.jsonl",
        jsonl(
          { content: [{ type: "tool_call", id: "l1", name: "list_directory", input: { path: "." } }], usage: { input_tokens: 300, output_tokens: 20 } },
          { content: [{ type: "text", text: "listed" }], usage: { input_tokens: 400, output_tokens: 5 } }
        )
      )
      const r = astrid(home, ["run", "--script", script, "--workspace", workspace, "--json"])
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      expect(parse(r.stdout)).toMatchObject({ stopReason: "end_turn", steps: 2, notes: [] })
      const { timeline, session } = showSession(home, sessionIdOf(r.stdout))
      const budget = timeline.filter((e) => e.type.startsWith("Budget"))
      expect(budget.map((e) => e.type)).toEqual(["BudgetReserved", "BudgetCommitted", "BudgetReleased", "BudgetReserved", "BudgetCommitted", "BudgetReleased"])
      for (const e of budget.filter((b) => b.type === "BudgetReserved")) {
        expect(e.data).toMatchObject({ actionId: expect.stringMatching(/^llm-/), scope: "session", limitMicros: 10_000_000 })
      }
      expect(budget.filter((e) => e.type === "BudgetCommitted").map((e) => e.data?.["amountMicros"])).toEqual([320, 405])
      expect(session).toMatchObject({ llmCostMicros: 725, spendMicros: 725 })
      // The workspace stream the interceptor charges tools to carries the same reservations and commits.
      const workspaceBudget = await workspaceBudgetEvents(home)
      expect(workspaceBudget.map((e) => e.type)).toEqual(budget.map((e) => e.type))
      expect(workspaceBudget.filter((e) => e.type === "BudgetCommitted").map((e) => e.data["amountMicros"])).toEqual([320, 405])
      expect(astrid(home, ["audit", "verify"]).code).toBe(0)
    })

    it("a call that costs more than reserved is charged in full, the overrun recorded, and the next call does not start", () => {
      const { home, workspace, file } = pricedSetup("per_session_micros = 60000")
      const script = file(
        "overrun.jsonl",
        jsonl(
          { content: [{ type: "tool_call", id: "l1", name: "list_directory", input: { path: "." } }], usage: { input_tokens: 61000, output_tokens: 0 } },
          { content: [{ type: "text", text: "never" }], usage: { input_tokens: 10, output_tokens: 0 } }
        )
      )
      const r = astrid(home, ["run", "--script", script, "--workspace", workspace, "--json"])
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      const out = parse(r.stdout)
      expect(out).toMatchObject({ stopReason: "budget", steps: 1 })
      expect(out).toMatchObject({
        notes: [expect.stringMatching(/^the model call cost \$0\.061, .* more than the .* reserved for it/), expect.stringMatching(/does not fit the budget: the session budget is used up/)]
      })
      const { timeline, session } = showSession(home, sessionIdOf(r.stdout))
      const reserved = timeline.find((e) => e.type === "BudgetReserved")?.data?.["amountMicros"]
      expect(typeof reserved === "number" && reserved < 60_000).toBe(true)
      expect(timeline.filter((e) => e.type === "BudgetCommitted").map((e) => e.data)).toEqual([
        { reservationId: expect.any(String), amountMicros: 61_000, overrunMicros: 61_000 - Number(reserved) }
      ])
      expect(session).toMatchObject({ spendMicros: 61_000 })
      const human = astrid(home, ["run", "--script", script, "--workspace", workspace, "--session", sessionIdOf(r.stdout)])
      expect(human.code).toBe(0)
      expect(human.stdout).toMatch(/does not fit the budget: the session budget is used up: \$0\.061 spent of the \$0\.06 limit/)
      expect(human.stdout).toContain("stopped by budget")
      expect(astrid(home, ["audit", "verify"]).code).toBe(0)
    })
  })
})

describe("astrid run: a session's own workspace, and text shown, never obeyed by the terminal", () => {
  it("a session continues only in the workspace it was started in; without --workspace it goes back there", () => {
    const { home, workspace, file } = setup()
    const other = join(tempHome(), "other")
    mkdirSync(other)
    const script = file("hi.jsonl", jsonl({ content: [{ type: "text", text: "hello" }] }))
    expect(astrid(home, ["run", "--script", script, "--workspace", workspace, "--session", "s-run-1"]).code).toBe(0)
    const elsewhere = astrid(home, ["run", "--script", script, "--workspace", other, "--session", "s-run-1"])
    expect(elsewhere.code).toBe(2)
    expect(elsewhere.stderr).toContain("belongs to the workspace")
    // Left out, the workspace is the session's own, wherever the command runs from.
    expect(astrid(home, ["run", "--script", script, "--session", "s-run-1"]).code).toBe(0)
  })

  it("model text and denied commands with terminal control sequences are printed as visible escapes", () => {
    const { home, workspace, file } = setup()
    const script = file(
      "esc.jsonl",
      jsonl(
        { content: [{ type: "tool_call", name: "bash", input: { command: "sudo echo \u001b]0;pwned\u0007" } }] },
        { content: [{ type: "text", text: "done \u001b[2J\u001b[31mred" }] }
      )
    )
    const r = astrid(home, ["run", "--script", script, "--workspace", workspace])
    expect(r.code).toBe(0)
    expect(r.stdout).not.toContain("\u001b")
    expect(r.stdout).not.toContain("\u0007")
    expect(r.stdout).toContain("\\u001b[31mred")
    expect(r.stdout).toMatch(/denied/)
  })
})
