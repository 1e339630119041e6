/**
 * Runs one tool call the model proposed: decode the input, let the SecurityInterceptor judge the action,
 * run the tool only when allowed, and hand back a result the model can read. Denied and deferred calls
 * never run; their result says why, so the model can adapt instead of retrying blindly.
 */
import { Clock, Effect, Either, Option, Ref } from "effect"
import { type Decision, type InterceptError, SecurityInterceptor } from "../security/securityInterceptor.js"
import { type AnyTool, judgedTargetOf, type RunContext } from "./tool.js"

/** Tool output beyond this many characters is cut, with a note saying how much was left out. */
export const MAX_OUTPUT_CHARS = 30_000

export interface ToolResult {
  readonly ok: boolean
  readonly output: string
  readonly truncated: boolean
  /** The interceptor's decision; null when the input did not decode and nothing was proposed. */
  readonly decision: Decision | null
}

export interface ToolInvocation {
  readonly principal: string
  readonly sessionId: string
  readonly context: RunContext
}

/** Cuts `text` at `max` characters and appends a visible note of what was cut. */
export const cutOutput = (text: string, max: number = MAX_OUTPUT_CHARS): { readonly output: string; readonly truncated: boolean } =>
  text.length <= max
    ? { output: text, truncated: false }
    : { output: `${text.slice(0, max)}\n[output truncated: ${text.length - max} more characters]`, truncated: true }

const explain = (decision: Exclude<Decision, { _tag: "Allowed" }>): string =>
  decision._tag === "Denied"
    ? `${decision.stage === "policy" ? "denied by policy" : `denied at ${decision.stage}`}: ${decision.reason}${decision.remedy === null ? "" : ` (${decision.remedy})`}`
    : `deferred for approval: request ${decision.requestId} (${decision.reason.replace(/_/g, " ")}); the action did not run and will not run unless it is approved from the queue`

export const runTool = (tool: AnyTool, input: unknown, call: ToolInvocation): Effect.Effect<ToolResult, InterceptError, SecurityInterceptor> =>
  Effect.gen(function* () {
    const prepared = tool.prepare(input)
    if (Either.isLeft(prepared)) {
      return { ok: false, output: `invalid input for ${tool.name}: ${prepared.left}`, truncated: false, decision: null }
    }
    const interceptor = yield* SecurityInterceptor
    const cwd = yield* Ref.get(call.context.cwd)
    const workspaceRoot = call.context.workspaceRoot
    const request = prepared.right.request({ workspaceRoot, cwd })
    const guarded = yield* interceptor.guard(
      // The tool call goes with the proposal so that, if it is deferred, a worker can run it once approved.
      { principal: call.principal, sessionId: call.sessionId, workspaceRoot, request, estimatedCostMicros: 0, toolCall: { tool: tool.name, input } },
      (allowed) =>
        Effect.gen(function* () {
          const started = yield* Clock.currentTimeMillis
          // The tool acts on what was judged (I10), not on a path it would derive again from the input.
          const ran = yield* Effect.either(prepared.right.run(call.context, judgedTargetOf(allowed.action)))
          const ended = yield* Clock.currentTimeMillis
          const ok = Either.isRight(ran)
          const cut = cutOutput(Either.isRight(ran) ? ran.right : `error: ${ran.left.message}`)
          const value: ToolResult = { ok, output: cut.output, truncated: cut.truncated, decision: null }
          return { value, outcome: { ok, tool: tool.name, output: cut.output, truncated: cut.truncated, durationMs: Math.max(0, ended - started) } }
        })
    )
    const { decision } = guarded
    if (decision._tag !== "Allowed") return { ok: false, output: explain(decision), truncated: false, decision }
    return Option.match(guarded.value, {
      onNone: (): ToolResult => ({ ok: false, output: "the tool produced no result", truncated: false, decision }),
      onSome: (value): ToolResult => ({ ...value, decision })
    })
  })
