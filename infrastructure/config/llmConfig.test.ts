import { Effect, Either } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { makeProvider } from "../llm/providerFactory.js"
import { DEFAULT_PRICES, loadLlmSettings } from "./llmConfig.js"

const configFile = (text: string | null) => {
  const dir = mkdtempSync(join(tmpdir(), "astrid-llm-config-"))
  const path = join(dir, "config.toml")
  if (text !== null) writeFileSync(path, text)
  return { dir, path }
}
const load = (text: string | null, env: NodeJS.ProcessEnv = {}) => Effect.runPromise(Effect.either(loadLlmSettings(configFile(text).path, env)))

describe("[llm] and [agents] settings", () => {
  it("defaults: Anthropic with its key variable, 20 steps, the default price table, 3 sub-agents", async () => {
    const r = await load(null)
    expect(Either.isRight(r) && r.right).toMatchObject({
      llm: { provider: "anthropic", model: "claude-sonnet-4-6", apiKeyEnv: "ANTHROPIC_API_KEY", baseUrl: null, maxSteps: 20, maxTokens: 8192, contextTokens: 200_000, prices: DEFAULT_PRICES },
      agents: { concurrency: 3, timeoutSeconds: 300, maxDepth: 1 }
    })
  })

  it("reads the file, adds configured prices to the defaults, and lets the environment override", async () => {
    const text = [
      "[llm]",
      'provider = "openai"',
      'model = "qwen2.5-coder"',
      'base_url = "http://127.0.0.1:8000/v1"',
      'api_key_env = "VLLM_KEY"',
      "max_steps = 7",
      "context_tokens = 32000",
      '[llm.prices."qwen2.5-coder"]',
      "input_per_million = 100000",
      "output_per_million = 200000",
      "[agents]",
      "concurrency = 5"
    ].join("\n")
    const r = await load(text)
    expect(Either.isRight(r) && r.right.llm).toMatchObject({ provider: "openai", model: "qwen2.5-coder", baseUrl: "http://127.0.0.1:8000/v1", apiKeyEnv: "VLLM_KEY", maxSteps: 7, contextTokens: 32_000 })
    expect(Either.isRight(r) && r.right.llm.prices["qwen2.5-coder"]).toEqual({ inputPerMillion: 100_000, outputPerMillion: 200_000 })
    expect(Either.isRight(r) && r.right.llm.prices["gpt-4.1"]).toEqual(DEFAULT_PRICES["gpt-4.1"])
    expect(Either.isRight(r) && r.right.agents.concurrency).toBe(5)
    const env = await load(text, { ASTRID_MODEL: "other", ASTRID_LLM_BASE_URL: "http://127.0.0.1:9/v1" })
    expect(Either.isRight(env) && env.right.llm).toMatchObject({ model: "other", baseUrl: "http://127.0.0.1:9/v1" })
  })

  it("switching provider from the environment does not carry the file's model, endpoint or key variable over", async () => {
    const r = await load('[llm]\nprovider = "openai"\nmodel = "gpt-4o"\napi_key_env = "MY_KEY"\n', { ASTRID_LLM_PROVIDER: "zai" })
    expect(Either.isRight(r) && r.right.llm).toMatchObject({ provider: "zai", model: "glm-4.6", baseUrl: "https://api.z.ai/api/paas/v4", apiKeyEnv: "ZAI_API_KEY" })
  })

  it("refuses unknown providers and out-of-range numbers with the setting's path", async () => {
    const bad = await load('[llm]\nprovider = "gpt"\n')
    expect(Either.isLeft(bad) && bad.left.message).toMatch(/llm\.provider: expected one of "anthropic"/)
    const steps = await load("[llm]\nmax_steps = 0\n")
    expect(Either.isLeft(steps) && steps.left.message).toMatch(/llm\.max_steps/)
    const env = await load(null, { ASTRID_LLM_PROVIDER: "gpt" })
    expect(Either.isLeft(env) && env.left.message).toMatch(/ASTRID_LLM_PROVIDER='gpt' is not a provider/)
  })
})

describe("makeProvider", () => {
  const settingsFor = async (env: NodeJS.ProcessEnv) => {
    const r = await Effect.runPromise(loadLlmSettings(configFile(null).path, env))
    return r.llm
  }

  it("refuses a missing key before anything starts, naming the variable and the config key", async () => {
    const r = await Effect.runPromise(Effect.either(makeProvider(await settingsFor({}), {})))
    expect(Either.isLeft(r) && r.left.message).toMatch(/set ANTHROPIC_API_KEY \(or name another variable with \[llm\] api_key_env/)
  })

  it("builds each provider: with a key, Ollama without one, scripted from its file", async () => {
    const anthropic = await Effect.runPromise(makeProvider(await settingsFor({}), { ANTHROPIC_API_KEY: "k" }))
    expect(anthropic.name).toBe("anthropic")
    const ollama = await Effect.runPromise(makeProvider(await settingsFor({ ASTRID_LLM_PROVIDER: "ollama" }), {}))
    expect(ollama.name).toBe("ollama")
    const noScript = await Effect.runPromise(Effect.either(makeProvider(await settingsFor({ ASTRID_LLM_PROVIDER: "scripted" }), {})))
    expect(Either.isLeft(noScript) && noScript.left.message).toMatch(/needs a script/)
    const { dir } = configFile(null)
    const script = join(dir, "turns.jsonl")
    writeFileSync(script, JSON.stringify({ content: [{ type: "text", text: "hi" }] }))
    const scripted = await Effect.runPromise(makeProvider(await settingsFor({ ASTRID_LLM_PROVIDER: "scripted", ASTRID_LLM_SCRIPT: script }), {}))
    expect(scripted.name).toBe("scripted")
  })
})
