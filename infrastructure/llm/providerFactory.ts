/**
 * The LlmProvider the settings name. The SDK behind a provider is imported only when it is chosen, so a
 * scripted run never loads the Anthropic or OpenAI client. A missing key is refused here, before a
 * session starts, with the variable and the config key that would fix it.
 */
import { Data, Effect } from "effect"
import type { LlmProviderApi } from "../../application/ports/llmProvider.js"
import type { LlmSettings } from "../config/llmConfig.js"

export class ProviderSetupError extends Data.TaggedError("ProviderSetupError")<{ readonly message: string }> {}

export const makeProvider = (
  settings: LlmSettings,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<LlmProviderApi, ProviderSetupError> =>
  Effect.gen(function* () {
    const keyName = settings.apiKeyEnv
    const key = keyName === null ? undefined : env[keyName]
    if (keyName !== null && (key === undefined || key.trim() === "") && settings.provider !== "ollama") {
      return yield* Effect.fail(
        new ProviderSetupError({
          message: `no API key for the ${settings.provider} provider: set ${keyName} (or name another variable with [llm] api_key_env in the config); to run without a key, use --script FILE or provider = "ollama"`
        })
      )
    }
    switch (settings.provider) {
      case "scripted": {
        if (settings.script === null) {
          return yield* Effect.fail(
            new ProviderSetupError({ message: "the scripted provider needs a script: pass --script FILE, or set [llm] script or ASTRID_LLM_SCRIPT (format: docs/scripted-provider.md)" })
          )
        }
        const m = yield* Effect.promise(() => import("./scriptedProvider.js"))
        const path = settings.script
        const turns = yield* m.loadScript(path).pipe(Effect.mapError((e) => new ProviderSetupError({ message: e.message.split("\n").filter((l) => l.trim() !== "").join(" ") })))
        return yield* m.makeScriptedProvider(turns, path)
      }
      case "anthropic": {
        const m = yield* Effect.promise(() => import("./anthropicProvider.js"))
        return m.makeAnthropicProvider({ apiKey: key, keyName: keyName ?? undefined, baseURL: settings.baseUrl ?? undefined, env })
      }
      case "openai":
      case "zai":
      case "ollama": {
        const m = yield* Effect.promise(() => import("./openaiProvider.js"))
        return m.makeOpenAiProvider({
          name: settings.provider,
          apiKey: key,
          keyName: keyName ?? undefined,
          keyOptional: settings.provider === "ollama",
          baseURL: settings.baseUrl ?? undefined,
          env
        })
      }
    }
  })
