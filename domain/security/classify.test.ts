import { describe, expect, it } from "vitest"
import type { ActionRequest } from "./action.js"
import { classify, show } from "./classify.js"

const ROOT = "/home/ada/project"
const inside = (request: ActionRequest, canonicalPath: string) => classify(request, { workspaceRoot: ROOT, canonicalPath })

describe("classify: files", () => {
  it.each([
    [{ _tag: "file_read", path: "src/a.ts" } as const, `${ROOT}/src/a.ts`, "low", "read", true],
    [{ _tag: "file_read", path: "/tmp/x" } as const, "/tmp/x", "medium", "read", false],
    [{ _tag: "file_write", path: "a.txt", bytes: 12 } as const, `${ROOT}/a.txt`, "medium", "write", true],
    [{ _tag: "file_write", path: "/etc/passwd" } as const, "/etc/passwd", "high", "write", false],
    [{ _tag: "file_delete", path: "a.txt" } as const, `${ROOT}/a.txt`, "high", "delete", true],
    [{ _tag: "file_delete", path: "/boot/vmlinuz" } as const, "/boot/vmlinuz", "high", "delete", false],
    [{ _tag: "capsule_file", capsule: "c1", path: "a", write: false } as const, `${ROOT}/a`, "low", "read", true],
    [{ _tag: "capsule_file", capsule: "c1", path: "/x", write: true } as const, "/x", "high", "write", false]
  ])("%j at %s: risk %s, permission %s, inside %s", (request, canonical, risk, permission, insideWs) => {
    const a = inside(request, canonical)
    expect(a).toMatchObject({ kind: request._tag, risk, permission, insideWorkspace: insideWs, path: canonical, alwaysAsk: false })
  })

  it("uses file:// URIs of the canonical path for file kinds and capsule://id:file for capsules", () => {
    expect(inside({ _tag: "file_read", path: "link/passwd" }, "/etc/passwd").resource).toBe("file:///etc/passwd")
    expect(inside({ _tag: "capsule_file", capsule: "notes", path: "a", write: false }, `${ROOT}/a`).resource).toBe("capsule://notes:file")
  })

  it("the root itself is inside; a sibling sharing the prefix is not", () => {
    expect(inside({ _tag: "file_read", path: "." }, ROOT).insideWorkspace).toBe(true)
    expect(inside({ _tag: "file_read", path: "../project-evil/x" }, "/home/ada/project-evil/x").insideWorkspace).toBe(false)
  })

  it("a symlink that resolves outside is outside, whatever the requested path says", () => {
    const a = inside({ _tag: "file_write", path: "etc-link/passwd" }, "/etc/passwd")
    expect(a).toMatchObject({ insideWorkspace: false, risk: "high", resource: "file:///etc/passwd" })
  })

  it("without a canonical path: joined as written, never inside", () => {
    const a = classify({ _tag: "file_read", path: "../../etc/passwd" }, { workspaceRoot: ROOT })
    expect(a).toMatchObject({ path: `${ROOT}/../../etc/passwd`, insideWorkspace: false, risk: "medium" })
    expect(classify({ _tag: "file_read", path: "a.txt" }, { workspaceRoot: `${ROOT}/` }).path).toBe(`${ROOT}/a.txt`)
  })

  it("a non-canonical 'canonical' path is never inside", () => {
    expect(inside({ _tag: "file_read", path: "x" }, `${ROOT}/../etc/passwd`).insideWorkspace).toBe(false)
  })

  it("summarises for the approver", () => {
    expect(inside({ _tag: "file_write", path: "a.txt", bytes: 12 }, `${ROOT}/a.txt`).summary).toBe(`write ${ROOT}/a.txt (12 bytes)`)
    expect(inside({ _tag: "file_read", path: "/tmp/x" }, "/tmp/x").summary).toBe("read /tmp/x (outside the workspace)")
  })
})

describe("classify: commands", () => {
  const exec = (command: string) => classify({ _tag: "command_exec", command }, { workspaceRoot: ROOT })

  it("exec://first-program, execute, high", () => {
    expect(exec("cargo build --release")).toMatchObject({ resource: "exec://cargo", permission: "execute", risk: "high", insideWorkspace: null })
    expect(exec("FOO=1 /usr/bin/env cargo test | tee out").resource).toBe("exec://cargo")
  })

  it.each(["sudo rm x", "echo hi; sudo x", "env doas ls", "mkfs.ext4 /dev/sda1", "dd if=a of=b", "rm -rf build", "rm -r -f build", "chmod -R 777 .", "$X", "echo 'open", "shutdown now", "sh -c 'su -'"])(
    "%j is critical",
    (command) => {
      expect(exec(command).risk).toBe("critical")
    }
  )

  it.each(["ls", "rm build/x", "rm -r build", "chmod 644 a", "sum a", "sudoku"])("%j is high, not critical", (command) => {
    expect(exec(command).risk).toBe("high")
  })

  it("the summary shows the whole command on one line, with hidden characters visible", () => {
    const a = classify({ _tag: "command_exec", command: "echo ok\rsudo x\nls", cwd: "/tmp" }, { workspaceRoot: ROOT })
    expect(a.summary).toBe("run: echo ok\\rsudo x\\nls (in /tmp)")
  })

  it("capsule processes are classified like commands", () => {
    const a = classify({ _tag: "capsule_process", capsule: "build", command: "sudo make install" }, { workspaceRoot: ROOT })
    expect(a).toMatchObject({ resource: "capsule://build:process", permission: "execute", risk: "critical" })
  })

  it("a command without a program still gets a resource", () => {
    expect(exec("A=1").resource).toBe("exec://(none)")
    expect(exec("echo 'x").resource).toBe("exec://(unparseable)")
  })
})

