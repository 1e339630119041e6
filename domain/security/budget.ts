/**
 * Budget arithmetic (I4) as a decider over one stream's budget movements. A session stream and a
 * workspace stream each fold BudgetReserved / BudgetCommitted / BudgetReleased into the same state;
 * the application reserves on both and appends with the revision it decided on, so no interleaving of
 * writers can reserve past a limit: a reservation is taken only while `spent + reserved + amount` fits.
 *
 * What an action really cost is charged in full when it is committed, even above its reservation (a
 * model that reports more tokens than were reserved for: the money is spent either way). That overrun is
 * charged at once and named in the commit (`overrunMicros`), and every later reservation sees it in
 * `spent`. So `spent` ends above a limit by at most the overruns of the actions that were in flight
 * together when the last reservation was taken; with one call at a time on a stream, one call's overrun.
 *
 * Amounts are integer micro-dollars (1 USD = 1,000,000), never floats: sums of integers below 2^53 are
 * exact, and a cost like 0.1 + 0.2 cannot round its way past a limit.
 */
import { Data, Either, HashMap, Option } from "effect"
import type { AstridEvent } from "../events/astridEvent.js"
import type { BudgetScope, ReleaseReason } from "../events/budgetEvents.js"

export type { BudgetScope, ReleaseReason }

type BudgetReservedEvent = Extract<AstridEvent, { readonly _tag: "BudgetReserved" }>
type BudgetCommittedEvent = Extract<AstridEvent, { readonly _tag: "BudgetCommitted" }>
type BudgetReleasedEvent = Extract<AstridEvent, { readonly _tag: "BudgetReleased" }>
export type BudgetEvent = BudgetReservedEvent | BudgetCommittedEvent | BudgetReleasedEvent

export const MICROS_PER_DOLLAR = 1_000_000

/** An amount, limit or percentage is not usable: negative, NaN, infinite, fractional or too large. */
export class InvalidAmount extends Data.TaggedError("InvalidAmount")<{
  readonly field: string
  /** The value as text (NaN and Infinity have no JSON form). */
  readonly value: string
  readonly message: string
}> {}

/** The reservation would take spending past a limit; nothing was reserved. All amounts in micro-dollars. */
export class BudgetExceeded extends Data.TaggedError("BudgetExceeded")<{
  /** "action": the per-action limit; otherwise the limit of the stream's scope. */
  readonly scope: "action" | BudgetScope
  readonly limit: number
  /** Committed so far on the stream. */
  readonly spent: number
  /** Held by open reservations on the stream. */
  readonly reserved: number
  readonly requested: number
}> {
  override get message(): string {
    if (this.scope === "action") {
      return `the action's estimated cost ${formatMicros(this.requested)} is over the per-action limit of ${formatMicros(this.limit)}`
    }
    if (this.spent >= this.limit) {
      return `the ${this.scope} budget is used up: ${formatMicros(this.spent)} spent of the ${formatMicros(this.limit)} limit, so ${formatMicros(this.requested)} more cannot be reserved`
    }
    return (
      `the ${this.scope} budget would be exceeded: ${formatMicros(this.spent)} spent + ${formatMicros(this.reserved)} reserved + ` +
      `${formatMicros(this.requested)} requested is over the limit of ${formatMicros(this.limit)}`
    )
  }

  /** What a person can do about it, for the denial event and the CLI. */
  get remedy(): string {
    return this.scope === "action"
      ? "raise the per-action limit in [security.budget], or split the work into cheaper actions"
      : `raise the per-${this.scope} limit in [security.budget], or ${this.scope === "session" ? "start a new session" : "wait for reservations to settle"}`
  }
}

export class DuplicateReservation extends Data.TaggedError("DuplicateReservation")<{ readonly reservationId: string }> {
  override get message(): string {
    return `reservation ${this.reservationId} already exists on this budget; use a fresh reservation id`
  }
}

export class UnknownReservation extends Data.TaggedError("UnknownReservation")<{ readonly reservationId: string }> {
  override get message(): string {
    return `no reservation ${this.reservationId} on this budget; commit or release only what reserve returned`
  }
}

/** A reservation is settled once: committing or releasing it again is a bug in the caller. */
export class ReservationClosed extends Data.TaggedError("ReservationClosed")<{
  readonly reservationId: string
  readonly status: "committed" | "released"
}> {
  override get message(): string {
    return `reservation ${this.reservationId} was already ${this.status}; a reservation is committed or released exactly once`
  }
}

