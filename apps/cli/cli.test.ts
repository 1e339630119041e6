/**
 * The `astrid` CLI as a user meets it: the built bin run as a child process against real SQLite files in
 * a temporary ASTRID_HOME. Covers exit codes (0 ok, 1 verification failed, 2 usage or I/O), --json
 * shapes, and one-line errors that leave bad input untouched.
 */
import Database from "better-sqlite3"
import { spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { seedStore, tempHome } from "../../test/seedStore.js"

const BIN = fileURLToPath(new URL("../../bin/astrid.mjs", import.meta.url))
const PKG: unknown = JSON.parse(readFileSync(fileURLToPath(new URL("../../package.json", import.meta.url)), "utf8"))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const astrid = (home: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Run => {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", ASTRID_HOME: home, ASTRID_BUSY_TIMEOUT_MS: "300", NO_COLOR: "1", ...env },
    encoding: "utf8",
    timeout: 90_000
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const json = (r: Run): Record<string, unknown> => {
  const v: unknown = JSON.parse(r.stdout)
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`expected a JSON object, got ${r.stdout}`)
  return v as Record<string, unknown>
}

const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex")

/** A one-line error on stderr, no stack trace, nothing on stdout. */
const expectOneLineError = (r: Run, pattern: RegExp): void => {
  expect(r.code).toBe(2)
  expect(r.stdout).toBe("")
  const lines = r.stderr.trimEnd().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^astrid: /)
  expect(lines[0]).toMatch(pattern)
  expect(r.stderr).not.toMatch(/\n\s+at /)
}

const S1 = "astrid-session-s1"
const S2 = "astrid-session-s2"

describe("astrid CLI basics", () => {
  it("prints the package version and help", () => {
    const home = tempHome()
    const v = astrid(home, ["--version"])
    expect(v.code).toBe(0)
    const version = typeof PKG === "object" && PKG !== null && "version" in PKG ? String(PKG.version) : "?"
    expect(v.stdout.trim()).toBe(version)
    const h = astrid(home, ["--help"])
    expect(h.code).toBe(0)
    for (const c of ["audit verify", "audit export", "audit checkpoint", "keys generate", "keys show"]) expect(h.stdout).toContain(c)
  })

  it("rejects unknown commands and bad options with exit 2", () => {
    const home = tempHome()
    expect(astrid(home, ["audit", "frobnicate"]).code).toBe(2)
    expect(astrid(home, ["audit", "list", "--limit", "many"]).code).toBe(2)
  })
})

describe("astrid keys", () => {
  it("generates a 0600 key, refuses to overwrite it, and rotates with --force keeping old checkpoints trusted", async () => {
    const home = tempHome()
    const g = astrid(home, ["keys", "generate", "--json"])
    expect(g.code).toBe(0)
    const first = json(g)
    expect(first["keyId"]).toMatch(/^ed25519:[0-9a-f]{16}$/)
    const keyPath = join(home, "keys", "runtime.key")
    expect(statSync(keyPath).mode & 0o777).toBe(0o600)
    const before = sha(keyPath)

    const again = astrid(home, ["keys", "generate"])
    expectOneLineError(again, /already exists.*--force/)
    expect(sha(keyPath)).toBe(before)

    const shown = json(astrid(home, ["keys", "show", "--json"]))
    expect(shown["keyId"]).toBe(first["keyId"])
    expect(shown["publicKey"]).toBe(first["publicKey"])

    await seedStore(home, { streams: [S1], perStream: 3, checkpoint: true, withKey: false })
    const rotated = json(astrid(home, ["keys", "generate", "--force", "--json"]))
    expect(rotated["replaced"]).toBe(first["keyId"])
    expect(rotated["keyId"]).not.toBe(first["keyId"])
    // The checkpoint signed by the retired key still verifies by default.
    const v = astrid(home, ["audit", "verify", "--json"])
    expect(json(v)["ok"]).toBe(true)
    expect(v.code).toBe(0)
    expect(json(astrid(home, ["keys", "show", "--json"]))["retired"]).toEqual([{ keyId: first["keyId"], publicKey: first["publicKey"] }])
  })

  it("reports a missing or unreadable key in one line", () => {
    const home = tempHome()
    expectOneLineError(astrid(home, ["keys", "show"]), /no runtime key.*astrid keys generate/)
    mkdirSync(join(home, "keys"), { recursive: true })
    writeFileSync(join(home, "keys", "runtime.key"), "{not json")
    expectOneLineError(astrid(home, ["keys", "show"]), /malformed/)
    rmSync(join(home, "keys", "runtime.key"))
    mkdirSync(join(home, "keys", "runtime.key"))
    expectOneLineError(astrid(home, ["keys", "show"]), /cannot read the runtime key/)
  })
})

describe("astrid audit verify", () => {
  it("exits 0 with the documented JSON on an intact log", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1, S2], perStream: 5, checkpoint: true })
    const r = astrid(home, ["audit", "verify", "--json"])
    expect(r.code).toBe(0)
    const report = json(r)
    expect(report).toMatchObject({ ok: true, streams: 3, events: 11, checkpoints: 1, issues: [] })
  })

  it("exits 1 and names the stream and revision of a tampered event", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1, S2], perStream: 5, checkpoint: true })
    const db = new Database(join(home, "astrid.db"))
    db.prepare("UPDATE events SET data = replace(data, '\"ok\":true', '\"ok\":fals') WHERE stream_id = ? AND revision = 3").run(S2)
    db.close()
    const r = astrid(home, ["audit", "verify", "--json"])
    expect(r.code).toBe(1)
    const report = json(r)
    expect(report["ok"]).toBe(false)
    expect(report["issues"]).toEqual([expect.objectContaining({ kind: "hash_mismatch", stream: S2, revision: 3 })])
    const text = astrid(home, ["audit", "verify"])
    expect(text.code).toBe(1)
    expect(text.stdout).toContain(`hash_mismatch  ${S2}@3`)
  })

  it("trusts only --trusted-key when given, and rejects a malformed one with exit 2", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1], perStream: 2, checkpoint: true })
    const foreign = randomBytes(32).toString("hex")
    const wrongKey = astrid(home, ["audit", "verify", "--json", "--trusted-key", foreign])
    expect(wrongKey.code).toBe(1)
    expect(json(wrongKey)["issues"]).toEqual([expect.objectContaining({ kind: "untrusted_key", stream: "astrid-checkpoints", revision: 0 })])
    const pub = readFileSync(join(home, "keys", "runtime.pub"), "utf8").trim()
    expect(astrid(home, ["audit", "verify", "--trusted-key", pub]).code).toBe(0)
    expect(astrid(home, ["audit", "verify", "--trusted-key", join(home, "keys", "runtime.pub")]).code).toBe(0)
    expectOneLineError(astrid(home, ["audit", "verify", "--trusted-key", "nope"]), /neither a 64-hex-digit/)
  })

  it("restricts checks to --stream", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1, S2], perStream: 4, checkpoint: true })
    const db = new Database(join(home, "astrid.db"))
    db.prepare("DELETE FROM events WHERE stream_id = ? AND revision = 3").run(S2)
    db.close()
    const only1 = astrid(home, ["audit", "verify", "--json", "--stream", S1])
    expect(only1.code).toBe(0)
    expect(json(only1)["events"]).toBe(5)
    const only2 = astrid(home, ["audit", "verify", "--json", "--stream", S2])
    expect(only2.code).toBe(1)
    expect(json(only2)["issues"]).toEqual([expect.objectContaining({ kind: "truncated_stream", stream: S2, revision: 3 })])
  })
})

