/**
 * Loopback stand-ins for the LLM providers' HTTP APIs (the real services cannot be reached from
 * tests): a node:http server on 127.0.0.1, port 0, that answers the Anthropic Messages streaming
 * API and the OpenAI chat completions streaming API from a queue of scripted replies. Any auth
 * header is accepted. It records each request body and whether the client closed the connection
 * before the reply finished.
 */
import { Deferred, Effect, Fiber, Stream } from "effect"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** One reply: a status with a JSON error body, or an SSE stream (optionally left hanging open). */
export type StandInReply =
  | { readonly kind: "status"; readonly status: number; readonly body: unknown }
  | {
      readonly kind: "sse"
      /** Each entry is one SSE event: `event` name (Anthropic) or none (OpenAI), and its data. */
      readonly events: ReadonlyArray<{ readonly event?: string; readonly data: unknown }>
      /** Keep the connection open after the events instead of ending it. */
      readonly hang?: boolean
      /** Pause between events, in milliseconds. */
      readonly delayMs?: number
    }

export interface RecordedRequest {
  readonly path: string
  readonly headers: IncomingMessage["headers"]
  readonly body: string
}

export interface StandIn {
  readonly baseURL: string
  readonly requests: Array<RecordedRequest>
  /** Resolves when a client closes a connection before its reply ended. */
  readonly clientClosed: Promise<void>
  readonly close: () => Promise<void>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Starts a stand-in answering requests from `replies` in order; `pathPrefix` goes into baseURL. */
export const startStandIn = async (replies: Array<StandInReply>, pathPrefix = ""): Promise<StandIn> => {
  const requests: Array<RecordedRequest> = []
  let signalClosed: () => void = () => {}
  const clientClosed = new Promise<void>((resolve) => {
    signalClosed = resolve
  })
  const open = new Set<ServerResponse>()
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Array<Buffer> = []
    for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)))
    requests.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") })
    const reply = replies.shift()
    if (reply === undefined) {
      res.writeHead(500, { "content-type": "application/json" })
      res.end(JSON.stringify({ error: { type: "stand_in", message: "the stand-in has no more replies" } }))
      return
    }
    if (reply.kind === "status") {
      res.writeHead(reply.status, { "content-type": "application/json" })
      res.end(JSON.stringify(reply.body))
      return
    }
    let finished = false
    open.add(res)
    res.on("close", () => {
      open.delete(res)
      if (!finished) signalClosed()
    })
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
    for (const event of reply.events) {
      if (res.destroyed) return
      const head = event.event === undefined ? "" : `event: ${event.event}\n`
      const data = typeof event.data === "string" ? event.data : JSON.stringify(event.data)
      res.write(`${head}data: ${data}\n\n`)
      if (reply.delayMs !== undefined) await sleep(reply.delayMs)
    }
    if (reply.hang === true) return
    finished = true
    res.end()
  }
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? (address satisfies AddressInfo).port : 0
  return {
    baseURL: `http://127.0.0.1:${port}${pathPrefix}`,
    requests,
    clientClosed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** The Anthropic SSE events for one message with the given blocks. */
export const anthropicMessage = (options: {
  readonly blocks: ReadonlyArray<
    | { readonly type: "text"; readonly chunks: ReadonlyArray<string> }
    | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly jsonChunks: ReadonlyArray<string> }
  >
  readonly stopReason: string
  readonly inputTokens: number
  readonly outputTokens: number
}): Array<{ event: string; data: unknown }> => {
  const events: Array<{ event: string; data: unknown }> = [
    {
      event: "message_start",
      data: {
        type: "message_start",
        message: {
          id: "msg_standin",
          type: "message",
          role: "assistant",
          model: "claude-stand-in",
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: options.inputTokens, output_tokens: 1 }
        }
      }
    }
  ]
  options.blocks.forEach((block, index) => {
    if (block.type === "text") {
      events.push({ event: "content_block_start", data: { type: "content_block_start", index, content_block: { type: "text", text: "" } } })
      for (const text of block.chunks)
        events.push({ event: "content_block_delta", data: { type: "content_block_delta", index, delta: { type: "text_delta", text } } })
    } else {
      events.push({
        event: "content_block_start",
        data: { type: "content_block_start", index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } }
      })
      for (const partial_json of block.jsonChunks)
        events.push({
          event: "content_block_delta",
          data: { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } }
        })
    }
    events.push({ event: "content_block_stop", data: { type: "content_block_stop", index } })
  })
  events.push({
    event: "message_delta",
    data: { type: "message_delta", delta: { stop_reason: options.stopReason, stop_sequence: null }, usage: { output_tokens: options.outputTokens } }
  })
  events.push({ event: "message_stop", data: { type: "message_stop" } })
  return events
}

const openAiChunk = (delta: unknown, finishReason: string | null) => ({
  id: "chatcmpl-standin",
  object: "chat.completion.chunk",
  created: 0,
  model: "gpt-stand-in",
  choices: [{ index: 0, delta, finish_reason: finishReason }]
})

/** The OpenAI SSE chunks for one completion: text pieces, tool calls in argument fragments, usage, [DONE]. */
export const openAiCompletion = (options: {
  readonly text?: ReadonlyArray<string>
  readonly toolCalls?: ReadonlyArray<{ readonly id: string; readonly name: string; readonly argumentChunks: ReadonlyArray<string> }>
  readonly finishReason: string
  readonly promptTokens: number
  readonly completionTokens: number
}): Array<{ data: unknown }> => {
  const events: Array<{ data: unknown }> = [{ data: openAiChunk({ role: "assistant", content: "" }, null) }]
  for (const text of options.text ?? []) events.push({ data: openAiChunk({ content: text }, null) })
  ;(options.toolCalls ?? []).forEach((call, index) => {
    events.push({
      data: openAiChunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }, null)
    })
    for (const args of call.argumentChunks)
      events.push({ data: openAiChunk({ tool_calls: [{ index, function: { arguments: args } }] }, null) })
  })
  events.push({ data: openAiChunk({}, options.finishReason) })
  events.push({
    data: {
      id: "chatcmpl-standin",
      object: "chat.completion.chunk",
      created: 0,
      model: "gpt-stand-in",
      choices: [],
      usage: {
        prompt_tokens: options.promptTokens,
        completion_tokens: options.completionTokens,
        total_tokens: options.promptTokens + options.completionTokens
      }
    }
  })
  events.push({ data: "[DONE]" })
  return events
}

/**
 * Consumes `stream` until its first event, then interrupts the consumer, and waits (up to 5 s) for the
 * stand-in to see the client close the connection: cancellation must abort the HTTP request. Returns the
 * events seen before the interruption.
 */
export const interruptAfterFirstEvent = async <A, E>(stream: Stream.Stream<A, E>, server: StandIn): Promise<ReadonlyArray<A>> => {
  const seen: Array<A> = []
  await Effect.runPromise(
    Effect.gen(function* () {
      const first = yield* Deferred.make<void>()
      const fiber = yield* stream.pipe(
        Stream.runForEach((event) => Effect.sync(() => seen.push(event)).pipe(Effect.zipRight(Deferred.succeed(first, undefined)))),
        Effect.fork
      )
      yield* Deferred.await(first)
      yield* Fiber.interrupt(fiber)
    })
  )
  await Promise.race([
    server.clientClosed,
    new Promise((_, reject) => setTimeout(() => reject(new Error("the stand-in never saw the connection close")), 5_000))
  ])
  return seen
}
