/**
 * The ApprovalChannel port: how the interceptor asks a human. A frontend (terminal prompt, daemon
 * client, chat platform) implements it. An unavailable channel, or no answer in time, defers the
 * action; it is never allowed or silently skipped.
 */
import { Context, Data, type Effect } from "effect"
import type { Risk } from "../../domain/security/action.js"

export type ApprovalAnswer =
  | { readonly _tag: "AllowOnce" }
  | { readonly _tag: "AllowSession" }
  | { readonly _tag: "AllowWorkspace" }
  | { readonly _tag: "AllowAlways" }
  | { readonly _tag: "Deny"; readonly reason: string | null }

export interface ApprovalPrompt {
  readonly requestId: string
  readonly actionId: string
  readonly principal: string
  readonly sessionId: string
  readonly kind: string
  readonly resource: string
  readonly risk: Risk
  readonly summary: string
  /** Why a human is asked (e.g. "write outside the workspace"). */
  readonly reason: string
}

export interface ApprovalReply {
  readonly answer: ApprovalAnswer
  /** Who answered, recorded in the decision event. */
  readonly approver: string
}

/** The channel cannot ask anyone now (no terminal, disconnected client...). */
export class ApprovalUnavailable extends Data.TaggedError("ApprovalUnavailable")<{ readonly message: string }> {}

export interface ApprovalChannelApi {
  readonly name: string
  readonly ask: (prompt: ApprovalPrompt) => Effect.Effect<ApprovalReply, ApprovalUnavailable>
}

export class ApprovalChannel extends Context.Tag("astrid/ApprovalChannel")<ApprovalChannel, ApprovalChannelApi>() {}
