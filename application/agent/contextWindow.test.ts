import { describe, expect, it } from "vitest"
import type { LlmMessage } from "../ports/llmProvider.js"
import { fitContext } from "./contextWindow.js"

const user = (text: string): LlmMessage => ({ role: "user", content: text })
const call = (id: string): LlmMessage => ({ role: "assistant", content: [{ type: "tool_call", id, name: "read_file", input: { path: "a" } }] })
const result = (id: string, text: string): LlmMessage => ({ role: "tool", content: [{ type: "tool_result", toolCallId: id, content: text, isError: false }] })
const answer = (text: string): LlmMessage => ({ role: "assistant", content: [{ type: "text", text }] })

const conversation = (turns: number): Array<LlmMessage> =>
  Array.from({ length: turns }, (_, i) => [user(`question ${i} ${"x".repeat(350)}`), call(`c${i}`), result(`c${i}`, "y".repeat(700)), answer(`answer ${i}`)]).flat()

describe("fitContext", () => {
  it("sends everything when it fits", () => {
    const messages = conversation(3)
    expect(fitContext(messages, 100_000)).toEqual({ messages, dropped: 0 })
  })

  it("leaves out the oldest whole exchanges, starting the window at a user message, never between a call and its result", () => {
    const messages = conversation(10)
    const window = fitContext(messages, 1_500)
    expect(window.dropped).toBeGreaterThan(0)
    expect(window.dropped % 4).toBe(0)
    expect(window.messages[0]?.role).toBe("user")
    expect(window.messages).toEqual(messages.slice(window.dropped))
    // The longest tail that fits: one more exchange would not.
    const longer = fitContext(messages, 1_500 + 400)
    expect(longer.dropped).toBeLessThanOrEqual(window.dropped)
  })

  it("always sends the current turn, even when it alone is over the limit", () => {
    const messages = [...conversation(2), user("now"), call("k"), result("k", "z".repeat(20_000))]
    const window = fitContext(messages, 100)
    expect(window.messages[0]).toEqual(user("now"))
    expect(window.messages).toHaveLength(3)
  })
})
