/**
 * The ApprovalChannel port: how the interceptor asks a human. A frontend (terminal prompt, daemon
 * client, chat platform) implements it. An unavailable channel, or no answer in time, defers the
 * action; it is never allowed or silently skipped.
 */
import { Context, Data, type Effect } from "effect"
import type { Risk } from "../../domain/security/action.js"
import type { OfferedScope } from "../../domain/security/classify.js"

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
  /**
   * The approvals the approver may give, besides Deny (always offered): all four scopes, or only "once"
   * for an action no standing grant may cover (a sub-agent spawn, an identity change, the kinds that always
   * ask). A channel shows only these; an answer outside them is taken as Allow Once, never as a standing
   * allowance or token. Absent (a prompt built before the field existed): all four.
   */
  readonly offered?: ReadonlyArray<OfferedScope>
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