export type SettleError = InvalidAmount | UnknownReservation | ReservationClosed
export type BudgetDecisionError = SettleError | BudgetExceeded | DuplicateReservation

/** "$1.50", "$0.000123": micro-dollars for people, without floating-point formatting. */
export const formatMicros = (micros: number): string => {
  const sign = micros < 0 ? "-" : ""
  const abs = Math.abs(micros)
  const dollars = Math.floor(abs / MICROS_PER_DOLLAR)
  const fraction = String(abs % MICROS_PER_DOLLAR).padStart(6, "0").replace(/0+$/, "").padEnd(2, "0")
  return `${sign}$${dollars}.${fraction}`
}

/** `value` as a whole, non-negative, exactly representable number of micro-dollars. */
export const checkMicros = (field: string, value: number): Either.Either<number, InvalidAmount> => {
  const fail = (why: string) =>
    Either.left(
      new InvalidAmount({
        field,
        value: String(value),
        message: `${field} ${String(value)} ${why}; amounts are whole micro-dollars from 0 to ${Number.MAX_SAFE_INTEGER} (round a dollar cost up with Math.ceil(dollars * 1e6))`
      })
    )
  if (typeof value !== "number" || Number.isNaN(value)) return fail("is not a number")
  if (!Number.isFinite(value)) return fail("is infinite")
  if (value < 0) return fail("is negative")
  if (!Number.isInteger(value)) return fail("is not a whole number of micro-dollars")
  if (!Number.isSafeInteger(value)) return fail("is too large")
  // -0 passes every test above; + 0 makes it a plain 0.
  return Either.right(value + 0)
}

const checkPercent = (field: string, value: number): Either.Either<number, InvalidAmount> =>
  Number.isInteger(value) && value >= 0 && value <= 100
    ? Either.right(value)
    : Either.left(new InvalidAmount({ field, value: String(value), message: `${field} ${String(value)} is not a whole percentage from 0 to 100 (0 turns warnings off)` }))

export type ReservationStatus = "open" | "committed" | "released"

export interface ReservationState {
  readonly actionId: string
  readonly amountMicros: number
  /** Still held: the amount until settled; after a lower commit, the part an actual_lower release frees. */
  readonly remainingMicros: number
  /** Charged: the actual cost, overrun included. */
  readonly committedMicros: number
  /** The part of the commit beyond the reservation. */
  readonly overrunMicros: number
  readonly status: ReservationStatus
}

export interface BudgetState {
  /** Committed (spent) on this stream, overruns included. */
  readonly spentMicros: number
  /** Held by reservations not yet given back. */
  readonly reservedMicros: number
  /** The part of `spentMicros` that commits charged beyond their reservations. */
  readonly overrunMicros: number
  readonly reservations: HashMap.HashMap<string, ReservationState>
}

export const initialBudgetState: BudgetState = { spentMicros: 0, reservedMicros: 0, overrunMicros: 0, reservations: HashMap.empty() }

/** The event types `evolveBudget` folds; a reader that filters by type before decoding needs exactly these. */
export const BUDGET_EVENT_TYPES: ReadonlySet<string> = new Set(["BudgetReserved", "BudgetCommitted", "BudgetReleased"])

/**
 * Folds one event into a stream's budget. Other event types leave the state as it is. Events that do
 * not fit (a second reservation with a known id, a commit of a closed reservation) are ignored: the
 * decider never writes them, and a log written by someone else must not make the tally go negative.
 * A commit is charged at its stated amount even above the reservation: counting money that the log says
 * was spent can only make the budget stricter.
 */
