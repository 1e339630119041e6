/**
 * The deferred worker: runs approved deferred actions, each at most once, and records its one outcome (I2).
 *
 * An action deferred because nobody could be asked is queued with the tool call behind it. Once it is
 * approved from the queue (`resolveDeferred`, which re-checks policy and budget and records the allowing
 * decision), a worker claims it with `DeferredActionClaimed` appended on the approvals stream at the
 * revision it read: of two workers racing, one claim lands and the other is told the action was taken.
 * Only then is the action looked at once more, and from then on it ends in exactly one recorded outcome:
 * it runs, or it is stopped with its reason as a failed result (budget released, session told). Stopped
 * when its session was deleted, when this worker does not have its tool (a sub-agent or the identity tool
 * only a live session has), when its path now resolves elsewhere than the approved resource or on the
 * other side of the workspace boundary (a symbolic link planted since the approval), when the policy in
 * force now blocks it (I3) or the workspace boundary now denies it, and when the call, prepared again from
 * the recorded input, no longer names the request that was judged. The result goes through the
 * interceptor's `complete` (ToolResultRecorded, budget committed or released), and the session gets a
 * runtime notice with the output as untrusted data, so the agent learns what happened when the session
 * resumes (see conversation.ts).
 *
 * A worker that dies between its claim and the result leaves the action claimed without a result: it is
 * never run a second time, since it may have run in part.
 */
import { Clock, Context, Data, Effect, Either, Exit, Layer, Ref, Schema } from "effect"
import { canonicalize } from "../../domain/canonicalJson.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import { MessageRecorded } from "../../domain/events/sessionEvents.js"
import { ActionRequest, type ClassifiedAction } from "../../domain/security/action.js"
import { classify } from "../../domain/security/classify.js"
import { type ClaimRefused, decideClaim, evolveQueue, initialQueueState, type QueuedAction, type QueueState, runnableFor } from "../../domain/security/deferral.js"
import { evaluatePolicy } from "../../domain/security/policy.js"
import { boundaryVerdict, type SecuritySettings } from "../../domain/security/workspaceBoundary.js"
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
import { type AnyTool, judgedTargetOf, makeRunContext } from "../tools/tool.js"
import { encodeDeferredOutcome } from "./conversation.js"
import { messageOf } from "../../domain/errorMessage.js"

export type AllowedDecision = Extract<Decision, { _tag: "Allowed" }>

export interface DeferredWorkerConfig {
  /** The tools a worker can run, by name (the built-in tools). */
  readonly tools: ReadonlyArray<AnyTool>
  /** Who runs the actions, recorded in the claim (e.g. "worker alice@host pid 123"). */
  readonly name: string
  /**
   * The security settings in force now for a workspace: its policy and workspace boundary are checked again
   * just before an action runs, against the action as the file system places it then.
   */
  readonly settingsFor?: (workspace: string) => Effect.Effect<SecuritySettings, DeferredWorkerError>
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

type Proposed = Extract<AstridEvent, { _tag: "ActionProposed" }>

const proposalOf = (events: ReadonlyArray<AstridEvent>, actionId: string): Proposed | undefined =>
  events.find((e): e is Proposed => e._tag === "ActionProposed" && e.actionId === actionId)

const FILE_SCHEME = "file://"

/**
 * The action as it was proposed and approved: the request classified with the canonical path its
 * ActionProposed recorded (a file resource names it), so its resource and whether it lay inside the
 * workspace are those of the judgment, not of the file system now. Without a recorded proposal the
 * resource is marked as unknown, which matches nothing, so the action does not run.
 */
const approvedAction = (request: ActionRequest, proposed: Proposed | undefined, rootCanonical: string): ClassifiedAction => {
  if (proposed === undefined) return { ...classify(request, { workspaceRoot: rootCanonical }), resource: "(no recorded proposal)", insideWorkspace: null }
  const recordedPath = proposed.resource.startsWith(FILE_SCHEME) ? proposed.resource.slice(FILE_SCHEME.length) : undefined
  const action = classify(request, { workspaceRoot: rootCanonical, ...(recordedPath === undefined ? {} : { canonicalPath: recordedPath }) })
  return action.resource === proposed.resource ? action : { ...action, resource: proposed.resource }
}

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

