/**
 * `astrid chat` end to end: the built CLI as a child process, driven through a real pseudo-terminal
 * (@lydell/node-pty) where a person would type, or through pipes; a temp ASTRID_HOME with a real SQLite
 * store; the scripted provider, or the Anthropic SDK against the loopback stand-in of its streaming API
 * (test/llmStandIns.ts) where the test must see what the model was sent.
 */
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as pty from "@lydell/node-pty"
import { afterEach, describe, expect, it } from "vitest"
import { tempHome } from "../../test/seedStore.js"
import { anthropicMessage, startStandIn, type StandIn } from "../../test/llmStandIns.js"
import { TYPE_AHEAD_QUIET_MS, TYPE_AHEAD_SETTLE_MS } from "./terminalApproval.js"

const BIN = fileURLToPath(new URL("../../bin/astrid.mjs", import.meta.url))
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]|\u001b[()][A-Z0-9]|\r/g
const plain = (s: string) => s.replace(ANSI, "")

const baseEnv = (home: string): Record<string, string> => ({
  PATH: process.env["PATH"] ?? "",
  HOME: home,
  ASTRID_HOME: home,
  ASTRID_PRINCIPAL: "alice",
  TERM: "xterm-256color"
})

const astrid = (home: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...baseEnv(home), NO_COLOR: "1", ...env }, encoding: "utf8", timeout: 90_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Like `astrid`, without blocking this process (the LLM stand-in answers from here). */
const astridAsync = (home: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...baseEnv(home), NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

const jsonl = (...turns: ReadonlyArray<unknown>) => turns.map((t) => JSON.stringify(t)).join("\n")

const setup = () => {
  const home = tempHome()
  // The workspace lies outside ASTRID_HOME: the runtime's own state is off limits to agent tools.
  const workspace = join(tempHome(), "ws")
  mkdirSync(workspace)
  const outside = mkdtempSync(join(tmpdir(), "astrid-chat-outside-"))
  const script = (...turns: ReadonlyArray<unknown>) => {
    const path = join(outside, `script-${Math.random().toString(36).slice(2)}.jsonl`)
    writeFileSync(path, jsonl(...turns))
    return path
  }
  return { home, workspace, outside, script }
}

/** A chat in a pseudo-terminal: everything it printed so far, and waits on what it prints next. */
const openTerminal = (home: string, args: ReadonlyArray<string>) => {
  let output = ""
  let exitCode: number | null = null
  const term = pty.spawn(process.execPath, [BIN, ...args], { name: "xterm-256color", cols: 120, rows: 40, cwd: home, env: baseEnv(home) })
  term.onData((d) => (output += d))
  const exited = new Promise<number>((resolve) => term.onExit((e) => resolve((exitCode = e.exitCode))))
  /** Waits until `pattern` appears in the output printed after `from` (an offset into the plain text). */
  const waitFor = async (pattern: RegExp, from = 0, timeoutMs = 30_000): Promise<number> => {
    const started = Date.now()
    for (;;) {
      const text = plain(output).slice(from)
      const m = pattern.exec(text)
      if (m !== null) return from + m.index + m[0].length
      if (exitCode !== null || Date.now() - started > timeoutMs) {
        throw new Error(`timed out waiting for ${pattern} (exit ${exitCode}); the terminal shows:\n${plain(output).slice(-3000)}`)
      }
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  return { term, waitFor, exited, text: () => plain(output), kill: () => term.kill() }
}

const sessionEvents = (home: string, sessionId: string) => {
  const r = astrid(home, ["audit", "list", "--stream", `astrid-session-${sessionId}`, "--limit", "1000", "--json"])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as ReadonlyArray<{ readonly type: string; readonly data: Record<string, unknown> }>
}

const sessionIdIn = (text: string): string => {
  const m = /session ([0-9a-f-]{36}|[A-Za-z0-9._:@-]+)/.exec(text)
  if (m?.[1] === undefined) throw new Error(`no session id in:\n${text}`)
  return m[1]
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** A person reads an approval prompt before answering; keys sooner than TYPE_AHEAD_SETTLE_MS are dropped as typed ahead. */
const PROMPT_READ_MS = TYPE_AHEAD_SETTLE_MS + 300

const terminals: Array<{ kill: () => void }> = []
afterEach(() => {
  for (const t of terminals.splice(0)) {
    try {
      t.kill()
    } catch {
      // already gone
    }
  }
})

describe("astrid chat in a terminal", () => {
  it("asks before a write outside the workspace; Allow Always writes, and the same write later passes on the token without asking", async () => {
    const { home, workspace, outside, script } = setup()
    const target = join(outside, "notes.txt")
    const turns = script(
      { content: [{ type: "text", text: "I will write the notes." }, { type: "tool_call", id: "w1", name: "write_file", input: { path: target, content: "first\n" } }] },
      { content: [{ type: "text", text: "Written. Here is **bold** and `code`." }] },
      { content: [{ type: "tool_call", id: "w2", name: "write_file", input: { path: target, content: "second\n" } }] },
      { content: [{ type: "text", text: "Written again." }] }
    )
    const t = openTerminal(home, ["chat", "--script", turns, "--workspace", workspace])
    terminals.push(t)
    let at = await t.waitFor(/you › /)
    expect(t.text()).toMatch(/new session/)
    t.term.write("please write the notes\r")
    at = await t.waitFor(/Allow Always/, at)
    const prompt = t.text()
    expect(prompt).toMatch(/Approve file_write\? /)
    expect(prompt).toContain(target)
    expect(prompt).toMatch(/risk: +(high|medium|critical)/)
    for (const label of ["Allow Once", "Allow Session", "Allow Workspace", "Deny"]) expect(prompt).toContain(label)
    expect(existsSync(target)).toBe(false)
    await sleep(PROMPT_READ_MS)
    t.term.write("a")
    at = await t.waitFor(/Written\. Here is bold and code\./, at)
    at = await t.waitFor(/you › /, at)
    expect(readFileSync(target, "utf8")).toBe("first\n")

    t.term.write("write it again\r")
    at = await t.waitFor(/Written again\./, at)
    const second = t.text().slice(t.text().indexOf("write it again"))
    expect(second).not.toMatch(/Approve file_write/)
    expect(second).toMatch(/allowed \(token/)
    expect(readFileSync(target, "utf8")).toBe("second\n")
    at = await t.waitFor(/you › /, at)

    t.term.write("/tokens\r")
    at = await t.waitFor(/file_write|write/, at)
    t.term.write("/quit\r")
    expect(await t.exited).toBe(0)

    const sessionId = sessionIdIn(t.text())
    const types = sessionEvents(home, sessionId).map((e) => e.type)
    expect(types).toContain("ApprovalGranted")
    expect(types.filter((x) => x === "ToolResultRecorded")).toHaveLength(2)
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })

  it("Ctrl-C during a turn cancels it, records the cancellation and kills the running command; the chat goes on", async () => {
    const { home, workspace, script } = setup()
    const turns = script(
      { content: [{ type: "tool_call", id: "b1", name: "bash", input: { command: "sleep 30 && echo finished > done.txt" } }] },
      { content: [{ type: "text", text: "never reached" }] }
    )
    const t = openTerminal(home, ["chat", "--script", turns, "--workspace", workspace])
    terminals.push(t)
    let at = await t.waitFor(/you › /)
    t.term.write("run the slow thing\r")
    at = await t.waitFor(/⏺ bash/, at)
    // Commands always ask, even in autonomous mode.
    at = await t.waitFor(/Allow Always/, at)
    await sleep(PROMPT_READ_MS)
    t.term.write("o")
    at = await t.waitFor(/Allow Once/, at)
    await new Promise((r) => setTimeout(r, 700))
    const started = Date.now()
    t.term.write("\u0003")
    at = await t.waitFor(/turn cancelled/, at)
    expect(Date.now() - started).toBeLessThan(10_000)
    at = await t.waitFor(/you › /, at)
    t.term.write("/quit\r")
    expect(await t.exited).toBe(0)
    expect(existsSync(join(workspace, "done.txt"))).toBe(false)
    const events = sessionEvents(home, sessionIdIn(t.text()))
    const notes = events.filter((e) => e.type === "MessageRecorded" && e.data["role"] === "system").map((e) => String(e.data["content"]))
    expect(notes.some((n) => /turn cancelled by the user/.test(n))).toBe(true)
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })

  it("keys typed while a turn runs, on into the approval prompt, do not answer it; a key pressed after a pause does", async () => {
    const { home, workspace, outside, script } = setup()
    const target = join(outside, "typed-ahead.txt")
    const turns = script(
      { content: [{ type: "tool_call", id: "b1", name: "bash", input: { command: "sleep 2" } }] },
      { content: [{ type: "tool_call", id: "w1", name: "write_file", input: { path: target, content: "x\n" } }] },
      { content: [{ type: "text", text: "All done." }] }
    )
    const t = openTerminal(home, ["chat", "--script", turns, "--workspace", workspace])
    terminals.push(t)
    let at = await t.waitFor(/you › /)
    t.term.write("go\r")
    at = await t.waitFor(/Allow Always/, at)
    await sleep(PROMPT_READ_MS)
    t.term.write("o")
    at = await t.waitFor(/Allow Once/, at)
    // The person types their next message while the command runs, straight on past the moment the next
    // prompt appears: every one of those keys is an answer key.
    let typing = true
    const typist = (async () => {
      while (typing) {
        t.term.write("o")
        await sleep(70)
      }
    })()
    at = await t.waitFor(/Approve file_write/, at)
    await sleep(700)
    typing = false
    await typist
    expect(existsSync(target)).toBe(false)
    expect(t.text().slice(at)).not.toMatch(/allowed \(approved/)
    await sleep(TYPE_AHEAD_QUIET_MS + 200)
    t.term.write("d")
    at = await t.waitFor(/All done\./, at)
    expect(existsSync(target)).toBe(false)
    at = await t.waitFor(/you › /, at)
    t.term.write("/quit\r")
    expect(await t.exited).toBe(0)
    const types = sessionEvents(home, sessionIdIn(t.text())).map((e) => e.type)
    expect(types.filter((x) => x === "ApprovalGranted")).toHaveLength(1)
    expect(types).toContain("ApprovalRefused")
  })
})

describe("astrid chat --print", () => {
  it("with no terminal to ask, a write outside the workspace is deferred, never allowed, and waits in the queue", () => {
    const { home, workspace, outside, script } = setup()
    const target = join(outside, "deferred.txt")
    const turns = script(
      { content: [{ type: "tool_call", id: "w1", name: "write_file", input: { path: target, content: "x\n" } }] },
      { content: [{ type: "text", text: "It was deferred." }] }
    )
    const r = astrid(home, ["chat", "--print", "write it", "--script", turns, "--workspace", workspace, "--json"])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as { decisions: ReadonlyArray<{ decision: string; detail: string }>; text: string; stopReason: string }
    expect(out.decisions).toEqual([expect.objectContaining({ decision: "Deferred", detail: expect.stringMatching(/^deferred: request /) })])
    expect(out).toMatchObject({ text: "It was deferred.", stopReason: "end_turn" })
    expect(existsSync(target)).toBe(false)
    const queue = JSON.parse(astrid(home, ["approvals", "list", "--json"]).stdout) as ReadonlyArray<{ summary: string }>
    expect(queue).toHaveLength(1)
    expect(queue[0]?.summary).toContain(target)
  })

  it("prints the answer on stdout and the tool lines on stderr", () => {
    const { home, workspace, script } = setup()
    writeFileSync(join(workspace, "a.txt"), "alpha\n")
    const turns = script(
      { content: [{ type: "text", text: "Reading." }, { type: "tool_call", name: "read_file", input: { path: "a.txt" } }] },
      { content: [{ type: "text", text: "It says alpha." }] }
    )
    const r = astrid(home, ["chat", "--print", "read a.txt", "--script", turns, "--workspace", workspace])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe("Reading.\nIt says alpha.\n")
    expect(r.stderr).toMatch(/⏺ read_file \{"path":"a.txt"\}/)
    expect(r.stderr).toMatch(/allowed \(policy\)/)
    expect(r.stderr).toMatch(/resume with 'astrid chat --session /)
  })

  it("the agent's own tools: an identity change always needs a person (deferred here), task runs a sub-agent in a linked session and returns its answer", () => {
    const { home, workspace, script } = setup()
    writeFileSync(join(home, "config.toml"), '[security]\nworkspace_mode = "autonomous"\npre_approved = ["agent://spawn"]\n')
    writeFileSync(join(workspace, "todo.md"), "ship it\n")
    const turns = script(
      { content: [{ type: "tool_call", id: "s1", name: "spark", input: { action: "evolve", callsign: "Wren" } }] },
      { content: [{ type: "tool_call", id: "t1", name: "task", input: { description: "read the todo", prompt: "What does todo.md say?", tools: ["read_file"] } }] },
      { content: [{ type: "tool_call", id: "c1", name: "read_file", input: { path: "todo.md" } }] },
      { content: [{ type: "text", text: "The todo says: ship it." }] },
      { content: [{ type: "text", text: "My helper found: ship it." }] }
    )
    const r = astrid(home, ["chat", "--print", "who are you and what is todo?", "--session", "parent-1", "--script", turns, "--workspace", workspace, "--json"])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as { text: string; decisions: ReadonlyArray<{ tool: string; decision: string; ok: boolean }> }
    expect(out.text).toBe("My helper found: ship it.")
    // Even in autonomous mode, with nobody at a terminal: an identity shapes every later session's prompt.
    expect(out.decisions.map((d) => `${d.tool}:${d.decision}:${d.ok}`)).toEqual(["spark:Deferred:false", "task:Allowed:true"])
    const identity = astrid(home, ["audit", "list", "--stream", "astrid-identity-alice", "--json"])
    expect(JSON.parse(identity.stdout)).toEqual([])
    const parent = sessionEvents(home, "parent-1")
    const started = parent.find((e) => e.type === "SubAgentStarted")
    expect(started).toBeDefined()
    const childId = String(started?.data["childSessionId"])
    const child = sessionEvents(home, childId)
    expect(child[0]).toMatchObject({ type: "SessionStarted", data: { parentSessionId: "parent-1" } })
    expect(child.some((e) => e.type === "ToolResultRecorded")).toBe(true)
    expect(parent.some((e) => e.type === "SubAgentFinished")).toBe(true)
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })

  it("refuses bad input with one clear line", () => {
    const { home, workspace, script } = setup()
    const turns = script({ content: [{ type: "text", text: "hi" }] })
    const noKey = astrid(home, ["chat", "--print", "hi", "--workspace", workspace])
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toMatch(/no API key for the anthropic provider: set ANTHROPIC_API_KEY/)
    const badSession = astrid(home, ["chat", "--session", "../etc", "--print", "hi", "--script", turns])
    expect(badSession.code).toBe(2)
    expect(badSession.stderr).toMatch(/is not a session id/)
    const missingScript = astrid(home, ["chat", "--print", "hi", "--script", join(home, "nope.jsonl")])
    expect(missingScript.code).toBe(2)
    expect(missingScript.stderr).toMatch(/nope\.jsonl/)
    const empty = astrid(home, ["chat", "--print", "  ", "--script", turns])
    expect(empty.code).toBe(2)
  })

  it("refuses to resume another principal's session", () => {
    const { home, workspace, script } = setup()
    const turns = script({ content: [{ type: "text", text: "hi" }] }, { content: [{ type: "text", text: "again" }] })
    expect(astrid(home, ["chat", "--session", "shared-1", "--print", "hi", "--script", turns, "--workspace", workspace]).code).toBe(0)
    const other = astrid(home, ["chat", "--session", "shared-1", "--print", "hi", "--script", turns, "--workspace", workspace], { ASTRID_PRINCIPAL: "mallory" })
    expect(other.code).toBe(2)
    expect(other.stderr).toMatch(/belongs to another principal/)
  })
})

describe("signals and resume", () => {
  let standIn: StandIn | undefined
  afterEach(async () => {
    await standIn?.close()
    standIn = undefined
  })

  it("Ctrl-C (SIGINT) during --print stops the model call, records the cancellation and releases the model-call reservation", async () => {
    const { home, workspace } = setup()
    standIn = await startStandIn([
      {
        kind: "sse",
        events: anthropicMessage({ blocks: [{ type: "text", chunks: ["Thinking"] }], stopReason: "end_turn", inputTokens: 10, outputTokens: 1 }).slice(0, 3),
        hang: true
      }
    ])
    const env = { ...baseEnv(home), NO_COLOR: "1", ANTHROPIC_API_KEY: "test-key", ASTRID_LLM_BASE_URL: standIn.baseURL }
    const child = spawn(process.execPath, [BIN, "chat", "--provider", "anthropic", "--session", "sig-1", "--print", "think hard", "--workspace", workspace], { env, stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
    const started = Date.now()
    while (standIn.requests.length === 0) {
      if (Date.now() - started > 30_000) throw new Error(`the model was never called:\n${stderr}`)
      await new Promise((r) => setTimeout(r, 25))
    }
    await new Promise((r) => setTimeout(r, 200))
    child.kill("SIGINT")
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)))
    expect(code).toBe(130)
    expect(stderr).toMatch(/interrupted/)
    const events = sessionEvents(home, "sig-1")
    const notes = events.filter((e) => e.type === "MessageRecorded" && e.data["role"] === "system").map((e) => String(e.data["content"]))
    expect(notes.some((n) => /turn cancelled by the user/.test(n))).toBe(true)
    expect(events.filter((e) => e.type === "BudgetReserved")).toHaveLength(1)
    expect(events.filter((e) => e.type === "BudgetReleased").map((e) => e.data["reason"])).toEqual(["cancelled"])
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })

  it("a session resumes in its own workspace, and refuses another", () => {
    const { home, workspace, script } = setup()
    const other = join(home, "other")
    mkdirSync(other)
    const turns = script({ content: [{ type: "text", text: "one" }] }, { content: [{ type: "text", text: "two" }] })
    expect(astrid(home, ["chat", "--session", "ws-1", "--print", "hi", "--script", turns, "--workspace", workspace]).code).toBe(0)
    const elsewhere = astrid(home, ["chat", "--session", "ws-1", "--print", "hi", "--script", turns, "--workspace", other])
    expect(elsewhere.code).toBe(2)
    expect(elsewhere.stderr).toMatch(/belongs to the workspace .*ws, not .*other/)
    const here = astrid(home, ["chat", "--session", "ws-1", "--print", "hi", "--script", turns, "--json"])
    expect(here.code, here.stderr).toBe(0)
  })

  it("refuses a model with no price unless one is configured (0 for a free model)", () => {
    const { home, workspace } = setup()
    const r = astrid(home, ["chat", "--provider", "openai", "--model", "mystery-1", "--print", "hi", "--workspace", workspace], { OPENAI_API_KEY: "k" })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/the model mystery-1 has no price.*\[llm\.prices\."mystery-1"\]/)
  })

  it("a session killed while a tool runs resumes with its whole history; the open call is closed as interrupted", async () => {
    const { home, workspace } = setup()
    // Nobody can be asked through pipes: the sleep is pre-approved so that it runs.
    writeFileSync(join(home, "config.toml"), '[security]\npre_approved = ["exec://sleep"]\n')
    writeFileSync(join(workspace, "plan.md"), "step one\n")
    standIn = await startStandIn([
      {
        kind: "sse",
        events: anthropicMessage({
          blocks: [
            { type: "text", chunks: ["Reading the plan."] },
            { type: "tool_use", id: "toolu_read", name: "read_file", jsonChunks: ['{"path":', '"plan.md"}'] }
          ],
          stopReason: "tool_use",
          inputTokens: 50,
          outputTokens: 10
        })
      },
      {
        kind: "sse",
        events: anthropicMessage({
          blocks: [{ type: "tool_use", id: "toolu_sleep", name: "bash", jsonChunks: ['{"command":"sleep 20"}'] }],
          stopReason: "tool_use",
          inputTokens: 80,
          outputTokens: 10
        })
      },
      {
        kind: "sse",
        events: anthropicMessage({ blocks: [{ type: "text", chunks: ["The sleep was interrupted."] }], stopReason: "end_turn", inputTokens: 120, outputTokens: 8 })
      }
    ])
    const env = { ...baseEnv(home), NO_COLOR: "1", ANTHROPIC_API_KEY: "test-key", ASTRID_LLM_BASE_URL: standIn.baseURL }
    const child = spawn(process.execPath, [BIN, "chat", "--provider", "anthropic", "--session", "crash-1", "--workspace", workspace], { env, stdio: ["pipe", "pipe", "pipe"] })
    let printed = ""
    child.stdout.on("data", (d: Buffer) => (printed += d.toString("utf8")))
    child.stdin.write("follow the plan\n")
    const started = Date.now()
    while (!/⏺ bash/.test(printed)) {
      if (Date.now() - started > 30_000) throw new Error(`the chat never started the bash call:\n${printed}`)
      await new Promise((r) => setTimeout(r, 25))
    }
    await new Promise((r) => setTimeout(r, 300))
    child.kill("SIGKILL")
    await new Promise((r) => child.once("exit", r))

    const resumed = await astridAsync(home, ["chat", "--provider", "anthropic", "--session", "crash-1", "--print", "what happened?", "--workspace", workspace], {
      ANTHROPIC_API_KEY: "test-key",
      ASTRID_LLM_BASE_URL: standIn.baseURL
    })
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toContain("The sleep was interrupted.")

    const request = JSON.parse(standIn.requests[2]?.body ?? "{}") as { messages: ReadonlyArray<{ role: string; content: unknown }> }
    const flat = request.messages.map((m) => `${m.role}:${JSON.stringify(m.content)}`)
    expect(flat[0]).toContain("follow the plan")
    expect(flat.join("\n")).toContain("toolu_read")
    expect(flat.join("\n")).toContain("step one")
    expect(flat.join("\n")).toContain("toolu_sleep")
    expect(flat.join("\n")).toMatch(/interrupted: the session stopped/)
    expect(flat.at(-1)).toContain("what happened?")
    expect(astrid(home, ["audit", "verify"]).code).toBe(0)
  })
})