export const evolveBudget = (state: BudgetState, event: AstridEvent): BudgetState => {
  switch (event._tag) {
    case "BudgetReserved": {
      if (HashMap.has(state.reservations, event.reservationId)) return state
      return {
        ...state,
        reservedMicros: state.reservedMicros + event.amountMicros,
        reservations: HashMap.set(state.reservations, event.reservationId, {
          actionId: event.actionId,
          amountMicros: event.amountMicros,
          remainingMicros: event.amountMicros,
          committedMicros: 0,
          overrunMicros: 0,
          status: "open"
        })
      }
    }
    case "BudgetCommitted": {
      const r = Option.getOrUndefined(HashMap.get(state.reservations, event.reservationId))
      if (r === undefined || r.status !== "open") return state
      const fromHold = Math.min(event.amountMicros, r.remainingMicros)
      const overrun = event.amountMicros - fromHold
      return {
        spentMicros: state.spentMicros + event.amountMicros,
        reservedMicros: state.reservedMicros - fromHold,
        overrunMicros: state.overrunMicros + overrun,
        reservations: HashMap.set(state.reservations, event.reservationId, {
          ...r,
          remainingMicros: r.remainingMicros - fromHold,
          committedMicros: r.committedMicros + event.amountMicros,
          overrunMicros: r.overrunMicros + overrun,
          status: "committed"
        })
      }
    }
    case "BudgetReleased": {
      const r = Option.getOrUndefined(HashMap.get(state.reservations, event.reservationId))
      // A committed reservation only gives back the rest of a lower commit (reason actual_lower).
      if (r === undefined || r.status === "released" || (r.status === "committed" && event.reason !== "actual_lower")) return state
      return {
        ...state,
        reservedMicros: state.reservedMicros - r.remainingMicros,
        reservations: HashMap.set(state.reservations, event.reservationId, {
          ...r,
          remainingMicros: 0,
          status: r.status === "committed" ? "committed" : "released"
        })
      }
    }
    default:
      return state
  }
}

/** Spending reached the warning threshold; `crossed` is true for the reservation that reached it. */
export interface BudgetWarning {
  readonly scope: BudgetScope
  readonly limitMicros: number
  /** spent + reserved after this reservation. */
  readonly usedMicros: number
  /** Whole percent of the limit used, rounded down. */
  readonly percent: number
  readonly thresholdPercent: number
  readonly crossed: boolean
}

export interface ReserveCommand {
  readonly reservationId: string
  readonly actionId: string
  readonly amountMicros: number
  /** The limit of this stream's scope (per session or per workspace). */
  readonly limitMicros: number
  readonly perActionLimitMicros: number
  readonly scope: BudgetScope
  /** Warn once spending reaches this percent of the limit; 0 or absent: no warnings. */
  readonly warnAtPercent?: number
}

export interface ReserveDecision {
  readonly events: ReadonlyArray<BudgetReservedEvent>
  readonly warning: BudgetWarning | null
}

export const reserve = (state: BudgetState, command: ReserveCommand): Either.Either<ReserveDecision, BudgetDecisionError> =>
  Either.gen(function* () {
    const amount = yield* checkMicros("amountMicros", command.amountMicros)
    const limit = yield* checkMicros("limitMicros", command.limitMicros)
    const perAction = yield* checkMicros("perActionLimitMicros", command.perActionLimitMicros)
    const warnAt = yield* checkPercent("warnAtPercent", command.warnAtPercent ?? 0)
    if (HashMap.has(state.reservations, command.reservationId)) {
      return yield* Either.left(new DuplicateReservation({ reservationId: command.reservationId }))
    }
    const tally = { spent: state.spentMicros, reserved: state.reservedMicros, requested: amount }
    if (amount > perAction) return yield* Either.left(new BudgetExceeded({ scope: "action", limit: perAction, ...tally }))
    // BigInt: three safe integers can sum past 2^53, where a Number comparison would round.
    const before = BigInt(state.spentMicros) + BigInt(state.reservedMicros)
    const after = before + BigInt(amount)
    if (after > BigInt(limit)) return yield* Either.left(new BudgetExceeded({ scope: command.scope, limit, ...tally }))
    const reached = (used: bigint) => warnAt > 0 && used * 100n >= BigInt(limit) * BigInt(warnAt)
    const warning: BudgetWarning | null = reached(after)
      ? {
          scope: command.scope,
          limitMicros: limit,
          usedMicros: Number(after),
          percent: limit === 0 ? 100 : Number((after * 100n) / BigInt(limit)),
          thresholdPercent: warnAt,
          crossed: !reached(before)
        }
      : null
    const event: BudgetReservedEvent = {
      _tag: "BudgetReserved",
      reservationId: command.reservationId,
      actionId: command.actionId,
      amountMicros: amount,
      limitMicros: limit,
      scope: command.scope
    }
    return { events: [event], warning }
  })

const openReservation = (state: BudgetState, reservationId: string): Either.Either<ReservationState, UnknownReservation | ReservationClosed> => {
  const r = Option.getOrUndefined(HashMap.get(state.reservations, reservationId))
  if (r === undefined) return Either.left(new UnknownReservation({ reservationId }))
  if (r.status !== "open") return Either.left(new ReservationClosed({ reservationId, status: r.status }))
  return Either.right(r)
}

export interface CommitCommand {
  readonly reservationId: string
  /** The actual cost; absent: the reserved amount. */
  readonly amountMicros?: number
}

