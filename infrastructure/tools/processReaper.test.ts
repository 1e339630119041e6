import { Effect } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { CALL_MARKER_VARIABLE, callProcesses, containment, newCallMarker, reapCall, startTicksOf } from "./processReaper.js"

const liveProcess = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))
  } catch {
    return false
  }
}

/** Starts `script` in its own session with a marker, and resolves when its shell exits, with what it printed. */
const runMarked = (script: string, env: Record<string, string>) =>
  new Promise<{ readonly rootPid: number; readonly sinceTicks: number; readonly out: string }>((resolve, reject) => {
    const child = spawn("sh", ["-c", script], { detached: true, stdio: ["ignore", "pipe", "ignore"], env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...env } })
    const rootPid = child.pid
    if (rootPid === undefined) return reject(new Error("sh did not start"))
    const sinceTicks = startTicksOf(rootPid)
    let out = ""
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")))
    child.on("close", () => resolve({ rootPid, sinceTicks, out }))
  })

describe("processReaper", () => {
  it("probes once: the same answer every time, and a namespace it offers really starts at pid 1", async () => {
    const first = await Effect.runPromise(containment)
    expect(await Effect.runPromise(containment)).toBe(first)
    if (first._tag === "PidNamespace") {
      const [file = "", ...args] = first.prefix
      expect(spawnSync(file, [...args, "sh", "-c", "echo $$"], { encoding: "utf8" }).stdout.trim()).toBe("1")
    } else {
      console.log("no PID namespace here (no unshare, or not permitted): the /proc scan contains bash calls")
    }
  })

  it("finds what left the session but kept the marker, and what it forked after clearing its environment", async () => {
    const marker = newCallMarker()
    const call = await runMarked(
      "setsid sh -c 'echo $$; exec sleep 301' > /dev/null & setsid sh -c 'env -i sleep 302 3>&- & echo $! >&3; exec 3>&-; wait' 3>&1 > /dev/null & sleep 0.2",
      { [CALL_MARKER_VARIABLE]: marker }
    )
    const found = callProcesses({ rootPid: call.rootPid, marker, sinceTicks: call.sinceTicks })
    const clearedChild = Number(call.out.trim())
    expect(found).toContain(clearedChild)
    expect(found.length).toBeGreaterThanOrEqual(3)
    expect(await Effect.runPromise(reapCall({ rootPid: call.rootPid, marker, sinceTicks: call.sinceTicks }))).toBeGreaterThan(0)
    for (const pid of found) expect(liveProcess(pid), `pid ${pid}`).toBe(false)
    expect(callProcesses({ rootPid: call.rootPid, marker, sinceTicks: call.sinceTicks })).toEqual([])
  })

  it("leaves alone a process of another call", async () => {
    const other = spawn("sleep", ["303"], { detached: true, stdio: "ignore", env: { [CALL_MARKER_VARIABLE]: "someone-else" } })
    try {
      const marker = newCallMarker()
      const call = await runMarked("true", { [CALL_MARKER_VARIABLE]: marker })
      await Effect.runPromise(reapCall({ rootPid: call.rootPid, marker, sinceTicks: 0 }))
      expect(other.pid !== undefined && liveProcess(other.pid)).toBe(true)
    } finally {
      other.kill("SIGKILL")
    }
  })
})
