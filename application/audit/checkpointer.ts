/**
 * Signs checkpoints: the heads of every stream changed since the previous checkpoint, their Merkle
 * root and the global position covered, linked to the previous checkpoint and signed with the runtime key.
 * The cost is what changed since the last checkpoint, not the size of the log.
 */
import { Data, Effect, Option, Schema } from "effect"
import { checkpointSigningText, merkleRoot, sortHeads } from "../../domain/checkpoint.js"
import { canonicalize } from "../../domain/canonicalJson.js"
import type { UnchainedEvent } from "../../domain/chain.js"
import { type CheckpointBody, CheckpointSigned, type StreamHead } from "../../domain/events/auditEvents.js"
import { SCHEMA_VERSION } from "../../domain/envelope.js"
import { CHECKPOINT_STREAM, STREAM_PREFIX } from "../../domain/streams.js"
import type { CryptoApi } from "../ports/crypto.js"
import type { AppendResult, EventStoreApi, EventStoreError, ExpectedRevision, WrongExpectedRevision } from "../ports/eventStore.js"
import type { KeyRingApi } from "../ports/keyRing.js"

export class CheckpointError extends Data.TaggedError("CheckpointError")<{ readonly message: string }> {}

export type CheckpointOutcome =
  | { readonly _tag: "Signed"; readonly revision: number; readonly body: CheckpointBody; readonly hash: string }
  | { readonly _tag: "NothingNew"; readonly lastRevision: number | undefined }

export const RUNTIME_PRINCIPAL = "astrid-runtime"
const PAGE = 10_000

const decodeCheckpoint = Schema.decodeUnknownEither(Schema.parseJson(Schema.Struct(CheckpointSigned.fields).pipe(Schema.omit("_tag"))))

type AppendUnchained = (
  stream: string,
  expected: ExpectedRevision,
  events: ReadonlyArray<UnchainedEvent>
) => Effect.Effect<{ readonly events: ReadonlyArray<{ hash: string; revision: number }> } & Partial<AppendResult>, WrongExpectedRevision | EventStoreError>

export const makeCheckpointer = (store: EventStoreApi, crypto: CryptoApi, appendUnchained: AppendUnchained) => {
  const once = (keyRing: KeyRingApi, nowMs: number, newId: (nowMs: number) => string) =>
    Effect.gen(function* () {
      const [previous] = yield* store.readStream(CHECKPOINT_STREAM, { direction: "backward", maxCount: 1 })
      let prevBody: Omit<CheckpointBody, "keyId" | "signedAt"> | undefined
      if (previous !== undefined) {
        const decoded = decodeCheckpoint(previous.data)
        if (decoded._tag === "Left") {
          return yield* Effect.fail(
            new CheckpointError({
              message: `the last checkpoint (${CHECKPOINT_STREAM}@${previous.revision}) is unreadable; run 'astrid audit verify' before signing new checkpoints`
            })
          )
        }
        prevBody = decoded.right
      }
      // A checkpoint's globalPosition is in the numbering of the store that signed it; a copied history
      // (astrid store copy) numbers positions anew. The checkpoint event's own position here bounds it:
      // everything it covers was appended before it.
      const from = prevBody === undefined || previous === undefined ? 0 : Math.min(prevBody.globalPosition, previous.position)
      const heads = new Map<string, StreamHead>()
      let position = from
      for (;;) {
        const page = yield* store.readAll({ after: position, maxCount: PAGE, streamPrefix: STREAM_PREFIX })
        for (const e of page) {
          position = e.position
          if (e.stream !== CHECKPOINT_STREAM) heads.set(e.stream, { stream: e.stream, revision: e.revision, hash: e.hash })
        }
        if (page.length < PAGE) break
      }
      if (heads.size === 0) {
        return { _tag: "NothingNew", lastRevision: previous?.revision } as const
      }
      const sorted = sortHeads([...heads.values()])
      const body: CheckpointBody = {
        sequence: prevBody === undefined ? 0 : prevBody.sequence + 1,
        heads: sorted,
        merkleRoot: merkleRoot(sorted, crypto.blake3Hex),
        globalPosition: position,
        prevCheckpointHash: previous?.hash ?? null,
        keyId: keyRing.keyId,
        signedAt: new Date(nowMs).toISOString()
      }
      const signature = keyRing.signText(checkpointSigningText(body))
      const eventId = newId(nowMs)
      const event: UnchainedEvent = {
        eventId,
        type: "CheckpointSigned",
        dataText: canonicalize({ ...body, signature }),
        metadata: {
          eventId,
          occurredAt: body.signedAt,
          principal: RUNTIME_PRINCIPAL,
          correlationId: eventId,
          causationId: eventId,
          classification: "trusted",
          schemaVersion: SCHEMA_VERSION
        }
      }
      const appended = yield* appendUnchained(CHECKPOINT_STREAM, previous?.revision ?? "no_stream", [event])
      const written = appended.events[0]
      return { _tag: "Signed", revision: written?.revision ?? 0, body, hash: written?.hash ?? "" } as const
    })

  return {
    /** Signs one checkpoint; a race with another checkpointer is retried from a fresh read. */
    run: (keyRing: Option.Option<KeyRingApi>, nowMs: number, newId: (nowMs: number) => string) =>
      Option.match(keyRing, {
        onNone: () =>
          Effect.fail(new CheckpointError({ message: "no runtime signing key is loaded; run 'astrid keys generate' first" })),
        onSome: (key) =>
          once(key, nowMs, newId).pipe(Effect.retry({ times: 5, while: (e) => e._tag === "WrongExpectedRevision" }))
      })
  }
}
