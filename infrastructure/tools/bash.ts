/**
 * `bash`: runs a command with `bash -c`, stdout and stderr combined. The working directory is the session's
 * and survives between calls: the command runs after a `cd` to it, and the directory it ends in is read back
 * from a marker line the wrapper prints last.
 *
 * The command gets a scrubbed environment (see scrubbedEnvironment.ts): no `ASTRID_*` variable, no provider
 * key, no credential-looking name unless `[security] pass_env` keeps it. Every process it starts is killed
 * when the call ends (bash exits, times out or is cancelled), including ones that left the process group
 * or double-forked (see processReaper.ts), so nothing outlives the call: a server meant to keep running
 * must be started outside the agent.
 *
 * Where the machine allows it, the call also runs in its own mount namespace in which `$ASTRID_HOME` is an
 * empty read-only folder and the workspace's `.astrid/` is read-only (see bashSandbox.ts): the kernel keeps
 * the runtime's own state from the command, whatever its words compute (I10).
 */
import { Effect, Option, Ref, Schema } from "effect"
import { type ChildProcessByStdio, spawn } from "node:child_process"
import { lstatSync } from "node:fs"
import { join } from "node:path"
import type { Readable } from "node:stream"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { type CallContainment, callContainment, sandboxedArgv, setupFailureMessage, setupVerdict, type Shield } from "./bashSandbox.js"
import { CALL_MARKER_VARIABLE, childrenOf, containment, newCallMarker, reapCall, startTicksOf } from "./processReaper.js"
import { defaultProtectedRoots, existingRoots } from "./protectedRoots.js"
import { type EnvironmentRules, scrubEnvironment } from "./scrubbedEnvironment.js"

const Input = Schema.Struct({
  command: Schema.NonEmptyString,
  timeout_ms: Schema.optional(Schema.Int.pipe(Schema.between(1, 600_000)))
})
type Input = typeof Input.Type

export const DEFAULT_BASH_TIMEOUT_MS = 120_000
export const MAX_BASH_TIMEOUT_MS = 600_000
const MARKER = "__ASTRID_CWD__"
/** Output kept in memory is bounded; the result is cut at 30,000 characters later anyway. */
const MAX_CAPTURE_BYTES = 4_000_000
/** After every process of the call is dead the pipes close at once; this only bounds a process the scan could not find. */
const CLOSE_GRACE_MS = 500
/** How long a killed namespace may take to empty before `unshare` itself is killed. */
const NAMESPACE_EXIT_MS = 2_000

/** What the bash tool is built with where a session is set up. */
export interface BashOptions extends EnvironmentRules {
  /**
   * "auto": a PID and mount namespace when this machine allows one, else a PID namespace, else the /proc
   * scan; "pid-namespace" and "scan" force a fallback (to compare, and to test it).
   */
  readonly containment?: "auto" | "pid-namespace" | "scan"
  /**
   * The `$ASTRID_HOME` folders (`SecurityPolicy.protectedState.roots`) the command's namespace hides;
   * without it, those of the home this process would use.
   */
  readonly protectedRoots?: ReadonlyArray<string>
}

/**
 * The script bash runs: a `cd` to the directory given as `$1` (then shifted away), and the command in braces
 * on its own lines, so a trailing comment cannot eat the rest.
 */
const wrap = (command: string): string =>
  `cd -- "$1" || exit 1\nshift\n{\n${command}\n}\n__astrid_rc=$?\nprintf '\\n${MARKER}%s' "$PWD"\nexit $__astrid_rc`

interface Finished {
  readonly output: string
  readonly exitCode: number | null
  readonly signal: string | null
  readonly timedOut: boolean
}

type Child = ChildProcessByStdio<null, Readable, Readable>

/** A started call: its child, what it printed so far, and how it ended once it has. */
interface Running {
  readonly child: Child
  readonly chunks: Array<Buffer>
  readonly stopAll: Effect.Effect<void>
  exit: { readonly code: number | null; readonly signal: string | null } | null
  failure: Error | null
  closed: boolean
}

const killGroup = (pid: number | undefined): void => {
  if (pid === undefined) return
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    // Already gone.
  }
}

