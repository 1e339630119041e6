/**
 * `astrid run` end to end: the built CLI as a child process, a temp ASTRID_HOME with a real SQLite store, a
 * temp workspace, scripted model turns and approvals answered from a file.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
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
  const workspace = join(home, "ws")
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
})
