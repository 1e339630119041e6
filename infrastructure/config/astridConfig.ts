/**
 * Configuration of the audit core, read from $ASTRID_HOME/config.toml and ASTRID_* variables
 * (environment wins). Later layers (workspace config, flags) extend this in their own modules.
 *
 *   [event_store]
 *   url = "esdb://127.0.0.1:2113?tls=false"   # EventStoreDB / KurrentDB instead of SQLite (ASTRID_EVENT_STORE_URL)
 *   path = "astrid.db"          # relative to ASTRID_HOME
 *   synchronous = "full"        # "full" (durable on power loss) or "normal"
 *   busy_timeout_ms = 5000
 *
 *   [audit]
 *   checkpoint_every = 1000     # sign a checkpoint after this many events; 0 = only on demand
 */
import { Data, Effect, Either, ParseResult, Schema } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { homedir } from "node:os"
import { isAbsolute, join, resolve } from "node:path"
import { parse as parseToml } from "smol-toml"

export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

const FileConfig = Schema.Struct({
  event_store: Schema.optional(
    Schema.Struct({
      url: Schema.optional(Schema.NonEmptyString),
      path: Schema.optional(Schema.NonEmptyString),
      synchronous: Schema.optional(Schema.Literal("full", "normal")),
      busy_timeout_ms: Schema.optional(Schema.NonNegativeInt)
    })
  ),
  audit: Schema.optional(
    Schema.Struct({
      checkpoint_every: Schema.optional(Schema.NonNegativeInt)
    })
  )
})

export interface AstridConfig {
  readonly home: string
  readonly configPath: string
  readonly eventStore: {
    /** EventStoreDB / KurrentDB connection string; null selects the embedded SQLite store at `path`. */
    readonly url: string | null
    readonly path: string
    readonly synchronous: "full" | "normal"
    readonly busyTimeoutMs: number
  }
  readonly audit: { readonly checkpointEvery: number }
}

export const DEFAULT_CHECKPOINT_EVERY = 1000

export const resolveHome = (env: NodeJS.ProcessEnv): string => {
  const fromEnv = env["ASTRID_HOME"]
  return fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : join(homedir(), ".astrid")
}

const intFromEnv = (env: NodeJS.ProcessEnv, name: string): Either.Either<number | undefined, ConfigError> => {
  const raw = env[name]
  if (raw === undefined || raw === "") return Either.right(undefined)
  const n = Number(raw)
  return Number.isSafeInteger(n) && n >= 0
    ? Either.right(n)
    : Either.left(new ConfigError({ message: `${name}='${raw}' is not a non-negative integer; unset it or give a number` }))
}

/**
 * One line per wrong setting: "security.workspace_mode: expected one of "safe", "guided", "autonomous",
 * got "yolo"". Schema reports each member of a union (and each enclosing optional) on its own; those
 * are folded into the deepest path.
 */
const describeIssues = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const deepest = Math.max(...issues.map((i) => i.path.length))
  const byPath = new Map<string, { expected: Array<string>; actual: string | undefined; other: Array<string> }>()
  for (const issue of issues) {
    if (issue.path.length < deepest && issues.some((o) => o.path.length > issue.path.length && issue.path.every((p, k) => o.path[k] === p))) continue
    const key = issue.path.join(".")
    const entry = byPath.get(key) ?? { expected: [], actual: undefined, other: [] }
    const m = /^Expected (.+), actual (.+)$/s.exec(issue.message)
    if (m !== null && m[1] !== undefined && m[1] !== "undefined") {
      entry.expected.push(m[1])
      entry.actual = m[2]
    } else if (m === null) {
      entry.other.push(issue.message)
    }
    byPath.set(key, entry)
  }
  return [...byPath]
    .map(([key, e]) =>
      e.expected.length > 0
        ? `${key}: expected ${e.expected.length > 1 ? `one of ${e.expected.join(", ")}` : e.expected[0]}, got ${e.actual ?? "?"}`
        : `${key}: ${e.other.join("; ")}`
    )
    .join("; ")
}

/** Reads and decodes one TOML file with `schema`; a missing file decodes as `{}`. */
export const readTomlFile = <A, I>(path: string, schema: Schema.Schema<A, I>): Effect.Effect<A, ConfigError> =>
  Effect.gen(function* () {
    let parsed: unknown = {}
    if (existsSync(path)) {
      const text = yield* Effect.try({
        try: () => readFileSync(path, "utf8"),
        catch: (e) => new ConfigError({ message: `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}` })
      })
      parsed = yield* Effect.try({
        try: () => parseToml(text),
        catch: (e) => new ConfigError({ message: `${path} is not valid TOML: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` })
      })
    }
    const decoded = Schema.decodeUnknownEither(schema)(parsed, { onExcessProperty: "ignore" })
    if (Either.isLeft(decoded)) {
      return yield* Effect.fail(new ConfigError({ message: `${path} has invalid settings: ${describeIssues(decoded.left)}` }))
    }
    return decoded.right
  })

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s.trim() === "" ? undefined : s.trim())

export const loadConfig = (env: NodeJS.ProcessEnv): Effect.Effect<AstridConfig, ConfigError> =>
  Effect.gen(function* () {
    const home = resolveHome(env)
    const configPath = join(home, "config.toml")
    const file = yield* readTomlFile(configPath, FileConfig)
    const checkpointEvery = yield* intFromEnv(env, "ASTRID_CHECKPOINT_EVERY")
    const busyTimeout = yield* intFromEnv(env, "ASTRID_BUSY_TIMEOUT_MS")
    const storePath = env["ASTRID_DB"] ?? file.event_store?.path ?? "astrid.db"
    return {
      home,
      configPath,
      eventStore: {
        url: nonEmpty(env["ASTRID_EVENT_STORE_URL"]) ?? file.event_store?.url ?? null,
        path: isAbsolute(storePath) ? storePath : join(home, storePath),
        synchronous: file.event_store?.synchronous ?? "full",
        busyTimeoutMs: busyTimeout ?? file.event_store?.busy_timeout_ms ?? 5000
      },
      audit: { checkpointEvery: checkpointEvery ?? file.audit?.checkpoint_every ?? DEFAULT_CHECKPOINT_EVERY }
    }
  })
