/**
 * `astrid init`: prepares a workspace (`.astrid/config.toml`, commented, and `.astrid/.gitignore`) and the
 * user's home (`$ASTRID_HOME`, a commented `config.toml`, the runtime signing key). Idempotent: what
 * exists is kept and reported, so a second run changes nothing. `--force` rewrites the workspace's files
 * from the templates, keeping a `.bak` of each; the user's config and key are never replaced here.
 */
import { Clock, Effect, Either } from "effect"
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { RUNTIME_PRINCIPAL } from "../../../application/audit/checkpointer.js"
import { keysStream } from "../../../domain/streams.js"
import { loadConfig, resolveHome } from "../../../infrastructure/config/astridConfig.js"
import { loadSecuritySettings } from "../../../infrastructure/config/securityConfig.js"
import { generateKey, loadPublicKey, secretKeyPath } from "../../../infrastructure/keys/keyFiles.js"
import { asCli, CliError, usageError } from "../cliError.js"
import { dim, green, printJson, printLines, red, table } from "../output.js"
import { eventLogFor, openStore } from "../runtime.js"
import { USER_CONFIG, WORKSPACE_CONFIG, WORKSPACE_GITIGNORE } from "./initTemplates.js"
import { messageOf } from "../../../domain/errorMessage.js"

/** created: written now; exists: kept as it was; replaced: rewritten by --force (a .bak keeps the old one); problem: needs fixing. */
export type InitStatus = "created" | "exists" | "replaced" | "problem"

export interface InitItem {
  readonly item: string
  readonly path: string
  readonly status: InitStatus
  readonly detail: string
}

export interface InitArgs {
  readonly workspace?: string | undefined
  readonly force: boolean
  readonly json: boolean
}


const io = <A>(what: string, f: () => A): Effect.Effect<A, CliError> =>
  Effect.try({ try: f, catch: (e) => usageError(`cannot ${what}: ${messageOf(e)}; check the folder exists and is writable`) })

const ensureDir = (item: string, path: string, mode: number) =>
  Effect.gen(function* () {
    if (existsSync(path)) {
      if (!statSync(path).isDirectory()) return yield* Effect.fail(usageError(`${path} exists but is not a folder; move it away and run 'astrid init' again`))
      return { item, path, status: "exists", detail: "kept" } satisfies InitItem
    }
    yield* io(`create ${path}`, () => mkdirSync(path, { recursive: true, mode }))
    return { item, path, status: "created", detail: "" } satisfies InitItem
  })

/**
 * Writes `template` at `path` when missing. An existing file is kept unless `force`, which rewrites it
 * after copying it to `path.bak`; a file already equal to the template is left alone either way.
 */
const ensureFile = (item: string, path: string, template: string, force: boolean, keptDetail = "kept as it is (--force rewrites it from the template, keeping a .bak)") =>
  Effect.gen(function* () {
    if (!existsSync(path)) {
      yield* io(`write ${path}`, () => writeFileSync(path, template, { flag: "wx" }))
      return { item, path, status: "created", detail: "from the commented template" } satisfies InitItem
    }
    const current = yield* io(`read ${path}`, () => readFileSync(path, "utf8"))
    if (current === template) return { item, path, status: "exists", detail: "same as the template" } satisfies InitItem
    if (!force) return { item, path, status: "exists", detail: keptDetail } satisfies InitItem
    const backup = `${path}.bak`
    yield* io(`back up ${path}`, () => copyFileSync(path, backup))
    yield* io(`write ${path}`, () => writeFileSync(path, template))
    return { item, path, status: "replaced", detail: `rewritten from the template; the old file is ${backup}` } satisfies InitItem
  })

/** Marks an item as a problem when its file does not load with the real config loaders. */
const checked = (item: InitItem, problem: string | undefined): InitItem =>
  problem === undefined ? item : { ...item, status: "problem", detail: `${problem}; fix it${item.item.startsWith("workspace") ? " or run 'astrid init --force'" : ""}` }

