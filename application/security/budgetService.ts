/**
 * BudgetService: per-action, per-session and per-workspace spending limits (I4), as reservations on
 * the session stream and on the workspace stream.
 *
 * Every step loads the stream's budget state, decides (domain/security/budget.ts), and appends with the
 * revision it decided on; a concurrent writer makes the append fail, and the step reloads and decides
 * again. So `spent + reserved` never passes a limit, however many writers race, in one process or many.
 *
 * A reservation is taken on the workspace stream first, then on the session stream; if the session
 * step fails for any reason, the workspace reservation is given back with an explicit
 * `BudgetReleased{reason: "compensation"}`, so no reservation is left unaccounted.
 *
 * A commit charges the actual cost in full on both streams, also above the reservation (the overrun is
 * named in the BudgetCommitted event); the limits then stop the next reservation, because `spent`
 * includes every overrun. An action that reserved nothing but reports a cost is charged the same way.
 */
import { Clock, Context, Data, Effect, Either, Layer } from "effect"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import {
  type BudgetExceeded,
  type BudgetScope,
  BUDGET_EVENT_TYPES,
  type BudgetState,
  type BudgetWarning,
  chargeUnreserved,
  checkMicros,
  commit as decideCommit,
  evolveBudget,
  initialBudgetState,
  type InvalidAmount,
  type SettleError,
  release as decideRelease,
  ReservationClosed,
  reserve as decideReserve,
  type DuplicateReservation,
  type UnknownReservation
} from "../../domain/security/budget.js"
import { isStreamName } from "../../domain/streams.js"
import { type AppendedBatch, type EventDraft, type EventEncodingError, EventLog } from "../eventLog.js"
import { EventStore, type EventStoreError, WrongExpectedRevision } from "../ports/eventStore.js"
import { Ids } from "../ports/ids.js"
import { makeStreamStateCache } from "../streamState.js"

/** All in micro-dollars, except the percentage. */
export interface BudgetLimits {
  readonly perActionMicros: number
  readonly perSessionMicros: number
  readonly perWorkspaceMicros: number
  /** Warn once spending reaches this percent of a limit; 0 turns warnings off. */
  readonly warnAtPercent: number
}

export interface ReserveRequest {
  readonly sessionStream: string
  readonly workspaceStream: string
  readonly actionId: string
  readonly amountMicros: number
  readonly limits: BudgetLimits
  /** Envelope of the budget events: whose action this is. */
  readonly principal: string
  readonly sessionId?: string
  /** Default: the action id, so every event of one action shares a correlation id. */
  readonly correlationId?: string
  /** Default: a fresh UUIDv7. The same id pairs the session and the workspace reservation. */
  readonly reservationId?: string
  /**
   * Events appended on the session stream just before BudgetReserved, in the same atomic append (e.g.
   * ActionProposed). They are written only when the reservation succeeds.
   */
  readonly extraEvents?: ReadonlyArray<EventDraft>
  /** Events appended just after BudgetReserved, in the same append (e.g. an ActionAllowed already decided). */
  readonly followingEvents?: ReadonlyArray<EventDraft>
}

/** What commit and release need: enough to find the reservation on both streams, also from another process. */
export interface ReservationRef {
  readonly reservationId: string
  readonly actionId: string
  readonly sessionStream: string
  readonly workspaceStream: string
  readonly principal: string
  readonly sessionId?: string
  readonly correlationId: string
  /**
   * A zero-cost action holds nothing, so nothing is written for it on either stream (most tool calls
   * cost nothing; their one durable write is then the decision itself). Settling it writes only the
   * caller's extra events.
   */
  readonly empty?: boolean
}

export interface Reservation extends ReservationRef {
  readonly amountMicros: number
  /** Thresholds reached on either stream by this reservation. */
  readonly warnings: ReadonlyArray<BudgetWarning>
}

export type ReserveOutcome =
  | {
      readonly _tag: "Reserved"
      readonly reservation: Reservation
      /** The session-stream append: extraEvents, BudgetReserved, followingEvents. */
      readonly appended: AppendedBatch
    }
  | {
      /** Nothing is held: the limit was hit on the workspace, or on the session and the workspace was compensated. */
      readonly _tag: "Exceeded"
      readonly exceeded: BudgetExceeded
      /** One line for a denial event. */
      readonly reason: string
      /** What a person can do about it. */
      readonly remedy: string
      /** True when a workspace reservation was taken and given back (reason compensation). */
      readonly compensated: boolean
    }

/** Extra events for the session-stream append of a commit or a release (e.g. ActionDenied with its release). */
export interface SettleOptions {
  readonly extraEvents?: ReadonlyArray<EventDraft>
  readonly followingEvents?: ReadonlyArray<EventDraft>
}

