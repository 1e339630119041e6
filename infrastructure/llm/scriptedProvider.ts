/**
 * The scripted provider: replays a file of model turns, one turn per `stream` call, for the offline
 * demo, for tests and for reproducible runs. The format (JSON or JSON Lines) is described in
 * docs/scripted-provider.md. Running out of turns is an error, never a silent end of conversation.
 */
import { readFile } from "node:fs/promises"
import { Data, Effect, Either, Layer, ParseResult, Ref, Schema, Stream } from "effect"
import { LlmError, LlmEvent, LlmProvider, type LlmProviderApi } from "../../application/ports/llmProvider.js"

const TextItem = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })
const ToolCallItem = Schema.Struct({
  type: Schema.Literal("tool_call"),
  id: Schema.optional(Schema.String),
  name: Schema.String.pipe(Schema.minLength(1)),
  input: Schema.Unknown
})
const Tokens = Schema.Int.pipe(Schema.nonNegative())

export const ScriptTurn = Schema.Struct({
  content: Schema.Array(Schema.Union(TextItem, ToolCallItem)),
  /** Defaults to "tool_use" when the turn has tool calls, otherwise "end_turn". */
  stop: Schema.optional(Schema.Literal("end_turn", "tool_use", "max_tokens", "cancelled")),
  usage: Schema.optional(Schema.Struct({ input_tokens: Tokens, output_tokens: Tokens }))
})
export type ScriptTurn = typeof ScriptTurn.Type

const WholeScript = Schema.Union(Schema.Array(ScriptTurn), Schema.Struct({ turns: Schema.Array(ScriptTurn) }), ScriptTurn)

/** The script file could not be read or does not follow the format. */
export class ScriptFileError extends Data.TaggedError("ScriptFileError")<{
  readonly source: string
  readonly message: string
}> {}

const parseJson = Schema.decodeUnknownEither(Schema.parseJson(Schema.Unknown))

const explain = (error: ParseResult.ParseError): string => ParseResult.TreeFormatter.formatErrorSync(error)

const formatHint = "See docs/scripted-provider.md for the format."

/** Parses script text: one JSON document (an array of turns, {"turns": [...]}, or one turn) or JSON Lines. */
export const parseScript = (text: string, source: string): Either.Either<ReadonlyArray<ScriptTurn>, ScriptFileError> => {
  const fail = (message: string) => Either.left(new ScriptFileError({ source, message: `${source}: ${message} ${formatHint}` }))
  const whole = parseJson(text)
  if (Either.isRight(whole)) {
    const decoded = Schema.decodeUnknownEither(WholeScript)(whole.right)
    if (Either.isLeft(decoded)) return fail(`is not a valid script:\n${explain(decoded.left)}\n`)
    const script = decoded.right
    return Either.right(Array.isArray(script) ? script : "turns" in script ? script.turns : [script])
  }
  const turns: Array<ScriptTurn> = []
  const lines = text.split(/\r?\n/)
  for (const [index, line] of lines.entries()) {
    if (line.trim() === "") continue
    const json = parseJson(line)
    if (Either.isLeft(json)) return fail(`line ${index + 1} is not valid JSON (each line of a JSON Lines script is one turn).`)
    const turn = Schema.decodeUnknownEither(ScriptTurn)(json.right)
    if (Either.isLeft(turn)) return fail(`line ${index + 1} is not a valid turn:\n${explain(turn.left)}\n`)
    turns.push(turn.right)
  }
  if (turns.length === 0) return fail("holds no turns.")
  return Either.right(turns)
}

/** Reads and parses a script file. */
export const loadScript = (path: string): Effect.Effect<ReadonlyArray<ScriptTurn>, ScriptFileError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (error) =>
      new ScriptFileError({
        source: path,
        message: `Could not read the script ${path} (${error instanceof Error ? error.message : String(error)}). Check the path.`
      })
  }).pipe(Effect.flatMap((text) => parseScript(text, path)))

const turnEvents = (turn: ScriptTurn, turnIndex: number): ReadonlyArray<LlmEvent> => {
  const events: Array<LlmEvent> = turn.content.map((item, itemIndex) =>
    item.type === "text"
      ? LlmEvent.TextDelta(item.text)
      : LlmEvent.ToolCall(item.id ?? `call_${turnIndex + 1}_${itemIndex + 1}`, item.name, item.input)
  )
  const hasToolCalls = turn.content.some((item) => item.type === "tool_call")
  events.push(LlmEvent.Usage(turn.usage?.input_tokens ?? 0, turn.usage?.output_tokens ?? 0))
  events.push(LlmEvent.Stop(turn.stop ?? (hasToolCalls ? "tool_use" : "end_turn")))
  return events
}

/** A provider replaying `turns` in order; `source` names the script in errors. */
export const makeScriptedProvider = (
  turns: ReadonlyArray<ScriptTurn>,
  source: string
): Effect.Effect<LlmProviderApi> =>
  Effect.map(Ref.make(0), (next) => ({
    name: "scripted",
    stream: () =>
      Stream.unwrap(
        Ref.getAndUpdate(next, (n) => n + 1).pipe(
          Effect.flatMap((index) => {
            const turn = turns[index]
            return turn === undefined
              ? Effect.fail(
                  new LlmError({
                    kind: "script_exhausted",
                    provider: "scripted",
                    message: `The script ${source} has ${turns.length} turn${turns.length === 1 ? "" : "s"}, all played; the model was asked for turn ${index + 1}. Add turns to the script or end the conversation sooner.`
                  })
                )
              : Effect.succeed(Stream.fromIterable(turnEvents(turn, index)))
          })
        )
      )
  }))

/** The LlmProvider replaying the script file at `path`. */
export const scriptedProviderLayer = (path: string): Layer.Layer<LlmProvider, ScriptFileError> =>
  Layer.effect(LlmProvider, Effect.flatMap(loadScript(path), (turns) => makeScriptedProvider(turns, path)))