/** The runtime key: kept when present and readable, else generated and recorded in the log as `keys generate` does. */
const ensureKey = (home: string) =>
  Effect.gen(function* () {
    const path = secretKeyPath(home)
    if (existsSync(path)) {
      const key = yield* Effect.either(loadPublicKey(home))
      return Either.isRight(key)
        ? ({ item: "runtime key", path, status: "exists", detail: key.right.keyId } satisfies InitItem)
        : ({ item: "runtime key", path, status: "problem", detail: key.left.message } satisfies InitItem)
    }
    const cfg = yield* Effect.either(loadConfig(process.env))
    if (Either.isLeft(cfg)) return { item: "runtime key", path, status: "problem", detail: `not created: ${cfg.left.message}` } satisfies InitItem
    const created = yield* Effect.either(
      Effect.scoped(
        Effect.gen(function* () {
          // The store first: if it cannot record the new key, no key is written either.
          const store = yield* openStore(cfg.right, "write")
          const key = yield* asCli(generateKey(home, false, yield* Clock.currentTimeMillis))
          const { log } = yield* eventLogFor(cfg.right, store, false)
          yield* asCli(
            log.append(keysStream, "any", [
              { event: { _tag: "RuntimeKeyGenerated", keyId: key.keyId, algorithm: "ed25519", publicKey: key.publicKey, replaces: null }, principal: RUNTIME_PRINCIPAL }
            ])
          )
          return key
        })
      )
    )
    return Either.isRight(created)
      ? ({ item: "runtime key", path, status: "created", detail: `${created.right.keyId} (mode 0600), recorded on ${keysStream}` } satisfies InitItem)
      : ({ item: "runtime key", path, status: "problem", detail: `not created: ${created.left.message}` } satisfies InitItem)
  })

const firstProblem = <A, E extends { readonly message: string }>(result: Either.Either<A, E>): string | undefined =>
  Either.isLeft(result) ? result.left.message : undefined

export const init = (args: InitArgs) =>
  Effect.gen(function* () {
    const workspace = resolve(args.workspace ?? process.cwd())
    if (!existsSync(workspace) || !statSync(workspace).isDirectory()) {
      return yield* Effect.fail(usageError(`the workspace ${workspace} is not an existing folder; create it first or pass --workspace DIR`))
    }
    const home = resolveHome(process.env)
    const items: Array<InitItem> = []

    items.push(yield* ensureDir("ASTRID_HOME", home, 0o700))
    const userConfigPath = join(home, "config.toml")
    const userConfig = yield* ensureFile("user config", userConfigPath, USER_CONFIG, false, "kept as it is")
    const userProblem = firstProblem(yield* Effect.either(loadConfig(process.env))) ?? firstProblem(yield* Effect.either(loadSecuritySettings(home, null)))
    items.push(checked(userConfig, userProblem))
    items.push(yield* ensureKey(home))

    const dotAstrid = join(workspace, ".astrid")
    yield* ensureDir("workspace folder", dotAstrid, 0o755)
    const wsConfig = yield* ensureFile("workspace config", join(dotAstrid, "config.toml"), WORKSPACE_CONFIG, args.force)
    // Loaded together with the user's: that is how every command reads it.
    const wsProblem = userProblem === undefined ? firstProblem(yield* Effect.either(loadSecuritySettings(home, workspace))) : undefined
    items.push(checked(wsConfig, wsProblem))
    items.push(yield* ensureFile("workspace .gitignore", join(dotAstrid, ".gitignore"), WORKSPACE_GITIGNORE, args.force))

    const changed = items.some((i) => i.status === "created" || i.status === "replaced")
    const problems = items.filter((i) => i.status === "problem")
    if (problems.length > 0) process.exitCode = 1
    if (args.json) return yield* printJson({ workspace, home, changed, ok: problems.length === 0, items })

    const mark = (s: InitStatus): string => (s === "created" || s === "replaced" ? green(s) : s === "problem" ? red(s) : s)
    yield* printLines(
      ...table(
        ["STATUS", "WHAT", "PATH", "DETAIL"],
        items.map((i) => [mark(i.status), i.item, i.path, i.detail])
      ),
      problems.length > 0
        ? red(`${problems.length} problem(s) above; fix them, then run 'astrid init' again or 'astrid config validate'`)
        : changed
          ? dim(`initialized ${workspace}; edit .astrid/config.toml to tighten this workspace, then 'astrid config validate'`)
          : dim(`already initialized: nothing changed in ${workspace} or ${home}`)
    )
  })

export { CliError }
