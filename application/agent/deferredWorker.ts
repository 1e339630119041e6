/**
 * The deferred worker: runs approved deferred actions, each at most once, and records its one outcome (I2).
 *
 * An action deferred because nobody could be asked is queued with the tool call behind it. Once it is
 * approved from the queue (`resolveDeferred`, which re-checks policy and budget and records the allowing
 * decision), a worker claims it with `DeferredActionClaimed` appended on the approvals stream at the
 * revision it read: of two workers racing, one claim lands and the other is told the action was taken.
 * Only then does the tool run. The policy in force now is checked once more just before (a block set since
 * the approval stops it, I3), and the call is prepared again from the recorded input and must name exactly
 * the request that was judged. The result goes through the interceptor's `complete` (ToolResultRecorded,
 * budget committed or released), and the session gets a runtime notice with the output as untrusted data,
 * so the agent learns what happened when the session resumes (see conversation.ts).
 *
 * A worker that dies between its claim and the result leaves the action claimed without a result: it is
 * never run a second time, since it may have run in part.
 */
import { Clock, Context, Data, Effect, Either, Exit, Layer, Ref, Schema } from "effect"
import { canonicalize } from "../../domain/canonicalJson.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import { MessageRecorded } from "../../domain/events/sessionEvents.js"
import { ActionRequest } from "../../domain/security/action.js"
import { classify } from "../../domain/security/classify.js"
import { type ClaimRefused, decideClaim, evolveQueue, initialQueueState, type QueuedAction, type QueueState, runnableFor } from "../../domain/security/deferral.js"
import { evaluatePolicy, type SecurityPolicy } from "../../domain/security/policy.js"
import { approvalsStream, sessionStream } from "../../domain/streams.js"
import { EventLog } from "../eventLog.js"
import { Crypto } from "../ports/crypto.js"
import { EventStore } from "../ports/eventStore.js"
import { Ids } from "../ports/ids.js"
import { PathResolver } from "../ports/pathResolver.js"
import type { Reservation } from "../security/budgetService.js"
import { type Decision, SecurityInterceptor, type ToolOutcome, workspaceStreamOf } from "../security/securityInterceptor.js"
import { decodeRecorded, makeStreamStateCache } from "../streamState.js"
import { cutOutput } from "../tools/runTool.js"
import { type AnyTool, makeRunContext } from "../tools/tool.js"
import { encodeDeferredOutcome } from "./conversation.js"

export type AllowedDecision = Extract<Decision, { _tag: "Allowed" }>

export interface DeferredWorkerConfig {
  /** The tools a worker can run, by name (the built-in tools). */
  readonly tools: ReadonlyArray<AnyTool>
  /** Who runs the actions, recorded in the claim (e.g. "worker alice@host pid 123"). */
  readonly name: string
  /** The policy in force now for a workspace, checked again just before an action runs. */
  readonly policyFor?: (workspace: string) => Effect.Effect<SecurityPolicy, DeferredWorkerError>
}

export type Execution =
  /** The tool ran; `ok` says whether it succeeded. */
  | {
      readonly _tag: "Ran"
      readonly requestId: string
      readonly actionId: string
      readonly sessionId: string
      readonly tool: string
      readonly summary: string
      readonly ok: boolean
      readonly output: string
      readonly truncated: boolean
      readonly durationMs: number
    }
  /** Claimed, but stopped before running; the reason is recorded as its (failed) result and the budget released. */
  | { readonly _tag: "Stopped"; readonly requestId: string; readonly actionId: string; readonly sessionId: string; readonly tool: string; readonly summary: string; readonly reason: string }
  /** Nothing was done or recorded: not this worker's to run (not approved, already taken, no tool call, unknown tool). */
  | {
      readonly _tag: "Skipped"
      readonly requestId: string
      readonly kind: ClaimRefused["kind"] | "unknown_tool" | "no_decision" | "invalid_request"
      readonly reason: string
    }

