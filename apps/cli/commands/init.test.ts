/**
 * `astrid init` in-process with a temporary ASTRID_HOME and workspace: what it creates, that a second
 * run changes nothing, --force with backups, and that the templates load with the real config loaders,
 * both as written (all commented out: the defaults) and with every setting line uncommented.
 */
import { Effect } from "effect"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parse as parseToml } from "smol-toml"
import { describe, expect, it } from "vitest"
import { useCliCapture } from "../../../test/cliCapture.js"
import { loadConfig } from "../../../infrastructure/config/astridConfig.js"
import { loadSecuritySettings } from "../../../infrastructure/config/securityConfig.js"
import { DEFAULT_POLICY } from "../../../domain/security/policy.js"
import { loadPublicKey } from "../../../infrastructure/keys/keyFiles.js"
import { tempHome } from "../../../test/seedStore.js"
import { init } from "./init.js"
import { USER_CONFIG, WORKSPACE_CONFIG, WORKSPACE_GITIGNORE } from "./initTemplates.js"
import { loadLlmSettings } from "../../../infrastructure/config/llmConfig.js"

const capture = useCliCapture(["ASTRID_HOME", "NO_COLOR"])
const dirs = capture.homes

/** A fresh root with a home that does not exist yet and an empty workspace. */
const setup = () => {
  const root = tempHome()
  dirs.push(root)
  const home = join(root, "home")
  const workspace = join(root, "ws")
  mkdirSync(workspace)
  process.env["ASTRID_HOME"] = home
  process.env["NO_COLOR"] = "1"
  return { root, home, workspace }
}

interface Item {
  readonly item: string
  readonly status: string
  readonly path: string
  readonly detail: string
}
interface Report {
  readonly changed: boolean
  readonly ok: boolean
  readonly items: ReadonlyArray<Item>
}

const runJson = async (args: { workspace?: string; force?: boolean }): Promise<Report> => {
  capture.reset()
  await Effect.runPromise(init({ workspace: args.workspace, force: args.force ?? false, json: true }))
  const parsed: Report = JSON.parse(capture.output())
  return parsed
}
const statuses = (r: Report): Record<string, string> => Object.fromEntries(r.items.map((i) => [i.item, i.status]))

