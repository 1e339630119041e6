import { Effect, Either } from "effect"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { loadSecuritySettings } from "./securityConfig.js"

/** A home and a workspace, each with the given config.toml (null: none). */
const setup = (user: string | null, workspace: string | null = null) => {
  const root = mkdtempSync(join(tmpdir(), "astrid-security-config-"))
  const home = join(root, "home")
  const ws = join(root, "ws")
  mkdirSync(home)
  mkdirSync(join(ws, ".astrid"), { recursive: true })
  if (user !== null) writeFileSync(join(home, "config.toml"), user)
  if (workspace !== null) writeFileSync(join(ws, ".astrid", "config.toml"), workspace)
  return { home, ws }
}

const load = (user: string | null, workspace: string | null = null) => {
  const { home, ws } = setup(user, workspace)
  return Effect.runPromise(Effect.either(loadSecuritySettings(home, ws)))
}

describe("[security] pass_env", () => {
  it("is empty by default", async () => {
    const r = await load(null)
    expect(Either.isRight(r) && r.right.passEnv).toEqual([])
  })

  it("reads names and prefixes ending in *", async () => {
    const r = await load('[security]\npass_env = ["GITHUB_TOKEN", "GH_*"]\n')
    expect(Either.isRight(r) && r.right.passEnv).toEqual(["GITHUB_TOKEN", "GH_*"])
  })

  it("refuses anything but a list of variable names, naming the file", async () => {
    for (const bad of ['pass_env = "GITHUB_TOKEN"', 'pass_env = ["*"]', 'pass_env = ["A B"]', "pass_env = [1]", 'pass_env = ["X*Y"]']) {
      const r = await load(`[security]\n${bad}\n`)
      expect(Either.isLeft(r) && r.left.message).toMatch(/config\.toml has invalid settings/)
    }
  })

  it("a workspace can drop entries of the user's, never add its own", async () => {
    const r = await load('[security]\npass_env = ["GITHUB_TOKEN", "NPM_TOKEN"]\n', '[security]\npass_env = ["NPM_TOKEN", "AWS_*"]\n')
    expect(Either.isRight(r) && r.right.passEnv).toEqual(["NPM_TOKEN"])
  })
})
