/**
 * I9: a grant covers exactly what a person saw. Each case reproduces a hole found by driving the runtime as
 * a hostile agent would: a token, allowance or pre-approval for one program let a whole line through.
 */
import { describe, expect, it } from "vitest"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import { commandLineResource } from "../../domain/security/commandGrant.js"
import { DEFAULT_POLICY } from "../../domain/security/policy.js"
import { principalStream, sessionStream } from "../../domain/streams.js"
import { answer, makeHarness, scriptedChannel } from "../../test/securityHarness.js"

const exec = (command: string) => ({ _tag: "command_exec", command }) as const
const deny = answer({ _tag: "Deny", reason: "not this" })
const granted = (events: ReadonlyArray<AstridEvent>) => events.flatMap((e) => (e._tag === "CapabilityTokenGranted" ? [e.token] : []))

describe("Allow Always on a command mints a grant for that line only", () => {
  it("Allow Always on `echo hi` does not cover `echo hi; cat ../outside/secret.txt` or an awk escape", async () => {
    const first = scriptedChannel(answer({ _tag: "AllowAlways" }))
    const h = await makeHarness({ channel: first })
    expect(await h.intercept({ request: exec("echo hi") })).toMatchObject({ _tag: "Allowed" })
    const tokens = granted(await h.events(principalStream("alice")))
    expect(tokens.map((t) => t.resource)).toEqual([commandLineResource("echo hi")])

    // The same line again passes on the token, unasked.
    expect(await h.intercept({ request: exec("echo hi") })).toMatchObject({ _tag: "Allowed", proof: "token" })
    expect(first.prompts).toHaveLength(1)

    for (const line of ["echo hi; cat ../outside/secret.txt", "echo hi && awk 'BEGIN{system(\"id\")}'", "echo hi | sh", "echo $(cat /tmp/x)", "echo hi there"]) {
      const d = await h.intercept({ request: exec(line) })
      expect(d, line).not.toMatchObject({ proof: "token" })
    }
  })

  it("a later program that blocked_commands names is blocked by policy before any grant is consulted", async () => {
    const h = await makeHarness({ channel: scriptedChannel(answer({ _tag: "AllowOnce" })) })
    // Even a token for exactly this line, and one for every program, cannot pass it.
    await h.run(h.tokens.mint({ principal: "alice", resource: commandLineResource("echo hi; sudo id"), permissions: ["execute"], approvalEventId: "t" }))
    await h.run(h.tokens.mint({ principal: "alice", resource: "exec://*", permissions: ["execute"], approvalEventId: "t" }))
    const d = await h.intercept({ request: exec("echo hi; sudo id") })
    expect(d).toMatchObject({ _tag: "Denied", stage: "policy" })
    const events = await h.events(sessionStream("s1"))
    expect(events.map((e) => e._tag)).toEqual(["ActionProposed", "ActionDenied"])
  })

  it("Allow Always on `bash -c 'echo hi'` mints a grant for that line, not an echo token", async () => {
    const h = await makeHarness({ channel: scriptedChannel(answer({ _tag: "AllowAlways" })) })
    await h.intercept({ request: exec("bash -c 'echo hi'") })
    const tokens = granted(await h.events(principalStream("alice")))
    expect(tokens.map((t) => t.resource)).toEqual([commandLineResource("bash -c 'echo hi'")])
    expect(await h.intercept({ request: exec("echo hi") })).not.toMatchObject({ proof: "token" })
  })
})

