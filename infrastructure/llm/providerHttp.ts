/**
 * What the HTTP-backed providers share: turning a status into an LlmError that says what to do,
 * retrying 429 / 5xx with exponential backoff before any event has been emitted, and tying the
 * request's AbortController to the stream's scope so interrupting the consumer aborts the request.
 */
import { type Duration, Effect, Option, Schedule, Schema, Stream } from "effect"
import { isRetryable, LlmError, type LlmEvent } from "../../application/ports/llmProvider.js"

export interface RetryPolicy {
  /** Retries after the first attempt (0 disables retrying). */
  readonly maxRetries: number
  /** First backoff delay; each retry doubles it. */
  readonly baseDelay: Duration.DurationInput
}

export const defaultRetryPolicy: RetryPolicy = { maxRetries: 4, baseDelay: "500 millis" }

export interface ProviderIdentity {
  readonly provider: string
  /** The environment variable or config key holding the API key, named in error messages. */
  readonly keyName: string
  readonly baseURL: string
}

/** An LlmError for an HTTP status the provider answered with. */
export const statusError = (id: ProviderIdentity, status: number, detail: string): LlmError => {
  const where = `${id.provider} at ${id.baseURL}`
  if (status === 429)
    return new LlmError({
      kind: "rate_limited",
      provider: id.provider,
      status,
      message: `${where} is rate limiting requests (429: ${detail}). Wait and try again, or lower concurrency.`
    })
  if (status >= 500)
    return new LlmError({
      kind: "server_error",
      provider: id.provider,
      status,
      message: `${where} failed with ${status} (${detail}). It is usually temporary; try again later.`
    })
  if (status === 401 || status === 403)
    return new LlmError({
      kind: "bad_request",
      provider: id.provider,
      status,
      message: `${where} rejected the API key (${status}: ${detail}). Check ${id.keyName}.`
    })
  return new LlmError({
    kind: "bad_request",
    provider: id.provider,
    status,
    message: `${where} rejected the request (${status}: ${detail}). Check the model name and request settings.`
  })
}

export const unavailableError = (id: ProviderIdentity, detail: string): LlmError =>
  new LlmError({
    kind: "unavailable",
    provider: id.provider,
    message: `Could not reach ${id.provider} at ${id.baseURL} (${detail}). Check the network and the base URL.`
  })

export const missingKeyError = (id: ProviderIdentity): LlmError =>
  new LlmError({
    kind: "missing_api_key",
    provider: id.provider,
    message: `No API key for ${id.provider}. Set ${id.keyName} and try again.`
  })

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(Schema.Unknown))

/** Parses a tool call's assembled input JSON; an empty string is an empty object. */
export const parseToolInput = (id: ProviderIdentity, toolName: string, json: string): unknown => {
  if (json.trim() === "") return {}
  const parsed = decodeJson(json)
  if (parsed._tag === "Left")
    throw new LlmError({
      kind: "server_error",
      provider: id.provider,
      message: `${id.provider} sent malformed JSON input for tool "${toolName}". Try the request again.`
    })
  return parsed.right
}

/**
 * Opens a streaming request (retrying per `retry` while it fails before the body streams) and
 * translates its chunks into LlmEvents. Closing the stream's scope aborts the request.
 */
export const sdkStream = <T>(options: {
  readonly open: (signal: AbortSignal) => Promise<AsyncIterable<T>>
  readonly toEvents: (chunks: AsyncIterable<T>) => AsyncIterable<LlmEvent>
  readonly mapError: (error: unknown) => LlmError
  readonly retry: RetryPolicy
}): Stream.Stream<LlmEvent, LlmError> => {
  const openOnce = Effect.acquireRelease(
    Effect.sync(() => new AbortController()),
    (controller) => Effect.sync(() => controller.abort())
  ).pipe(
    Effect.flatMap((controller) =>
      Effect.tryPromise({ try: () => options.open(controller.signal), catch: options.mapError })
    )
  )
  const schedule = Schedule.exponential(options.retry.baseDelay).pipe(
    Schedule.intersect(Schedule.recurs(options.retry.maxRetries))
  )
  // Pulled with next() rather than Stream.fromAsyncIterable: its finalizer awaits the generator's
  // return(), which cannot finish while a read is pending on a silent connection. Interrupting a
  // pending next() here lets the scope close and abort the request, which ends that read.
  return Stream.unwrapScoped(
    Effect.retry(openOnce, { schedule, while: isRetryable }).pipe(
      Effect.map((chunks) => {
        const iterator = options.toEvents(chunks)[Symbol.asyncIterator]()
        return Stream.repeatEffectOption(
          Effect.tryPromise({
            try: () => iterator.next(),
            catch: (error) => Option.some(error instanceof LlmError ? error : options.mapError(error))
          }).pipe(Effect.flatMap((next) => (next.done === true ? Effect.fail(Option.none()) : Effect.succeed(next.value))))
        )
      })
    )
  )
}
