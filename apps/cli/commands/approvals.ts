/**
 * `astrid approvals list|approve|deny`: the deferred-approval queue. Approving re-runs policy and budget
 * for the action's own workspace before it is allowed (I2), then runs the approved tool call once, right
 * away, unless `--no-run` leaves it to `astrid worker`; only the principal who proposed an action can see
 * or resolve it (I7). A summary and a reason come from the model's tool call: text output prints them with
 * their control characters made visible.
 */
import { Effect } from "effect"
import type { Decision } from "../../../application/security/securityInterceptor.js"
import type { QueuedAction } from "../../../domain/security/deferral.js"
import { asCli, usageError } from "../cliError.js"
import { dim, green, printJson, printLines, red, table } from "../output.js"
import { printable } from "../printable.js"
import { currentPrincipal } from "../principal.js"
import { config } from "../runtime.js"
import { securityFor } from "../securityRuntime.js"
import { describeExecution, executionJson, workerFrom, workerRuns } from "./worker.js"

const entryJson = (q: QueuedAction) => ({
  requestId: q.requestId,
  sessionId: q.sessionId,
  actionId: q.actionId,
  principal: q.principal,
  workspace: q.workspace,
  summary: q.summary,
  risk: q.risk,
  priority: q.priority,
  reason: q.reason,
  queuedAt: q.queuedAt,
  estimatedCostMicros: q.estimatedCostMicros,
  request: q.request
})

const pending = (cfg: Effect.Effect.Success<typeof config>) =>
  Effect.gen(function* () {
    const { interceptor } = yield* securityFor(cfg, null)
    return yield* asCli(interceptor.pendingFor(currentPrincipal()))
  })

export const list = (args: { readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const entries = yield* pending(cfg)
      if (args.json) return yield* printJson(entries.map(entryJson))
      if (entries.length === 0) return yield* printLines(`no deferred actions for ${printable(currentPrincipal())}`)
      yield* printLines(
        ...table(
          ["REQUEST", "PRIORITY", "RISK", "SESSION", "QUEUED AT", "ACTION"],
          entries.map((q) => [q.requestId, String(q.priority), q.risk, q.sessionId, q.queuedAt, q.summary].map(printable))
        ),
        dim("approve with: astrid approvals approve REQUEST [--scope once|session|workspace|always]")
      )
    })
  )

/** An id or a unique prefix of one (ids are long; the first characters usually suffice). */
const findEntry = (entries: ReadonlyArray<QueuedAction>, id: string) =>
  Effect.gen(function* () {
    const matches = entries.filter((q) => q.requestId === id || q.requestId.startsWith(id))
    const exact = matches.find((q) => q.requestId === id)
    if (exact !== undefined) return exact
    const [only, ...more] = matches
    if (only === undefined) {
      return yield* Effect.fail(usageError(`no deferred action ${printable(id)} for ${printable(currentPrincipal())}; 'astrid approvals list' shows yours`))
    }
    if (more.length > 0) return yield* Effect.fail(usageError(`'${printable(id)}' matches ${matches.length} deferred actions; give more of the id`))
    return only
  })

const describe = (d: Decision): ReadonlyArray<string> => {
  switch (d._tag) {
    case "Allowed":
      return [green(printable(`allowed: ${d.action.summary} (${d.proof})`))]
    case "Denied":
      return [red(printable(`denied at the ${d.stage} stage: ${d.reason}`)), ...(d.remedy === null ? [] : [dim(printable(d.remedy))])]
    case "Deferred":
      return [printable(`deferred again (${d.reason})`)]
  }
}

const resolve = (
  id: string,
  answer: { readonly _tag: "Approve"; readonly scope: "once" | "session" | "workspace" | "always" } | { readonly _tag: "Deny"; readonly reason: string | null },
  json: boolean,
  run: boolean
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const entry = yield* findEntry(yield* pending(cfg), id)
      // Settings of the action's own workspace, so its config can tighten the re-check.
      const security = yield* securityFor(cfg, entry.workspace)
      const principal = currentPrincipal()
      const decision = yield* asCli(security.interceptor.resolveDeferred({ requestId: entry.requestId, principal, resolver: principal, answer }))
      // Approved and asked to run: the worker claims it (so no other worker runs it too) and runs it now.
      const execution =
        decision._tag === "Allowed" && run && entry.toolCall !== undefined
          ? yield* asCli((yield* workerFrom(cfg, security)).execute({ requestId: entry.requestId, principal, decision }))
          : undefined
      if (json) {
        return yield* printJson({
          requestId: entry.requestId,
          actionId: decision.actionId,
          decision: decision._tag,
          ...(decision._tag === "Denied" ? { stage: decision.stage, reason: decision.reason } : {}),
          ...(decision._tag === "Allowed" ? { proof: decision.proof } : {}),
          ...(execution === undefined ? {} : { execution: executionJson(execution) })
        })
      }
      const next =
        decision._tag !== "Allowed" || execution !== undefined
          ? []
          : entry.toolCall === undefined
            ? [dim("it was queued without a tool call, so nothing here can run it; the session that proposed it can, when it resumes")]
            : workerRuns(entry.toolCall.tool)
              ? [dim("not run yet (--no-run); 'astrid worker --once' runs it")]
              : [dim(`not run (--no-run); the worker cannot run ${printable(entry.toolCall.tool)}, so 'astrid worker' records it as not run and tells the session; ask the agent to retry it there`)]
      yield* printLines(printable(`${entry.requestId}: ${entry.summary}`), ...describe(decision), ...(execution === undefined ? [] : describeExecution(execution)), ...next)
    })
  )

/** Approves a deferred action and, unless `run` is false, runs it right away (once). */
export const approve = (args: { readonly id: string; readonly scope: "once" | "session" | "workspace" | "always"; readonly json: boolean; readonly run?: boolean }) =>
  resolve(args.id, { _tag: "Approve", scope: args.scope }, args.json, args.run ?? true)

export const deny = (args: { readonly id: string; readonly reason: string | null; readonly json: boolean }) =>
  resolve(args.id, { _tag: "Deny", reason: args.reason }, args.json, false)
