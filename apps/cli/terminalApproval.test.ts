import { Effect, Either, Exit, Fiber } from "effect"
import { PassThrough } from "node:stream"
import { describe, expect, it } from "vitest"
import type { ApprovalPrompt } from "../../application/ports/approvalChannel.js"
import { describePrompt, makeTerminalApprovalChannel, TYPE_AHEAD_QUIET_MS, TYPE_AHEAD_SETTLE_MS } from "./terminalApproval.js"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Past the moment a prompt starts taking keys. */
const SHOWN = TYPE_AHEAD_SETTLE_MS + 100

const prompt: ApprovalPrompt = {
  requestId: "r1",
  actionId: "a1",
  principal: "alice",
  sessionId: "s1",
  kind: "file_write",
  resource: "file:///tmp/outside/notes.txt",
  risk: "high",
  summary: "write /tmp/outside/notes.txt",
  reason: "write outside the workspace"
}

const io = () => {
  const input = new PassThrough() as PassThrough & { isTTY?: boolean; setRawMode?: (b: boolean) => void }
  const output = new PassThrough()
  let shown = ""
  output.on("data", (d: Buffer) => (shown += d.toString("utf8")))
  return { input, output, shown: () => shown }
}

const answerWith = async (key: string) => {
  const t = io()
  const channel = makeTerminalApprovalChannel(t, { requireTerminal: false, approver: "alice" })
  const pending = Effect.runPromise(channel.ask(prompt))
  await sleep(SHOWN)
  t.input.write(key)
  return { reply: await pending, shown: t.shown() }
}

describe("terminal approval channel", () => {
  it("shows action, resource, risk and reason, and maps each key to its answer", async () => {
    const once = await answerWith("o")
    expect(once.reply).toEqual({ answer: { _tag: "AllowOnce" }, approver: "alice" })
    expect(once.shown).toContain("write /tmp/outside/notes.txt")
    expect(once.shown).toContain("file:///tmp/outside/notes.txt")
    expect(once.shown).toContain("high")
    expect(once.shown).toContain("write outside the workspace")
    for (const label of ["Allow Once", "Allow Session", "Allow Workspace", "Allow Always", "Deny"]) expect(once.shown).toContain(label)
    expect((await answerWith("s")).reply.answer._tag).toBe("AllowSession")
    expect((await answerWith("w")).reply.answer._tag).toBe("AllowWorkspace")
    expect((await answerWith("a")).reply.answer._tag).toBe("AllowAlways")
    expect((await answerWith("d")).reply.answer).toEqual({ _tag: "Deny", reason: "denied at the terminal" })
  })

  it("offers only Allow Once and Deny for an action no standing grant may cover", async () => {
    const t = io()
    const channel = makeTerminalApprovalChannel(t, { requireTerminal: false, approver: "alice" })
    const pending = Effect.runPromise(channel.ask({ ...prompt, kind: "subagent_spawn", offered: ["once"] }))
    await sleep(SHOWN)
    t.input.write("o")
    expect((await pending).answer._tag).toBe("AllowOnce")
    expect(t.shown()).toContain("Allow Once")
    for (const label of ["Allow Session", "Allow Workspace", "Allow Always"]) expect(t.shown()).not.toContain(label)
  })

  it("treats Ctrl-C and Escape at the prompt as a Deny, never an allow", async () => {
    expect((await answerWith("\u0003")).reply.answer).toEqual({ _tag: "Deny", reason: "cancelled at the approval prompt" })
    expect((await answerWith("\u001b")).reply.answer._tag).toBe("Deny")
  })

  it("is unavailable when the streams are not terminals, so the action is deferred", async () => {
    const t = io()
    const result = await Effect.runPromise(Effect.either(makeTerminalApprovalChannel(t).ask(prompt)))
    expect(Either.isLeft(result) && result.left._tag).toBe("ApprovalUnavailable")
  })

  it("stops asking when interrupted (the interceptor's approval timeout)", async () => {
    const t = io()
    const fiber = Effect.runFork(makeTerminalApprovalChannel(t, { requireTerminal: false }).ask(prompt))
    await new Promise((r) => setTimeout(r, 50))
    const exit = await Effect.runPromise(Fiber.interrupt(fiber))
    expect(Exit.isInterrupted(exit)).toBe(true)
  })

  it("keys written before the prompt was shown do not answer it; a key pressed after a pause does", async () => {
    const t = io()
    t.input.write("o")
    const channel = makeTerminalApprovalChannel(t, { requireTerminal: false, approver: "alice" })
    const fiber = Effect.runFork(channel.ask(prompt))
    await sleep(700)
    expect(fiber.unsafePoll()).toBeNull()
    t.input.write("d")
    expect((await Effect.runPromise(Fiber.join(fiber))).answer).toEqual({ _tag: "Deny", reason: "denied at the terminal" })
  })

  it("keys typed in a burst that runs into the prompt are ignored until the typing stops", async () => {
    const t = io()
    let typing = true
    const typist = (async () => {
      while (typing) {
        t.input.write("o")
        await sleep(60)
      }
    })()
    await sleep(200)
    const channel = makeTerminalApprovalChannel(t, { requireTerminal: false, approver: "alice" })
    const fiber = Effect.runFork(channel.ask(prompt))
    await sleep(800)
    typing = false
    await typist
    expect(fiber.unsafePoll()).toBeNull()
    await sleep(TYPE_AHEAD_QUIET_MS + 100)
    t.input.write("s")
    expect((await Effect.runPromise(Fiber.join(fiber))).answer._tag).toBe("AllowSession")
  })

  it("Ctrl-C typed ahead still cancels: a Deny, never an allow", async () => {
    const t = io()
    t.input.write("o\u0003")
    const reply = await Effect.runPromise(makeTerminalApprovalChannel(t, { requireTerminal: false, approver: "alice" }).ask(prompt))
    expect(reply.answer).toEqual({ _tag: "Deny", reason: "cancelled at the approval prompt" })
  })

  it("colours the risk only when asked to", () => {
    expect(describePrompt(prompt, false)).not.toContain("\u001b[")
    expect(describePrompt(prompt, true)).toContain("\u001b[31mhigh")
  })
})