/** Every commented setting line ("# key = ..." or "# [section]") uncommented; prose ("##") stays a comment. */
const uncommented = (template: string): string =>
  template
    .split("\n")
    .map((line) => (/^# (\[[^\]]+\]|[a-z_]+ = )/.test(line) ? line.slice(2) : line))
    .join("\n")

describe("astrid init", () => {
  it("creates the home, its commented config, the runtime key and the workspace's files, and says so", async () => {
    const { home, workspace } = setup()
    const report = await runJson({ workspace })
    expect(report.ok).toBe(true)
    expect(report.changed).toBe(true)
    expect(statuses(report)).toEqual({
      ASTRID_HOME: "created",
      "user config": "created",
      "runtime key": "created",
      "workspace config": "created",
      "workspace .gitignore": "created"
    })
    expect(readFileSync(join(home, "config.toml"), "utf8")).toBe(USER_CONFIG)
    expect(readFileSync(join(workspace, ".astrid", "config.toml"), "utf8")).toBe(WORKSPACE_CONFIG)
    expect(readFileSync(join(workspace, ".astrid", ".gitignore"), "utf8")).toBe(WORKSPACE_GITIGNORE)
    expect(statSync(home).mode & 0o777).toBe(0o700)
    const key = await Effect.runPromise(loadPublicKey(home))
    expect(report.items.find((i) => i.item === "runtime key")?.detail).toContain(key.keyId)
    expect(existsSync(join(home, "astrid.db"))).toBe(true)
  })

  it("is idempotent: a second run changes nothing and says so; existing edits are kept", async () => {
    const { home, workspace } = setup()
    await runJson({ workspace })
    const key = readFileSync(join(home, "keys", "runtime.key"), "utf8")
    const edited = `${WORKSPACE_CONFIG}\n[security]\nworkspace_mode = "safe"\n`
    writeFileSync(join(workspace, ".astrid", "config.toml"), edited)
    const again = await runJson({ workspace })
    expect(again.changed).toBe(false)
    expect(new Set(Object.values(statuses(again)))).toEqual(new Set(["exists"]))
    expect(again.items.find((i) => i.item === "workspace config")?.detail).toContain("--force rewrites it")
    expect(readFileSync(join(workspace, ".astrid", "config.toml"), "utf8")).toBe(edited)
    expect(readFileSync(join(home, "keys", "runtime.key"), "utf8")).toBe(key)

    capture.reset()
    await Effect.runPromise(init({ workspace, force: false, json: false }))
    expect(capture.output()).toMatch(/^STATUS\s+WHAT\s+PATH\s+DETAIL$/m)
    expect(capture.output()).toContain(`already initialized: nothing changed in ${workspace} or ${home}`)
  })

  it("--force rewrites the workspace's edited files from the templates, keeping .bak copies, never the user's files", async () => {
    const { home, workspace } = setup()
    await runJson({ workspace })
    const edited = `[security]\nworkspace_mode = "safe"\n`
    writeFileSync(join(workspace, ".astrid", "config.toml"), edited)
    writeFileSync(join(home, "config.toml"), "[audit]\ncheckpoint_every = 5\n")
    const forced = await runJson({ workspace, force: true })
    expect(statuses(forced)).toMatchObject({ "workspace config": "replaced", "workspace .gitignore": "exists", "user config": "exists", "runtime key": "exists" })
    expect(readFileSync(join(workspace, ".astrid", "config.toml"), "utf8")).toBe(WORKSPACE_CONFIG)
    expect(readFileSync(join(workspace, ".astrid", "config.toml.bak"), "utf8")).toBe(edited)
    expect(readFileSync(join(home, "config.toml"), "utf8")).toBe("[audit]\ncheckpoint_every = 5\n")
    // Forcing again when the file already is the template changes nothing.
    expect((await runJson({ workspace, force: true })).changed).toBe(false)
  })

  it("reports a config that does not load as a problem (exit 1), and refuses a workspace that is not a folder (exit 2)", async () => {
    const { root, workspace } = setup()
    await runJson({ workspace })
    writeFileSync(join(workspace, ".astrid", "config.toml"), `[security]\nworkspace_mode = "yolo"\n`)
    const report = await runJson({ workspace })
    expect(report.ok).toBe(false)
    expect(process.exitCode).toBe(1)
    const item = report.items.find((i) => i.item === "workspace config")
    expect(item?.status).toBe("problem")
    expect(item?.detail).toMatch(/security\.workspace_mode: expected one of .*"yolo".*; fix it or run 'astrid init --force'$/)

    const missing = join(root, "nope")
    const exit = await Effect.runPromise(Effect.flip(init({ workspace: missing, force: false, json: false })))
    expect(exit.exitCode).toBe(2)
    expect(exit.message).toBe(`the workspace ${missing} is not an existing folder; create it first or pass --workspace DIR`)
  })

  it("the templates load with the real loaders as written (defaults) and with every setting uncommented", async () => {
    const { home, workspace } = setup()
    await runJson({ workspace })
    const defaults = await Effect.runPromise(loadSecuritySettings(home, workspace))
    const bare = await Effect.runPromise(loadSecuritySettings(join(home, "empty"), null))
    // Each home protects itself; everything else is the built-in default.
    expect(defaults.settings.policy.protectedState.roots).toContain(home)
    const unprotected = (s: typeof defaults) => ({ ...s, settings: { ...s.settings, policy: { ...s.settings.policy, protectedState: null } } })
    expect(unprotected(defaults)).toEqual(unprotected(bare))
    const cfg = await Effect.runPromise(loadConfig(process.env))
    expect(cfg.audit.checkpointEvery).toBe(1000)

    writeFileSync(join(home, "config.toml"), uncommented(USER_CONFIG))
    writeFileSync(join(workspace, ".astrid", "config.toml"), uncommented(WORKSPACE_CONFIG))
    const user = await Effect.runPromise(loadConfig(process.env))
    expect(user.eventStore).toMatchObject({ url: "esdb://127.0.0.1:2113?tls=false", synchronous: "full", busyTimeoutMs: 5000 })
    const tightened = await Effect.runPromise(loadSecuritySettings(home, workspace))
    expect(tightened.settings).toMatchObject({
      workspaceMode: "safe",
      escapePolicy: "deny",
      approvalTimeoutMs: 120_000,
      allowAlwaysTtlMs: 600_000,
      budget: { perActionMicros: 500_000, perSessionMicros: 5_000_000, perWorkspaceMicros: 50_000_000, warnAtPercent: 70 }
    })
    expect(tightened.settings.policy.blockedCommands).toEqual(expect.arrayContaining(["git push --force", "sudo"]))
    expect(tightened.settings.policy.deniedPaths).toEqual(expect.arrayContaining(["/home/me/.ssh/**", "/etc/**"]))
    expect(tightened.settings.policy.maxArgumentBytes).toBe(262_144)
    expect(tightened.settings.policy.maxArgumentBytes).toBeLessThan(DEFAULT_POLICY.maxArgumentBytes)

    const llm = parseToml(uncommented(USER_CONFIG))["llm"]
    expect(llm).toEqual({
      provider: "anthropic",
      model: "claude-sonnet-4-6",
      base_url: "http://127.0.0.1:8000/v1",
      api_key_env: "ANTHROPIC_API_KEY",
      max_steps: 20,
      max_tokens: 8192,
      context_tokens: 200_000,
      prices: { "claude-sonnet-4-6": { input_per_million: 3_000_000, output_per_million: 15_000_000 } }
    })
    // And the real [llm] loader takes every key of it.
    const dir = mkdtempSync(join(tmpdir(), "astrid-init-llm-"))
    dirs.push(dir)
    writeFileSync(join(dir, "config.toml"), uncommented(USER_CONFIG))
    const loaded = await Effect.runPromise(loadLlmSettings(join(dir, "config.toml"), {}))
    expect(loaded.llm).toMatchObject({ provider: "anthropic", model: "claude-sonnet-4-6", baseUrl: "http://127.0.0.1:8000/v1", maxSteps: 20, maxTokens: 8192, contextTokens: 200_000 })
  })
})
