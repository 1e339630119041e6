/** Runs the verifier over a live store: the checkpoint stream first, then the whole log in pages. */
import { Effect } from "effect"
import { CHECKPOINT_STREAM, STREAM_PREFIX } from "../../domain/streams.js"
import type { EventStoreApi, EventStoreError } from "../ports/eventStore.js"
import { LogVerifier, type VerifierOptions, type VerifyReport } from "./verifier.js"

const PAGE = 20_000

export interface Progress {
  readonly done: number
  readonly total: number
}

export const verifyStore = (
  store: EventStoreApi,
  options: VerifierOptions,
  onProgress?: (p: Progress) => void
): Effect.Effect<VerifyReport, EventStoreError> =>
  Effect.gen(function* () {
    const verifier = new LogVerifier(options)
    // A snapshot of the log's extent: appends that land while verification runs are left for next time,
    // so pass 1 and pass 2 see the same history.
    const { events: total, lastPosition: end } = yield* store.stats
    let fromRevision = 0
    for (;;) {
      const page = yield* store.readStream(CHECKPOINT_STREAM, { fromRevision, maxCount: PAGE })
      for (const e of page) if (e.position <= end) verifier.addCheckpoint(e)
      if (page.length < PAGE) break
      fromRevision = (page[page.length - 1]?.revision ?? 0) + 1
    }
    let after = 0
    let done = 0
    for (;;) {
      const page = yield* store.readAll({ after, maxCount: PAGE, streamPrefix: STREAM_PREFIX })
      let last: (typeof page)[number] | undefined
      for (const e of page) {
        if (e.position > end) break
        verifier.push(e)
        last = e
        done++
      }
      onProgress?.({ done, total })
      if (last === undefined || page.length < PAGE || last.position >= end) break
      after = last.position
    }
    return verifier.finish()
  })