const start = (command: string, cwd: string, rules: EnvironmentRules, mode: CallContainment, shield: Shield, mark: string): Running => {
  const env = scrubEnvironment(process.env, rules)
  const marker = newCallMarker()
  const [file = "bash", ...args] = sandboxedArgv(mode, shield, mark, ["bash", "-c", wrap(command), "bash", cwd])
  const child = spawn(file, args, {
    cwd,
    // Its own session and process group: the group is killed as a whole, and the scan finds the session.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: mode._tag === "Scan" ? { ...env, [CALL_MARKER_VARIABLE]: marker } : env
  })
  const sinceTicks = child.pid === undefined ? 0 : startTicksOf(child.pid)
  const chunks: Array<Buffer> = []
  let captured = 0
  const collect = (chunk: Buffer): void => {
    if (captured >= MAX_CAPTURE_BYTES) return
    chunks.push(chunk)
    captured += chunk.length
  }
  child.stdout.on("data", collect)
  child.stderr.on("data", collect)
  const rootPid = child.pid
  const stop: Effect.Effect<void> =
    rootPid === undefined
      ? Effect.void
      : mode._tag !== "Scan"
        ? Effect.suspend(() => stopNamespace(running, rootPid))
        : Effect.zipRight(Effect.sync(() => killGroup(rootPid)), Effect.asVoid(reapCall({ rootPid, marker, sinceTicks })))
  // Once the shell has exited and a stop found the call's processes gone, nothing of the call is left to
  // start another: a second stop (the release after the normal end) would only scan again.
  let finished = false
  const running: Running = {
    child,
    chunks,
    stopAll: Effect.suspend(() => {
      if (finished) return Effect.void
      const exitedBefore = running.exit !== null || running.failure !== null
      return Effect.tap(stop, () =>
        Effect.sync(() => {
          finished = exitedBefore
        })
      )
    }),
    exit: null,
    failure: null,
    closed: false
  }
  child.on("exit", (code, signal) => {
    running.exit = { code, signal }
  })
  child.on("error", (e) => {
    running.failure = e
  })
  child.on("close", () => {
    running.closed = true
  })
  return running
}

/** Waits until `ready` holds, checking whenever one of `events` fires. */
const until = (run: Running, events: ReadonlyArray<"exit" | "error" | "close">, ready: () => boolean): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (ready()) return resume(Effect.void)
    const check = (): void => {
      if (!ready()) return
      for (const e of events) run.child.off(e, check)
      resume(Effect.void)
    }
    // Registered after start()'s own listeners, so the state they record is there when this runs.
    for (const e of events) run.child.on(e, check)
    return Effect.sync(() => {
      for (const e of events) run.child.off(e, check)
    })
  })

const ended = (run: Running) => until(run, ["exit", "error"], () => run.exit !== null || run.failure !== null)

/** `wait` within `ms`, interruptible even where the caller is not (a release), so the bound holds. */
const within = (wait: Effect.Effect<void>, ms: number): Effect.Effect<boolean> =>
  Effect.map(Effect.timeoutOption(Effect.interruptible(wait), ms), Option.isSome)

/**
 * Ends a namespaced call: `unshare` waits for its child, the namespace's init, and exits only once the kernel
 * has killed everything in the namespace, so the init is SIGKILLed (the only signal an init takes from
 * outside) and `unshare` awaited. If that does not happen in time, the group goes, and the parent-death
 * signal takes the init down.
 */
const stopNamespace = (run: Running, unsharePid: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (run.exit !== null || run.failure !== null) return
    yield* Effect.sync(() => {
      for (const init of childrenOf(unsharePid)) {
        try {
          process.kill(init, "SIGKILL")
        } catch {
          // Gone meanwhile.
        }
      }
    })
    if (yield* within(ended(run), NAMESPACE_EXIT_MS)) return
    killGroup(unsharePid)
  })

/**
 * What the call's namespace hides and makes read-only. The workspace's `.astrid` must be a real folder (or
 * file), or absent: a symbolic link could be pointed elsewhere by the command, so nothing runs.
 */
const shieldFor = (workspaceRoot: string, roots: ReadonlyArray<string>): Effect.Effect<Shield, ToolError> =>
  Effect.gen(function* () {
    const astrid = join(workspaceRoot, ".astrid")
    const seen = yield* Effect.sync(() => lstatSync(astrid, { throwIfNoEntry: false }))
    if (seen?.isSymbolicLink() === true) {
      return yield* Effect.fail(
        new ToolError({
          tool: "bash",
          message: `${astrid} is a symbolic link, which a command could point elsewhere, so it cannot be kept read-only for the command; the command was not run. Replace the link with the folder it points to`
        })
      )
    }
    return { hidden: existingRoots(roots), readOnly: seen === undefined ? null : astrid }
  })