export interface CommitDecision {
  readonly events: ReadonlyArray<BudgetReservedEvent | BudgetCommittedEvent | BudgetReleasedEvent>
  /** Charged: the actual cost, in full. */
  readonly committedMicros: number
  /** Given back because the actual cost was lower than reserved. */
  readonly releasedMicros: number
  /** The part of the actual cost beyond the reservation, charged with it and named in the commit. */
  readonly overrunMicros: number
}

/** `spent + amount` must stay a safe integer, or the tally could no longer be added up exactly. */
const checkChargeable = (state: BudgetState, amount: number): Either.Either<number, InvalidAmount> =>
  Number.isSafeInteger(state.spentMicros + amount)
    ? Either.right(amount)
    : Either.left(
        new InvalidAmount({
          field: "amountMicros",
          value: String(amount),
          message: `amountMicros ${String(amount)} on top of ${String(state.spentMicros)} already spent is past ${Number.MAX_SAFE_INTEGER} micro-dollars; this budget stream cannot count it exactly`
        })
      )

const committedEvent = (reservationId: string, actual: number, overrun: number): BudgetCommittedEvent =>
  overrun > 0 ? { _tag: "BudgetCommitted", reservationId, amountMicros: actual, overrunMicros: overrun } : { _tag: "BudgetCommitted", reservationId, amountMicros: actual }

/**
 * Commits the actual cost in full. A lower cost gives the rest back (reason actual_lower); a higher one is
 * charged all the same, the part beyond the reservation named as `overrunMicros` in the commit. No limit is
 * checked here: the money is already spent, and the limit stops the next reservation instead.
 */
export const commit = (state: BudgetState, command: CommitCommand): Either.Either<CommitDecision, SettleError> =>
  Either.gen(function* () {
    const r = yield* openReservation(state, command.reservationId)
    const actual = command.amountMicros === undefined ? r.remainingMicros : yield* checkMicros("amountMicros", command.amountMicros)
    yield* checkChargeable(state, actual)
    const fromHold = Math.min(actual, r.remainingMicros)
    const rest = r.remainingMicros - fromHold
    const overrun = actual - fromHold
    const events: Array<BudgetCommittedEvent | BudgetReleasedEvent> = [committedEvent(command.reservationId, actual, overrun)]
    if (rest > 0) events.push({ _tag: "BudgetReleased", reservationId: command.reservationId, reason: "actual_lower", amountMicros: rest })
    return { events, committedMicros: actual, releasedMicros: rest, overrunMicros: overrun }
  })

export interface ChargeCommand {
  readonly reservationId: string
  readonly actionId: string
  readonly amountMicros: number
  readonly scope: BudgetScope
}

/**
 * Charges the cost of an action that reserved nothing (its estimate was 0) yet cost something: an empty
 * reservation and its commit, the whole cost as overrun, so the money is counted like any other.
 */
export const chargeUnreserved = (state: BudgetState, command: ChargeCommand): Either.Either<CommitDecision, SettleError | DuplicateReservation> =>
  Either.gen(function* () {
    const actual = yield* checkMicros("amountMicros", command.amountMicros)
    const existing = Option.getOrUndefined(HashMap.get(state.reservations, command.reservationId))
    if (existing !== undefined) {
      return yield* Either.left(
        existing.status === "open" ? new DuplicateReservation({ reservationId: command.reservationId }) : new ReservationClosed({ reservationId: command.reservationId, status: existing.status })
      )
    }
    yield* checkChargeable(state, actual)
    const events: Array<BudgetReservedEvent | BudgetCommittedEvent> = [
      { _tag: "BudgetReserved", reservationId: command.reservationId, actionId: command.actionId, amountMicros: 0, scope: command.scope },
      committedEvent(command.reservationId, actual, actual)
    ]
    return { events, committedMicros: actual, releasedMicros: 0, overrunMicros: actual }
  })

export interface ReleaseCommand {
  readonly reservationId: string
  readonly reason: ReleaseReason
}

export interface ReleaseDecision {
  readonly events: ReadonlyArray<BudgetReleasedEvent>
  readonly releasedMicros: number
}

/** Gives a whole open reservation back. */
export const release = (state: BudgetState, command: ReleaseCommand): Either.Either<ReleaseDecision, SettleError> =>
  Either.map(openReservation(state, command.reservationId), (r) => ({
    events: [{ _tag: "BudgetReleased", reservationId: command.reservationId, reason: command.reason, amountMicros: r.remainingMicros }],
    releasedMicros: r.remainingMicros
  }))