describe("program grants (pre_approved, exec:// tokens) cover a line only if they cover every program in it", () => {
  it("pre_approved exec://git passes `git --version` but not `git --version; cat ../secret`", async () => {
    const channel = scriptedChannel(deny)
    const h = await makeHarness({ channel, settings: { preApproved: ["exec://git"] } })
    expect(await h.intercept({ request: exec("git --version") })).toMatchObject({ _tag: "Allowed", proof: "policy" })
    expect(channel.prompts).toHaveLength(0)
    for (const line of ["git --version; cat ../secret", "git log | less", "env git status", "./git status", "PATH=. git status", "git $(echo status)", "xargs git < list"]) {
      expect(await h.intercept({ request: exec(line) }), line).toMatchObject({ _tag: "Denied", stage: "approval" })
    }
    expect(channel.prompts).toHaveLength(7)
    // Two plain git commands joined are both git: covered.
    expect(await h.intercept({ request: exec("git status && git log -1") })).toMatchObject({ _tag: "Allowed", proof: "policy" })
  })

  it("an exec://echo token does not cover `echo hi; cat x`", async () => {
    const h = await makeHarness({ channel: scriptedChannel(deny) })
    await h.run(h.tokens.mint({ principal: "alice", resource: "exec://echo", permissions: ["execute"], approvalEventId: "t" }))
    expect(await h.intercept({ request: exec("echo hi") })).toMatchObject({ _tag: "Allowed", proof: "token" })
    expect(await h.intercept({ request: exec("echo hi; cat x") })).toMatchObject({ _tag: "Denied", stage: "approval" })
  })
})

describe("session and workspace allowances", () => {
  it("Allow Session on `ls` covers `ls` again, never `ls; cat secret`", async () => {
    let n = 0
    const channel = scriptedChannel((p) => answer(n++ === 0 ? { _tag: "AllowSession" } : { _tag: "Deny", reason: null })(p))
    const h = await makeHarness({ channel })
    expect(await h.intercept({ request: exec("ls") })).toMatchObject({ _tag: "Allowed" })
    expect(await h.intercept({ request: exec("ls") })).toMatchObject({ _tag: "Allowed", proof: "allowance (session)" })
    expect(await h.intercept({ request: exec("ls; cat secret") })).toMatchObject({ _tag: "Denied", stage: "approval" })
    expect(await h.intercept({ request: exec("ls -la") })).toMatchObject({ _tag: "Denied", stage: "approval" })
  })
})

describe("what the policy asks about is asked every time, and a blocked program stays blocked wherever it hides", () => {
  it("an always_ask_tools call answered Allow Always is asked about again; no token or allowance covers it", async () => {
    const channel = scriptedChannel(answer({ _tag: "AllowAlways" }))
    const h = await makeHarness({ channel, settings: { policy: { ...DEFAULT_POLICY, alwaysAskTools: ["bank:*"] } } })
    const call = { _tag: "mcp_tool_call", server: "bank", tool: "transfer", arguments: { to: "x" } } as const
    expect(await h.intercept({ request: call })).toMatchObject({ _tag: "Allowed" })
    expect(channel.prompts[0]?.offered).toEqual(["once"])
    await h.run(h.tokens.mint({ principal: "alice", resource: "mcp://bank:*", permissions: ["invoke"], approvalEventId: "t" }))
    expect(await h.intercept({ request: call })).toMatchObject({ _tag: "Allowed", proof: expect.stringContaining("approved") })
    expect(channel.prompts).toHaveLength(2)
  })

  it.each(["time { sudo id; }", "coproc F { sudo id; }", "time while sudo id; do break; done", "time -p sudo id"])(
    "%s is blocked by policy even under exec://*",
    async (command) => {
      const h = await makeHarness({ channel: scriptedChannel(answer({ _tag: "AllowOnce" })), settings: { preApproved: ["exec://*"] } })
      expect(await h.intercept({ request: exec(command) })).toMatchObject({ _tag: "Denied", stage: "policy" })
    }
  )
})

describe("the default policy blocks every privilege program", () => {
  it.each(["sudoedit /etc/hosts", "runuser -u root -- id", "setpriv --reuid=0 id", "capsh --user=root -- -c id", "env runuser -u root id"])(
    "%s is blocked, even with a person saying yes",
    async (command) => {
      const channel = scriptedChannel(answer({ _tag: "AllowOnce" }))
      const h = await makeHarness({ channel })
      expect(await h.intercept({ request: exec(command) })).toMatchObject({ _tag: "Denied", stage: "policy" })
      expect(channel.prompts).toHaveLength(0)
    }
  )
})