const execute = (command: string, cwd: string, workspaceRoot: string, timeoutMs: number, options: BashOptions): Effect.Effect<Finished, ToolError> =>
  Effect.gen(function* () {
    const mode: CallContainment =
      options.containment === "scan" ? { _tag: "Scan" } : options.containment === "pid-namespace" ? yield* containment : yield* callContainment
    const shield: Shield = mode._tag === "MountNamespace" ? yield* shieldFor(workspaceRoot, options.protectedRoots ?? defaultProtectedRoots) : { hidden: [], readOnly: null }
    const mark = newCallMarker()
    return yield* Effect.acquireUseRelease(
      Effect.sync(() => start(command, cwd, options, mode, shield, mark)),
      (run) =>
        Effect.gen(function* () {
          const timedOut = !(yield* within(ended(run), timeoutMs))
          if (timedOut) {
            yield* run.stopAll
            yield* ended(run)
          }
          if (run.failure !== null && run.exit === null) {
            return yield* Effect.fail(
              new ToolError({ tool: "bash", message: `could not start bash: ${run.failure.message}; is bash installed and on PATH?` })
            )
          }
          // Whatever the command left running would hold the pipes open and outlive the call.
          yield* run.stopAll
          if (!(yield* within(until(run, ["close"], () => run.closed), CLOSE_GRACE_MS))) {
            run.child.stdout.destroy()
            run.child.stderr.destroy()
          }
          const exit = run.exit ?? { code: null, signal: null }
          const raw = Buffer.concat(run.chunks).toString("utf8")
          if (mode._tag !== "MountNamespace") return { output: raw, exitCode: exit.code, signal: exit.signal, timedOut }
          const verdict = setupVerdict(raw, mark)
          if (verdict._tag === "Ready") return { output: verdict.output, exitCode: exit.code, signal: exit.signal, timedOut }
          // Cut off while the namespace was being set up: the command never started, and the timeout says so.
          if (timedOut) return { output: "", exitCode: exit.code, signal: exit.signal, timedOut }
          return yield* Effect.fail(new ToolError({ tool: "bash", message: setupFailureMessage(verdict) }))
        }),
      (run) => run.stopAll
    )
  })

/** Splits the wrapper's marker from the command's output. */
export const parseCwd = (raw: string): { readonly output: string; readonly cwd: string | null } => {
  const at = raw.lastIndexOf(`\n${MARKER}`)
  if (at === -1) return { output: raw, cwd: null }
  const cwd = raw.slice(at + MARKER.length + 1)
  return { output: raw.slice(0, at), cwd: cwd === "" ? null : cwd }
}

/** The bash tool with the environment rules and containment of where it is set up. */
export const makeBashTool = (options: BashOptions = {}): Tool<Input> => ({
  name: "bash",
  description: `Run a bash command. stdout and stderr are combined; the exit code is reported. The working directory persists between calls. Every process the command starts, background jobs included, is killed when the call ends. Credentials are not in the environment. Timeout ${DEFAULT_BASH_TIMEOUT_MS / 1000} s by default, at most ${MAX_BASH_TIMEOUT_MS / 1000} s.`,
  inputSchema: {
    type: "object",
    properties: {
      command: { type: "string", description: "The command line" },
      timeout_ms: { type: "integer", minimum: 1, maximum: MAX_BASH_TIMEOUT_MS, description: `Timeout in milliseconds (default ${DEFAULT_BASH_TIMEOUT_MS})` }
    },
    required: ["command"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "command_exec", command: input.command, cwd: ctx.cwd }),
  run: (input, ctx) =>
    Effect.gen(function* () {
      const cwd = yield* Ref.get(ctx.cwd)
      const timeoutMs = input.timeout_ms ?? DEFAULT_BASH_TIMEOUT_MS
      const done = yield* execute(input.command, cwd, ctx.workspaceRoot, timeoutMs, options)
      const parsed = parseCwd(done.output)
      if (parsed.cwd !== null) yield* Ref.set(ctx.cwd, parsed.cwd)
      const output = parsed.output.replace(/\n$/, "")
      if (done.timedOut) {
        return yield* Effect.fail(
          new ToolError({
            tool: "bash",
            message: `the command timed out after ${timeoutMs} ms and every process it started was killed; raise timeout_ms (at most ${MAX_BASH_TIMEOUT_MS}) or run it in smaller steps. Output so far:\n${output}`
          })
        )
      }
      const status = done.exitCode !== null ? `[exit code: ${done.exitCode}]` : `[killed by ${done.signal ?? "a signal"}]`
      return output === "" ? status : `${output}\n${status}`
    })
})

/**
 * The bash tool with the default rules: the credential patterns and `ASTRID_*` dropped, nothing passed back,
 * and the default home's `$ASTRID_HOME` hidden.
 */
export const bashTool = makeBashTool()

export const bashToolErased = eraseTool(bashTool)
