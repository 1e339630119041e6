/**
 * The `astrid sessions` and `astrid init` command definitions, for the root command in main.ts. As there,
 * each command module is imported only when its command runs, so `--help` stays fast.
 */
import { Args, Command, HelpDoc, Options } from "@effect/cli"
import { Effect, Option } from "effect"

const json = Options.boolean("json").pipe(Options.withDescription("print JSON for scripts instead of text"))

const sessions = () => import("./commands/sessions.js")
const initModule = () => import("./commands/init.js")

const sessionId = Args.text({ name: "sessionId" }).pipe(Args.withDescription("a session id, or a unique start of one of yours"))

const sessionsList = Command.make(
  "list",
  { all: Options.boolean("all").pipe(Options.withDescription("include deleted sessions")), json },
  (a) => Effect.promise(sessions).pipe(Effect.flatMap((m) => m.list(a)))
).pipe(Command.withDescription("your sessions, newest first: when, messages, tool calls, spend, status"))

const sessionsShow = Command.make("show", { id: sessionId, json }, (a) => Effect.promise(sessions).pipe(Effect.flatMap((m) => m.show(a)))).pipe(
  Command.withDescription("one session: its summary, then the conversation with every tool call and decision, in order")
)

const sessionsDelete = Command.make(
  "delete",
  {
    id: sessionId,
    reason: Options.text("reason").pipe(Options.withDescription("why, recorded with the deletion"), Options.optional),
    json
  },
  (a) => Effect.promise(sessions).pipe(Effect.flatMap((m) => m.deleteSession({ id: a.id, reason: Option.getOrUndefined(a.reason), json: a.json })))
).pipe(
  Command.withDescription(
    HelpDoc.p("hide a session from listings, recording who deleted it and why; its events stay in the audit log (deleting twice changes nothing)")
  )
)

const sessionsCleanup = Command.make(
  "cleanup",
  {
    olderThan: Options.integer("older-than").pipe(
      Options.withDescription("delete sessions with no activity for this many days (default 30)"),
      Options.withDefault(30)
    ),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("only list what would be deleted")),
    json
  },
  (a) => Effect.promise(sessions).pipe(Effect.flatMap((m) => m.cleanup({ olderThanDays: a.olderThan, dryRun: a.dryRun, json: a.json })))
).pipe(Command.withDescription("delete your sessions inactive for N days (reason \"cleanup: inactive N days\"); the events stay"))

export const sessionsCommand = Command.make("sessions").pipe(
  Command.withDescription("your agent sessions: list, show, delete, cleanup"),
  Command.withSubcommands([sessionsList, sessionsShow, sessionsDelete, sessionsCleanup])
)

export const initCommand = Command.make(
  "init",
  {
    workspace: Options.directory("workspace").pipe(
      Options.withDescription("the workspace to prepare (default: the current directory)"),
      Options.optional
    ),
    force: Options.boolean("force").pipe(
      Options.withDescription("rewrite the workspace's .astrid files from the templates, keeping a .bak of each (the user config and key are never replaced)")
    ),
    json
  },
  (a) => Effect.promise(initModule).pipe(Effect.flatMap((m) => m.init({ workspace: Option.getOrUndefined(a.workspace), force: a.force, json: a.json })))
).pipe(
  Command.withDescription(
    HelpDoc.p(
      "create .astrid/config.toml (commented: every workspace setting, all off) and .astrid/.gitignore in the workspace, and $ASTRID_HOME with a commented config.toml and the runtime key when missing; a second run changes nothing; exit 1 when a file there does not load"
    )
  )
)
