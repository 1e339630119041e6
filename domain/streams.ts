/**
 * Stream names. Every Astrid stream starts with `astrid-`, so one prefix filter selects them on a shared
 * store, and is limited to a small alphabet so that its JSON text is the same under every encoder.
 */
import { Schema } from "effect"

export const STREAM_PREFIX = "astrid-"
export const CHECKPOINT_STREAM = "astrid-checkpoints"
export const APPROVALS_STREAM = "astrid-approvals"
export const KEYS_STREAM = "astrid-keys"

const STREAM_PATTERN = /^astrid-[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$/

export const StreamName = Schema.String.pipe(
  Schema.pattern(STREAM_PATTERN, {
    message: () => "a stream name starts with 'astrid-' and holds only letters, digits and . _ : @ - (at most 207 characters)"
  }),
  Schema.brand("StreamName")
)
export type StreamName = typeof StreamName.Type

export const isStreamName = Schema.is(StreamName)

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/

const named = (kind: string, id: string): StreamName => {
  if (!ID_PATTERN.test(id)) throw new Error(`invalid ${kind} id '${id}': use letters, digits and . _ : @ -`)
  return StreamName.make(`${STREAM_PREFIX}${kind}-${id}`)
}

export const sessionStream = (sessionId: string): StreamName => named("session", sessionId)
export const principalStream = (principal: string): StreamName => named("principal", principal)
/** An agent's identity (the `spark` tool): one stream per principal. */
export const identityStream = (principal: string): StreamName => named("identity", principal)
export const workspaceStream = (workspaceHash: string): StreamName => named("workspace", workspaceHash)
export const checkpointStream: StreamName = StreamName.make(CHECKPOINT_STREAM)
export const approvalsStream: StreamName = StreamName.make(APPROVALS_STREAM)
export const keysStream: StreamName = StreamName.make(KEYS_STREAM)
