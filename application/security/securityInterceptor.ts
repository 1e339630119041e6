/**
 * The SecurityInterceptor: the only road from a proposed action to its execution (I1).
 *
 *   propose -> [1 policy] -> [2 token] -> [3 budget] -> [4 approval] -> [5 audit] -> execute -> result
 *
 * Every outcome is an event with its proof on the session stream. If a decision cannot be appended,
 * nothing runs (fail closed). A policy block is final (I3); budgets are reserved atomically with the
 * proposal and released on denial, deferral, failure and cancellation (I4); tokens are checked for
 * expiry, revocation, principal, issuer and single use (I5); one principal cannot act in another's
 * session (I7).
 */
import { Clock, Context, Data, Duration, Effect, Either, Exit, Layer, Option, Schema } from "effect"
import type { ActionRequest, ClassifiedAction } from "../../domain/security/action.js"
import { classify, effectiveScope, offeredScopes } from "../../domain/security/classify.js"
import { evaluatePolicy, type PolicyVerdict, type SecurityPolicy } from "../../domain/security/policy.js"
import { boundaryVerdict, type EscapePolicy, type WorkspaceMode } from "../../domain/security/workspaceBoundary.js"
import { allowanceCovers } from "../../domain/security/allowance.js"
import { commandLineResource, grantCovers } from "../../domain/security/commandGrant.js"
import { escapeCommandPattern, escapeGlob, globMatch } from "../../domain/security/glob.js"
import { approvalsStream, sessionStream, workspaceStream } from "../../domain/streams.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import type { ApprovalScope, DeferredToolCall } from "../../domain/events/approvalEvents.js"
import { ActionRequest as ActionRequestSchema } from "../../domain/security/action.js"
import { decideResolve, evolveQueue, initialQueueState, pendingFor as pendingOf, type QueuedAction, type QueueState } from "../../domain/security/deferral.js"
import { EventLog, type EventDraft } from "../eventLog.js"
import { ApprovalChannel, type ApprovalReply } from "../ports/approvalChannel.js"
import { Crypto } from "../ports/crypto.js"
import { EventStore } from "../ports/eventStore.js"
import { Ids } from "../ports/ids.js"
import { PathResolver, type ResolvedPath } from "../ports/pathResolver.js"
import { makeStreamStateCache } from "../streamState.js"
import { type BudgetLimits, BudgetService, type Reservation } from "./budgetService.js"
import { TokenService } from "./tokenService.js"
import { messageOf } from "../../domain/errorMessage.js"

export interface SecuritySettings {
  readonly policy: SecurityPolicy
  readonly workspaceMode: WorkspaceMode
  readonly escapePolicy: EscapePolicy
  readonly approvalTimeoutMs: number
  readonly budget: BudgetLimits
  /** Lifetime of the token an Allow Always answer mints. */
  readonly allowAlwaysTtlMs: number
  /**
   * Resource globs an administrator pre-approved (e.g. "mcp://filesystem:read_*"): they pass without
   * asking once the policy has no objection. Never applies to actions that always ask.
   */
  readonly preApproved: ReadonlyArray<string>
}

export interface Proposal {
  readonly principal: string
  readonly sessionId: string
  /** The workspace root as configured; it is resolved with realpath before any comparison. */
  readonly workspaceRoot: string
  readonly request: ActionRequest
  readonly estimatedCostMicros: number
  readonly actionId?: string
  /** Queue priority if the action has to be deferred (higher first). */
  readonly priority?: number
  /** The tool call behind the request, kept with a deferral so that a worker can run it once approved. */
  readonly toolCall?: DeferredToolCall
}

export type Decision =
  | {
      readonly _tag: "Allowed"
      readonly actionId: string
      readonly action: ClassifiedAction
      readonly proof: string
      readonly reservation: Reservation | null
      readonly sessionId: string
      readonly principal: string
    }
  | { readonly _tag: "Denied"; readonly actionId: string; readonly stage: Stage; readonly reason: string; readonly remedy: string | null }
  | { readonly _tag: "Deferred"; readonly actionId: string; readonly requestId: string; readonly reason: DeferReason }