describe("bad stores are refused in one line and left untouched", () => {
  it("a missing database is not created", () => {
    const home = tempHome()
    for (const cmd of [["audit", "verify"], ["audit", "list"], ["audit", "stats"], ["audit", "show", `${S1}@0`]]) {
      expectOneLineError(astrid(home, cmd), /no event store/)
    }
    expect(existsSync(join(home, "astrid.db"))).toBe(false)
  })

  it("a corrupt file", () => {
    const home = tempHome()
    const path = join(home, "astrid.db")
    writeFileSync(path, randomBytes(8192))
    const before = sha(path)
    expectOneLineError(astrid(home, ["audit", "verify"]), /not a readable SQLite database/)
    expectOneLineError(astrid(home, ["audit", "checkpoint"]), /not a readable SQLite database/)
    expect(sha(path)).toBe(before)
  })

  it("a SQLite database that is not an Astrid store", () => {
    const home = tempHome()
    const path = join(home, "astrid.db")
    const db = new Database(path)
    db.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello')")
    db.close()
    const before = sha(path)
    expectOneLineError(astrid(home, ["audit", "verify"]), /not an Astrid event store/)
    expectOneLineError(astrid(home, ["keys", "generate"]), /not an Astrid event store/)
    expect(sha(path)).toBe(before)
    expect(existsSync(join(home, "keys", "runtime.key"))).toBe(false)
  })

  it("a store locked by another process", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1], perStream: 2 })
    const holder = new Database(join(home, "astrid.db"))
    holder.exec("BEGIN EXCLUSIVE")
    try {
      expectOneLineError(astrid(home, ["audit", "checkpoint"]), /locked by another process/)
    } finally {
      holder.exec("ROLLBACK")
      holder.close()
    }
    expect(json(astrid(home, ["audit", "stats", "--json"]))).toMatchObject({ events: 2, checkpoints: 0 })
  })

  it("an unknown event id or reference", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1], perStream: 2 })
    expectOneLineError(astrid(home, ["audit", "show", "01890000-0000-7000-8000-000000000000"]), /no event/)
    expectOneLineError(astrid(home, ["audit", "show", `${S1}@99`]), /no event/)
    expectOneLineError(astrid(home, ["audit", "show", "banana"]), /neither an event id/)
    expectOneLineError(astrid(home, ["audit", "list", "--limit", "0"]), /positive integer/)
  })
})

