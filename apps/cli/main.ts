/**
 * The `astrid` command line. Command modules are imported when a command runs, so that `--help` and
 * `--version` do not load SQLite, WebAssembly or crypto.
 */
import { Args, CliConfig, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Exit, Option } from "effect"
import { CliError } from "./cliError.js"
import { VERSION } from "./version.js"

const json = Options.boolean("json").pipe(Options.withDescription("print JSON for scripts instead of text"))
const streamFilter = Options.text("stream").pipe(
  Options.withDescription("only this stream (repeatable), e.g. astrid-session-abc"),
  Options.repeated
)

const audit = () => import("./commands/audit.js")
const keys = () => import("./commands/keys.js")
const demo = () => import("./commands/demo.js")

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

const demoCommand = Command.make(
  "demo",
  { keep: Options.boolean("keep").pipe(Options.withDescription("keep the demo's temporary ASTRID_HOME and print its path")) },
  (a) => Effect.promise(demo).pipe(Effect.flatMap((m) => m.run(a)))
).pipe(Command.withDescription("an offline tour: record a session, sign a checkpoint, verify, tamper, catch it"))

const root = Command.make("astrid").pipe(
  Command.withDescription("Astrid: a secure runtime for AI agents. Every action is an event; every event is chained and provable."),
  Command.withSubcommands([auditCommand, keysCommand, demoCommand])
)

const cli = Command.run(root, { name: "astrid", version: VERSION })

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Effect.provide(CliConfig.layer({ showBuiltIns: false }))
)

void Effect.runPromiseExit(program).then((exit) => {
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
  process.stderr.write(`astrid: internal error: ${Cause.pretty(exit.cause).split("\n")[0] ?? "unknown"}\n`)
  if (process.env["ASTRID_DEBUG"] !== undefined) process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
  process.exitCode = 70
})
