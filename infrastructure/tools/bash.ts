/**
 * `bash`: runs a command with `bash -c` in its own process group, stdout and stderr combined. The working
 * directory is the session's and survives between calls: the command runs after a `cd` to it, and the
 * directory it ends in is read back from a marker line the wrapper prints last. On timeout or
 * cancellation, and when bash itself exits, the whole process group is killed, so no background job
 * outlives the call (a server meant to keep running must be started outside the agent).
 */
import { Effect, Ref, Schema } from "effect"
import { spawn } from "node:child_process"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"

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

/** The script bash runs: the command in braces on its own lines, so a trailing comment cannot eat the rest. */
const wrap = (command: string): string =>
  `cd "$ASTRID_CWD" || exit 1\n{\n${command}\n}\n__astrid_rc=$?\nprintf '\\n${MARKER}%s' "$PWD"\nexit $__astrid_rc`

interface Finished {
  readonly output: string
  readonly exitCode: number | null
  readonly signal: string | null
  readonly timedOut: boolean
}

const killGroup = (pid: number | undefined): void => {
  if (pid === undefined) return
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    // Already gone.
  }
}

const execute = (command: string, cwd: string, timeoutMs: number): Effect.Effect<Finished, ToolError> =>
  Effect.async<Finished, ToolError>((resume) => {
    const child = spawn("bash", ["-c", wrap(command)], {
      cwd,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ASTRID_CWD: cwd }
    })
    const chunks: Array<Buffer> = []
    let captured = 0
    let timedOut = false
    const collect = (chunk: Buffer): void => {
      if (captured >= MAX_CAPTURE_BYTES) return
      chunks.push(chunk)
      captured += chunk.length
    }
    child.stdout.on("data", collect)
    child.stderr.on("data", collect)
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child.pid)
    }, timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      resume(Effect.fail(new ToolError({ tool: "bash", message: `could not start bash: ${e.message}; is bash installed and on PATH?` })))
    })
    // Background jobs the command left behind would hold the pipes open and outlive the call: once bash
    // itself has exited, the rest of its group is killed, so `close` comes promptly.
    child.on("exit", () => killGroup(child.pid))
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resume(Effect.succeed({ output: Buffer.concat(chunks).toString("utf8"), exitCode: code, signal, timedOut }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      killGroup(child.pid)
    })
  })

/** Splits the wrapper's marker from the command's output. */
export const parseCwd = (raw: string): { readonly output: string; readonly cwd: string | null } => {
  const at = raw.lastIndexOf(`\n${MARKER}`)
  if (at === -1) return { output: raw, cwd: null }
  const cwd = raw.slice(at + MARKER.length + 1)
  return { output: raw.slice(0, at), cwd: cwd === "" ? null : cwd }
}

export const bashTool: Tool<Input> = {
  name: "bash",
  description: `Run a bash command. stdout and stderr are combined; the exit code is reported. The working directory persists between calls. Timeout ${DEFAULT_BASH_TIMEOUT_MS / 1000} s by default, at most ${MAX_BASH_TIMEOUT_MS / 1000} s.`,
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
      const done = yield* execute(input.command, cwd, timeoutMs)
      const parsed = parseCwd(done.output)
      if (parsed.cwd !== null) yield* Ref.set(ctx.cwd, parsed.cwd)
      const output = parsed.output.replace(/\n$/, "")
      if (done.timedOut) {
        return yield* Effect.fail(
          new ToolError({
            tool: "bash",
            message: `the command timed out after ${timeoutMs} ms and its process group was killed; raise timeout_ms (at most ${MAX_BASH_TIMEOUT_MS}) or run it in smaller steps. Output so far:\n${output}`
          })
        )
      }
      const status = done.exitCode !== null ? `[exit code: ${done.exitCode}]` : `[killed by ${done.signal ?? "a signal"}]`
      return output === "" ? status : `${output}\n${status}`
    })
}

export const bashToolErased = eraseTool(bashTool)
