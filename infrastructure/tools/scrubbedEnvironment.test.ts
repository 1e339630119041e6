import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { looksSecret, passEnvMatches, scrubEnvironment } from "./scrubbedEnvironment.js"

describe("scrubEnvironment", () => {
  it("drops credential-looking names whatever their case, and keeps ordinary ones", () => {
    for (const name of ["OPENAI_API_KEY", "anthropic_api_key", "GITHUB_TOKEN", "TOKEN", "npm_token", "DB_PASSWORD", "MYSQL_PWD_PASSWD", "APP_SECRET", "SECRET_KEY_BASE", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CREDENTIAL", "STRIPE_KEY", "NPM_CONFIG__AUTH", "AWS_SECRET_ACCESS_KEY", "GPG_PASSPHRASE", "MY_APIKEY", "SSH_AUTH_SOCK", "PGPASSWORD", "MYSQL_PWD", "DB_PASS", "BW_SESSION", "OP_SESSION_my", "npm_config_//registry.npmjs.org/:_authToken", "NPM_CONFIG__AUTHTOKEN", "KRB5CCNAME", "SLACK_WEBHOOK_URL", "DOCKER_AUTH_CONFIG", "GIT_ASKPASS", "SECRETKEY"]) {
      expect(looksSecret(name), name).toBe(true)
    }
    for (const name of ["PATH", "HOME", "LANG", "TERM", "PWD", "OLDPWD", "KEYMAP", "TOKENIZERS_PARALLELISM", "EDITOR", "NODE_ENV", "AUTHOR"]) {
      expect(looksSecret(name), name).toBe(false)
    }
  })

  it("pass_env entries are exact names or prefixes ending in *", () => {
    expect(passEnvMatches("GITHUB_TOKEN", "GITHUB_TOKEN")).toBe(true)
    expect(passEnvMatches("GITHUB_TOKEN", "GITHUB_TOKEN_2")).toBe(false)
    expect(passEnvMatches("GH_*", "GH_TOKEN")).toBe(true)
    expect(passEnvMatches("GH_*", "XGH_TOKEN")).toBe(false)
  })

  it("never passes an ASTRID_* or provider key variable, whatever pass_env says", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/), fc.string()),
        fc.array(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}\*?$/)),
        (env, passEnv) => {
          const full: Record<string, string> = { ...env, ASTRID_HOME: "/h", astrid_db: "/d", PROVIDER_VAR: "k" }
          const kept = scrubEnvironment(full, { passEnv: [...passEnv, "ASTRID_*", "PROVIDER_VAR"], secretNames: ["PROVIDER_VAR"] })
          expect(Object.keys(kept).filter((n) => n.toUpperCase().startsWith("ASTRID_") || n === "PROVIDER_VAR")).toEqual([])
          for (const [name, value] of Object.entries(kept)) expect(full[name]).toBe(value)
        }
      )
    )
  })
})
