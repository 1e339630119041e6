/**
 * An OpenAI-compatible chat completions API as an LlmProvider, through the `openai` SDK. Any base
 * URL works: OpenAI, Ollama, vLLM, llama.cpp servers, Z.ai's GLM endpoint. Tool call arguments
 * arrive as JSON fragments keyed by index and are emitted as ToolCalls once the choice finishes;
 * usage comes from `stream_options.include_usage`. The SDK's own retries are off.
 */
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from "openai"
import { Layer, Stream } from "effect"
import {
  contentParts,
  LlmError,
  LlmEvent,
  LlmProvider,
  type LlmProviderApi,
  type LlmRequest,
  type StopReason
} from "../../application/ports/llmProvider.js"
import {
  defaultRetryPolicy,
  missingKeyError,
  parseToolInput,
  type ProviderIdentity,
  type RetryPolicy,
  sdkStream,
  statusError,
  unavailableError
} from "./providerHttp.js"

export interface OpenAiProviderConfig {
  /** Taken from `env.OPENAI_API_KEY` when absent. */
  readonly apiKey?: string | undefined
  readonly baseURL?: string | undefined
  /** Provider name in messages and events ("openai", "zai", "ollama"...). */
  readonly name?: string | undefined
  /** Named in the missing-key error; defaults to OPENAI_API_KEY. */
  readonly keyName?: string | undefined
  /** Local servers (Ollama, llama.cpp) need no key; a placeholder is sent instead. */
  readonly keyOptional?: boolean | undefined
  readonly retry?: RetryPolicy | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

const defaultBaseURL = "https://api.openai.com/v1"

const mapStop = (reason: string | null): StopReason => {
  switch (reason) {
    case "tool_calls":
    case "function_call":
      return "tool_use"
    case "length":
      return "max_tokens"
    default:
      return "end_turn"
  }
}

const textOf = (parts: ReadonlyArray<{ readonly type: string; readonly text?: string }>): string =>
  parts.flatMap((part) => (part.type === "text" && part.text !== undefined ? [part.text] : [])).join("")

const toMessages = (request: LlmRequest): Array<OpenAI.ChatCompletionMessageParam> => {
  const out: Array<OpenAI.ChatCompletionMessageParam> = []
  if (request.system !== undefined) out.push({ role: "system", content: request.system })
  for (const message of request.messages) {
    const parts = contentParts(message.content)
    if (message.role === "assistant") {
      const calls: Array<OpenAI.ChatCompletionMessageToolCall> = parts.flatMap((part) =>
        part.type === "tool_call"
          ? [{ id: part.id, type: "function" as const, function: { name: part.name, arguments: JSON.stringify(part.input) } }]
          : []
      )
      const text = textOf(parts)
      out.push({ role: "assistant", content: text === "" ? null : text, ...(calls.length === 0 ? {} : { tool_calls: calls }) })
    } else {
      for (const part of parts)
        if (part.type === "tool_result") out.push({ role: "tool", tool_call_id: part.toolCallId, content: part.content })
      const text = textOf(parts)
      if (text !== "" || parts.length === 0) out.push({ role: "user", content: text })
    }
  }
  return out
}

async function* toEvents(id: ProviderIdentity, chunks: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  const calls = new Map<number, { id: string; name: string; json: string }>()
  let finish: string | null = null
  let usage: { inputTokens: number; outputTokens: number } | undefined
  const flushCalls = function* () {
    const ordered = [...calls.entries()].sort(([a], [b]) => a - b)
    calls.clear()
    for (const [index, call] of ordered)
      yield LlmEvent.ToolCall(call.id === "" ? `call_${index}` : call.id, call.name, parseToolInput(id, call.name, call.json))
  }
  for await (const chunk of chunks) {
    if (chunk.usage !== undefined && chunk.usage !== null)
      usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens }
    const choice = chunk.choices[0]
    if (choice === undefined) continue
    const delta = choice.delta
    if (typeof delta.content === "string" && delta.content !== "") yield LlmEvent.TextDelta(delta.content)
    for (const call of delta.tool_calls ?? []) {
      const entry = calls.get(call.index) ?? { id: "", name: "", json: "" }
      if (call.id !== undefined && call.id !== "") entry.id = call.id
      if (call.function?.name !== undefined) entry.name += call.function.name
      if (call.function?.arguments !== undefined) entry.json += call.function.arguments
      calls.set(call.index, entry)
    }
    if (choice.finish_reason !== null && choice.finish_reason !== undefined) {
      finish = choice.finish_reason
      yield* flushCalls()
    }
  }
  yield* flushCalls()
  if (usage !== undefined) yield LlmEvent.Usage(usage.inputTokens, usage.outputTokens)
  yield LlmEvent.Stop(mapStop(finish))
}

const mapError = (id: ProviderIdentity) => (error: unknown): LlmError => {
  if (error instanceof LlmError) return error
  if (error instanceof APIUserAbortError)
    return new LlmError({ kind: "cancelled", provider: id.provider, message: `The request to ${id.provider} was cancelled.` })
  if (error instanceof APIConnectionError) return unavailableError(id, error.message)
  if (error instanceof APIError && typeof error.status === "number") return statusError(id, error.status, error.message)
  return unavailableError(id, error instanceof Error ? error.message : String(error))
}

/** An LlmProvider speaking the OpenAI chat completions API at `baseURL`. */
export const makeOpenAiProvider = (config: OpenAiProviderConfig = {}): LlmProviderApi => {
  const env = config.env ?? process.env
  const keyName = config.keyName ?? "OPENAI_API_KEY"
  const configured = config.apiKey ?? env[keyName] ?? env["OPENAI_API_KEY"]
  const apiKey = configured === undefined || configured === "" ? (config.keyOptional === true ? "none" : undefined) : configured
  const id: ProviderIdentity = { provider: config.name ?? "openai", keyName, baseURL: config.baseURL ?? defaultBaseURL }
  const client = apiKey === undefined ? undefined : new OpenAI({ apiKey, baseURL: id.baseURL, maxRetries: 0 })
  return {
    name: id.provider,
    stream: (request) => {
      if (client === undefined) return Stream.fail(missingKeyError(id))
      const params: OpenAI.ChatCompletionCreateParamsStreaming = {
        model: request.model,
        max_tokens: request.maxTokens,
        messages: toMessages(request),
        stream: true,
        stream_options: { include_usage: true },
        ...(request.tools.length === 0
          ? {}
          : {
              tools: request.tools.map((tool) => ({
                type: "function" as const,
                function: { name: tool.name, description: tool.description, parameters: { ...tool.inputSchema } }
              }))
            })
      }
      return sdkStream({
        open: (signal) => client.chat.completions.create(params, { signal }),
        toEvents: (chunks) => toEvents(id, chunks),
        mapError: mapError(id),
        retry: config.retry ?? defaultRetryPolicy
      })
    }
  }
}

export const openAiProviderLayer = (config: OpenAiProviderConfig = {}): Layer.Layer<LlmProvider> =>
  Layer.sync(LlmProvider, () => makeOpenAiProvider(config))
