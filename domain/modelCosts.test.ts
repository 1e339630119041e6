import { Either, Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { PriceTable, usageCost } from "./modelCosts.js"

const table: PriceTable = {
  "claude-sonnet": { inputPerMillion: 3_000_000, outputPerMillion: 15_000_000 },
  "glm-4.6": { inputPerMillion: 600_000, outputPerMillion: 2_200_000 }
}

describe("usageCost", () => {
  it("prices input and output tokens per million in micro-dollars", () => {
    expect(usageCost(table, "claude-sonnet", { inputTokens: 1_000_000, outputTokens: 1_000_000 })).toEqual({
      microDollars: 18_000_000,
      priced: true
    })
    expect(usageCost(table, "claude-sonnet", { inputTokens: 1234, outputTokens: 567 })).toEqual({
      microDollars: 3702 + 8505,
      priced: true
    })
  })

  it("rounds half up to a whole micro-dollar", () => {
    // 1 token at 600_000 per million is 0.6 micro-dollars; 2_200_000 per million is 2.2.
    expect(usageCost(table, "glm-4.6", { inputTokens: 1, outputTokens: 0 }).microDollars).toBe(1)
    expect(usageCost(table, "glm-4.6", { inputTokens: 0, outputTokens: 1 }).microDollars).toBe(2)
    expect(usageCost(table, "glm-4.6", { inputTokens: 0, outputTokens: 0 }).microDollars).toBe(0)
  })

  it("costs 0 for an unknown model and flags it", () => {
    expect(usageCost(table, "mystery-model", { inputTokens: 500, outputTokens: 500 })).toEqual({ microDollars: 0, priced: false })
    expect(usageCost(table, "toString", { inputTokens: 500, outputTokens: 500 })).toEqual({ microDollars: 0, priced: false })
  })

  it("is exact and integral when prices are whole micro-dollars per token", () => {
    fc.assert(
      fc.property(fc.nat(10_000_000), fc.nat(10_000_000), (inputTokens, outputTokens) => {
        const { microDollars } = usageCost(table, "claude-sonnet", { inputTokens, outputTokens })
        const exact = inputTokens * 3 + outputTokens * 15
        expect(Number.isInteger(microDollars)).toBe(true)
        expect(microDollars).toBe(exact)
      })
    )
  })

  it("decodes a price table from config and rejects fractional or negative prices", () => {
    const decode = Schema.decodeUnknownEither(PriceTable)
    expect(Either.isRight(decode({ m: { inputPerMillion: 1, outputPerMillion: 2 } }))).toBe(true)
    expect(Either.isLeft(decode({ m: { inputPerMillion: 1.5, outputPerMillion: 2 } }))).toBe(true)
    expect(Either.isLeft(decode({ m: { inputPerMillion: -1, outputPerMillion: 2 } }))).toBe(true)
  })
})