/** The worker could not read or record what it must; nothing ran unless a claim and result say so. */
export class DeferredWorkerError extends Data.TaggedError("DeferredWorkerError")<{ readonly message: string }> {}

export interface ExecuteCommand {
  readonly requestId: string
  /** Whose action: only the principal who proposed it may have it run (I7). */
  readonly principal: string
  /** The Allowed decision `resolveDeferred` just returned, when the caller has it; otherwise it is read from the log. */
  readonly decision?: AllowedDecision
}

export interface DeferredWorkerApi {
  /** Approved actions of `principal` with a tool call that no worker has taken, highest priority first. */
  readonly runnable: (principal: string) => Effect.Effect<ReadonlyArray<QueuedAction>, DeferredWorkerError>
  /** Runs one approved action, at most once across every worker sharing the store. */
  readonly execute: (command: ExecuteCommand) => Effect.Effect<Execution, DeferredWorkerError>
  /** Runs every runnable action of `principal`, one after the other. */
  readonly drain: (principal: string) => Effect.Effect<ReadonlyArray<Execution>, DeferredWorkerError>
}

export class DeferredWorker extends Context.Tag("astrid/DeferredWorker")<DeferredWorker, DeferredWorkerApi>() {}

const MAX_CLAIM_RETRIES = 100