    /** The session's events, decoded; what the worker checks the approved action against. */
    const sessionEvents = (sessionId: string) =>
      Effect.gen(function* () {
        const events: Array<AstridEvent> = []
        for (const r of yield* store.readStream(sessionStream(sessionId)).pipe(Effect.mapError(fail("could not read the session")))) {
          const e = decodeRecorded(r)
          if (e !== undefined) events.push(e)
        }
        return events
      })

    /**
     * The allowing decision as the log has it (I1): none means the action must not run. Its action is the
     * one that was proposed and approved (the request classified with the canonical path recorded then),
     * never one re-resolved now: what the file system says now is checked against it before anything runs.
     */
    const decisionFromLog = (entry: QueuedAction, request: ActionRequest, events: ReadonlyArray<AstridEvent>, rootCanonical: string) => {
      const allowed = events.find((e): e is Extract<AstridEvent, { _tag: "ActionAllowed" }> => e._tag === "ActionAllowed" && e.actionId === entry.actionId)
      if (allowed === undefined) return undefined
      // The reservation the approval took: the last one for this action still open on the session stream.
      let open: { readonly reservationId: string; readonly amountMicros: number } | undefined
      for (const e of events) {
        if (e._tag === "BudgetReserved" && e.actionId === entry.actionId) open = { reservationId: e.reservationId, amountMicros: e.amountMicros }
        else if ((e._tag === "BudgetCommitted" || e._tag === "BudgetReleased") && e.reservationId === open?.reservationId) open = undefined
      }
      const proposed = proposalOf(events, entry.actionId)
      const action = approvedAction(request, proposed, rootCanonical)
      const reservation: Reservation | null =
        open === undefined
          ? null
          : {
              reservationId: open.reservationId,
              actionId: entry.actionId,
              sessionStream: sessionStream(entry.sessionId),
              workspaceStream: workspaceStreamOf(crypto.blake3Hex, rootCanonical),
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
    }

    /** The action as the file system places it now: the path resolved again, at the moment of running. */
    const classifyNow = (entry: QueuedAction, request: ActionRequest, rootCanonical: string) =>
      Effect.gen(function* () {
        const path = "path" in request ? request.path : undefined
        const resolved = path === undefined ? undefined : yield* paths.resolve(entry.workspace, path)
        // A file that has become hard-linked since the approval is no longer known to be inside.
        return classify(request, {
          workspaceRoot: rootCanonical,
          ...(resolved === undefined ? {} : { canonicalPath: resolved.canonical, ...(resolved.hardLinked ? { hardLinked: true } : {}) })
        })
      })

    const attempt = (c: ExecuteCommand): Effect.Effect<Execution, DeferredWorkerError | LostClaimRace> =>
      Effect.gen(function* () {
        const q = yield* queue.load(approvalsStream).pipe(Effect.mapError(fail("could not read the approval queue")))
        const decided = decideClaim(q.state, { requestId: c.requestId, principal: c.principal })
        if (Either.isLeft(decided)) return { _tag: "Skipped", requestId: c.requestId, kind: decided.left.kind, reason: decided.left.message } as const
        const entry = decided.right
        // The request exactly as it was judged and approved; anything else is not this action.
        const decodedRequest = decodeRequest(entry.request)
        if (Either.isLeft(decodedRequest)) {
          return { _tag: "Skipped", requestId: entry.requestId, kind: "invalid_request", reason: `deferred action ${entry.requestId} holds a request this build cannot read; it does not run` } as const
        }
        const judged = decodedRequest.right
        const events = yield* sessionEvents(entry.sessionId)
        const root = yield* paths.resolve(entry.workspace, ".").pipe(Effect.mapError(fail("could not resolve the workspace root")))
        const decision = c.decision ?? decisionFromLog(entry, judged, events, root.canonical)
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

        // From here on every path records the action's one outcome (I2): a result and the budget settled.
        const toolName = entry.toolCall.tool
        const summary = decision.action.summary
        const deleted = events.some((e) => e._tag === "SessionEnded" && e.reason === "deleted")
        const record = (outcome: ToolOutcome) =>
          Effect.gen(function* () {
            // Also for a deleted session: the result closes the allowing decision (I2) and the release gives
            // the reservation back on the workspace stream as well; a deletion hides a session, its events
            // stay in the audit log, and these two keep that log's accounting whole.
            yield* interceptor.complete(decision, outcome).pipe(Effect.mapError(fail("could not record the result")))
            // The notice below is only for the agent when the session resumes; a deleted session never does.
            if (deleted) return
            const now = yield* Clock.currentTimeMillis
            const content = encodeDeferredOutcome({
              deferredAction: {
                requestId: entry.requestId,
                actionId: entry.actionId,
                tool: toolName,
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
          record({ ok: false, tool: toolName, output: `not run: ${reason}`, truncated: false, durationMs: 0 }).pipe(
            Effect.as({ _tag: "Stopped", requestId: entry.requestId, actionId: entry.actionId, sessionId: entry.sessionId, tool: toolName, summary, reason } as const)
          )

        if (deleted) return yield* stop(`its session ${entry.sessionId} was deleted; actions approved for a deleted session do not run`)
        const tool = toolsByName.get(toolName)
        // A tool only a live session has (a sub-agent, the agent's identity): recorded as not run once, so
        // its budget is given back and it is never offered to a worker again.
        if (tool === undefined) return yield* stop(`the worker cannot run ${toolName} (it runs ${[...toolsByName.keys()].join(", ")}); ask the agent to retry it in the session`)

        // What the file system says now: a link planted since the approval changes where the action lands.
        const now = yield* Effect.either(classifyNow(entry, judged, root.canonical))
        if (Either.isLeft(now)) return yield* stop(`its path cannot be resolved now: ${now.left.message}`)
        const current = now.right
        const approved = [approvedAction(judged, proposalOf(events, entry.actionId), root.canonical), ...(c.decision === undefined ? [] : [c.decision.action])]
        for (const a of approved) {
          if (a.resource !== current.resource || a.insideWorkspace !== current.insideWorkspace) {
            return yield* stop(
              `it would now touch ${current.resource}${current.insideWorkspace === false ? " (outside the workspace)" : ""}, not ${a.resource} as approved; the path changed since the approval (a symbolic link?), so it is not the action that was approved`
            )
          }
        }
        if (config.settingsFor !== undefined) {
          const settings = yield* config.settingsFor(entry.workspace)
          const verdict = evaluatePolicy(settings.policy, current)
          if (verdict._tag === "Blocked") return yield* stop(`the policy now blocks it: ${verdict.reason}`)
          if (boundaryVerdict(settings.mode, settings.escapePolicy, current) === "deny") {
            return yield* stop(`${current.summary}: outside the workspace, and escape_policy is deny`)
          }
        }
        const prepared = tool.prepare(entry.toolCall.input)
        if (Either.isLeft(prepared)) return yield* stop(`its recorded input is not valid for ${tool.name} any more: ${prepared.left}`)
        const context = yield* makeRunContext(entry.workspace)
        if (judged._tag === "command_exec" && judged.cwd !== undefined) yield* Ref.set(context.cwd, judged.cwd)
        const request = prepared.right.request({ workspaceRoot: entry.workspace, cwd: yield* Ref.get(context.cwd) })
        if (canonicalize(request) !== canonicalize(entry.request)) return yield* stop("the recorded tool call no longer names the action that was approved")

        const started = yield* Clock.currentTimeMillis
        // The tool opens the path classified just now (and checked against the approval above), and checks
        // that what it opened is still that file (I10).
        const ran = yield* Effect.exit(Effect.either(prepared.right.run(context, judgedTargetOf(current))))
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
