import { Chunk, Effect, Either, Stream } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { LlmError, LlmEvent, LlmRequest } from "../../application/ports/llmProvider.js"
import { anthropicMessage, interruptAfterFirstEvent, type StandIn, startStandIn } from "../../test/llmStandIns.js"
import { makeAnthropicProvider } from "./anthropicProvider.js"

const request: LlmRequest = {
  model: "claude-stand-in",
  system: "You are terse.",
  messages: [{ role: "user", content: "hello" }],
  tools: [{ name: "read_file", description: "Read a file", inputSchema: { type: "object", properties: { path: { type: "string" } } } }],
  maxTokens: 256
}

const fastRetry = { maxRetries: 3, baseDelay: "5 millis" } as const

let standIn: StandIn | undefined
afterEach(async () => {
  await standIn?.close()
  standIn = undefined
})

const collect = (stream: Stream.Stream<LlmEvent, LlmError>) =>
  Effect.runPromise(Stream.runCollect(stream).pipe(Effect.map(Chunk.toReadonlyArray), Effect.either))

const provider = (baseURL: string) => makeAnthropicProvider({ apiKey: "test-key", baseURL, retry: fastRetry, env: {} })

describe("anthropicProvider", () => {
  it("streams text deltas, usage and the stop reason", async () => {
    standIn = await startStandIn([
      {
        kind: "sse",
        events: anthropicMessage({
          blocks: [{ type: "text", chunks: ["Hel", "lo!"] }],
          stopReason: "end_turn",
          inputTokens: 12,
          outputTokens: 3
        })
      }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toEqual(
      Either.right([
        { _tag: "TextDelta", text: "Hel" },
        { _tag: "TextDelta", text: "lo!" },
        { _tag: "Usage", inputTokens: 12, outputTokens: 3 },
        { _tag: "Stop", reason: "end_turn" }
      ])
    )
    const sent: unknown = JSON.parse(standIn.requests[0]?.body ?? "null")
    expect(sent).toMatchObject({ model: "claude-stand-in", system: "You are terse.", max_tokens: 256, stream: true })
    expect(sent).toMatchObject({ tools: [{ name: "read_file", input_schema: { type: "object" } }] })
  })

  it("assembles a tool call from input JSON deltas", async () => {
    standIn = await startStandIn([
      {
        kind: "sse",
        events: anthropicMessage({
          blocks: [
            { type: "text", chunks: ["Reading."] },
            { type: "tool_use", id: "toolu_1", name: "read_file", jsonChunks: ['{"pa', 'th": "src/', 'a.ts"}'] }
          ],
          stopReason: "tool_use",
          inputTokens: 20,
          outputTokens: 9
        })
      }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toEqual(
      Either.right([
        { _tag: "TextDelta", text: "Reading." },
        { _tag: "ToolCall", id: "toolu_1", name: "read_file", input: { path: "src/a.ts" } },
        { _tag: "Usage", inputTokens: 20, outputTokens: 9 },
        { _tag: "Stop", reason: "tool_use" }
      ])
    )
  })

  it("sends tool calls and tool results back in Anthropic's shape", async () => {
    standIn = await startStandIn([
      { kind: "sse", events: anthropicMessage({ blocks: [], stopReason: "end_turn", inputTokens: 1, outputTokens: 1 }) }
    ])
    await collect(
      provider(standIn.baseURL).stream({
        ...request,
        messages: [
          { role: "user", content: "read a.ts" },
          { role: "assistant", content: [{ type: "tool_call", id: "toolu_1", name: "read_file", input: { path: "a.ts" } }] },
          { role: "tool", content: [{ type: "tool_result", toolCallId: "toolu_1", content: "1\tx", isError: false }] }
        ]
      })
    )
    expect(JSON.parse(standIn.requests[0]?.body ?? "null")).toMatchObject({
      messages: [
        { role: "user", content: [{ type: "text", text: "read a.ts" }] },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "read_file", input: { path: "a.ts" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "1\tx" }] }
      ]
    })
  })

  it.each([
    [429, { type: "error", error: { type: "rate_limit_error", message: "slow down" } }],
    [500, { type: "error", error: { type: "api_error", message: "boom" } }]
  ])("retries after %i and then succeeds", async (status, body) => {
    standIn = await startStandIn([
      { kind: "status", status, body },
      { kind: "sse", events: anthropicMessage({ blocks: [{ type: "text", chunks: ["ok"] }], stopReason: "end_turn", inputTokens: 1, outputTokens: 1 }) }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(Either.isRight(result)).toBe(true)
    expect(Either.getOrThrow(result)[0]).toEqual({ _tag: "TextDelta", text: "ok" })
    expect(standIn.requests).toHaveLength(2)
  })

  it("gives up after the configured retries with rate_limited", async () => {
    const body = { type: "error", error: { type: "rate_limit_error", message: "slow down" } }
    standIn = await startStandIn([1, 2, 3, 4].map(() => ({ kind: "status" as const, status: 429, body })))
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "rate_limited", status: 429 }))
    expect(standIn.requests).toHaveLength(4)
  })

  it("fails a 400 with bad_request and does not retry", async () => {
    standIn = await startStandIn([
      { kind: "status", status: 400, body: { type: "error", error: { type: "invalid_request_error", message: "bad model" } } },
      { kind: "sse", events: anthropicMessage({ blocks: [], stopReason: "end_turn", inputTokens: 1, outputTokens: 1 }) }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "bad_request", status: 400 }))
    expect(standIn.requests).toHaveLength(1)
  })

  it("aborts the request when the consuming fiber is interrupted mid-stream", async () => {
    const events = anthropicMessage({ blocks: [{ type: "text", chunks: ["first"] }], stopReason: "end_turn", inputTokens: 1, outputTokens: 1 })
    standIn = await startStandIn([{ kind: "sse", events: events.slice(0, 3), hang: true }])
    const seen = await interruptAfterFirstEvent(provider(standIn.baseURL).stream(request), standIn)
    expect(seen).toEqual([{ _tag: "TextDelta", text: "first" }])
  })

  it("fails with missing_api_key naming ANTHROPIC_API_KEY when no key is set", async () => {
    const result = await collect(makeAnthropicProvider({ env: {} }).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "missing_api_key" }))
    expect(Either.isLeft(result) ? result.left.message : "").toContain("ANTHROPIC_API_KEY")
  })

  it("names the config key when one is given", async () => {
    const result = await collect(makeAnthropicProvider({ env: {}, keyName: "providers.anthropic.api_key" }).stream(request))
    expect(Either.isLeft(result) ? result.left.message : "").toContain("providers.anthropic.api_key")
  })

  it("fails with server_error when a tool call's input JSON is malformed", async () => {
    standIn = await startStandIn([
      {
        kind: "sse",
        events: anthropicMessage({
          blocks: [{ type: "tool_use", id: "toolu_1", name: "read_file", jsonChunks: ['{"path": '] }],
          stopReason: "tool_use",
          inputTokens: 1,
          outputTokens: 1
        })
      }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "server_error" }))
    expect(Either.isLeft(result) ? result.left.message : "").toContain('"read_file"')
  })

  it("does not retry an error sent after the stream began", async () => {
    const events = anthropicMessage({ blocks: [{ type: "text", chunks: ["partial"] }], stopReason: "end_turn", inputTokens: 1, outputTokens: 1 })
    standIn = await startStandIn([
      {
        kind: "sse",
        events: [...events.slice(0, 3), { event: "error", data: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } }]
      },
      { kind: "sse", events }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError" }))
    expect(standIn.requests).toHaveLength(1)
  })
})
