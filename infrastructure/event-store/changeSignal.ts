/**
 * Wakes subscriptions when this process appends. A version counter closes the gap between "read found
 * nothing" and "start waiting": a waiter that saw an older version returns at once.
 */
import { Chunk, Effect, Option, Stream } from "effect"
import type { RecordedEvent } from "../../domain/envelope.js"
import type { EventStoreError } from "../../application/ports/eventStore.js"

export class ChangeSignal {
  private version = 0
  private readonly waiters = new Set<() => void>()

  get current(): number {
    return this.version
  }

  notify(): void {
    this.version++
    for (const wake of this.waiters) wake()
    this.waiters.clear()
  }

  /** Resolves when the version moves past `seen`, or after `timeoutMs` (so other writers are polled). */
  waitPast(seen: number, timeoutMs: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.version !== seen) {
        resume(Effect.void)
        return
      }
      const wake = (): void => {
        clearTimeout(timer)
        this.waiters.delete(wake)
        resume(Effect.void)
      }
      const timer = setTimeout(wake, timeoutMs)
      this.waiters.add(wake)
      return Effect.sync(() => {
        clearTimeout(timer)
        this.waiters.delete(wake)
      })
    })
  }
}

/**
 * A subscription built from paged reads: emits every event after `after`, then waits for more, for ever.
 * `readPage(after)` must return events in position order.
 */
export const pagedSubscription = (
  after: number,
  readPage: (after: number) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>,
  signal: ChangeSignal,
  pollMs: number
): Stream.Stream<RecordedEvent, EventStoreError> =>
  Stream.unfoldChunkEffect(after, (position) => {
    const seen = signal.current
    return readPage(position).pipe(
      Effect.flatMap((page) => {
        const last = page[page.length - 1]
        if (last === undefined) {
          return signal.waitPast(seen, pollMs).pipe(Effect.as(Option.some([Chunk.empty<RecordedEvent>(), position] as const)))
        }
        return Effect.succeed(Option.some([Chunk.fromIterable(page), last.position] as const))
      })
    )
  })
