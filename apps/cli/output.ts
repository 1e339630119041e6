/** Writing results: JSON for scripts, aligned text for people. */
import { Effect } from "effect"
import { printableJson } from "./printable.js"

/** Indented JSON, with every character a terminal could obey written as a `\uXXXX` escape (same value). */
export const printJson = (value: unknown): Effect.Effect<void> =>
  Effect.sync(() => {
    process.stdout.write(`${printableJson(value)}\n`)
  })

export const printLines = (...lines: ReadonlyArray<string>): Effect.Effect<void> =>
  Effect.sync(() => {
    if (lines.length > 0) process.stdout.write(`${lines.join("\n")}\n`)
  })

/** Left-aligned columns, widths from the widest cell. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()
  return [line(header), ...rows.map(line)]
}

const useColor = (): boolean => process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined
export const green = (s: string): string => (useColor() ? `\u001b[32m${s}\u001b[0m` : s)
export const red = (s: string): string => (useColor() ? `\u001b[31m${s}\u001b[0m` : s)
export const dim = (s: string): string => (useColor() ? `\u001b[2m${s}\u001b[0m` : s)