export type Stage = "policy" | "token" | "budget" | "approval" | "audit"
type DeferReason = "no_channel" | "channel_unavailable" | "timeout"

/** The interceptor could not reach a decision it can prove; nothing runs. */
export class InterceptError extends Data.TaggedError("InterceptError")<{ readonly message: string }> {}

export interface ToolOutcome {
  readonly ok: boolean
  readonly tool: string
  readonly output: string
  readonly truncated: boolean
  readonly durationMs: number
  /** What the action really cost, at most the reservation; defaults to the estimate. */
  readonly actualCostMicros?: number
}

export interface SecurityInterceptorApi {
  readonly intercept: (proposal: Proposal) => Effect.Effect<Decision, InterceptError>
  /** Records an allowed action's result and settles its budget (commit on success, release on failure). */
  readonly complete: (decision: Extract<Decision, { _tag: "Allowed" }>, outcome: ToolOutcome) => Effect.Effect<void, InterceptError>
  /**
   * Resolves a deferred action once (I2), by its own principal (I7). Approval re-runs policy and budget
   * before anything is allowed; the returned decision is what a worker may execute.
   */
  readonly resolveDeferred: (command: ResolveCommand) => Effect.Effect<Decision, InterceptError>
  /** The deferred actions waiting for `principal`, highest priority first. */
  readonly pendingFor: (principal: string) => Effect.Effect<ReadonlyArray<QueuedAction>, InterceptError>
  /** intercept, then run `execute` only when allowed, and record its result. */
  readonly guard: <A, E, R>(
    proposal: Proposal,
    execute: (decision: Extract<Decision, { _tag: "Allowed" }>) => Effect.Effect<{ value: A; outcome: ToolOutcome }, E, R>
  ) => Effect.Effect<{ decision: Decision; value: Option.Option<A> }, E | InterceptError, R>
}

export interface ResolveCommand {
  readonly requestId: string
  /** Who resolves: must be the principal the action was proposed by. */
  readonly principal: string
  readonly resolver: string
  readonly answer: { readonly _tag: "Approve"; readonly scope: ApprovalScope } | { readonly _tag: "Deny"; readonly reason: string | null }
}

export class SecurityInterceptor extends Context.Tag("astrid/SecurityInterceptor")<SecurityInterceptor, SecurityInterceptorApi>() {}

interface SessionInfo {
  readonly owner: string | null
  readonly allowances: ReadonlyArray<{ readonly eventId: string; readonly principal: string; readonly actionKind: string; readonly pattern: string }>
}

const foldAllowances = {
  initial: { owner: null, allowances: [] } satisfies SessionInfo as SessionInfo,
  types: new Set(["AllowanceGranted"]),
  // The owner is whoever wrote the stream's first event, read from the envelope without decoding.
  preview: (state: SessionInfo, recorded: { readonly metadata: string }): SessionInfo => {
    if (state.owner !== null) return state
    const owner = principalOf(recorded.metadata)
    return owner === undefined ? state : { ...state, owner }
  },
  evolve: (state: SessionInfo, event: AstridEvent, recorded: { readonly eventId: string }): SessionInfo =>
    event._tag !== "AllowanceGranted"
      ? state
      : { ...state, allowances: [...state.allowances, { eventId: recorded.eventId, principal: event.principal, actionKind: event.actionKind, pattern: event.pattern }] }
}

const principalOf = (metadata: string): string | undefined => {
  try {
    const m: unknown = JSON.parse(metadata)
    return typeof m === "object" && m !== null && "principal" in m && typeof m.principal === "string" ? m.principal : undefined
  } catch {
    return undefined
  }
}

const occurredAtOf = (metadata: string): string => {
  try {
    const m: unknown = JSON.parse(metadata)
    return typeof m === "object" && m !== null && "occurredAt" in m && typeof m.occurredAt === "string" ? m.occurredAt : ""
  } catch {
    return ""
  }
}