export interface CommitOutcome {
  /** Charged on both streams: the actual cost, in full. */
  readonly committedMicros: number
  readonly releasedMicros: number
  /** The part of the actual cost beyond the reservation: charged with it, and named in the commit event. */
  readonly overrunMicros: number
}

export interface ReleaseOutcome {
  readonly releasedMicros: number
}

export interface BudgetSnapshot {
  /** Charged so far, overruns included; it can be above the limit by what commits overran. */
  readonly spentMicros: number
  readonly reservedMicros: number
  /** The part of `spentMicros` charged beyond reservations. */
  readonly overrunMicros: number
  readonly openReservations: number
  readonly revision: number | undefined
}

/** A reserve request that cannot be carried out as given (bad stream names, one stream for both scopes). */
export class InvalidBudgetRequest extends Data.TaggedError("InvalidBudgetRequest")<{ readonly message: string }> {}

export type BudgetServiceError =
  | InvalidAmount
  | InvalidBudgetRequest
  | DuplicateReservation
  | UnknownReservation
  | ReservationClosed
  | EventStoreError
  | EventEncodingError
  | WrongExpectedRevision

export type ReleaseByCaller = "denied" | "cancelled" | "failed"

export interface BudgetServiceApi {
  readonly reserve: (request: ReserveRequest) => Effect.Effect<ReserveOutcome, BudgetServiceError>
  /**
   * Commits the actual cost (default: the reserved amount) in full on both streams: a lower cost releases
   * the rest, a higher one is charged too and recorded as the commit's overrun.
   */
  readonly commit: (reservation: ReservationRef, amountMicros?: number, options?: SettleOptions) => Effect.Effect<CommitOutcome, BudgetServiceError>
  /** Gives the whole reservation back on both streams (denial, cancellation, failure). */
  readonly release: (reservation: ReservationRef, reason: ReleaseByCaller, options?: SettleOptions) => Effect.Effect<ReleaseOutcome, BudgetServiceError>
  /** Spent and reserved on one stream, as of now. */
  readonly snapshot: (stream: string) => Effect.Effect<BudgetSnapshot, EventStoreError>
}

export class BudgetService extends Context.Tag("astrid/BudgetService")<BudgetService, BudgetServiceApi>() {}

/**
 * Each lost race means another writer's append succeeded, so the system as a whole always progresses;
 * the bound only stops a pathological loop.
 */
const MAX_CONFLICT_RETRIES = 500

interface Decided<A> {
  readonly before?: ReadonlyArray<EventDraft>
  readonly events: ReadonlyArray<AstridEvent>
  readonly after?: ReadonlyArray<EventDraft>
  readonly value: A
}

