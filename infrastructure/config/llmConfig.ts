/**
 * Model settings from the user's `$ASTRID_HOME/config.toml` (a workspace cannot change them: which
 * provider receives the workspace's files is the user's choice), overridden by the environment:
 *
 *   [llm]
 *   provider = "anthropic"        # anthropic | openai | zai | ollama | scripted   (ASTRID_LLM_PROVIDER)
 *   model = "claude-sonnet-4-6"   # (ASTRID_MODEL)
 *   base_url = "..."              # any OpenAI-compatible server: vLLM, llama.cpp, LM Studio (ASTRID_LLM_BASE_URL)
 *   api_key_env = "ANTHROPIC_API_KEY"   # the variable holding the key
 *   script = "turns.jsonl"        # the scripted provider's file (ASTRID_LLM_SCRIPT)
 *   max_steps = 20                # model calls per turn
 *   max_tokens = 8192             # output tokens per model call
 *   context_tokens = 200000       # the model's context window; older exchanges beyond it are not sent
 *   system_prompt = "..."
 *
 *   [llm.prices."claude-sonnet-4-5"]   # micro-dollars per million tokens
 *   input_per_million = 3000000
 *   output_per_million = 15000000
 *
 *   [agents]                      # sub-agents started by the `task` tool
 *   concurrency = 3
 *   timeout_seconds = 300
 *   max_depth = 1
 *
 * The default price table covers a few common models at the providers' published list prices as
 * known when it was written (2026); prices change, so a configured price replaces the default one for
 * that model, and a model missing from the table is recorded at cost 0 with a warning.
 */
import { Effect, Schema } from "effect"
import type { PriceTable } from "../../domain/modelCosts.js"
import { ConfigError, readTomlFile } from "./astridConfig.js"

export const PROVIDERS = ["anthropic", "openai", "zai", "ollama", "scripted"] as const
export type ProviderKind = (typeof PROVIDERS)[number]

const Price = Schema.Struct({ input_per_million: Schema.NonNegativeInt, output_per_million: Schema.NonNegativeInt })

const FileLlm = Schema.Struct({
  llm: Schema.optional(
    Schema.Struct({
      provider: Schema.optional(Schema.Literal(...PROVIDERS)),
      model: Schema.optional(Schema.NonEmptyString),
      base_url: Schema.optional(Schema.NonEmptyString),
      api_key_env: Schema.optional(Schema.NonEmptyString),
      script: Schema.optional(Schema.NonEmptyString),
      max_steps: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000))),
      max_tokens: Schema.optional(Schema.Int.pipe(Schema.between(1, 1_000_000))),
      context_tokens: Schema.optional(Schema.Int.pipe(Schema.between(1_000, 10_000_000))),
      system_prompt: Schema.optional(Schema.String),
      prices: Schema.optional(Schema.Record({ key: Schema.String, value: Price }))
    })
  ),
  agents: Schema.optional(
    Schema.Struct({
      concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
      timeout_seconds: Schema.optional(Schema.Int.pipe(Schema.between(1, 86_400))),
      max_depth: Schema.optional(Schema.Int.pipe(Schema.between(0, 8)))
    })
  )
})

export interface LlmSettings {
  readonly provider: ProviderKind
  readonly model: string
  /** null: the provider's own endpoint. */
  readonly baseUrl: string | null
  /** The environment variable holding the key (null for providers that need none). */
  readonly apiKeyEnv: string | null
  /** The scripted provider's file, resolved against the current directory (null when unset). */
  readonly script: string | null
  readonly maxSteps: number
  readonly maxTokens: number
  /** The context window the conversation is fitted into; null sends every message. */
  readonly contextTokens: number | null
  readonly systemPrompt: string | null
  readonly prices: PriceTable
}

export interface AgentSettings {
  readonly concurrency: number
  readonly timeoutSeconds: number
  readonly maxDepth: number
}

interface ProviderDefaults {
  readonly model: string
  readonly baseUrl: string | null
  readonly apiKeyEnv: string | null
  readonly contextTokens: number | null
}