describe("astrid audit list, show, stats, checkpoint", () => {
  it("lists, filters and shows events", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1, S2], perStream: 3, checkpoint: true })
    const all = JSON.parse(astrid(home, ["audit", "list", "--json"]).stdout) as Array<Record<string, unknown>>
    expect(all.map((e) => e["position"])).toEqual([1, 2, 3, 4, 5, 6, 7])
    const some = JSON.parse(astrid(home, ["audit", "list", "--json", "--stream", S2, "--limit", "2"]).stdout) as Array<Record<string, unknown>>
    expect(some.map((e) => `${String(e["stream"])}@${String(e["revision"])}`)).toEqual([`${S2}@1`, `${S2}@2`])
    const cps = JSON.parse(astrid(home, ["audit", "list", "--json", "--type", "CheckpointSigned"]).stdout) as Array<Record<string, unknown>>
    expect(cps).toHaveLength(1)
    const byRef = json(astrid(home, ["audit", "show", `${S1}@1`, "--json"]))
    expect(byRef).toMatchObject({ stream: S1, revision: 1, type: "ToolResultRecorded" })
    const byId = json(astrid(home, ["audit", "show", String(byRef["eventId"]), "--json"]))
    expect(byId["hash"]).toBe(byRef["hash"])
    expect(astrid(home, ["audit", "list"]).stdout).toContain(`${S2}@2`)
  })

  it("signs a checkpoint on demand, then reports nothing new", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1], perStream: 2 })
    const first = json(astrid(home, ["audit", "checkpoint", "--json"]))
    expect(first).toMatchObject({ signed: true, revision: 0, globalPosition: 2 })
    expect(json(astrid(home, ["audit", "checkpoint", "--json"]))).toMatchObject({ signed: false, lastRevision: 0 })
    const stats = json(astrid(home, ["audit", "stats", "--json"]))
    expect(stats).toMatchObject({ events: 3, checkpoints: 1, uncheckpointedEvents: 0 })
  })

  it("refuses to checkpoint without a key", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1], perStream: 2, withKey: false })
    expectOneLineError(astrid(home, ["audit", "checkpoint"]), /no runtime key/)
  })
})

