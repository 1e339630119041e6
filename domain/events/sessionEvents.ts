/** Events of a session's life and conversation. */
import { Schema } from "effect"
import { Classification } from "../envelope.js"

export const SessionStarted = Schema.TaggedStruct("SessionStarted", {
  sessionId: Schema.String,
  workspace: Schema.String,
  parentSessionId: Schema.NullOr(Schema.String),
  model: Schema.NullOr(Schema.String)
})

export const SessionEnded = Schema.TaggedStruct("SessionEnded", {
  sessionId: Schema.String,
  reason: Schema.Literal("completed", "cancelled", "failed", "deleted", "expired"),
  detail: Schema.NullOr(Schema.String)
})

/** A message in the conversation, with the trust class of its content. */
export const MessageRecorded = Schema.TaggedStruct("MessageRecorded", {
  messageId: Schema.String,
  role: Schema.Literal("user", "assistant", "system", "tool"),
  content: Schema.String,
  inputClassification: Classification
})
