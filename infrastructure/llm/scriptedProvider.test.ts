import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Chunk, Effect, Either, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LlmProvider, type LlmRequest } from "../../application/ports/llmProvider.js"
import { loadScript, parseScript, scriptedProviderLayer } from "./scriptedProvider.js"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

const request: LlmRequest = { model: "scripted", messages: [{ role: "user", content: "go" }], tools: [], maxTokens: 100 }

let dir = ""
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "astrid-scripted-"))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const write = async (name: string, text: string) => {
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

/** Runs `calls` stream calls against the provider loaded from `path`, collecting each outcome. */
const play = (path: string, calls: number) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const provider = yield* LlmProvider
      const outcomes = []
      for (let i = 0; i < calls; i++)
        outcomes.push(yield* Stream.runCollect(provider.stream(request)).pipe(Effect.map(Chunk.toReadonlyArray), Effect.either))
      return outcomes
    }).pipe(Effect.provide(scriptedProviderLayer(path)), Effect.either)
  )

const script = {
  turns: [
    {
      content: [
        { type: "text", text: "Let me look." },
        { type: "tool_call", id: "t1", name: "read_file", input: { path: "README.md" } },
        { type: "tool_call", name: "glob", input: { pattern: "*.ts" } }
      ],
      usage: { input_tokens: 10, output_tokens: 5 }
    },
    { content: [{ type: "text", text: "Done." }] }
  ]
}

describe("scriptedProvider", () => {
  it("replays a JSON script one turn per call, in order", async () => {
    const path = await write("script.json", JSON.stringify(script))
    const result = await play(path, 2)
    expect(result).toEqual(
      Either.right([
        Either.right([
          { _tag: "TextDelta", text: "Let me look." },
          { _tag: "ToolCall", id: "t1", name: "read_file", input: { path: "README.md" } },
          { _tag: "ToolCall", id: "call_1_3", name: "glob", input: { pattern: "*.ts" } },
          { _tag: "Usage", inputTokens: 10, outputTokens: 5 },
          { _tag: "Stop", reason: "tool_use" }
        ]),
        Either.right([
          { _tag: "TextDelta", text: "Done." },
          { _tag: "Usage", inputTokens: 0, outputTokens: 0 },
          { _tag: "Stop", reason: "end_turn" }
        ])
      ])
    )
  })

  it("replays a JSON Lines script and accepts a bare array of turns", async () => {
    const lines = script.turns.map((turn) => JSON.stringify(turn)).join("\n\n") + "\n"
    const fromLines = await play(await write("script.jsonl", lines), 2)
    const fromArray = await play(await write("array.json", JSON.stringify(script.turns)), 2)
    expect(fromLines).toEqual(fromArray)
    expect(Either.isRight(fromLines)).toBe(true)
  })

  it("fails with script_exhausted when asked for more turns than the script holds", async () => {
    const path = await write("short.json", JSON.stringify([{ content: [{ type: "text", text: "only" }], stop: "end_turn" }]))
    const result = await play(path, 2)
    const outcomes = Either.getOrThrow(result)
    expect(Either.isRight(outcomes[0] ?? Either.left(null))).toBe(true)
    const second = outcomes[1]
    expect(second).toMatchObject(Either.left({ _tag: "LlmError", kind: "script_exhausted" }))
    const message = second !== undefined && Either.isLeft(second) ? second.left.message : ""
    expect(message).toContain("short.json")
    expect(message).toContain("1 turn")
    expect(message).toContain("turn 2")
  })

  it("rejects a line that is not JSON, naming the line", async () => {
    const path = await write("broken.jsonl", `${JSON.stringify(script.turns[0])}\n{"content": [\n`)
    const result = await Effect.runPromise(Effect.either(loadScript(path)))
    expect(result).toMatchObject(Either.left({ _tag: "ScriptFileError" }))
    expect(Either.isLeft(result) ? result.left.message : "").toContain("line 2 is not valid JSON")
  })

  it("rejects a turn of the wrong shape, saying what is wrong", async () => {
    const path = await write("shape.json", JSON.stringify([{ content: [{ type: "tool_call", input: {} }] }]))
    const result = await play(path, 1)
    expect(result).toMatchObject(Either.left({ _tag: "ScriptFileError" }))
    const message = Either.isLeft(result) ? result.left.message : ""
    expect(message).toContain("is not a valid script")
    expect(message).toContain("name")
    expect(message).toContain("docs/scripted-provider.md")
  })

  it("rejects an unknown stop reason and an empty script", async () => {
    const badStop = await write("stop.json", JSON.stringify([{ content: [], stop: "halt" }]))
    expect(await play(badStop, 1)).toMatchObject(Either.left({ _tag: "ScriptFileError" }))
    const empty = await write("empty.jsonl", "\n\n")
    const result = await play(empty, 1)
    expect(Either.isLeft(result) ? result.left.message : "").toContain("holds no turns")
  })

  it("says when the file cannot be read", async () => {
    const result = await play(join(dir, "missing.json"), 1)
    expect(Either.isLeft(result) ? result.left.message : "").toContain("Could not read the script")
  })

  it("parses both examples in docs/scripted-provider.md to the same turns", async () => {
    const doc = await readFile(fileURLToPath(new URL("../../docs/scripted-provider.md", import.meta.url)), "utf8")
    const block = (lang: string) => doc.split("```" + lang + "\n")[1]?.split("```")[0] ?? ""
    const fromLines = parseScript(block("jsonl"), "doc.jsonl")
    const fromJson = parseScript(block("json"), "doc.json")
    expect(Either.isRight(fromLines)).toBe(true)
    expect(Either.getOrThrow(fromLines)).toHaveLength(2)
    expect(fromJson).toEqual(fromLines)
  })
})
