/**
 * Containment of the processes one tool call starts, so that none outlives the call: not a background job,
 * not one that left the process group with `setsid`, not a double-forked daemon.
 *
 * The strong way is a PID namespace: the call runs under `unshare --pid --fork --kill-child --mount-proc`
 * (as non-root also `--user --map-current-user`). Its shell is the namespace's init; when it exits or is
 * SIGKILLed (or `unshare` dies and takes it down through the parent-death signal), the kernel kills every
 * process in the namespace, wherever it went in the process tree, and `unshare` exits only once they are
 * all gone. The private /proc also hides the runtime's own processes (and their environment) from the
 * call. Whether this works here is probed once per runtime process. Where it does, bash calls also get a
 * mount namespace that hides the runtime's own state (bashSandbox.ts); this PID namespace alone is what
 * they fall back to when that cannot be set up.
 *
 * Without it (no `unshare`, user namespaces disabled, seccomp), the call runs in its own session and process
 * group with a random marker in its environment, and after the call `/proc` is scanned for processes started
 * since the call began that are in its group or session, carry the marker, or descend from one that does;
 * they are SIGKILLed, and the scan repeats until it finds none (bounded). Linux limits of that fallback: a
 * process that leaves the session (`setsid`) and execs with a cleared environment (`env -i`), once orphaned,
 * carries nothing that ties it to the call and escapes the scan; so does one that outlives the bounded
 * rounds by forking faster than they kill; and a pid could in principle be reused between scan and kill.
 * In either mode, processes started for the call by a daemon outside it (systemd-run, at, cron, ssh to
 * localhost) are not its descendants and are not contained.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"

/** How a call's processes are contained: the argv prefix that puts it in a PID namespace, or a /proc scan after it. */
export type Containment = { readonly _tag: "PidNamespace"; readonly prefix: ReadonlyArray<string> } | { readonly _tag: "Scan" }

const namespaceArgs = (mountProc: boolean): ReadonlyArray<string> => [
  ...(process.getuid?.() === 0 ? [] : ["--user", "--map-current-user"]),
  "--pid",
  "--fork",
  "--kill-child",
  ...(mountProc ? ["--mount-proc"] : [])
]

/**
 * Runs `file args` with a bare environment and hands its standard output and exit code to `judge`; false when
 * it cannot start or takes more than 5 s (killed then). The probes of what containment this machine allows.
 */
export const probeCommand = (file: string, args: ReadonlyArray<string>, judge: (out: string, code: number | null) => boolean): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    let out = ""
    let settled = false
    const done = (ok: boolean): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(Effect.succeed(ok))
    }
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "ignore"], env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } })
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      done(false)
    }, 5_000)
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8")
    })
    child.on("error", () => done(false))
    child.on("close", (code) => done(judge(out, code)))
  })

/** Runs `unshare <args> sh -c 'echo $$'` and says whether the shell was pid 1 of a new namespace. */
const probe = (args: ReadonlyArray<string>): Effect.Effect<boolean> =>
  probeCommand("unshare", [...args, "sh", "-c", "echo $$"], (out, code) => code === 0 && out.trim() === "1")

const detect: Effect.Effect<Containment> = Effect.gen(function* () {
  if (process.platform !== "linux") return { _tag: "Scan" } as const
  for (const mountProc of [true, false]) {
    const args = namespaceArgs(mountProc)
    if (yield* probe(args)) return { _tag: "PidNamespace", prefix: ["unshare", ...args] } as const
  }
  return { _tag: "Scan" } as const
})

/** The containment this machine supports, probed on first use and remembered. */
export const containment: Effect.Effect<Containment> = Effect.runSync(Effect.cached(detect))

/** A fresh marker value for one call's environment. */
export const newCallMarker = (): string => randomBytes(12).toString("hex")

/** The variable that carries the marker. */
export const CALL_MARKER_VARIABLE = "ASTRID_CALL"

interface ProcStat {
  readonly pid: number
  readonly state: string
  readonly ppid: number
  readonly pgrp: number
  readonly session: number
  readonly startTicks: number
}

const readStat = (pid: number): ProcStat | null => {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1")
  } catch {
    return null
  }
  // The command name is in parentheses and may itself hold spaces and parentheses: fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  const [state, ppid, pgrp, session] = fields
  const start = fields[19]
  if (state === undefined || ppid === undefined || pgrp === undefined || session === undefined || start === undefined) return null
  return { pid, state, ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session), startTicks: Number(start) }
}

/** When `pid` started, in clock ticks since boot (0 when unknown, which makes a scan consider every process). */
export const startTicksOf = (pid: number): number => readStat(pid)?.startTicks ?? 0

const carriesMarker = (pid: number, needle: Buffer): boolean => {
  try {
    return readFileSync(`/proc/${pid}/environ`).includes(needle)
  } catch {
    return false
  }
}

/** One call as the scan knows it: the shell's pid (its group and session id too), the marker, when it started. */
export interface ScannedCall {
  readonly rootPid: number
  readonly marker: string
  readonly sinceTicks: number
}

/** The live processes that belong to the call, as one scan of /proc sees them. */
export const callProcesses = (call: ScannedCall): ReadonlyArray<number> => {
  const needle = Buffer.from(`${CALL_MARKER_VARIABLE}=${call.marker}\0`)
  const candidates: Array<ProcStat> = []
  for (const name of readdirSync("/proc")) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue
    const stat = readStat(pid)
    // Zombies are already dead; what started before the call cannot belong to it.
    if (stat === null || stat.state === "Z" || stat.state === "X" || stat.startTicks < call.sinceTicks) continue
    candidates.push(stat)
  }
  const found = new Set<number>()
  for (const s of candidates) {
    if (s.pid === call.rootPid || s.pgrp === call.rootPid || s.session === call.rootPid || carriesMarker(s.pid, needle)) found.add(s.pid)
  }
  // Descendants of a found process, whatever group, session or environment they took.
  for (let grew = true; grew; ) {
    grew = false
    for (const s of candidates) {
      if (!found.has(s.pid) && found.has(s.ppid)) {
        found.add(s.pid)
        grew = true
      }
    }
  }
  return [...found]
}

/** The children of `pid`: from /proc/PID/task/PID/children where the kernel has it, else from a scan. */
export const childrenOf = (pid: number): ReadonlyArray<number> => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim().split(" ").filter((p) => p !== "").map(Number)
  } catch {
    return readdirSync("/proc")
      .map(Number)
      .filter((p) => Number.isInteger(p) && readStat(p)?.ppid === pid)
  }
}

const MAX_ROUNDS = 50

/** SIGKILLs the call's processes, scanning again until none is left or the rounds run out; how many rounds found some. */
export const reapCall = (call: ScannedCall): Effect.Effect<number> =>
  Effect.gen(function* () {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const pids = yield* Effect.sync(() => callProcesses(call))
      if (pids.length === 0) return round
      yield* Effect.sync(() => {
        for (const pid of pids) {
          try {
            process.kill(pid, "SIGKILL")
          } catch {
            // Gone meanwhile.
          }
        }
      })
      // A killed process takes a moment to turn into a zombie; a forking one shows its children next round.
      yield* Effect.sleep(round < 3 ? "1 millis" : "10 millis")
    }
    return MAX_ROUNDS
  })
