/**
 * `astrid approvals list|approve|deny` handlers in-process against a real SQLite file in a temporary
 * ASTRID_HOME, with what a person reads checked for terminal control sequences: a deferred action's summary
 * comes from the model's tool call and its output from the command, neither of them trusted.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { useCliCapture } from "../../../test/cliCapture.js"
import { deferredQueue } from "../../../test/deferredQueue.js"
import { bashToolErased } from "../../../infrastructure/tools/bash.js"
import { approve, deny, list } from "./approvals.js"

const capture = useCliCapture()

/** Raw control characters and bidirectional overrides: what must never reach the terminal from recorded text. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/

/** A home whose queue holds alice's bash calls, deferred because nobody could be asked. */
const deferred = async (commands: ReadonlyArray<string>) =>
  (await deferredQueue(commands.map((command) => ({ tool: bashToolErased, input: { command } })), [], capture.homes)).requestIds

describe("astrid approvals output", () => {
  it("list and deny show a summary's control characters as visible escapes", async () => {
    const [id] = await deferred(["echo '\u001b]0;pwned\u0007\u001b[2J\u009b31m\u202eok'"])
    if (id === undefined) throw new Error("no request")
    await Effect.runPromise(list({ json: false }))
    await Effect.runPromise(deny({ id, reason: "no \u001b[31mthanks", json: false }))
    expect(capture.output()).toContain("pwned")
    expect(capture.output()).toContain(`${id}: run: echo '`)
    expect(capture.output()).not.toMatch(RAW_CONTROL)
  })

  it("approve shows the command's output with its control characters as visible escapes", async () => {
    const [id] = await deferred(["printf 'a\\033]52;c;cm0gLXJmIH4=\\007\\033[2Jb\\n'"])
    if (id === undefined) throw new Error("no request")
    await Effect.runPromise(approve({ id, scope: "once", json: false }))
    expect(capture.output()).toMatch(/ran bash: /)
    expect(capture.output()).not.toMatch(RAW_CONTROL)
    expect(capture.output()).toContain("a\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2Jb")
  })
})