describe("classify: network and the rest", () => {
  const c = (request: ActionRequest) => classify(request, { workspaceRoot: ROOT })

  it("network requests: net://host[:port]/path, connect, medium", () => {
    expect(c({ _tag: "network_request", url: "https://API.Example.com:8443/v1/x?q=1", method: "post" })).toMatchObject({
      resource: "net://api.example.com:8443/v1/x",
      host: "api.example.com",
      permission: "connect",
      risk: "medium",
      summary: "POST https://API.Example.com:8443/v1/x?q=1"
    })
    expect(c({ _tag: "network_request", url: "https://example.com.", method: "GET" }).host).toBe("example.com")
    expect(c({ _tag: "network_request", url: "https://user@evil.com@good.com/", method: "GET" }).host).toBe("good.com")
    expect(c({ _tag: "network_request", url: "http://[::1]:80/", method: "GET" }).host).toBe("[::1]")
  })

  it("an unusable URL has no host (the policy then refuses it)", () => {
    expect(c({ _tag: "network_request", url: "not a url", method: "GET" }).host).toBeUndefined()
    expect(c({ _tag: "network_request", url: "git://ex%61mple.com/x", method: "GET" }).host).toBeUndefined()
  })

  it("data transmission: high, transmit, host from a URL or host:port", () => {
    expect(c({ _tag: "data_transmission", destination: "https://paste.example.org/new", bytes: 10 })).toMatchObject({
      resource: "net://paste.example.org/new",
      host: "paste.example.org",
      permission: "transmit",
      risk: "high"
    })
    expect(c({ _tag: "data_transmission", destination: "backup.example.org:22", bytes: 1 })).toMatchObject({ host: "backup.example.org", resource: "net://backup.example.org:22/" })
  })

  it("MCP and capsules", () => {
    expect(c({ _tag: "mcp_tool_call", server: "github", tool: "create_issue", arguments: {} })).toMatchObject({ resource: "mcp://github:create_issue", permission: "invoke", risk: "medium" })
    expect(c({ _tag: "capsule_http", capsule: "weather", url: "https://api.weather.test/x", method: "GET" })).toMatchObject({
      resource: "capsule://weather:http",
      permission: "connect",
      risk: "medium",
      host: "api.weather.test"
    })
  })

  it("financial, access-control and capability-grant actions are critical and always ask", () => {
    expect(c({ _tag: "financial_transaction", amountMicros: 12_500_000, currency: "USD", counterparty: "acme" })).toMatchObject({
      resource: "fin://acme",
      permission: "transact",
      risk: "critical",
      alwaysAsk: true,
      summary: "pay 12.50 USD to acme"
    })
    expect(c({ _tag: "access_control_change", target: "repo/x", change: "add admin bob" })).toMatchObject({ resource: "acl://repo/x", permission: "admin", risk: "critical", alwaysAsk: true })
    expect(c({ _tag: "capability_grant", resource: "file:///home/**", permissions: ["read", "write"] })).toMatchObject({
      resource: "grant://file:///home/**",
      permission: "grant",
      risk: "critical",
      alwaysAsk: true
    })
  })

  it("sub-agents: agent://spawn, medium", () => {
    expect(c({ _tag: "subagent_spawn", task: "review" })).toMatchObject({ resource: "agent://spawn", permission: "spawn", risk: "medium", alwaysAsk: false })
  })

  it("no other kind always asks", () => {
    const others: ReadonlyArray<ActionRequest> = [
      { _tag: "file_read", path: "a" },
      { _tag: "command_exec", command: "ls" },
      { _tag: "network_request", url: "https://x.test/", method: "GET" },
      { _tag: "mcp_tool_call", server: "s", tool: "t", arguments: null },
      { _tag: "subagent_spawn", task: "t" }
    ]
    for (const r of others) expect(c(r).alwaysAsk).toBe(false)
  })
})

describe("show", () => {
  it("escapes control and bidi characters and cuts long text visibly", () => {
    expect(show("a\u202eb\u0007")).toBe("a\\u{202e}b\\x07")
    const long = show("x".repeat(1000))
    expect(long).toContain("(+700 more characters)")
    expect(long.length).toBeLessThan(400)
  })
})