export const makeBudgetService = Effect.gen(function* () {
  const log = yield* EventLog
  const store = yield* EventStore
  const ids = yield* Ids
  const cache = makeStreamStateCache<BudgetState>(store, {
    initial: initialBudgetState,
    evolve: (state, event) => evolveBudget(state, event),
    types: BUDGET_EVENT_TYPES
  })

  /** Load, decide, append at the loaded revision; on a lost race, all over again. */
  const decideAndAppend = <A, E>(
    stream: string,
    envelope: Omit<EventDraft, "event">,
    decide: (state: BudgetState) => Either.Either<Decided<A>, E>
  ) =>
    Effect.retry(
      Effect.gen(function* () {
        // Optimistic: decide on what this process last saw. The append is at that revision, so if
        // another writer got there first it fails, the cache is dropped and the retry reads afresh.
        const loaded = cache.cached(stream) ?? (yield* cache.load(stream))
        const decided = decide(loaded.state)
        if (Either.isLeft(decided)) {
          // A refusal must rest on the current state, not on a possibly stale one.
          if (cache.cached(stream) === loaded) {
            const fresh = yield* cache.load(stream)
            if (fresh.revision !== loaded.revision) return yield* Effect.fail(new WrongExpectedRevision({ stream, expected: loaded.revision ?? "no_stream", actual: fresh.revision ?? "no_stream" }))
          }
          return yield* Effect.fail(decided.left)
        }
        const { before = [], events, after = [], value } = decided.right
        const drafts = [...before, ...events.map((event): EventDraft => ({ ...envelope, event })), ...after]
        const batch = yield* log.append(stream, loaded.revision ?? "no_stream", drafts).pipe(Effect.tapError(() => Effect.sync(() => cache.invalidate(stream))))
        cache.record(stream, batch.events)
        return { value, batch }
      }),
      { times: MAX_CONFLICT_RETRIES, while: (e) => e instanceof WrongExpectedRevision }
    )

  const envelopeOf = (ref: Pick<ReservationRef, "principal" | "sessionId" | "correlationId">): Omit<EventDraft, "event"> => ({
    principal: ref.principal,
    correlationId: ref.correlationId,
    ...(ref.sessionId === undefined ? {} : { sessionId: ref.sessionId })
  })

  const exceededOutcome = (exceeded: BudgetExceeded, compensated: boolean): ReserveOutcome => ({
    _tag: "Exceeded",
    exceeded,
    reason: exceeded.message,
    remedy: exceeded.remedy,
    compensated
  })

  const reserve: BudgetServiceApi["reserve"] = (request) =>
    Effect.gen(function* () {
      const amount = yield* checkMicros("amountMicros", request.amountMicros)
      for (const stream of [request.sessionStream, request.workspaceStream]) {
        if (!isStreamName(stream)) {
          return yield* Effect.fail(new InvalidBudgetRequest({ message: `'${stream}' is not a valid stream name; budgets live on astrid-session-<id> and astrid-workspace-<hash>` }))
        }
      }
      if (request.sessionStream === request.workspaceStream) {
        return yield* Effect.fail(
          new InvalidBudgetRequest({ message: `the session and the workspace budget must be different streams, both were ${request.sessionStream}` })
        )
      }
      const reservationId = request.reservationId ?? ids.uuidv7(yield* Clock.currentTimeMillis)
      const ref: ReservationRef = {
        reservationId,
        actionId: request.actionId,
        sessionStream: request.sessionStream,
        workspaceStream: request.workspaceStream,
        principal: request.principal,
        correlationId: request.correlationId ?? request.actionId,
        ...(request.sessionId === undefined ? {} : { sessionId: request.sessionId })
      }
      const envelope = envelopeOf(ref)
      if (amount === 0) {
        const drafts = [...(request.extraEvents ?? []), ...(request.followingEvents ?? [])]
        const batch = yield* log.append(request.sessionStream, "any", drafts).pipe(Effect.tap((b) => Effect.sync(() => cache.record(request.sessionStream, b.events))))
        return {
          _tag: "Reserved",
          reservation: { ...ref, empty: true, amountMicros: 0, warnings: [] },
          appended: batch
        } satisfies ReserveOutcome
      }
      const command = (scope: BudgetScope, limitMicros: number) => ({
        reservationId,
        actionId: request.actionId,
        amountMicros: amount,
        limitMicros,
        perActionLimitMicros: request.limits.perActionMicros,
        warnAtPercent: request.limits.warnAtPercent,
        scope
      })

      const workspace = yield* Effect.either(
        decideAndAppend(request.workspaceStream, envelope, (state) =>
          Either.map(decideReserve(state, command("workspace", request.limits.perWorkspaceMicros)), (d) => ({ events: d.events, value: d.warning }))
        )
      )
      if (Either.isLeft(workspace)) {
        const e = workspace.left
        return e._tag === "BudgetExceeded" ? exceededOutcome(e, false) : yield* Effect.fail(e)
      }

      const session = yield* Effect.either(
        decideAndAppend(request.sessionStream, envelope, (state) =>
          Either.map(decideReserve(state, command("session", request.limits.perSessionMicros)), (d) => ({
            before: request.extraEvents ?? [],
            events: d.events,
            after: request.followingEvents ?? [],
            value: d.warning
          }))
        )
      )
      if (Either.isLeft(session)) {
        const compensation = yield* Effect.either(
          decideAndAppend(request.workspaceStream, envelope, (state) =>
            Either.map(decideRelease(state, { reservationId, reason: "compensation" }), (d) => ({ events: d.events, value: d.releasedMicros }))
          )
        )
        if (Either.isLeft(compensation)) {
          // The workspace keeps an open reservation: it over-counts, never under-counts, and says so.
          yield* Effect.logError(
            `reservation ${reservationId} on ${request.workspaceStream} could not be compensated (${compensation.left.message}); it stays reserved until released`
          )
        }
        const e = session.left
        return e._tag === "BudgetExceeded" ? exceededOutcome(e, Either.isRight(compensation)) : yield* Effect.fail(e)
      }

      const warnings = [workspace.right.value, session.right.value].filter((w): w is BudgetWarning => w !== null)
      return {
        _tag: "Reserved",
        reservation: { ...ref, amountMicros: amount, warnings },
        appended: session.right.batch
      } satisfies ReserveOutcome
      // Interrupting between the two reservations would leave the workspace one without its pair or
      // its compensation; the steps are short appends, so they run to the end.
    }).pipe(Effect.uninterruptible)

  /**
   * Settles the reservation on the session stream (with the caller's extra events), then on the
   * workspace stream. A stream where it is already settled the same way is skipped, so a settle that
   * failed half-way can simply be repeated (without extra events); settling it again on both streams
   * is an error.
   */
  const settle = <A, E extends SettleError | DuplicateReservation>(
    ref: ReservationRef,
    status: "committed" | "released",
    options: SettleOptions,
    emptyValue: A,
    decide: (state: BudgetState, scope: BudgetScope) => Either.Either<{ readonly events: ReadonlyArray<AstridEvent>; readonly value: A }, E>
  ) =>
    Effect.gen(function* () {
      const envelope = envelopeOf(ref)
      if (ref.empty === true) {
        const drafts = [...(options.extraEvents ?? []), ...(options.followingEvents ?? [])]
        if (drafts.length > 0) yield* log.append(ref.sessionStream, "any", drafts).pipe(Effect.tap((b) => Effect.sync(() => cache.record(ref.sessionStream, b.events))))
        return emptyValue
      }
      const onSession = yield* Effect.either(
        decideAndAppend(ref.sessionStream, envelope, (state) =>
          Either.map(decide(state, "session"), (d) => ({ before: options.extraEvents ?? [], events: d.events, after: options.followingEvents ?? [], value: d.value }))
        )
      )
      const alreadyDone = (e: unknown) => e instanceof ReservationClosed && e.status === status
      // A repeat that brings its own events must not report success without having written them.
      const bringsEvents = (options.extraEvents?.length ?? 0) + (options.followingEvents?.length ?? 0) > 0
      if (Either.isLeft(onSession) && (bringsEvents || !alreadyDone(onSession.left))) return yield* Effect.fail(onSession.left)
      const onWorkspace = yield* Effect.either(decideAndAppend(ref.workspaceStream, envelope, (state) => decide(state, "workspace")))
      if (Either.isLeft(onWorkspace)) {
        if (!alreadyDone(onWorkspace.left) || Either.isLeft(onSession)) return yield* Effect.fail(onWorkspace.left)
        return onSession.right.value
      }
      return Either.isRight(onSession) ? onSession.right.value : onWorkspace.right.value
    }).pipe(Effect.uninterruptible)

  const outcomeOf = (d: { readonly events: ReadonlyArray<AstridEvent>; readonly committedMicros: number; readonly releasedMicros: number; readonly overrunMicros: number }) => ({
    events: d.events,
    value: { committedMicros: d.committedMicros, releasedMicros: d.releasedMicros, overrunMicros: d.overrunMicros } satisfies CommitOutcome
  })

  const commit: BudgetServiceApi["commit"] = (ref, amountMicros, options = {}) =>
    Effect.gen(function* () {
      if (amountMicros !== undefined) yield* checkMicros("amountMicros", amountMicros)
      // A zero-cost reservation holds nothing on either stream; a cost it reports after all is still charged.
      if (ref.empty === true && amountMicros !== undefined && amountMicros > 0) {
        return yield* settle({ ...ref, empty: false }, "committed", options, { committedMicros: 0, releasedMicros: 0, overrunMicros: 0 }, (state, scope) =>
          Either.map(chargeUnreserved(state, { reservationId: ref.reservationId, actionId: ref.actionId, amountMicros, scope }), outcomeOf)
        )
      }
      return yield* settle(ref, "committed", options, { committedMicros: 0, releasedMicros: 0, overrunMicros: 0 }, (state) =>
        Either.map(decideCommit(state, { reservationId: ref.reservationId, ...(amountMicros === undefined ? {} : { amountMicros }) }), outcomeOf)
      )
    })

  const release: BudgetServiceApi["release"] = (ref, reason, options = {}) =>
    settle(ref, "released", options, { releasedMicros: 0 }, (state) =>
      Either.map(decideRelease(state, { reservationId: ref.reservationId, reason }), (d) => ({ events: d.events, value: { releasedMicros: d.releasedMicros } }))
    )

  const snapshot: BudgetServiceApi["snapshot"] = (stream) =>
    Effect.map(cache.load(stream), ({ state, revision }) => {
      let open = 0
      for (const [, r] of state.reservations) if (r.status === "open") open++
      return { spentMicros: state.spentMicros, reservedMicros: state.reservedMicros, overrunMicros: state.overrunMicros, openReservations: open, revision }
    })

  return { reserve, commit, release, snapshot } satisfies BudgetServiceApi
})

/** Needs EventLog, EventStore and Ids. */
export const BudgetServiceLive = Layer.effect(BudgetService, makeBudgetService)
