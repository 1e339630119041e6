/**
 * The LlmProvider port: one streaming call to a language model. Every provider (Anthropic,
 * OpenAI-compatible servers, the scripted replay) turns its wire format into the same small
 * event vocabulary, so the agentic loop never sees a vendor's shapes.
 */
import { Context, Data, type Stream } from "effect"

/** A piece of a message: text, a tool call the model made, or the result handed back for one. */
export type LlmPart =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool_call"; readonly id: string; readonly name: string; readonly input: unknown }
  | {
      readonly type: "tool_result"
      readonly toolCallId: string
      readonly content: string
      readonly isError?: boolean
    }

export interface LlmMessage {
  readonly role: "user" | "assistant" | "tool"
  /** A plain string is shorthand for one text part. */
  readonly content: string | ReadonlyArray<LlmPart>
}

export interface LlmTool {
  readonly name: string
  readonly description: string
  /** A JSON Schema object describing the tool's input. */
  readonly inputSchema: Readonly<Record<string, unknown>>
}

export interface LlmRequest {
  readonly model: string
  readonly system?: string
  readonly messages: ReadonlyArray<LlmMessage>
  readonly tools: ReadonlyArray<LlmTool>
  readonly maxTokens: number
}

export type StopReason = "end_turn" | "tool_use" | "max_tokens" | "cancelled"

export type LlmEvent =
  | { readonly _tag: "TextDelta"; readonly text: string }
  | { readonly _tag: "ToolCall"; readonly id: string; readonly name: string; readonly input: unknown }
  | { readonly _tag: "Usage"; readonly inputTokens: number; readonly outputTokens: number }
  | { readonly _tag: "Stop"; readonly reason: StopReason }

export const LlmEvent = {
  TextDelta: (text: string): LlmEvent => ({ _tag: "TextDelta", text }),
  ToolCall: (id: string, name: string, input: unknown): LlmEvent => ({ _tag: "ToolCall", id, name, input }),
  Usage: (inputTokens: number, outputTokens: number): LlmEvent => ({ _tag: "Usage", inputTokens, outputTokens }),
  Stop: (reason: StopReason): LlmEvent => ({ _tag: "Stop", reason })
} as const

export type LlmErrorKind =
  | "missing_api_key"
  | "rate_limited"
  | "server_error"
  | "bad_request"
  | "unavailable"
  | "cancelled"
  /** The scripted provider was asked for more turns than its script holds. */
  | "script_exhausted"

/** A failed model call. `message` says what happened and what to do next. */
export class LlmError extends Data.TaggedError("LlmError")<{
  readonly kind: LlmErrorKind
  readonly provider: string
  readonly message: string
  /** HTTP status when the provider answered with one. */
  readonly status?: number
}> {}

/** Whether retrying the same request later may succeed (429, 5xx, connection failures). */
export const isRetryable = (error: LlmError): boolean =>
  error.kind === "rate_limited" || error.kind === "server_error" || error.kind === "unavailable"

export interface LlmProviderApi {
  /** Which provider this is ("anthropic", "openai", "scripted"...), for messages and events. */
  readonly name: string
  readonly stream: (request: LlmRequest) => Stream.Stream<LlmEvent, LlmError>
}

export class LlmProvider extends Context.Tag("astrid/LlmProvider")<LlmProvider, LlmProviderApi>() {}

/** The message content as parts, expanding the string shorthand. */
export const contentParts = (content: LlmMessage["content"]): ReadonlyArray<LlmPart> =>
  typeof content === "string" ? [{ type: "text", text: content }] : content
