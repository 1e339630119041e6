/**
 * Keeping a long conversation inside the model's context window. The oldest exchanges are left out of
 * the request (never out of the log): the window always starts at a message the user wrote, so a tool
 * call is never separated from its result, and the current turn is always sent whole. Token counts here
 * are estimates (about 3.5 characters a token): the window is a best effort to avoid a request the
 * provider refuses, not a budget figure (budgets reserve by an upper bound, see agentLoop.ts).
 */
import type { LlmMessage, LlmRequest } from "../ports/llmProvider.js"

const CHARS_PER_TOKEN = 3.5

const lengthOf = (m: LlmMessage): number => (typeof m.content === "string" ? m.content.length : JSON.stringify(m.content).length)

export const estimateTokens = (chars: number): number => Math.ceil(chars / CHARS_PER_TOKEN)

/** Tokens a request spends outside its messages: the system prompt, the tools and the room for the answer. */
export const fixedTokens = (request: { readonly system?: string | undefined; readonly tools?: LlmRequest["tools"]; readonly maxTokens: number }): number =>
  estimateTokens((request.system ?? "").length + (request.tools ?? []).reduce((n, t) => n + t.name.length + t.description.length + JSON.stringify(t.inputSchema).length, 0)) +
  request.maxTokens

export interface ContextWindow {
  readonly messages: ReadonlyArray<LlmMessage>
  /** How many of the oldest messages were left out. */
  readonly dropped: number
}

/** A message a window may start at: one the user wrote (tool results travel as role "tool"). */
const startsWindow = (m: LlmMessage): boolean => m.role === "user" && typeof m.content === "string"

/**
 * The longest tail of `messages` that starts at a user message and fits in `limitTokens`; when even the
 * current turn (from the last user message) does not fit, the current turn alone.
 */
export const fitContext = (messages: ReadonlyArray<LlmMessage>, limitTokens: number): ContextWindow => {
  let total = 0
  for (const m of messages) total += lengthOf(m)
  if (estimateTokens(total) <= limitTokens) return { messages, dropped: 0 }
  let suffix = total
  let lastStart = -1
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    if (m === undefined) continue
    if (startsWindow(m)) {
      lastStart = i
      if (estimateTokens(suffix) <= limitTokens) return { messages: messages.slice(i), dropped: i }
    }
    suffix -= lengthOf(m)
  }
  return lastStart <= 0 ? { messages, dropped: 0 } : { messages: messages.slice(lastStart), dropped: lastStart }
}
