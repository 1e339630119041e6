/**
 * Budget arithmetic (I4) as a decider over one stream's budget movements. A session stream and a
 * workspace stream each fold BudgetReserved / BudgetCommitted / BudgetReleased into the same state;
 * the application reserves on both and appends with the revision it decided on, so no interleaving of
 * writers can push `spent + reserved` past a limit.
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
  readonly committedMicros: number
  readonly status: ReservationStatus
}

export interface BudgetState {
  /** Committed (spent) on this stream. */
  readonly spentMicros: number
  /** Held by reservations not yet given back. */
  readonly reservedMicros: number
  readonly reservations: HashMap.HashMap<string, ReservationState>
}

export const initialBudgetState: BudgetState = { spentMicros: 0, reservedMicros: 0, reservations: HashMap.empty() }

/**
 * Folds one event into a stream's budget. Other event types leave the state as it is. Events that do
 * not fit (a second reservation with a known id, a commit of a closed reservation) are ignored: the
 * decider never writes them, and a log written by someone else must not make the tally go negative.
 */
export const evolveBudget = (state: BudgetState, event: AstridEvent): BudgetState => {
  switch (event._tag) {
    case "BudgetReserved": {
      if (HashMap.has(state.reservations, event.reservationId)) return state
      return {
        spentMicros: state.spentMicros,
        reservedMicros: state.reservedMicros + event.amountMicros,
        reservations: HashMap.set(state.reservations, event.reservationId, {
          actionId: event.actionId,
          amountMicros: event.amountMicros,
          remainingMicros: event.amountMicros,
          committedMicros: 0,
          status: "open"
        })
      }
    }
    case "BudgetCommitted": {
      const r = Option.getOrUndefined(HashMap.get(state.reservations, event.reservationId))
      if (r === undefined || r.status !== "open") return state
      const amount = Math.min(event.amountMicros, r.remainingMicros)
      return {
        spentMicros: state.spentMicros + amount,
        reservedMicros: state.reservedMicros - amount,
        reservations: HashMap.set(state.reservations, event.reservationId, {
          ...r,
          remainingMicros: r.remainingMicros - amount,
          committedMicros: r.committedMicros + amount,
          status: "committed"
        })
      }
    }
    case "BudgetReleased": {
      const r = Option.getOrUndefined(HashMap.get(state.reservations, event.reservationId))
      // A committed reservation only gives back the rest of a lower commit (reason actual_lower).
      if (r === undefined || r.status === "released" || (r.status === "committed" && event.reason !== "actual_lower")) return state
      return {
        spentMicros: state.spentMicros,
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
  readonly events: ReadonlyArray<BudgetCommittedEvent | BudgetReleasedEvent>
  readonly committedMicros: number
  /** Given back because the actual cost was lower than reserved. */
  readonly releasedMicros: number
  /** Actual cost beyond the reservation: not charged (I4 holds), reported so the caller can log it. */
  readonly overrunMicros: number
}

/** Commits at most the reserved amount; a lower actual cost gives the rest back (reason actual_lower). */
export const commit = (state: BudgetState, command: CommitCommand): Either.Either<CommitDecision, SettleError> =>
  Either.gen(function* () {
    const r = yield* openReservation(state, command.reservationId)
    const actual = command.amountMicros === undefined ? r.remainingMicros : yield* checkMicros("amountMicros", command.amountMicros)
    const committed = Math.min(actual, r.remainingMicros)
    const rest = r.remainingMicros - committed
    const events: Array<BudgetCommittedEvent | BudgetReleasedEvent> = [
      { _tag: "BudgetCommitted", reservationId: command.reservationId, amountMicros: committed }
    ]
    if (rest > 0) events.push({ _tag: "BudgetReleased", reservationId: command.reservationId, reason: "actual_lower", amountMicros: rest })
    return { events, committedMicros: committed, releasedMicros: rest, overrunMicros: actual - committed }
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
