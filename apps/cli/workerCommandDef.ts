/**
 * Command definitions for `astrid worker`, `astrid approvals` (whose `approve` runs the approved action
 * unless `--no-run`) and `astrid demo` (with `--yes`). Implementations are imported when a command runs, as in main.ts, so `--help` stays
 * light.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"

const json = Options.boolean("json").pipe(Options.withDescription("print JSON for scripts instead of text"))

const approvals = () => import("./commands/approvals.js")
const demo = () => import("./commands/demo.js")
const workerModule = () => import("./commands/worker.js")

export const workerCommand = Command.make(
  "worker",
  {
    once: Options.boolean("once").pipe(Options.withDescription("run what is approved and waiting, then exit (default: keep watching the queue)")),
    json: Options.boolean("json").pipe(Options.withDescription("print JSON (with --once an array; otherwise one line per action as it runs)"))
  },
  (a) => Effect.promise(workerModule).pipe(Effect.flatMap((m) => m.worker(a)))
).pipe(Command.withDescription("run your approved deferred actions, each once; policy is checked again just before each runs"))

const approvalsList = Command.make("list", { json }, (a) => Effect.promise(approvals).pipe(Effect.flatMap((m) => m.list(a)))).pipe(
  Command.withDescription("your deferred actions, highest priority first")
)

const approvalsApprove = Command.make(
  "approve",
  {
    id: Args.text({ name: "requestId" }),
    scope: Options.choice("scope", ["once", "session", "workspace", "always"]).pipe(
      Options.withDescription("once; the rest of the session; the workspace; or always (a 1 h token)"),
      Options.withDefault("once" as const)
    ),
    noRun: Options.boolean("no-run").pipe(Options.withDescription("only approve; 'astrid worker' runs it later")),
    json
  },
  (a) => Effect.promise(approvals).pipe(Effect.flatMap((m) => m.approve({ id: a.id, scope: a.scope, json: a.json, run: !a.noRun })))
).pipe(Command.withDescription("approve a deferred action (policy and budget are checked again first) and run it once, now"))

const approvalsDeny = Command.make(
  "deny",
  { id: Args.text({ name: "requestId" }), reason: Options.text("reason").pipe(Options.withDescription("why, recorded with the denial"), Options.optional), json },
  (a) => Effect.promise(approvals).pipe(Effect.flatMap((m) => m.deny({ id: a.id, reason: Option.getOrNull(a.reason), json: a.json })))
).pipe(Command.withDescription("deny a deferred action; it never runs"))

/** Replaces the `approvals` command of main.ts: the same subcommands, with `approve --no-run`. */
export const approvalsCommand = Command.make("approvals").pipe(
  Command.withDescription("the queue of actions deferred because nobody could be asked"),
  Command.withSubcommands([approvalsList, approvalsApprove, approvalsDeny])
)

/** Replaces the `demo` command of main.ts: the same, with `--yes` to answer approvals from the demo's script at a terminal too. */
export const demoCommand = Command.make(
  "demo",
  {
    keep: Options.boolean("keep").pipe(Options.withDescription("keep the demo's temporary ASTRID_HOME and print its path")),
    yes: Options.boolean("yes").pipe(Options.withDescription("do not ask: the demo's script answers the approvals, even at a terminal"))
  },
  (a) => Effect.promise(demo).pipe(Effect.flatMap((m) => m.run(a)))
).pipe(
  Command.withDescription(
    "an offline tour: a scripted agent's tool calls through the real interceptor (policy, token, budget, approval, deferral and the worker), then checkpoint, verify, tamper, catch it"
  )
)
