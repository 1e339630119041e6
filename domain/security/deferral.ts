/**
 * The deferred-approval queue as a decider over the approvals stream: an action is queued once and
 * resolved at most once (I2), and only by its own principal (I7).
 */
import { Data, Either } from "effect"
import type { ApprovalScope, DeferredToolCall } from "../events/approvalEvents.js"
import type { AstridEvent } from "../events/astridEvent.js"

export interface QueuedAction {
  readonly requestId: string
  readonly sessionId: string
  readonly actionId: string
  readonly principal: string
  readonly workspace: string
  readonly request: unknown
  readonly estimatedCostMicros: number
  readonly priority: number
  readonly summary: string
  readonly risk: string
  readonly reason: string
  readonly queuedAt: string
  /** The tool call a worker runs once the action is approved; absent for actions queued without one. */
  readonly toolCall?: DeferredToolCall
}

export interface Resolution {
  readonly outcome: "approved" | "denied" | "expired"
  readonly scope: ApprovalScope | null
  readonly resolver: string
  readonly reason: string | null
}

export interface QueueState {
  readonly queued: ReadonlyMap<string, QueuedAction>
  readonly resolved: ReadonlyMap<string, Resolution>
  /** Approved actions a worker has taken to run, by request id: the worker's name. */
  readonly claimed: ReadonlyMap<string, string>
}

export const initialQueueState: QueueState = { queued: new Map(), resolved: new Map(), claimed: new Map() }

export const evolveQueue = (state: QueueState, event: AstridEvent, occurredAt: string): QueueState => {
  switch (event._tag) {
    case "DeferredActionQueued": {
      const queued = new Map(state.queued)
      const { _tag: _, ...rest } = event
      queued.set(event.requestId, { ...rest, queuedAt: occurredAt })
      return { ...state, queued }
    }
    case "DeferredActionResolved": {
      const resolved = new Map(state.resolved)
      resolved.set(event.requestId, { outcome: event.outcome, scope: event.scope, resolver: event.resolver, reason: event.reason })
      return { ...state, resolved }
    }
    case "DeferredActionClaimed": {
      const claimed = new Map(state.claimed)
      claimed.set(event.requestId, event.worker)
      return { ...state, claimed }
    }
    default:
      return state
  }
}

export class QueueError extends Data.TaggedError("QueueError")<{
  readonly kind: "unknown_request" | "already_resolved" | "foreign_principal"
  readonly message: string
}> {}

/** The pending entries a principal may see, highest priority first, then oldest first. */
export const pendingFor = (state: QueueState, principal: string | null): ReadonlyArray<QueuedAction> =>
  [...state.queued.values()]
    .filter((q) => !state.resolved.has(q.requestId) && (principal === null || q.principal === principal))
    .sort((a, b) => b.priority - a.priority || (a.queuedAt < b.queuedAt ? -1 : a.queuedAt > b.queuedAt ? 1 : 0))

/** Decides a resolution: the entry must exist, be unresolved and belong to the resolver's principal. */
export const decideResolve = (
  state: QueueState,
  command: { readonly requestId: string; readonly principal: string }
): Either.Either<QueuedAction, QueueError> => {
  const entry = state.queued.get(command.requestId)
  // Another principal's entry is reported exactly like a missing one, so ids cannot be probed (I7).
  if (entry === undefined || entry.principal !== command.principal) {
    return Either.left(
      new QueueError({ kind: "unknown_request", message: `no deferred action ${command.requestId} for principal ${command.principal}; 'astrid approvals list' shows yours` })
    )
  }
  const done = state.resolved.get(command.requestId)
  if (done !== undefined) {
    return Either.left(
      new QueueError({ kind: "already_resolved", message: `deferred action ${command.requestId} was already ${done.outcome} by ${done.resolver}; it can be resolved only once` })
    )
  }
  return Either.right(entry)
}

/** Approved actions of `principal` with a tool call that no worker has claimed yet, highest priority first. */
export const runnableFor = (state: QueueState, principal: string): ReadonlyArray<QueuedAction> =>
  [...state.queued.values()]
    .filter((q) => q.principal === principal && q.toolCall !== undefined && state.resolved.get(q.requestId)?.outcome === "approved" && !state.claimed.has(q.requestId))
    .sort((a, b) => b.priority - a.priority || (a.queuedAt < b.queuedAt ? -1 : a.queuedAt > b.queuedAt ? 1 : 0))

export class ClaimRefused extends Data.TaggedError("ClaimRefused")<{
  readonly kind: "unknown_request" | "not_approved" | "already_claimed" | "no_tool_call"
  readonly message: string
}> {}

/**
 * Decides a worker's claim: the entry must be the claimant's own (I7), approved, carry a tool call, and
 * be unclaimed; a claim appended at the revision decided on makes the run happen at most once (I2).
 */
export const decideClaim = (
  state: QueueState,
  command: { readonly requestId: string; readonly principal: string }
): Either.Either<QueuedAction & { readonly toolCall: DeferredToolCall; readonly resolution: Resolution }, ClaimRefused> => {
  const entry = state.queued.get(command.requestId)
  if (entry === undefined || entry.principal !== command.principal) {
    return Either.left(new ClaimRefused({ kind: "unknown_request", message: `no deferred action ${command.requestId} for principal ${command.principal}` }))
  }
  const resolution = state.resolved.get(command.requestId)
  if (resolution === undefined || resolution.outcome !== "approved") {
    const status = resolution === undefined ? "not resolved yet" : `${resolution.outcome} by ${resolution.resolver}`
    return Either.left(new ClaimRefused({ kind: "not_approved", message: `deferred action ${command.requestId} is ${status}; only an approved action runs` }))
  }
  const worker = state.claimed.get(command.requestId)
  if (worker !== undefined) {
    return Either.left(new ClaimRefused({ kind: "already_claimed", message: `deferred action ${command.requestId} was already taken by ${worker}; it runs only once` }))
  }
  const toolCall = entry.toolCall
  if (toolCall === undefined) {
    return Either.left(new ClaimRefused({ kind: "no_tool_call", message: `deferred action ${command.requestId} was queued without a tool call; there is nothing a worker can run` }))
  }
  return Either.right({ ...entry, toolCall, resolution })
}
