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
    const { events: total } = yield* store.stats
    let fromRevision = 0
    for (;;) {
      const page = yield* store.readStream(CHECKPOINT_STREAM, { fromRevision, maxCount: PAGE })
      for (const e of page) verifier.addCheckpoint(e)
      if (page.length < PAGE) break
      fromRevision = (page[page.length - 1]?.revision ?? 0) + 1
    }
    let after = 0
    let done = 0
    for (;;) {
      const page = yield* store.readAll({ after, maxCount: PAGE, streamPrefix: STREAM_PREFIX })
      for (const e of page) verifier.push(e)
      done += page.length
      onProgress?.({ done, total })
      const last = page[page.length - 1]
      if (last === undefined || page.length < PAGE) break
      after = last.position
    }
    return verifier.finish()
  })
