/**
 * The `astrid` command line. Command modules are imported when a command runs, so that `--help` and
 * `--version` do not load SQLite, WebAssembly or crypto.
 */
import { Args, CliConfig, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import { CliError } from "./cliError.js"
import { installSignalHandling } from "./signals.js"
import { initCommand, sessionsCommand } from "./commandDefs.js"
import { approvalsCommand, demoCommand, workerCommand } from "./workerCommandDef.js"
import { VERSION } from "./version.js"

const json = Options.boolean("json").pipe(Options.withDescription("print JSON for scripts instead of text"))
const streamFilter = Options.text("stream").pipe(
  Options.withDescription("only this stream (repeatable), e.g. astrid-session-abc"),
  Options.repeated
)

const audit = () => import("./commands/audit.js")
const keys = () => import("./commands/keys.js")
const tokens = () => import("./commands/tokens.js")
const projections = () => import("./commands/projections.js")
const configModule = () => import("./commands/config.js")
const store = () => import("./commands/store.js")
const runModule = () => import("./commands/run.js")
const chatModule = () => import("./commands/chat.js")

const keysGenerate = Command.make(
  "generate",
  { force: Options.boolean("force").pipe(Options.withDescription("replace the existing key (its public key stays trusted for old checkpoints)")), json },
  (a) => Effect.promise(keys).pipe(Effect.flatMap((m) => m.generate(a)))
).pipe(Command.withDescription("create the runtime's ed25519 signing key under $ASTRID_HOME/keys/ (mode 0600)"))

const keysShow = Command.make("show", { json }, (a) => Effect.promise(keys).pipe(Effect.flatMap((m) => m.show(a)))).pipe(
  Command.withDescription("print the runtime key id and public key")
)

const keysCommand = Command.make("keys").pipe(
  Command.withDescription("manage the runtime signing key"),
  Command.withSubcommands([keysGenerate, keysShow])
)

const auditList = Command.make(
  "list",
  {
    streams: streamFilter,
    types: Options.text("type").pipe(Options.withDescription("only events of this type (repeatable), e.g. ActionDenied"), Options.repeated),
    limit: Options.integer("limit").pipe(Options.withDescription("show at most this many (the newest)"), Options.withDefault(50)),
    json
  },
  (a) => Effect.promise(audit).pipe(Effect.flatMap((m) => m.list(a)))
).pipe(Command.withDescription("list the newest events, oldest first"))

const auditShow = Command.make(
  "show",
  { ref: Args.text({ name: "eventId | stream@revision" }), json },
  (a) => Effect.promise(audit).pipe(Effect.flatMap((m) => m.show(a)))
).pipe(Command.withDescription("show one event in full"))

const auditVerify = Command.make(
  "verify",
  {
    streams: streamFilter,
    trustedKeys: Options.text("trusted-key").pipe(
      Options.withDescription("trust this ed25519 public key (hex, or a file holding it; repeatable); replaces the local runtime keys"),
      Options.repeated
    ),
    bundle: Options.file("bundle").pipe(Options.withDescription("verify an exported bundle instead of the store (no database needed)"), Options.optional),
    json
  },
  (a) => Effect.promise(audit).pipe(Effect.flatMap((m) => m.verify(a)))
).pipe(
  Command.withDescription(
    HelpDoc.p("verify every hash, link, revision and signed checkpoint; exit 0 when intact, 1 when any issue is found, 2 on a usage or I/O error")
  )
)

const auditStats = Command.make("stats", { json }, (a) => Effect.promise(audit).pipe(Effect.flatMap((m) => m.stats(a)))).pipe(
  Command.withDescription("counts, size, checkpoints and the runtime key")
)

const auditExport = Command.make(
  "export",
  {
    out: Options.text("out").pipe(Options.withDescription("the bundle file to write (JSON Lines)")),
    streams: streamFilter,
    force: Options.boolean("force").pipe(Options.withDescription("replace an existing file")),
    json
  },
  (a) => Effect.promise(audit).pipe(Effect.flatMap((m) => m.exportCommand(a)))
).pipe(Command.withDescription("write a self-contained bundle that anyone can verify offline"))

const auditCheckpoint = Command.make("checkpoint", { json }, (a) => Effect.promise(audit).pipe(Effect.flatMap((m) => m.checkpoint(a)))).pipe(
  Command.withDescription("sign a checkpoint of every stream changed since the last one")
)

const auditCommand = Command.make("audit").pipe(
  Command.withDescription("read, verify and export the event log"),
  Command.withSubcommands([auditList, auditShow, auditVerify, auditStats, auditExport, auditCheckpoint])
)

const tokensList = Command.make(
  "list",
  { principal: Options.text("principal").pipe(Options.withDescription("whose tokens (default: $ASTRID_PRINCIPAL or your user name)"), Options.optional), json },
  (a) => Effect.promise(tokens).pipe(Effect.flatMap((m) => m.list({ principal: Option.getOrUndefined(a.principal), json: a.json })))
).pipe(Command.withDescription("capability tokens of a principal, with their standing now"))

const tokensShow = Command.make("show", { tokenId: Args.text({ name: "tokenId" }), json }, (a) => Effect.promise(tokens).pipe(Effect.flatMap((m) => m.show(a)))).pipe(
  Command.withDescription("one token in full: scope, expiry, the approval that created it, uses, revocation")
)

const tokensRevoke = Command.make(
  "revoke",
  { tokenId: Args.text({ name: "tokenId" }), reason: Options.text("reason").pipe(Options.withDescription("why, recorded in the revocation event"), Options.optional), json },
  (a) => Effect.promise(tokens).pipe(Effect.flatMap((m) => m.revoke({ tokenId: a.tokenId, reason: Option.getOrUndefined(a.reason), json: a.json })))
).pipe(Command.withDescription("revoke a token for good (an event on the principal's stream)"))

const tokensCommand = Command.make("tokens").pipe(
  Command.withDescription("signed capability tokens (Allow Always answers and grants)"),
  Command.withSubcommands([tokensList, tokensShow, tokensRevoke])
)

const projectionsRebuild = Command.make(
  "rebuild",
  {
    names: Args.text({ name: "name" }).pipe(Args.withDescription("a view to rebuild: budgets, tokens, pending-approvals or sessions (repeatable; none rebuilds all)"), Args.repeated),
    json
  },
  (a) => Effect.promise(projections).pipe(Effect.flatMap((m) => m.rebuild(a)))
).pipe(Command.withDescription("drop views and replay the whole event log into them"))

const projectionsStatus = Command.make("status", { json }, (a) => Effect.promise(projections).pipe(Effect.flatMap((m) => m.status(a)))).pipe(
  Command.withDescription("how far each view has read the log, and its rows")
)

const projectionsCommand = Command.make("projections").pipe(
  Command.withDescription("the read models (views) built from the event log"),
  Command.withSubcommands([projectionsRebuild, projectionsStatus])
)

const workspaceOption = Options.directory("workspace").pipe(
  Options.withDescription("the workspace whose .astrid/config.toml applies (default: the current directory)"),
  Options.optional
)
const configArgs = (a: { readonly json: boolean; readonly workspace: Option.Option<string> }) => ({ json: a.json, workspace: Option.getOrUndefined(a.workspace) })

const configShow = Command.make("show", { json, workspace: workspaceOption }, (a) => Effect.promise(configModule).pipe(Effect.flatMap((m) => m.show(configArgs(a))))).pipe(
  Command.withDescription("the configuration in force: defaults < user config < workspace (tighten only) < environment")
)
const configValidate = Command.make("validate", { json, workspace: workspaceOption }, (a) =>
  Effect.promise(configModule).pipe(Effect.flatMap((m) => m.validate(configArgs(a))))
).pipe(Command.withDescription("check every config file and reach the event store; exit 1 when a check fails"))
const configPaths = Command.make("paths", { json, workspace: workspaceOption }, (a) => Effect.promise(configModule).pipe(Effect.flatMap((m) => m.paths(configArgs(a))))).pipe(
  Command.withDescription("where the home, config files, event store, views and key live")
)
const configCommand = Command.make("config").pipe(
  Command.withDescription("configuration: show, validate, paths"),
  Command.withSubcommands([configShow, configValidate, configPaths])
)

const storeCopy = Command.make(
  "copy",
  {
    to: Options.text("to").pipe(Options.withDescription("the target: a SQLite file (created when missing) or an esdb:// / kurrentdb:// URL")),
    from: Options.text("from").pipe(Options.withDescription("the source: a SQLite file or an EventStoreDB URL (default: the configured store)"), Options.optional),
    trustedKeys: Options.text("trusted-key").pipe(
      Options.withDescription("verify the copy trusting this ed25519 public key (hex, or a file holding it; repeatable); replaces the local runtime keys"),
      Options.repeated
    ),
    json
  },
  (a) => Effect.promise(store).pipe(Effect.flatMap((m) => m.copy({ to: a.to, from: Option.getOrUndefined(a.from), trustedKeys: a.trustedKeys, json: a.json })))
).pipe(
  Command.withDescription(
    HelpDoc.p(
      "copy the whole history to another store with every hash as it is, resuming where an earlier copy stopped, then verify the copy; exit 0 when it verifies, 1 when verification finds issues, 2 on a usage or I/O error"
    )
  )
)

const storeCommand = Command.make("store").pipe(
  Command.withDescription("move a history between event stores (SQLite, EventStoreDB / KurrentDB)"),
  Command.withSubcommands([storeCopy])
)

const runCommand = Command.make(
  "run",
  {
    script: Options.text("script").pipe(Options.withDescription("the scripted model turns to replay (JSON or JSON Lines; see docs/scripted-provider.md)")),
    answers: Options.text("answers").pipe(
      Options.withDescription("approval answers, used in order: a JSON array of {\"answer\": \"once|session|workspace|always|deny\", \"reason\"?, \"match\"?} (without it, actions needing approval are deferred)"),
      Options.optional
    ),
    prompt: Options.text("prompt").pipe(Options.withDescription("the user's message for the turn (default: \"run the script\")"), Options.optional),
    session: Options.text("session").pipe(Options.withDescription("the session to run in (default: a new one)"), Options.optional),
    workspace: workspaceOption,
    json
  },
  (a) =>
    Effect.promise(runModule).pipe(
      Effect.flatMap((m) =>
        m.run({
          script: a.script,
          json: a.json,
          ...Option.match(a.answers, { onNone: () => ({}), onSome: (answers) => ({ answers }) }),
          ...Option.match(a.prompt, { onNone: () => ({}), onSome: (prompt) => ({ prompt }) }),
          ...Option.match(a.session, { onNone: () => ({}), onSome: (session) => ({ session }) }),
          ...Option.match(a.workspace, { onNone: () => ({}), onSome: (workspace) => ({ workspace }) })
        })
      )
    )
).pipe(Command.withDescription("one agent turn with the scripted provider through the real interceptor, approvals answered from a file (reproducible runs, CI)"))

const chatCommand = Command.make(
  "chat",
  {
    session: Options.text("session").pipe(Options.withDescription("resume this session with its whole history (default: a new session)"), Options.optional),
    print: Options.text("print").pipe(
      Options.withDescription("one non-interactive turn with this prompt; actions needing approval are deferred, never allowed"),
      Options.optional
    ),
    workspace: workspaceOption,
    script: Options.text("script").pipe(Options.withDescription("use the scripted provider with this file of model turns (offline; docs/scripted-provider.md)"), Options.optional),
    provider: Options.text("provider").pipe(Options.withDescription("anthropic, openai, zai, ollama or scripted (default: [llm] provider, else anthropic)"), Options.optional),
    model: Options.text("model").pipe(Options.withDescription("the model (default: [llm] model, else the provider's default)"), Options.optional),
    maxSteps: Options.integer("max-steps").pipe(Options.withDescription("model calls allowed per turn (default: [llm] max_steps, else 20)"), Options.optional),
    json
  },
  (a) =>
    Effect.promise(chatModule).pipe(
      Effect.flatMap((m) =>
        m.chat({
          session: Option.getOrUndefined(a.session),
          print: Option.getOrUndefined(a.print),
          workspace: Option.getOrUndefined(a.workspace),
          script: Option.getOrUndefined(a.script),
          provider: Option.getOrUndefined(a.provider),
          model: Option.getOrUndefined(a.model),
          maxSteps: Option.getOrUndefined(a.maxSteps),
          json: a.json
        })
      )
    )
).pipe(
  Command.withDescription(
    HelpDoc.p("chat with an agent; every tool call it proposes passes policy, tokens, budget and your approval, and every step is an event (--print for one scripted, non-interactive turn)")
  )
)

const root = Command.make("astrid").pipe(
  Command.withDescription("Astrid: a secure runtime for AI agents. Every action is an event; every event is chained and provable."),
  Command.withSubcommands([initCommand, chatCommand, runCommand, demoCommand, sessionsCommand, auditCommand, keysCommand, tokensCommand, approvalsCommand, workerCommand, projectionsCommand, configCommand, storeCommand])
)

const cli = Command.run(root, { name: "astrid", version: VERSION })

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Effect.provide(CliConfig.layer({ showBuiltIns: false }))
)

const main = Effect.runFork(program)
const removeSignalHandling = installSignalHandling(() => void Effect.runFork(Fiber.interrupt(main)))

main.addObserver((exit) => {
  removeSignalHandling()
  if (Exit.isSuccess(exit)) return
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof CliError) {
      process.stderr.write(`astrid: ${error.message}\n`)
      process.exitCode = error.exitCode
      return
    }
    if (ValidationError.isValidationError(error)) {
      // @effect/cli has printed the problem and the usage already.
      process.exitCode = 2
      return
    }
  }
  if (Exit.isInterrupted(exit)) {
    process.stderr.write("astrid: interrupted; what had been recorded stays recorded\n")
    process.exitCode = 130
    return
  }
  process.stderr.write(`astrid: internal error: ${Cause.pretty(exit.cause).split("\n")[0] ?? "unknown"}\n`)
  if (process.env["ASTRID_DEBUG"] !== undefined) process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
  process.exitCode = 70
})