export const makeSecurityInterceptor = (settings: SecuritySettings) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const store = yield* EventStore
    const crypto = yield* Crypto
    const ids = yield* Ids
    const paths = yield* PathResolver
    const tokens = yield* TokenService
    const budget = yield* BudgetService
    const sessions = makeStreamStateCache(store, foldAllowances)
    const queue = makeStreamStateCache<QueueState>(store, {
      initial: initialQueueState,
      types: new Set(["DeferredActionQueued", "DeferredActionResolved"]),
      evolve: (state, event, recorded) => evolveQueue(state, event, occurredAtOf(recorded.metadata))
    })
    const workspaces = makeStreamStateCache(store, foldAllowances)

    const fail = (what: string) => (e: unknown) => new InterceptError({ message: `${what}: ${messageOf(e)}; the action was not run` })

    const append = (stream: string, drafts: ReadonlyArray<EventDraft>) =>
      log.append(stream, "any", drafts).pipe(Effect.mapError(fail(`could not record on ${stream}`)))

    const intercept = (p: Proposal): Effect.Effect<Decision, InterceptError> =>
      Effect.gen(function* () {
        if (!Number.isSafeInteger(p.estimatedCostMicros) || p.estimatedCostMicros < 0) {
          return yield* Effect.fail(new InterceptError({ message: `estimated cost ${String(p.estimatedCostMicros)} is not a non-negative whole number of micro-dollars` }))
        }
        const now = yield* Clock.currentTimeMillis
        const actionId = p.actionId ?? ids.uuidv7(now)
        const root = yield* paths.resolve(p.workspaceRoot, ".").pipe(Effect.mapError(fail("could not resolve the workspace root")))
        const requestedPath = "path" in p.request ? p.request.path : undefined
        const resolution = requestedPath === undefined ? undefined : yield* Effect.either(paths.resolve(p.workspaceRoot, requestedPath))
        const resolved = resolution?._tag === "Right" ? resolution.right : undefined
        // A command's working folder is judged as it really is (a link into protected state is not a way in).
        const cwdResolution =
          p.request._tag === "command_exec" && p.request.cwd !== undefined ? yield* Effect.either(paths.resolve(p.workspaceRoot, p.request.cwd)) : undefined
        const judgedRequest =
          p.request._tag === "command_exec" && cwdResolution?._tag === "Right" ? { ...p.request, cwd: cwdResolution.right.canonical } : p.request
        const classified = classify(judgedRequest, { workspaceRoot: root.canonical, ...placed(resolved) })
        const session = sessionStream(p.sessionId)
        const workspace = workspaceStreamOf(crypto.blake3Hex, root.canonical)
        const meta = { principal: p.principal, sessionId: p.sessionId, correlationId: actionId }
        const draft = (event: AstridEvent, classification: "trusted" | "untrusted" = "trusted"): EventDraft => ({ ...meta, event, classification })

        // I7: a session belongs to the principal that started it. An owner, once known, never changes,
        // so a cached one needs no read.
        const known = sessions.cached(session)
        const info = known !== undefined && known.state.owner !== null ? known : yield* sessions.load(session).pipe(Effect.mapError(fail("could not read the session")))
        if (info.state.owner !== null && info.state.owner !== p.principal) {
          return yield* Effect.fail(new InterceptError({ message: `session ${p.sessionId} belongs to another principal; start a session of your own` }))
        }

        const proposed = draft({
          _tag: "ActionProposed",
          actionId,
          kind: classified.kind,
          resource: classified.resource,
          risk: classified.risk,
          summary: classified.summary,
          arguments: p.request,
          estimatedCostMicros: p.estimatedCostMicros
        })
        const deny = (stage: Stage, reason: string, remedy: string | null, withProposal: boolean) =>
          append(session, [...(withProposal ? [proposed] : []), draft({ _tag: "ActionDenied", actionId, stage, reason, remedy })]).pipe(
            Effect.as({ _tag: "Denied", actionId, stage, reason, remedy } as const)
          )

        // A path that cannot be placed on disk (a link loop, `..` under a missing folder) is refused:
        // nobody can say what it would touch.
        if (resolution?._tag === "Left") {
          return yield* deny("policy", `cannot resolve ${resolution.left.path}: ${resolution.left.message}`, "use a plain path inside the workspace", true)
        }
        if (cwdResolution?._tag === "Left") {
          return yield* deny("policy", `cannot resolve the working folder ${cwdResolution.left.path}: ${cwdResolution.left.message}`, "run the command from a folder that exists", true)
        }

        // 1. Policy: final, whatever tokens or humans say (I3).
        const verdict = evaluatePolicy(settings.policy, classified)
        if (verdict._tag === "Blocked") return yield* deny("policy", verdict.reason, verdict.remedy, true)
        // The policy asks: a person decides this action itself, every time, or (where the policy says so) a
        // grant for this exact command line does; no program grant or pre-approval covers it.
        const exactOnly = verdict._tag === "AskRequired" && verdict.exactGrants === true
        const action = asJudged(classified, verdict)
        const boundary = boundaryVerdict(settings.workspaceMode, settings.escapePolicy, classified)
        if (boundary === "deny") {
          return yield* deny("policy", `${action.summary}: outside the workspace, and escape_policy is deny`, "set [security] escape_policy = \"ask\" to be asked instead", true)
        }

        // 2. Token: a standing, signed permission. Never for actions that always ask, nor for once-only ones
        // (a token's resource cannot say which spawn or identity change was approved).
        const token = action.alwaysAsk || action.onceOnly
          ? Option.none()
          : yield* tokens
              .findCovering({
                principal: p.principal,
                resource: action.resource,
                permission: action.permission,
                nowMs: now,
                ...commandOf(action),
                ...(exactOnly ? { exactLine: true } : {})
              })
              .pipe(Effect.mapError(fail("could not check capability tokens")))

        // 3. Budget: reserved in the same append as the proposal. When the decision is already known (a
        // reusable token, or a policy that lets the action pass) it goes into that same append too, so the
        // fast paths cost one durable write.
        const reusable = Option.isSome(token) && !token.value.token.singleUse ? token.value : undefined
        const preApproved = settings.preApproved.find((pattern) => grantCovers(pattern, { resource: action.resource, ...commandOf(action) }, globMatch))
        const passes = !action.alwaysAsk && verdict._tag === "NoObjection" && (boundary === "pass" || preApproved !== undefined)
        const passRule = preApproved !== undefined && boundary !== "pass" ? `pre_approved: ${preApproved}` : `workspace.${settings.workspaceMode}`
        const decidedNow: Extract<AstridEvent, { _tag: "ActionAllowed" }>["proof"] | undefined =
          reusable !== undefined
            ? { _tag: "TokenCovered", tokenId: reusable.token.tokenId, tokenHash: reusable.hash }
            : Option.isNone(token) && passes
              ? { _tag: "PolicyAllowed", rule: passRule }
              : undefined
        const reserved = yield* budget
          .reserve({
            sessionStream: session,
            workspaceStream: workspace,
            actionId,
            amountMicros: p.estimatedCostMicros,
            limits: settings.budget,
            principal: p.principal,
            sessionId: p.sessionId,
            correlationId: actionId,
            extraEvents: [proposed],
            ...(decidedNow === undefined ? {} : { followingEvents: [draft({ _tag: "ActionAllowed", actionId, proof: decidedNow })] })
          })
          .pipe(Effect.mapError(fail("could not reserve the budget")))
        if (reserved._tag === "Exceeded") return yield* deny("budget", reserved.reason, reserved.remedy, true)
        const reservation = reserved.reservation
        const allowed = (label: string) =>
          ({ _tag: "Allowed", actionId, action, proof: label, reservation, sessionId: p.sessionId, principal: p.principal }) as const
        if (decidedNow !== undefined) return allowed(decidedNow._tag === "TokenCovered" ? "token" : "policy")

        const release = (reason: "denied" | "cancelled" | "failed", following: ReadonlyArray<EventDraft> = []) =>
          budget.release(reservation, reason, { followingEvents: following }).pipe(Effect.asVoid, Effect.mapError(fail("could not release the budget")))
        const allow = (proof: Extract<AstridEvent, { _tag: "ActionAllowed" }>["proof"], label: string, extra: ReadonlyArray<EventDraft> = []) =>
          append(session, [...extra, draft({ _tag: "ActionAllowed", actionId, proof })]).pipe(
            Effect.tapError(() => release("failed").pipe(Effect.ignore)),
            Effect.as(allowed(label))
          )

        if (Option.isSome(token)) {
          // A single-use token is spent (CapabilityTokenUsed, at most once) before the action is allowed.
          const used = yield* tokens.use(token.value, { actionId, sessionId: p.sessionId }).pipe(Effect.either)
          if (used._tag === "Right") {
            return yield* allow({ _tag: "TokenCovered", tokenId: token.value.token.tokenId, tokenHash: token.value.hash }, "token")
          }
          // Spent by a concurrent action in the meantime: fall through to asking.
          if (passes) return yield* allow({ _tag: "PolicyAllowed", rule: passRule }, "policy")
        }

        // 4. Approval: standing allowances first (never for once-only actions), then a human.
        if (!action.alwaysAsk && !action.onceOnly) {
          const sessionAllowances = (yield* sessions.load(session).pipe(Effect.mapError(fail("could not read the session")))).state.allowances
          const workspaceAllowances = (yield* workspaces.load(workspace).pipe(Effect.mapError(fail("could not read the workspace")))).state.allowances
          const covers = (a: { readonly principal: string; readonly actionKind: string; readonly pattern: string }): boolean =>
            a.principal === p.principal && (exactOnly ? a.actionKind === action.kind && a.pattern === allowancePatternOf(action) : allowanceCovers(a, action))
          const found = sessionAllowances.find(covers) ?? workspaceAllowances.find(covers)
          if (found !== undefined) {
            const scope = sessionAllowances.includes(found) ? "session" : "workspace"
            return yield* allow({ _tag: "AllowanceCovered", allowanceEventId: found.eventId, scope }, `allowance (${scope})`)
          }
        }

        const requestId = ids.uuidv7(now)
        const defer = (reason: DeferReason) =>
          Effect.gen(function* () {
            yield* append(approvalsStream, [
              {
                ...meta,
                event: {
                  _tag: "DeferredActionQueued",
                  requestId,
                  sessionId: p.sessionId,
                  actionId,
                  principal: p.principal,
                  workspace: p.workspaceRoot,
                  request: p.request,
                  estimatedCostMicros: p.estimatedCostMicros,
                  priority: p.priority ?? riskPriority(action),
                  summary: action.summary,
                  risk: action.risk,
                  reason,
                  ...(p.toolCall === undefined ? {} : { toolCall: p.toolCall })
                }
              }
            ])
            // Nothing is held while the action waits; a resolution reserves again.
            yield* release("cancelled", [draft({ _tag: "ActionDeferred", actionId, requestId, priority: p.priority ?? riskPriority(action), reason })])
            return { _tag: "Deferred", actionId, requestId, reason } as const
          })

        const channel = yield* Effect.serviceOption(ApprovalChannel)
        if (Option.isNone(channel)) return yield* defer("no_channel")
        yield* append(session, [draft({ _tag: "ApprovalRequested", requestId, actionId, channel: channel.value.name })])
        const asked = yield* channel.value
          .ask({
            requestId,
            actionId,
            principal: p.principal,
            sessionId: p.sessionId,
            kind: action.kind,
            resource: action.resource,
            risk: action.risk,
            summary: action.summary,
            reason:
              verdict._tag === "AskRequired"
                ? verdict.reason
                : action.alwaysAsk
                  ? `${action.kind} always needs a human`
                  : boundary === "ask"
                    ? "the workspace mode asks for this"
                    : "policy asks for this",
            offered: offeredScopes(action)
          })
          .pipe(
            Effect.timeoutFail({ duration: Duration.millis(settings.approvalTimeoutMs), onTimeout: () => "timeout" as const }),
            Effect.either,
            // Cancelled while the human is still thinking: release, and record the end of this proposal (I2).
            Effect.onInterrupt(() =>
              release("cancelled", [draft({ _tag: "ActionDenied", actionId, stage: "approval", reason: "cancelled before an answer", remedy: null })]).pipe(Effect.ignore)
            )
          )
        if (asked._tag === "Left") return yield* defer(asked.left === "timeout" ? "timeout" : "channel_unavailable")
        return yield* settleAnswer({ reply: asked.right, requestId, actionId, action, p, reservation, session, workspace, draft, allow, release, now })
      })

    const settleAnswer = (a: {
      reply: ApprovalReply
      requestId: string
      actionId: string
      action: ClassifiedAction
      p: Proposal
      reservation: Reservation
      session: string
      workspace: string
      draft: (event: AstridEvent) => EventDraft
      allow: (proof: Extract<AstridEvent, { _tag: "ActionAllowed" }>["proof"], label: string, extra?: ReadonlyArray<EventDraft>) => Effect.Effect<Decision, InterceptError>
      release: (reason: "denied" | "cancelled" | "failed", following?: ReadonlyArray<EventDraft>) => Effect.Effect<void, InterceptError>
      now: number
    }): Effect.Effect<Decision, InterceptError> =>
      Effect.gen(function* () {
        const { reply, requestId, actionId, action, p, draft } = a
        if (reply.answer._tag === "Deny") {
          const reason = `denied by ${reply.approver}${reply.answer.reason === null ? "" : `: ${reply.answer.reason}`}`
          yield* append(a.session, [draft({ _tag: "ApprovalRefused", requestId, actionId, approver: reply.approver, reason: reply.answer.reason })])
          // The release and the denial are one append: no moment where the money is back but no decision is.
          yield* a.release("denied", [draft({ _tag: "ActionDenied", actionId, stage: "approval", reason, remedy: null })])
          return { _tag: "Denied", actionId, stage: "approval", reason, remedy: null } as const
        }
        const answered = reply.answer._tag === "AllowOnce" ? "once" : reply.answer._tag === "AllowSession" ? "session" : reply.answer._tag === "AllowWorkspace" ? "workspace" : "always"
        // An answer the prompt did not offer (a channel that ignored `offered`) approves this action only.
        const scope = effectiveScope(action, answered)
        const granted = yield* append(a.session, [draft({ _tag: "ApprovalGranted", requestId, actionId, scope, approver: reply.approver })])
        const approvalEventId = granted.events[0]?.eventId ?? requestId
        yield* recordScope({ scope, approvalEventId, action, principal: p.principal, sessionId: p.sessionId, session: a.session, workspace: a.workspace, now: a.now })
        return yield* a.allow({ _tag: "HumanApproved", approvalEventId, approver: reply.approver }, `approved (${scope}) by ${reply.approver}`)
      })

    /** What an answer leaves behind: an allowance (session, workspace) or a token (always). */
    const recordScope = (s: {
      scope: "once" | "session" | "workspace" | "always"
      approvalEventId: string
      action: ClassifiedAction
      principal: string
      sessionId: string
      session: string
      workspace: string
      now: number
    }) =>
      Effect.gen(function* () {
        // Defence in depth: whatever scope reached here, a once-only action leaves nothing standing.
        if (s.action.onceOnly) return
        if (s.scope === "session" || s.scope === "workspace") {
          yield* append(s.scope === "session" ? s.session : s.workspace, [
            {
              principal: s.principal,
              sessionId: s.sessionId,
              event: {
                _tag: "AllowanceGranted",
                allowanceId: ids.uuidv7(s.now),
                scope: s.scope,
                principal: s.principal,
                actionKind: s.action.kind,
                pattern: allowancePatternOf(s.action),
                approvalEventId: s.approvalEventId
              }
            }
          ])
        } else if (s.scope === "always") {
          yield* tokens
            .mint({
              principal: s.principal,
              // A command grant is for the line the person saw, not for its first program (I9).
              resource: s.action.request._tag === "command_exec" ? commandLineResource(s.action.request.command) : s.action.resource,
              permissions: [s.action.permission],
              ttlMs: settings.allowAlwaysTtlMs,
              singleUse: false,
              approvalEventId: s.approvalEventId
            })
            .pipe(Effect.mapError(fail("could not mint the Allow Always token")))
        }
      })

    const complete: SecurityInterceptorApi["complete"] = (decision, outcome) =>
      Effect.gen(function* () {
        yield* append(sessionStream(decision.sessionId), [
          {
            principal: decision.principal,
            sessionId: decision.sessionId,
            correlationId: decision.actionId,
            // Tool output is untrusted data, whoever produced it.
            classification: "untrusted",
            event: { _tag: "ToolResultRecorded", actionId: decision.actionId, tool: outcome.tool, ok: outcome.ok, output: outcome.output, truncated: outcome.truncated, durationMs: outcome.durationMs }
          }
        ])
        if (decision.reservation !== null) {
          yield* (outcome.ok ? budget.commit(decision.reservation, outcome.actualCostMicros) : budget.release(decision.reservation, "failed")).pipe(
            Effect.mapError(fail("could not settle the budget"))
          )
        }
      })

    const guard: SecurityInterceptorApi["guard"] = (proposal, execute) =>
      Effect.gen(function* () {
        const decision = yield* intercept(proposal)
        if (decision._tag !== "Allowed") return { decision, value: Option.none() }
        const failed = (output: string): ToolOutcome => ({ ok: false, tool: decision.action.kind, output, truncated: false, durationMs: 0 })
        const exit = yield* Effect.exit(
          execute(decision).pipe(Effect.onInterrupt(() => complete(decision, failed("cancelled while running")).pipe(Effect.ignore)))
        )
        if (Exit.isSuccess(exit)) {
          // A result that cannot be recorded is an error the caller sees, not a silent gap in the log.
          yield* complete(decision, exit.value.outcome)
          return { decision, value: Option.some(exit.value.value) }
        }
        yield* complete(decision, failed("the action failed")).pipe(Effect.ignore)
        return yield* Effect.failCause(exit.cause)
      })

    const pendingFor: SecurityInterceptorApi["pendingFor"] = (principal) =>
      queue.load(approvalsStream).pipe(
        Effect.map((q) => pendingOf(q.state, principal)),
        Effect.mapError(fail("could not read the approval queue"))
      )

    const resolveDeferred: SecurityInterceptorApi["resolveDeferred"] = (c) =>
      Effect.gen(function* () {
        const q = yield* queue.load(approvalsStream).pipe(Effect.mapError(fail("could not read the approval queue")))
        const decided = decideResolve(q.state, { requestId: c.requestId, principal: c.principal })
        if (Either.isLeft(decided)) return yield* Effect.fail(new InterceptError({ message: decided.left.message }))
        const entry = decided.right
        const now = yield* Clock.currentTimeMillis
        const session = sessionStream(entry.sessionId)
        const meta = { principal: entry.principal, sessionId: entry.sessionId, correlationId: entry.actionId }
        const draft = (event: AstridEvent): EventDraft => ({ ...meta, event })
        // Appending the resolution at the revision just read is what makes it happen once: a concurrent
        // resolver loses the race and is told the action was already resolved.
        const resolve = (outcome: "approved" | "denied", scope: ApprovalScope | null, reason: string | null) =>
          log
            .append(approvalsStream, q.revision ?? "no_stream", [
              { ...meta, event: { _tag: "DeferredActionResolved", requestId: c.requestId, outcome, scope, resolver: c.resolver, reason } }
            ])
            .pipe(
              Effect.mapError((e) =>
                e._tag === "WrongExpectedRevision"
                  ? new InterceptError({ message: `deferred action ${c.requestId} changed while resolving it; run the command again` })
                  : fail("could not record the resolution")(e)
              )
            )
        const denied = (stage: Stage, reason: string, remedy: string | null) =>
          Effect.gen(function* () {
            yield* resolve("denied", null, reason)
            yield* append(session, [draft({ _tag: "ActionDenied", actionId: entry.actionId, stage, reason, remedy })])
            return { _tag: "Denied", actionId: entry.actionId, stage, reason, remedy } as const
          })
        if (c.answer._tag === "Deny") {
          return yield* denied("approval", `denied by ${c.resolver}${c.answer.reason === null ? "" : `: ${c.answer.reason}`}`, null)
        }
        const request = Schema.decodeUnknownEither(ActionRequestSchema)(entry.request)
        if (Either.isLeft(request)) return yield* denied("policy", "the queued request is not a valid action any more", null)
        // Re-check (I2): the world may have changed since the action was queued.
        const root = yield* paths.resolve(entry.workspace, ".").pipe(Effect.mapError(fail("could not resolve the workspace root")))
        const requestedPath = "path" in request.right ? request.right.path : undefined
        const resolved = requestedPath === undefined ? undefined : yield* paths.resolve(entry.workspace, requestedPath).pipe(Effect.mapError(fail("could not resolve the path")))
        const classified = classify(request.right, { workspaceRoot: root.canonical, ...placed(resolved) })
        const verdict = evaluatePolicy(settings.policy, classified)
        if (verdict._tag === "Blocked") return yield* denied("policy", verdict.reason, verdict.remedy)
        const action = asJudged(classified, verdict)
        if (boundaryVerdict(settings.workspaceMode, settings.escapePolicy, classified) === "deny") {
          return yield* denied("policy", `${action.summary}: outside the workspace, and escape_policy is deny`, null)
        }
        const workspace = workspaceStreamOf(crypto.blake3Hex, root.canonical)
        const reserved = yield* budget
          .reserve({
            sessionStream: session,
            workspaceStream: workspace,
            actionId: entry.actionId,
            amountMicros: entry.estimatedCostMicros,
            limits: settings.budget,
            principal: entry.principal,
            sessionId: entry.sessionId,
            correlationId: entry.actionId
          })
          .pipe(Effect.mapError(fail("could not reserve the budget")))
        if (reserved._tag === "Exceeded") return yield* denied("budget", reserved.reason, reserved.remedy)
        // `astrid approvals` may answer with any scope; a once-only action still gets no standing grant.
        const scope = effectiveScope(action, c.answer.scope)
        const resolution = yield* resolve("approved", scope, null).pipe(
          Effect.tapError(() => budget.release(reserved.reservation, "cancelled").pipe(Effect.ignore))
        )
        const approvalEventId = resolution.events[0]?.eventId ?? c.requestId
        yield* recordScope({ scope, approvalEventId, action, principal: entry.principal, sessionId: entry.sessionId, session, workspace, now })
        yield* append(session, [draft({ _tag: "ActionAllowed", actionId: entry.actionId, proof: { _tag: "HumanApproved", approvalEventId, approver: c.resolver } })])
        return { _tag: "Allowed", actionId: entry.actionId, action, proof: `approved (${scope}) by ${c.resolver}`, reservation: reserved.reservation, sessionId: entry.sessionId, principal: entry.principal } as const
      })

    return { intercept, complete, guard, resolveDeferred, pendingFor } satisfies SecurityInterceptorApi
  })

