/** A progress bar on stderr for long runs, only when stderr is a terminal; phases restart the bar. */
import { Effect } from "effect"

export interface ProgressBar {
  readonly update: (label: string, done: number, total: number) => void
  readonly stop: () => void
}

/** Runs shorter than `minTotal` items show nothing: they end before a bar would help. */
export const progressBar = (minTotal: number): Effect.Effect<ProgressBar | undefined> =>
  Effect.suspend(() => {
    if (process.stderr.isTTY !== true) return Effect.succeed(undefined)
    return Effect.promise(() => import("cli-progress")).pipe(
      Effect.map((m) => {
        const bar = new m.default.SingleBar(
          { stream: process.stderr, format: "{phase} [{bar}] {percentage}% | {value}/{total} events | ETA {eta}s", hideCursor: true },
          m.default.Presets.shades_classic
        )
        let phase: string | undefined
        return {
          update: (label: string, done: number, total: number) => {
            if (total < minTotal) return
            if (phase !== label) {
              if (phase !== undefined) bar.stop()
              bar.start(total, 0, { phase: label })
              phase = label
            }
            bar.update(Math.min(done, total), { phase: label })
          },
          stop: () => {
            if (phase !== undefined) bar.stop()
          }
        }
      })
    )
  })
