/**
 * The Anthropic Messages API as an LlmProvider, through `@anthropic-ai/sdk`. Text deltas pass
 * straight through; a tool_use block's input JSON arrives in pieces and is emitted as one ToolCall
 * when its block stops. The SDK's own retries are off so the backoff here is the only one.
 */
import Anthropic, { APIConnectionError, APIError, APIUserAbortError } from "@anthropic-ai/sdk"
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

export interface AnthropicProviderConfig {
  /** Taken from `env.ANTHROPIC_API_KEY` when absent. */
  readonly apiKey?: string | undefined
  readonly baseURL?: string | undefined
  /** Named in the missing-key error; defaults to ANTHROPIC_API_KEY. */
  readonly keyName?: string | undefined
  readonly retry?: RetryPolicy | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

const defaultBaseURL = "https://api.anthropic.com"

const mapStop = (reason: string | null): StopReason => {
  switch (reason) {
    case "tool_use":
      return "tool_use"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "max_tokens"
    default:
      return "end_turn"
  }
}

const toMessages = (request: LlmRequest): Array<Anthropic.MessageParam> =>
  request.messages.map((message): Anthropic.MessageParam => {
    const blocks = contentParts(message.content).map((part): Anthropic.ContentBlockParam => {
      switch (part.type) {
        case "text":
          return { type: "text", text: part.text }
        case "tool_call":
          return { type: "tool_use", id: part.id, name: part.name, input: part.input }
        case "tool_result":
          return { type: "tool_result", tool_use_id: part.toolCallId, content: part.content, is_error: part.isError ?? false }
      }
    })
    return { role: message.role === "assistant" ? "assistant" : "user", content: blocks }
  })

async function* toEvents(id: ProviderIdentity, chunks: AsyncIterable<Anthropic.RawMessageStreamEvent>) {
  const toolBlocks = new Map<number, { id: string; name: string; json: string }>()
  let inputTokens = 0
  let outputTokens = 0
  let stop: StopReason = "end_turn"
  for await (const chunk of chunks) {
    switch (chunk.type) {
      case "message_start":
        inputTokens = chunk.message.usage.input_tokens
        outputTokens = chunk.message.usage.output_tokens
        break
      case "content_block_start":
        if (chunk.content_block.type === "tool_use")
          toolBlocks.set(chunk.index, { id: chunk.content_block.id, name: chunk.content_block.name, json: "" })
        else if (chunk.content_block.type === "text" && chunk.content_block.text !== "")
          yield LlmEvent.TextDelta(chunk.content_block.text)
        break
      case "content_block_delta":
        if (chunk.delta.type === "text_delta") yield LlmEvent.TextDelta(chunk.delta.text)
        else if (chunk.delta.type === "input_json_delta") {
          const block = toolBlocks.get(chunk.index)
          if (block !== undefined) block.json += chunk.delta.partial_json
        }
        break
      case "content_block_stop": {
        const block = toolBlocks.get(chunk.index)
        if (block !== undefined) {
          toolBlocks.delete(chunk.index)
          yield LlmEvent.ToolCall(block.id, block.name, parseToolInput(id, block.name, block.json))
        }
        break
      }
      case "message_delta":
        stop = mapStop(chunk.delta.stop_reason)
        outputTokens = chunk.usage.output_tokens
        if (typeof chunk.usage.input_tokens === "number") inputTokens = chunk.usage.input_tokens
        break
      case "message_stop":
        break
    }
  }
  yield LlmEvent.Usage(inputTokens, outputTokens)
  yield LlmEvent.Stop(stop)
}

const mapError = (id: ProviderIdentity) => (error: unknown): LlmError => {
  if (error instanceof LlmError) return error
  if (error instanceof APIUserAbortError)
    return new LlmError({ kind: "cancelled", provider: id.provider, message: `The request to ${id.provider} was cancelled.` })
  if (error instanceof APIConnectionError) return unavailableError(id, error.message)
  if (error instanceof APIError && typeof error.status === "number") return statusError(id, error.status, error.message)
  return unavailableError(id, error instanceof Error ? error.message : String(error))
}

/** An LlmProvider speaking the Anthropic Messages API at `baseURL`. */
export const makeAnthropicProvider = (config: AnthropicProviderConfig = {}): LlmProviderApi => {
  const env = config.env ?? process.env
  const apiKey = config.apiKey ?? env["ANTHROPIC_API_KEY"]
  const id: ProviderIdentity = {
    provider: "anthropic",
    keyName: config.keyName ?? "ANTHROPIC_API_KEY",
    baseURL: config.baseURL ?? defaultBaseURL
  }
  const client =
    apiKey === undefined || apiKey === ""
      ? undefined
      : new Anthropic({ apiKey, baseURL: id.baseURL, maxRetries: 0 })
  return {
    name: id.provider,
    stream: (request) => {
      if (client === undefined) return Stream.fail(missingKeyError(id))
      const params: Anthropic.MessageCreateParamsStreaming = {
        model: request.model,
        max_tokens: request.maxTokens,
        messages: toMessages(request),
        stream: true,
        ...(request.system === undefined ? {} : { system: request.system }),
        ...(request.tools.length === 0
          ? {}
          : {
              tools: request.tools.map((tool) => ({
                name: tool.name,
                description: tool.description,
                input_schema: { ...tool.inputSchema, type: "object" as const }
              }))
            })
      }
      return sdkStream({
        open: (signal) => client.messages.create(params, { signal }),
        toEvents: (chunks) => toEvents(id, chunks),
        mapError: mapError(id),
        retry: config.retry ?? defaultRetryPolicy
      })
    }
  }
}

export const anthropicProviderLayer = (config: AnthropicProviderConfig = {}): Layer.Layer<LlmProvider> =>
  Layer.sync(LlmProvider, () => makeAnthropicProvider(config))