const messageOf = (e: unknown): string => (typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" ? e.message : String(e))

const occurredAtOf = (metadata: string): string => {
  try {
    const m: unknown = JSON.parse(metadata)
    return typeof m === "object" && m !== null && "occurredAt" in m && typeof m.occurredAt === "string" ? m.occurredAt : ""
  } catch {
    return ""
  }
}

const decodeRequest = Schema.decodeUnknownEither(ActionRequest)

class LostClaimRace extends Data.TaggedError("LostClaimRace")<{}> {}

export const makeDeferredWorker = (config: DeferredWorkerConfig) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const store = yield* EventStore
    const ids = yield* Ids
    const paths = yield* PathResolver
    const crypto = yield* Crypto
    const interceptor = yield* SecurityInterceptor
    const toolsByName = new Map(config.tools.map((t) => [t.name, t]))
    const queue = makeStreamStateCache<QueueState>(store, {
      initial: initialQueueState,
      types: new Set(["DeferredActionQueued", "DeferredActionResolved", "DeferredActionClaimed"]),
      evolve: (state, event, recorded) => evolveQueue(state, event, occurredAtOf(recorded.metadata))
    })
    const fail = (what: string) => (e: unknown) => new DeferredWorkerError({ message: `${what}: ${messageOf(e)}` })

    const runnable: DeferredWorkerApi["runnable"] = (principal) =>
      queue.load(approvalsStream).pipe(
        Effect.map((q) => runnableFor(q.state, principal)),
        Effect.mapError(fail("could not read the approval queue"))
      )

    /** The allowing decision as the log has it (I1): none means the action must not run. */
    const decisionFromLog = (entry: QueuedAction, request: ActionRequest) =>
      Effect.gen(function* () {
        const events: Array<AstridEvent> = []
        for (const r of yield* store.readStream(sessionStream(entry.sessionId)).pipe(Effect.mapError(fail("could not read the session")))) {
          const e = decodeRecorded(r)
          if (e !== undefined) events.push(e)
        }
        const allowed = events.find((e): e is Extract<AstridEvent, { _tag: "ActionAllowed" }> => e._tag === "ActionAllowed" && e.actionId === entry.actionId)
        if (allowed === undefined) return undefined
        // The reservation the approval took: the last one for this action still open on the session stream.
        let open: { readonly reservationId: string; readonly amountMicros: number } | undefined
        for (const e of events) {
          if (e._tag === "BudgetReserved" && e.actionId === entry.actionId) open = { reservationId: e.reservationId, amountMicros: e.amountMicros }
          else if ((e._tag === "BudgetCommitted" || e._tag === "BudgetReleased") && e.reservationId === open?.reservationId) open = undefined
        }
        const root = yield* paths.resolve(entry.workspace, ".").pipe(Effect.mapError(fail("could not resolve the workspace root")))
        const path = "path" in request ? request.path : undefined
        const resolved = path === undefined ? undefined : yield* paths.resolve(entry.workspace, path).pipe(Effect.mapError(fail("could not resolve the path")))
        const action = classify(request, { workspaceRoot: root.canonical, ...(resolved === undefined ? {} : { canonicalPath: resolved.canonical }) })
        const reservation: Reservation | null =
          open === undefined
            ? null
            : {
                reservationId: open.reservationId,
                actionId: entry.actionId,
                sessionStream: sessionStream(entry.sessionId),
                workspaceStream: workspaceStreamOf(crypto.blake3Hex, root.canonical),
                principal: entry.principal,
                sessionId: entry.sessionId,
                correlationId: entry.actionId,
                amountMicros: open.amountMicros,
                warnings: []
              }
        const proof = allowed.proof
        const label =
          proof._tag === "HumanApproved" ? `approved by ${proof.approver}` : proof._tag === "TokenCovered" ? "token" : proof._tag === "AllowanceCovered" ? `allowance (${proof.scope})` : "policy"
        return { _tag: "Allowed", actionId: entry.actionId, action, proof: label, reservation, sessionId: entry.sessionId, principal: entry.principal } satisfies AllowedDecision
      })

    const attempt = (c: ExecuteCommand): Effect.Effect<Execution, DeferredWorkerError | LostClaimRace> =>
      Effect.gen(function* () {
        const q = yield* queue.load(approvalsStream).pipe(Effect.mapError(fail("could not read the approval queue")))
        const decided = decideClaim(q.state, { requestId: c.requestId, principal: c.principal })
        if (Either.isLeft(decided)) return { _tag: "Skipped", requestId: c.requestId, kind: decided.left.kind, reason: decided.left.message } as const
        const entry = decided.right
        const tool = toolsByName.get(entry.toolCall.tool)
        if (tool === undefined) {
          return {
            _tag: "Skipped",
            requestId: entry.requestId,
            kind: "unknown_tool",
            reason: `deferred action ${entry.requestId} calls ${entry.toolCall.tool}, a tool this worker does not have (it has ${[...toolsByName.keys()].join(", ")})`
          } as const
        }
        // The request exactly as it was judged and approved; anything else is not this action.
        const decodedRequest = decodeRequest(entry.request)
        if (Either.isLeft(decodedRequest)) {
          return { _tag: "Skipped", requestId: entry.requestId, kind: "invalid_request", reason: `deferred action ${entry.requestId} holds a request this build cannot read; it does not run` } as const
        }
        const judged = decodedRequest.right
        const decision = c.decision ?? (yield* decisionFromLog(entry, judged))
        if (decision === undefined) {
          return {
            _tag: "Skipped",
            requestId: entry.requestId,
            kind: "no_decision",
            reason: `deferred action ${entry.requestId} is approved but its session has no allowing decision for it; it does not run without one`
          } as const
        }

        const meta = { principal: entry.principal, sessionId: entry.sessionId, correlationId: entry.actionId }
        const claimed = yield* Effect.either(
          log.append(approvalsStream, q.revision ?? "no_stream", [
            { ...meta, event: { _tag: "DeferredActionClaimed", requestId: entry.requestId, actionId: entry.actionId, worker: config.name } }
          ])
        )
        if (Either.isLeft(claimed)) {
          if (claimed.left._tag === "WrongExpectedRevision") return yield* Effect.fail(new LostClaimRace())
          return yield* Effect.fail(fail("could not record the claim; the action was not run")(claimed.left))
        }
        queue.record(approvalsStream, claimed.right.events)

        const summary = decision.action.summary
        const record = (outcome: ToolOutcome) =>
          Effect.gen(function* () {
            yield* interceptor.complete(decision, outcome).pipe(Effect.mapError(fail("could not record the result")))
            const now = yield* Clock.currentTimeMillis
            const content = encodeDeferredOutcome({
              deferredAction: {
                requestId: entry.requestId,
                actionId: entry.actionId,
                tool: tool.name,
                summary,
                approvedBy: entry.resolution.resolver,
                ok: outcome.ok,
                output: outcome.output
              }
            })
            yield* log
              .append(sessionStream(entry.sessionId), "any", [
                {
                  ...meta,
                  // It carries tool output: untrusted, and written by the runtime, not typed by the user.
                  classification: "untrusted",
                  event: MessageRecorded.make({ messageId: ids.uuidv7(now), role: "user", content, inputClassification: "untrusted" })
                }
              ])
              .pipe(Effect.mapError(fail("could not record the outcome on the session")))
          })
        const stop = (reason: string) =>
          record({ ok: false, tool: tool.name, output: `not run: ${reason}`, truncated: false, durationMs: 0 }).pipe(
            Effect.as({ _tag: "Stopped", requestId: entry.requestId, actionId: entry.actionId, sessionId: entry.sessionId, tool: tool.name, summary, reason } as const)
          )

        if (config.policyFor !== undefined) {
          const verdict = evaluatePolicy(yield* config.policyFor(entry.workspace), decision.action)
          if (verdict._tag === "Blocked") return yield* stop(`the policy now blocks it: ${verdict.reason}`)
        }
        const prepared = tool.prepare(entry.toolCall.input)
        if (Either.isLeft(prepared)) return yield* stop(`its recorded input is not valid for ${tool.name} any more: ${prepared.left}`)
        const context = yield* makeRunContext(entry.workspace)
        if (judged._tag === "command_exec" && judged.cwd !== undefined) yield* Ref.set(context.cwd, judged.cwd)
        const request = prepared.right.request({ workspaceRoot: entry.workspace, cwd: yield* Ref.get(context.cwd) })
        if (canonicalize(request) !== canonicalize(entry.request)) return yield* stop("the recorded tool call no longer names the action that was approved")

        const started = yield* Clock.currentTimeMillis
        const ran = yield* Effect.exit(Effect.either(prepared.right.run(context)))
        const ended = yield* Clock.currentTimeMillis
        const durationMs = Math.max(0, ended - started)
        if (Exit.isFailure(ran)) {
          yield* record({ ok: false, tool: tool.name, output: "the action failed", truncated: false, durationMs }).pipe(Effect.ignore)
          return yield* Effect.failCause(ran.cause)
        }
        const ok = Either.isRight(ran.value)
        const cut = cutOutput(Either.isRight(ran.value) ? ran.value.right : `error: ${ran.value.left.message}`)
        yield* record({ ok, tool: tool.name, output: cut.output, truncated: cut.truncated, durationMs })
        return {
          _tag: "Ran",
          requestId: entry.requestId,
          actionId: entry.actionId,
          sessionId: entry.sessionId,
          tool: tool.name,
          summary,
          ok,
          output: cut.output,
          truncated: cut.truncated,
          durationMs
        } as const
      })

    // A lost race means the approvals stream moved: read it again and decide again (the winner's claim,
    // if it was one, then skips this action).
    const execute: DeferredWorkerApi["execute"] = (c) =>
      attempt(c).pipe(
        Effect.retry({ times: MAX_CLAIM_RETRIES, while: (e) => e._tag === "LostClaimRace" }),
        Effect.catchTag("LostClaimRace", () =>
          Effect.fail(new DeferredWorkerError({ message: `the approval queue kept changing while claiming ${c.requestId}; run the worker again` }))
        )
      )

    const drain: DeferredWorkerApi["drain"] = (principal) =>
      Effect.gen(function* () {
        const done: Array<Execution> = []
        for (const entry of yield* runnable(principal)) done.push(yield* execute({ requestId: entry.requestId, principal }))
        return done
      })

    return { runnable, execute, drain } satisfies DeferredWorkerApi
  })

/** Needs EventLog, EventStore, Ids, PathResolver, Crypto and the SecurityInterceptor. */
export const DeferredWorkerLive = (config: DeferredWorkerConfig) => Layer.effect(DeferredWorker, makeDeferredWorker(config))
