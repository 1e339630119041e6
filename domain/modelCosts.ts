/**
 * Model usage priced in integer micro-dollars, from a per-model price table given in config.
 * Integers throughout so that budget debits add up exactly; a model missing from the table costs
 * 0 and is flagged, so the caller can warn rather than silently under-count.
 */
import { Schema } from "effect"

const MicroDollars = Schema.Int.pipe(Schema.nonNegative())

/** Prices in micro-dollars per million tokens ($3 per million input tokens is 3_000_000). */
export const ModelPrice = Schema.Struct({
  inputPerMillion: MicroDollars,
  outputPerMillion: MicroDollars
})
export type ModelPrice = typeof ModelPrice.Type

/** Model name to price, as read from config. */
export const PriceTable = Schema.Record({ key: Schema.String, value: ModelPrice })
export type PriceTable = typeof PriceTable.Type

export interface TokenUsage {
  readonly inputTokens: number
  readonly outputTokens: number
}

export interface UsageCost {
  readonly microDollars: number
  /** False when the model has no price in the table (the cost is then 0). */
  readonly priced: boolean
}

const perMillion = (tokens: number, price: number): bigint => BigInt(Math.max(0, Math.trunc(tokens))) * BigInt(price)

/** The cost of one model call, rounded half up to a whole micro-dollar. */
export const usageCost = (table: PriceTable, model: string, usage: TokenUsage): UsageCost => {
  const price = Object.prototype.hasOwnProperty.call(table, model) ? table[model] : undefined
  if (price === undefined) return { microDollars: 0, priced: false }
  const scaled = perMillion(usage.inputTokens, price.inputPerMillion) + perMillion(usage.outputTokens, price.outputPerMillion)
  return { microDollars: Number((scaled + 500_000n) / 1_000_000n), priced: true }
}