describe("bundles", () => {
  it("export, then verify offline with no database, and catch a damaged or edited bundle", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1, S2], perStream: 4, checkpoint: true })
    const out = join(home, "b.jsonl")
    const e = astrid(home, ["audit", "export", "--out", out, "--json"])
    expect(e.code).toBe(0)
    expect(json(e)["events"]).toBe(9)
    expectOneLineError(astrid(home, ["audit", "export", "--out", out]), /already exists/)

    const pub = readFileSync(join(home, "keys", "runtime.pub"), "utf8").trim()
    const elsewhere = tempHome()
    const offline = astrid(elsewhere, ["audit", "verify", "--bundle", out, "--trusted-key", pub, "--json"])
    expect(offline.code).toBe(0)
    expect(json(offline)).toMatchObject({ ok: true, events: 9, checkpoints: 1 })
    expect(existsSync(join(elsewhere, "astrid.db"))).toBe(false)
    // Without a trusted key, a bundle's own keys are never trusted.
    const noKey = astrid(elsewhere, ["audit", "verify", "--bundle", out, "--json"])
    expect(noKey.code).toBe(1)
    expect(json(noKey)["issues"]).toEqual([expect.objectContaining({ kind: "untrusted_key" })])

    const lines = readFileSync(out, "utf8").trimEnd().split("\n")
    const cut = join(elsewhere, "cut.jsonl")
    writeFileSync(cut, `${lines.slice(0, -2).join("\n")}\n`)
    expectOneLineError(astrid(elsewhere, ["audit", "verify", "--bundle", cut, "--trusted-key", pub]), /incomplete/)
    const garbage = join(elsewhere, "garbage.jsonl")
    writeFileSync(garbage, "hello\n")
    expectOneLineError(astrid(elsewhere, ["audit", "verify", "--bundle", garbage, "--trusted-key", pub]), /not an Astrid audit bundle/)
    expectOneLineError(astrid(elsewhere, ["audit", "verify", "--bundle", join(elsewhere, "none.jsonl")]), /no bundle/)

    const edited = join(elsewhere, "edited.jsonl")
    writeFileSync(edited, `${lines.map((l, i) => (i === 3 ? l.replace("read_file", "rm_files!") : l)).join("\n")}\n`)
    const bad = astrid(elsewhere, ["audit", "verify", "--bundle", edited, "--trusted-key", pub, "--json"])
    expect(bad.code).toBe(1)
    expect(json(bad)["issues"]).toEqual([expect.objectContaining({ kind: "hash_mismatch", stream: S1, revision: 2 })])
  })

  it("exports one stream with the checkpoints and verifies within that scope", async () => {
    const home = tempHome()
    await seedStore(home, { streams: [S1, S2], perStream: 3, checkpoint: true })
    const out = join(home, "one.jsonl")
    expect(json(astrid(home, ["audit", "export", "--out", out, "--stream", S2, "--json"]))["events"]).toBe(4)
    const v = astrid(home, ["audit", "verify", "--bundle", out, "--json"])
    expect(v.code).toBe(0)
    expect(json(v)).toMatchObject({ ok: true, events: 4, streams: 2 })
    expectOneLineError(astrid(home, ["audit", "export", "--out", join(home, "x.jsonl"), "--stream", "astrid-session-nope"]), /not in the store/)
  })
})

