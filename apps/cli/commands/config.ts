/** `astrid config show|validate|paths`: what configuration is in force, and whether it works. */
import { Effect, Either } from "effect"
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"
import { loadLlmSettings } from "../../../infrastructure/config/llmConfig.js"
import { loadSecuritySettings } from "../../../infrastructure/config/securityConfig.js"
import { loadPublicKey, secretKeyPath } from "../../../infrastructure/keys/keyFiles.js"
import { asCli } from "../cliError.js"
import { green, printJson, printLines, red } from "../output.js"
import { config, openStore } from "../runtime.js"

const redact = (url: string): string => url.replace(/^([a-z+]+:\/\/[^:@/]+):[^@/]*@/i, "$1:***@")

/** The workspace is the current directory unless --workspace says otherwise. */
const workspaceOf = (given: string | undefined): string => resolve(given ?? process.cwd())

export const paths = (args: { readonly json: boolean; readonly workspace?: string | undefined }) =>
  Effect.gen(function* () {
    const cfg = yield* config
    const workspace = workspaceOf(args.workspace)
    const result = {
      home: cfg.home,
      userConfig: { path: cfg.configPath, exists: existsSync(cfg.configPath) },
      workspaceConfig: { path: join(workspace, ".astrid", "config.toml"), exists: existsSync(join(workspace, ".astrid", "config.toml")) },
      eventStore: cfg.eventStore.url === null ? { path: cfg.eventStore.path, exists: existsSync(cfg.eventStore.path) } : { url: redact(cfg.eventStore.url) },
      projections: join(cfg.home, "projections.db"),
      runtimeKey: { path: secretKeyPath(cfg.home), exists: existsSync(secretKeyPath(cfg.home)) }
    }
    if (args.json) return yield* printJson(result)
    const mark = (exists: boolean) => (exists ? "" : " (not there yet)")
    yield* printLines(
      `home              ${result.home}`,
      `user config       ${result.userConfig.path}${mark(result.userConfig.exists)}`,
      `workspace config  ${result.workspaceConfig.path}${mark(result.workspaceConfig.exists)}`,
      `event store       ${"url" in result.eventStore ? result.eventStore.url : `${result.eventStore.path}${mark(result.eventStore.exists)}`}`,
      `projections       ${result.projections}`,
      `runtime key       ${result.runtimeKey.path}${mark(result.runtimeKey.exists)}`
    )
  })

export const show = (args: { readonly json: boolean; readonly workspace?: string | undefined }) =>
  Effect.gen(function* () {
    const cfg = yield* config
    const workspace = workspaceOf(args.workspace)
    const security = yield* asCli(loadSecuritySettings(cfg.home, workspace))
    const { llm, agents } = yield* asCli(loadLlmSettings(cfg.configPath, process.env))
    const keySet = llm.apiKeyEnv === null ? null : process.env[llm.apiKeyEnv] !== undefined && process.env[llm.apiKeyEnv] !== ""
    const result = {
      home: cfg.home,
      eventStore: { ...cfg.eventStore, url: cfg.eventStore.url === null ? null : redact(cfg.eventStore.url) },
      audit: cfg.audit,
      workspace,
      security: security.settings,
      tokens: { trustedIssuers: security.trustedIssuerKeys.length === 0 ? "local runtime keys" : security.trustedIssuerKeys, clockSkewMs: security.clockSkewMs },
      // The key itself is never printed: only which variable holds it and whether it is set.
      llm: { ...llm, baseUrl: llm.baseUrl === null ? null : redact(llm.baseUrl), apiKeySet: keySet },
      agents
    }
    if (args.json) return yield* printJson(result)
    yield* printLines(
      `# effective configuration (user config tightened by ${join(workspace, ".astrid", "config.toml")})`,
      JSON.stringify(result, null, 2)
    )
  })

interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

/** Parses every config file and reaches the event store; exit 1 when any check fails. */
export const validate = (args: { readonly json: boolean; readonly workspace?: string | undefined }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const checks: Array<Check> = []
      const cfg = yield* Effect.either(config)
      if (Either.isLeft(cfg)) {
        checks.push({ name: "user config", ok: false, detail: cfg.left.message })
      } else {
        const c = cfg.right
        checks.push({ name: "user config", ok: true, detail: existsSync(c.configPath) ? c.configPath : `${c.configPath} (absent: built-in defaults)` })
        const workspace = workspaceOf(args.workspace)
        const security = yield* Effect.either(loadSecuritySettings(c.home, workspace))
        checks.push(
          Either.isLeft(security)
            ? { name: "security settings", ok: false, detail: security.left.message }
            : { name: "security settings", ok: true, detail: `mode ${security.right.settings.workspaceMode}, escape ${security.right.settings.escapePolicy}, for ${workspace}` }
        )
        const llm = yield* Effect.either(loadLlmSettings(c.configPath, process.env))
        if (Either.isLeft(llm)) {
          checks.push({ name: "model settings", ok: false, detail: llm.left.message })
        } else {
          const l = llm.right.llm
          const keyName = l.apiKeyEnv
          const missingKey = keyName !== null && l.provider !== "ollama" && (process.env[keyName] ?? "") === ""
          const missingScript = l.provider === "scripted" && l.script === null
          checks.push({
            name: "model settings",
            // A key may be set only where chat runs; its absence is reported, not failed.
            ok: !missingScript,
            detail: missingKey
              ? `${l.provider} ${l.model}; note: ${keyName} is not set here, and 'astrid chat' needs it (or name another variable with [llm] api_key_env)`
              : missingScript
                ? "the scripted provider has no script: set [llm] script or ASTRID_LLM_SCRIPT"
                : `${l.provider} ${l.model}${l.baseUrl === null ? "" : ` at ${redact(l.baseUrl)}`}${Object.prototype.hasOwnProperty.call(l.prices, l.model) ? "" : " (no price for this model: its usage is recorded at cost 0)"}`
          })
        }
        if (c.eventStore.url === null && !existsSync(c.eventStore.path)) {
          checks.push({ name: "event store", ok: true, detail: `${c.eventStore.path} (not created yet; the first recorded event creates it)` })
        } else {
          const store = yield* Effect.either(openStore(c, "read"))
          if (Either.isLeft(store)) {
            checks.push({ name: "event store", ok: false, detail: store.left.message })
          } else {
            const stats = yield* Effect.either(store.right.stats)
            checks.push(
              Either.isLeft(stats)
                ? { name: "event store", ok: false, detail: stats.left.message }
                : { name: "event store", ok: true, detail: `${store.right.location} reachable, ${stats.right.events} events` }
            )
          }
        }
        const key = yield* Effect.either(loadPublicKey(c.home))
        checks.push(
          Either.isRight(key)
            ? { name: "runtime key", ok: true, detail: key.right.keyId }
            : key.left.kind === "missing"
              ? { name: "runtime key", ok: true, detail: "none yet ('astrid keys generate' creates it)" }
              : { name: "runtime key", ok: false, detail: key.left.message }
        )
      }
      const ok = checks.every((c) => c.ok)
      if (!ok) process.exitCode = 1
      if (args.json) return yield* printJson({ ok, checks })
      yield* printLines(...checks.map((c) => `${c.ok ? green("ok  ") : red("FAIL")} ${c.name.padEnd(18)} ${c.detail}`))
    })
  )
