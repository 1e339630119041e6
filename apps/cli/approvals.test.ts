/**
 * `astrid approvals` and `astrid tokens` end to end: actions deferred by a real interceptor into a SQLite
 * store, then resolved through the built CLI as a child process, as a person or a script would.
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { generateKey, loadKeyRing } from "../../infrastructure/keys/keyFiles.js"
import { makeHarness } from "../../test/securityHarness.js"
import { tempHome } from "../../test/seedStore.js"

const BIN = fileURLToPath(new URL("../../bin/astrid.mjs", import.meta.url))

const astrid = (home: string, principal: string, args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", ASTRID_HOME: home, ASTRID_PRINCIPAL: principal, NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 90_000
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const parse = (text: string): unknown => JSON.parse(text)

/** A home with a runtime key and two actions of alice deferred (nobody to ask). */
const deferredHome = async () => {
  const home = tempHome()
  await Effect.runPromise(Effect.orDie(generateKey(home, false, Date.now())))
  const key = await Effect.runPromise(Effect.orDie(loadKeyRing(home)))
  const h = await makeHarness({ sqlitePath: join(home, "astrid.db"), keyRing: key, trustedIssuers: new Map([[key.keyId, key.publicKeyHex]]) })
  const first = await h.intercept({ request: { _tag: "command_exec", command: "cargo build --release" } })
  const second = await h.intercept({ request: { _tag: "file_write", path: "/tmp/astrid-cli-approvals.txt" } })
  if (first._tag !== "Deferred" || second._tag !== "Deferred") throw new Error("expected two deferrals")
  return { home, workspace: h.workspace, first, second }
}

describe("astrid approvals", () => {
  it("lists a principal's deferred actions and nobody else's", async () => {
    const { home, first, second } = await deferredHome()
    const mine = astrid(home, "alice", ["approvals", "list", "--json"])
    expect(mine.code).toBe(0)
    const entries = parse(mine.stdout)
    expect(Array.isArray(entries) ? entries.map((e: { requestId: string }) => e.requestId).sort() : []).toEqual([first.requestId, second.requestId].sort())
    const theirs = astrid(home, "mallory", ["approvals", "list", "--json"])
    expect(parse(theirs.stdout)).toEqual([])
    expect(astrid(home, "alice", ["approvals", "list"]).stdout).toContain("cargo build --release")
  })

  it("approves once by id prefix, re-checked, and refuses a second resolution or another principal", async () => {
    const { home, first } = await deferredHome()
    const other = astrid(home, "mallory", ["approvals", "approve", first.requestId])
    expect(other.code).toBe(2)
    expect(other.stderr).toMatch(/no deferred action/)
    const ok = astrid(home, "alice", ["approvals", "approve", first.requestId.slice(0, 30), "--scope", "session", "--json"])
    expect(ok.code).toBe(0)
    expect(parse(ok.stdout)).toMatchObject({ requestId: first.requestId, decision: "Allowed" })
    const again = astrid(home, "alice", ["approvals", "approve", first.requestId])
    expect(again.code).toBe(2)
    expect(again.stderr.trim().split("\n")).toHaveLength(1)
    const list = astrid(home, "alice", ["audit", "list", "--json", "--stream", "astrid-session-s1"])
    const types = (parse(list.stdout) as Array<{ type: string }>).map((e) => e.type)
    expect(types.filter((t) => t === "ActionDeferred" || t === "ActionAllowed" || t === "AllowanceGranted")).toEqual([
      "ActionDeferred",
      "ActionDeferred",
      "AllowanceGranted",
      "ActionAllowed"
    ])
    expect(astrid(home, "alice", ["audit", "verify"]).code).toBe(0)
  })

  it("denies with a reason, and Allow Always leaves a token that tokens list shows and revoke ends", async () => {
    const { home, first, second } = await deferredHome()
    const denied = astrid(home, "alice", ["approvals", "deny", first.requestId, "--reason", "not on Fridays", "--json"])
    expect(parse(denied.stdout)).toMatchObject({ decision: "Denied", stage: "approval", reason: "denied by alice: not on Fridays" })
    const always = astrid(home, "alice", ["approvals", "approve", second.requestId, "--scope", "always", "--json"])
    expect(parse(always.stdout)).toMatchObject({ decision: "Allowed" })
    const tokens = parse(astrid(home, "alice", ["tokens", "list", "--json"]).stdout)
    if (!Array.isArray(tokens)) throw new Error("expected a list")
    expect(tokens).toHaveLength(1)
    expect(tokens[0]).toMatchObject({ resource: "file:///tmp/astrid-cli-approvals.txt", status: "active" })
    // Another principal can neither see nor revoke it (I7).
    expect(astrid(home, "mallory", ["tokens", "show", String(tokens[0].tokenId)]).code).toBe(2)
    expect(astrid(home, "mallory", ["tokens", "revoke", String(tokens[0].tokenId)]).code).toBe(2)
    const revoked = astrid(home, "alice", ["tokens", "revoke", String(tokens[0].tokenId), "--reason", "done", "--json"])
    expect(revoked.code).toBe(0)
    expect(parse(astrid(home, "alice", ["tokens", "show", String(tokens[0].tokenId), "--json"]).stdout)).toMatchObject({ status: "revoked" })
    expect(parse(astrid(home, "alice", ["approvals", "list", "--json"]).stdout)).toEqual([])
  })

  it("rejects an unknown id and a bad scope with exit 2", async () => {
    const { home } = await deferredHome()
    expect(astrid(home, "alice", ["approvals", "approve", "nope"]).code).toBe(2)
    expect(astrid(home, "alice", ["approvals", "approve", "x", "--scope", "forever"]).code).toBe(2)
  })
})
