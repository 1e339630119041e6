/** A failure the CLI reports as one line on stderr with an exit code (2: usage or I/O, 1: verification failed). */
import { Data, Effect } from "effect"

export class CliError extends Data.TaggedError("CliError")<{ readonly message: string; readonly exitCode: number }> {}

export const usageError = (message: string): CliError => new CliError({ message, exitCode: 2 })

/** Turns any error with a message into a CliError with exit code 2 (usage or I/O). */
export const asCli = <A, R>(effect: Effect.Effect<A, { readonly message: string }, R>): Effect.Effect<A, CliError, R> =>
  Effect.mapError(effect, (e) => new CliError({ message: e.message, exitCode: 2 }))
