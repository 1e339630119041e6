/**
 * The deferred-approval queue as a decider over the approvals stream: an action is queued once and
 * resolved at most once (I2), and only by its own principal (I7).
 */
import { Data, Either } from "effect"
import type { ApprovalScope } from "../events/approvalEvents.js"
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
}

export const initialQueueState: QueueState = { queued: new Map(), resolved: new Map() }

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