/**
 * The pattern an allowance records: the command line or the resource, escaped, so that approving
 * `rm *` covers exactly `rm *` again and never `rm -rf ~`.
 */
export const allowancePatternOf = (action: ClassifiedAction): string =>
  action.request._tag === "command_exec" ? escapeCommandPattern(action.request.command) : escapeGlob(action.resource)

/**
 * The action as the rest of the flow treats it: one the policy asks about (other than "a grant for this exact
 * line may answer") is decided by a person every time, Allow Once only, with no token, allowance or
 * pre-approval consulted.
 */
const asJudged = (action: ClassifiedAction, verdict: PolicyVerdict): ClassifiedAction =>
  verdict._tag === "AskRequired" && verdict.exactGrants !== true ? { ...action, alwaysAsk: true, onceOnly: true } : action

/** What the file system said of a request's path, as classification takes it. */
const placed = (resolved: ResolvedPath | undefined): { readonly canonicalPath?: string; readonly hardLinked?: boolean } =>
  resolved === undefined ? {} : { canonicalPath: resolved.canonical, ...(resolved.hardLinked ? { hardLinked: true } : {}) }

/** The command line of a command action, as a token query wants it. */
const commandOf = (action: ClassifiedAction): { readonly command?: string } =>
  action.request._tag === "command_exec" ? { command: action.request.command } : {}

/** The stream of a workspace's budget and allowances, named by a hash of its canonical root. */
export const workspaceStreamOf = (blake3Hex: (text: string) => string, canonicalRoot: string): string =>
  workspaceStream(blake3Hex(`astrid/workspace/${canonicalRoot}`).slice(0, 32))

const riskPriority = (action: ClassifiedAction): number =>
  action.risk === "critical" ? 3 : action.risk === "high" ? 2 : action.risk === "medium" ? 1 : 0

export const SecurityInterceptorLive = (settings: SecuritySettings) => Layer.effect(SecurityInterceptor, makeSecurityInterceptor(settings))
