/**
 * The environment a tool's child process gets: the runtime's own, less everything that would hand the agent
 * a credential or tell it where the runtime keeps its keys and audit log.
 *
 * - every `ASTRID_*` variable (the home, the store URL, ...), always;
 * - the variables that hold the model provider's key (`[llm] api_key_env`), always: a key in the agent's hands
 *   spends outside the budget the runtime enforces;
 * - names that look like credentials: an underscore-separated part TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE,
 *   PASS, PWD, SESSION, CREDENTIAL(S), APIKEY, AUTHTOKEN, a name ending in `_KEY`, `_AUTH` or `authToken`
 *   (npm's `npm_config_//host/:_authToken`), and the ssh agent socket, database client passwords,
 *   password-manager sessions and Kerberos tickets by name (case-insensitive); `[security] pass_env`
 *   keeps such a variable when it names it (`"GITHUB_TOKEN"`) or a prefix of it (`"GH_*"`).
 *
 * A pattern cannot know every secret: a password inside `DATABASE_URL` passes. Names are the line drawn here;
 * what a variable's value means is the user's to know, and `pass_env` cannot bring back the first two kinds.
 */

/** Given where a tool's process is started: which variables to keep that the patterns would drop, which to drop besides. */
export interface EnvironmentRules {
  /** `[security] pass_env`: exact names, or prefixes ending in `*`. */
  readonly passEnv?: ReadonlyArray<string>
  /** Variables that hold the runtime's own secrets (the provider key variables); never passed. */
  readonly secretNames?: ReadonlyArray<string>
}

const SECRET_PARTS = new Set([
  "TOKEN",
  "TOKENS",
  "SECRET",
  "SECRETS",
  "PASSWORD",
  "PASSWORDS",
  "PASSWD",
  "PASSPHRASE",
  "PASS",
  "PWD",
  "CREDENTIAL",
  "CREDENTIALS",
  "APIKEY",
  "AUTHTOKEN",
  "SESSION",
  "AUTH",
  "WEBHOOK",
  "ASKPASS",
  "SECRETKEY",
  "PRIVATEKEY"
])

// Credentials and live sessions under names the parts above miss: an ssh agent, database client passwords,
// password-manager sessions, Kerberos tickets.
const SECRET_NAMES = new Set(["SSH_AUTH_SOCK", "PGPASSWORD", "PGPASSFILE", "MYSQL_PWD", "KRB5CCNAME", "BW_SESSION", "VAULT_TOKEN", "NETRC"])

/** Does the name look like it holds a credential? `PWD` and `OLDPWD` are the shell's folders, not passwords. */
export const looksSecret = (name: string): boolean => {
  const upper = name.toUpperCase()
  if (upper === "PWD" || upper === "OLDPWD") return false
  if (SECRET_NAMES.has(upper) || upper.startsWith("OP_SESSION_")) return true
  if (upper.endsWith("_KEY") || upper.endsWith("_AUTH") || upper.endsWith("AUTHTOKEN") || upper.endsWith("_AUTHTOKEN")) return true
  return upper.split(/[_:/]+/).some((part) => SECRET_PARTS.has(part))
}

const isRuntimeVariable = (name: string): boolean => name.toUpperCase().startsWith("ASTRID_")

/** Does a `pass_env` entry (an exact name, or a prefix ending in `*`) keep `name`? */
export const passEnvMatches = (entry: string, name: string): boolean =>
  entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : name === entry

/** `env` without the variables the rules drop; the input is left alone. */
export const scrubEnvironment = (env: NodeJS.ProcessEnv, rules: EnvironmentRules): Record<string, string> => {
  const never = new Set(rules.secretNames ?? [])
  const pass = rules.passEnv ?? []
  const kept: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || isRuntimeVariable(name) || never.has(name)) continue
    if (looksSecret(name) && !pass.some((entry) => passEnvMatches(entry, name))) continue
    kept[name] = value
  }
  return kept
}