const DEFAULTS: Record<ProviderKind, ProviderDefaults> = {
  anthropic: { model: "claude-sonnet-4-6", baseUrl: null, apiKeyEnv: "ANTHROPIC_API_KEY", contextTokens: 200_000 },
  openai: { model: "gpt-4.1", baseUrl: null, apiKeyEnv: "OPENAI_API_KEY", contextTokens: 128_000 },
  zai: { model: "glm-4.6", baseUrl: "https://api.z.ai/api/paas/v4", apiKeyEnv: "ZAI_API_KEY", contextTokens: 128_000 },
  ollama: { model: "llama3.1", baseUrl: "http://127.0.0.1:11434/v1", apiKeyEnv: null, contextTokens: 8_192 },
  scripted: { model: "scripted", baseUrl: null, apiKeyEnv: null, contextTokens: null }
}

const dollars = (input: number, output: number) => ({ inputPerMillion: Math.round(input * 1e6), outputPerMillion: Math.round(output * 1e6) })

/** List prices in micro-dollars per million tokens. */
export const DEFAULT_PRICES: PriceTable = {
  "claude-opus-4-6": dollars(5, 25),
  "claude-opus-4-5": dollars(5, 25),
  "claude-sonnet-4-6": dollars(3, 15),
  "claude-sonnet-4-5": dollars(3, 15),
  "claude-haiku-4-5": dollars(1, 5),
  "gpt-4.1": dollars(2, 8),
  "gpt-4.1-mini": dollars(0.4, 1.6),
  "gpt-4o": dollars(2.5, 10),
  "gpt-4o-mini": dollars(0.15, 0.6),
  "glm-4.6": dollars(0.6, 2.2)
}

export const DEFAULT_AGENT_SETTINGS: AgentSettings = { concurrency: 3, timeoutSeconds: 300, maxDepth: 1 }

const pick = (env: NodeJS.ProcessEnv, name: string): string | undefined => {
  const v = env[name]
  return v === undefined || v.trim() === "" ? undefined : v.trim()
}

const isProvider = (s: string): s is ProviderKind => (PROVIDERS as ReadonlyArray<string>).includes(s)

export const loadLlmSettings = (
  configPath: string,
  env: NodeJS.ProcessEnv
): Effect.Effect<{ readonly llm: LlmSettings; readonly agents: AgentSettings }, ConfigError> =>
  Effect.gen(function* () {
    const file = yield* readTomlFile(configPath, FileLlm)
    const fromEnv = pick(env, "ASTRID_LLM_PROVIDER")
    if (fromEnv !== undefined && !isProvider(fromEnv)) {
      return yield* Effect.fail(new ConfigError({ message: `ASTRID_LLM_PROVIDER='${fromEnv}' is not a provider; use one of ${PROVIDERS.join(", ")}` }))
    }
    const provider: ProviderKind = fromEnv ?? file.llm?.provider ?? "anthropic"
    const defaults = DEFAULTS[provider]
    // A model or endpoint configured for another provider does not carry over when the environment switches provider.
    const sameProvider = fromEnv === undefined || fromEnv === (file.llm?.provider ?? "anthropic")
    const prices: Record<string, PriceTable[string]> = { ...DEFAULT_PRICES }
    for (const [model, p] of Object.entries(file.llm?.prices ?? {})) prices[model] = { inputPerMillion: p.input_per_million, outputPerMillion: p.output_per_million }
    const llm: LlmSettings = {
      provider,
      model: pick(env, "ASTRID_MODEL") ?? (sameProvider ? file.llm?.model : undefined) ?? defaults.model,
      baseUrl: pick(env, "ASTRID_LLM_BASE_URL") ?? (sameProvider ? file.llm?.base_url : undefined) ?? defaults.baseUrl,
      apiKeyEnv: (sameProvider ? file.llm?.api_key_env : undefined) ?? defaults.apiKeyEnv,
      script: pick(env, "ASTRID_LLM_SCRIPT") ?? file.llm?.script ?? null,
      maxSteps: file.llm?.max_steps ?? 20,
      maxTokens: file.llm?.max_tokens ?? 8192,
      contextTokens: (sameProvider ? file.llm?.context_tokens : undefined) ?? defaults.contextTokens,
      systemPrompt: file.llm?.system_prompt ?? null,
      prices
    }
    const agents: AgentSettings = {
      concurrency: file.agents?.concurrency ?? DEFAULT_AGENT_SETTINGS.concurrency,
      timeoutSeconds: file.agents?.timeout_seconds ?? DEFAULT_AGENT_SETTINGS.timeoutSeconds,
      maxDepth: file.agents?.max_depth ?? DEFAULT_AGENT_SETTINGS.maxDepth
    }
    return { llm, agents }
  })