describe("astrid demo", () => {
  it("runs a scripted agent offline through the real interceptor and the worker, and shows tampering caught", () => {
    const home = tempHome()
    chmodSync(home, 0o700)
    const r = astrid(home, ["demo"])
    expect(r.code).toBe(0)
    const out = r.stdout
    expect(out).toContain("there is no terminal to ask, so the demo's own script answers them")
    expect(out).toMatch(/the agent calls read_file \{"path":"README\.md"\}\n\s+-> allowed \(policy\)\n\s+proof: ActionAllowed \(PolicyAllowed workspace\.guided\) at astrid-session-demo-1@\d+/)
    expect(out).toMatch(/the agent calls bash \{"command":"sudo rm -rf \/var\/cache"\}\n\s+-> denied at the policy stage/)
    expect(out).toMatch(/answers Allow Always \(no terminal\)\n\s+-> allowed \(approved \(always\) by demo-script\)/)
    expect(out).toMatch(/-> allowed \(token\)\n\s+proof: ActionAllowed \(TokenCovered by token/)
    expect(out).toMatch(/estimates this at \$2\.00; the per-action limit is \$1\.00\n\s+-> denied at the budget stage/)
    expect(out).toMatch(/-> deferred to the approval queue \(no channel\)/)
    expect(out).toMatch(/checked again first:\n.*answers Allow Once.*\n\s+-> allowed \(approved \(once\) by alice\)/)
    expect(out).toMatch(/ran bash: run: echo 'v0\.1\.0 shipped' > RELEASE\.txt .* \(ok, \d+ ms\)[^\n]*\n\s+v0\.1\.0 shipped\n/)
    expect(out).toMatch(/a second run is refused: .* it runs only once/)
    expect(out).toMatch(/\| \[Astrid runtime notice, not a message from the user\][^\n]*\n\s+\| <untrusted tool output>\n\s+\| v0\.1\.0 shipped/)
    expect(out).toMatch(/7\. astrid audit verify\n\s+intact: \d+ events in \d+ streams, 1 checkpoint\(s\), 0 issues/)
    expect(out).toMatch(/hash_mismatch at astrid-session-demo-1@\d+/)
    expect(out).toMatch(/truncated_stream at astrid-session-demo-1@\d+/)
  })
})

describe("astrid config", () => {
  it("validates a fresh home, and names the file and setting that is wrong", () => {
    const home = tempHome()
    const fresh = astrid(home, ["config", "validate", "--json"])
    expect(fresh.code).toBe(0)
    expect(json(fresh)["ok"]).toBe(true)
    writeFileSync(join(home, "config.toml"), '[security]\nworkspace_mode = "yolo"\n')
    const bad = astrid(home, ["config", "validate"])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toContain(`${join(home, "config.toml")} has invalid settings: security.workspace_mode: expected one of "safe", "guided", "autonomous", got "yolo"`)
    writeFileSync(join(home, "config.toml"), "[audit]\ncheckpoint_every = -1\n")
    expectOneLineError(astrid(home, ["audit", "stats"]), /audit\.checkpoint_every/)
    writeFileSync(join(home, "config.toml"), "not = [toml\n")
    expectOneLineError(astrid(home, ["audit", "verify"]), /is not valid TOML/)
  })

  it("a workspace config can only tighten the user's settings", () => {
    const home = tempHome()
    const workspace = tempHome()
    writeFileSync(join(home, "config.toml"), '[security]\nworkspace_mode = "guided"\npre_approved = ["mcp://docs:search"]\n[security.budget]\nper_action_micros = 500\n')
    mkdirSync(join(workspace, ".astrid"))
    writeFileSync(join(workspace, ".astrid", "config.toml"), '[security]\nworkspace_mode = "autonomous"\nescape_policy = "deny"\npre_approved = ["mcp://docs:search", "exec://rm"]\n[security.budget]\nper_action_micros = 900000\n')
    const shown = json(astrid(home, ["config", "show", "--json", "--workspace", workspace]))
    expect(shown["security"]).toMatchObject({ workspaceMode: "guided", escapePolicy: "deny", preApproved: ["mcp://docs:search"], budget: { perActionMicros: 500 } })
  })

  it("reports an unreachable EventStoreDB as a failed check", () => {
    const home = tempHome()
    const r = astrid(home, ["config", "validate", "--json"], { ASTRID_EVENT_STORE_URL: "esdb://127.0.0.1:1?tls=false" })
    expect(r.code).toBe(1)
    expect(json(r)["checks"]).toContainEqual(expect.objectContaining({ name: "event store", ok: false, detail: expect.stringContaining("cannot reach the event store") }))
  })

  it("lists the paths", () => {
    const home = tempHome()
    const p = json(astrid(home, ["config", "paths", "--json"]))
    expect(p).toMatchObject({ home, projections: join(home, "projections.db"), runtimeKey: { exists: false } })
  })
})
