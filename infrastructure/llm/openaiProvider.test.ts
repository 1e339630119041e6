import { Chunk, Effect, Either, Stream } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { LlmError, LlmEvent, LlmRequest } from "../../application/ports/llmProvider.js"
import { interruptAfterFirstEvent, openAiCompletion, type StandIn, startStandIn } from "../../test/llmStandIns.js"
import { makeOpenAiProvider } from "./openaiProvider.js"

const request: LlmRequest = {
  model: "gpt-stand-in",
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

const provider = (baseURL: string) => makeOpenAiProvider({ apiKey: "test-key", baseURL, retry: fastRetry, env: {} })

const errorBody = (message: string) => ({ error: { message, type: "error", code: null } })

describe("openaiProvider", () => {
  it("streams text deltas, usage and the stop reason, asking for usage", async () => {
    standIn = await startStandIn(
      [{ kind: "sse", events: openAiCompletion({ text: ["Hel", "lo!"], finishReason: "stop", promptTokens: 12, completionTokens: 3 }) }],
      "/v1"
    )
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toEqual(
      Either.right([
        { _tag: "TextDelta", text: "Hel" },
        { _tag: "TextDelta", text: "lo!" },
        { _tag: "Usage", inputTokens: 12, outputTokens: 3 },
        { _tag: "Stop", reason: "end_turn" }
      ])
    )
    expect(standIn.requests[0]?.path).toBe("/v1/chat/completions")
    expect(JSON.parse(standIn.requests[0]?.body ?? "null")).toMatchObject({
      model: "gpt-stand-in",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "hello" }],
      tools: [{ type: "function", function: { name: "read_file" } }]
    })
  })

  it("assembles tool calls from argument fragments", async () => {
    standIn = await startStandIn([
      {
        kind: "sse",
        events: openAiCompletion({
          toolCalls: [
            { id: "call_a", name: "read_file", argumentChunks: ['{"pa', 'th":"a.ts"}'] },
            { id: "call_b", name: "glob", argumentChunks: ['{"pattern":', '"**/*.ts"}'] }
          ],
          finishReason: "tool_calls",
          promptTokens: 20,
          completionTokens: 9
        })
      }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toEqual(
      Either.right([
        { _tag: "ToolCall", id: "call_a", name: "read_file", input: { path: "a.ts" } },
        { _tag: "ToolCall", id: "call_b", name: "glob", input: { pattern: "**/*.ts" } },
        { _tag: "Usage", inputTokens: 20, outputTokens: 9 },
        { _tag: "Stop", reason: "tool_use" }
      ])
    )
  })

  it("maps length to max_tokens", async () => {
    standIn = await startStandIn([
      { kind: "sse", events: openAiCompletion({ text: ["cut"], finishReason: "length", promptTokens: 1, completionTokens: 1 }) }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(Either.getOrThrow(result).at(-1)).toEqual({ _tag: "Stop", reason: "max_tokens" })
  })

  it("sends tool calls and tool results back in OpenAI's shape", async () => {
    standIn = await startStandIn([
      { kind: "sse", events: openAiCompletion({ finishReason: "stop", promptTokens: 1, completionTokens: 1 }) }
    ])
    await collect(
      provider(standIn.baseURL).stream({
        ...request,
        messages: [
          { role: "user", content: "read a.ts" },
          { role: "assistant", content: [{ type: "tool_call", id: "call_a", name: "read_file", input: { path: "a.ts" } }] },
          { role: "tool", content: [{ type: "tool_result", toolCallId: "call_a", content: "1\tx" }] }
        ]
      })
    )
    expect(JSON.parse(standIn.requests[0]?.body ?? "null")).toMatchObject({
      messages: [
        { role: "system" },
        { role: "user", content: "read a.ts" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_a", type: "function", function: { name: "read_file", arguments: '{"path":"a.ts"}' } }] },
        { role: "tool", tool_call_id: "call_a", content: "1\tx" }
      ]
    })
  })

  it.each([429, 500, 503])("retries after %i and then succeeds", async (status) => {
    standIn = await startStandIn([
      { kind: "status", status, body: errorBody("try later") },
      { kind: "sse", events: openAiCompletion({ text: ["ok"], finishReason: "stop", promptTokens: 1, completionTokens: 1 }) }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(Either.getOrThrow(result)[0]).toEqual({ _tag: "TextDelta", text: "ok" })
    expect(standIn.requests).toHaveLength(2)
  })

  it("gives up after the configured retries with server_error", async () => {
    standIn = await startStandIn([1, 2, 3, 4].map(() => ({ kind: "status" as const, status: 502, body: errorBody("down") })))
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "server_error", status: 502 }))
    expect(standIn.requests).toHaveLength(4)
  })

  it("fails a 400 with bad_request and does not retry", async () => {
    standIn = await startStandIn([
      { kind: "status", status: 400, body: errorBody("unknown model") },
      { kind: "sse", events: openAiCompletion({ finishReason: "stop", promptTokens: 1, completionTokens: 1 }) }
    ])
    const result = await collect(provider(standIn.baseURL).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "bad_request", status: 400 }))
    expect(standIn.requests).toHaveLength(1)
  })

  it("aborts the request when the consuming fiber is interrupted mid-stream", async () => {
    const events = openAiCompletion({ text: ["first", "second"], finishReason: "stop", promptTokens: 1, completionTokens: 1 })
    standIn = await startStandIn([{ kind: "sse", events: events.slice(0, 2), hang: true }])
    const seen = await interruptAfterFirstEvent(provider(standIn.baseURL).stream(request), standIn)
    expect(seen).toEqual([{ _tag: "TextDelta", text: "first" }])
  })

  it("fails with missing_api_key naming OPENAI_API_KEY when no key is set", async () => {
    const result = await collect(makeOpenAiProvider({ env: {} }).stream(request))
    expect(result).toMatchObject(Either.left({ _tag: "LlmError", kind: "missing_api_key" }))
    expect(Either.isLeft(result) ? result.left.message : "").toContain("OPENAI_API_KEY")
  })

  it("reads a named key for another OpenAI-compatible endpoint and names it when missing", async () => {
    const missing = await collect(makeOpenAiProvider({ env: {}, name: "zai", keyName: "ZAI_API_KEY" }).stream(request))
    expect(Either.isLeft(missing) ? missing.left.message : "").toContain("ZAI_API_KEY")
    standIn = await startStandIn([
      { kind: "sse", events: openAiCompletion({ text: ["glm"], finishReason: "stop", promptTokens: 1, completionTokens: 1 }) }
    ], "/api/paas/v4")
    const zai = makeOpenAiProvider({ env: { ZAI_API_KEY: "zk" }, name: "zai", keyName: "ZAI_API_KEY", baseURL: standIn.baseURL })
    const result = await collect(zai.stream(request))
    expect(Either.getOrThrow(result)[0]).toEqual({ _tag: "TextDelta", text: "glm" })
    expect(standIn.requests[0]?.path).toBe("/api/paas/v4/chat/completions")
    expect(standIn.requests[0]?.headers.authorization).toBe("Bearer zk")
  })

  it("lets a local server run without a key when keyOptional is set", async () => {
    standIn = await startStandIn([
      { kind: "sse", events: openAiCompletion({ text: ["local"], finishReason: "stop", promptTokens: 1, completionTokens: 1 }) }
    ])
    const local = makeOpenAiProvider({ env: {}, name: "ollama", keyOptional: true, baseURL: standIn.baseURL })
    expect(Either.getOrThrow(await collect(local.stream(request)))[0]).toEqual({ _tag: "TextDelta", text: "local" })
  })
})
