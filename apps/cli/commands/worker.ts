/**
 * `astrid worker [--once]`: runs the principal's approved deferred actions, each once (I2), with the
 * built-in tools. The policy and workspace boundary of each action's own workspace are checked once more
 * just before it runs. An approved action whose tool only a live session has (task, spark) is recorded as
 * not run, once. Without `--once` it keeps watching the queue until stopped, saying each thing once; with
 * it, it drains the queue and exits.
 */
import { Duration, Effect, Layer } from "effect"
import { hostname } from "node:os"
import { type Execution, makeDeferredWorker, DeferredWorkerError } from "../../../application/agent/deferredWorker.js"
import { EventLog, type EventLogApi } from "../../../application/eventLog.js"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../../../application/ports/eventStore.js"
import { Ids } from "../../../application/ports/ids.js"
import { SecurityInterceptor, type SecurityInterceptorApi } from "../../../application/security/securityInterceptor.js"
import type { AstridConfig } from "../../../infrastructure/config/astridConfig.js"
import { loadLlmSettings } from "../../../infrastructure/config/llmConfig.js"
import { loadSecuritySettings } from "../../../infrastructure/config/securityConfig.js"
import { uuidv7 } from "../../../infrastructure/crypto/uuidv7.js"
import { builtinTools, makeBuiltinTools } from "../../../infrastructure/tools/builtinTools.js"
import { PathResolverLive } from "../../../infrastructure/workspace/pathResolver.js"
import { asCli } from "../cliError.js"
import { dim, green, printJson, printLines, red } from "../output.js"
import { printable } from "../printable.js"
import { currentPrincipal } from "../principal.js"
import { config, crypto } from "../runtime.js"
import { securityFor } from "../securityRuntime.js"

/** How often a worker without `--once` looks at the queue again. */
const POLL_INTERVAL = Duration.seconds(1)
/** Output lines shown per action in text mode; --json has all of it (up to the 30,000-character cut). */
const SHOWN_OUTPUT_LINES = 20

/** The tools `astrid worker` runs: the built-in ones; a session's own tools (task, spark) need the session. */
export const workerTools = builtinTools

/** Can `astrid worker` run a call of `tool`? */
export const workerRuns = (tool: string): boolean => workerTools.some((t) => t.name === tool)

/** A deferred worker over the services a command already opened. */
export const workerFrom = (cfg: AstridConfig, services: { readonly interceptor: SecurityInterceptorApi; readonly store: EventStoreApi; readonly log: EventLogApi }) =>
  Effect.gen(function* () {
    const layer = Layer.mergeAll(
      Layer.succeed(EventLog, services.log),
      Layer.succeed(EventStore, services.store),
      Layer.succeed(Crypto, yield* crypto),
      Layer.succeed(Ids, { uuidv7 }),
      Layer.succeed(SecurityInterceptor, services.interceptor),
      PathResolverLive
    )
    // bash gets what a session's bash gets: no provider key, and the user's [security] pass_env (a
    // workspace's narrower list is not known here: one worker serves every workspace).
    const { llm } = yield* asCli(loadLlmSettings(cfg.configPath, process.env))
    // grep and bash keep away from $ASTRID_HOME as the policy knows it (I10).
    const { passEnv, settings } = yield* asCli(loadSecuritySettings(cfg.home, null))
    return yield* makeDeferredWorker({
      tools: makeBuiltinTools({ passEnv, secretNames: llm.apiKeyEnv === null ? [] : [llm.apiKeyEnv], protectedRoots: settings.policy.protectedState.roots }),
      name: `astrid worker (${currentPrincipal()}@${hostname()}, pid ${process.pid})`,
      // The workspace's own config may have tightened the policy or the boundary since the approval.
      settingsFor: (workspace) =>
        loadSecuritySettings(cfg.home, workspace).pipe(
          Effect.map(({ settings }) => ({ policy: settings.policy, mode: settings.workspaceMode, escapePolicy: settings.escapePolicy })),
          Effect.mapError((e) => new DeferredWorkerError({ message: `could not load the security settings of ${workspace}: ${e.message}` }))
        )
    }).pipe(Effect.provide(layer))
  })

export const executionJson = (e: Execution) => {
  switch (e._tag) {
    case "Ran":
      return { requestId: e.requestId, actionId: e.actionId, sessionId: e.sessionId, status: "ran", tool: e.tool, summary: e.summary, ok: e.ok, output: e.output, truncated: e.truncated, durationMs: e.durationMs }
    case "Stopped":
      return { requestId: e.requestId, actionId: e.actionId, sessionId: e.sessionId, status: "stopped", tool: e.tool, summary: e.summary, ok: false, reason: e.reason }
    case "Skipped":
      return { requestId: e.requestId, status: "skipped", kind: e.kind, reason: e.reason }
  }
}

const indent = (text: string): ReadonlyArray<string> => {
  const lines = printable(text).split("\n")
  const shown = lines.slice(0, SHOWN_OUTPUT_LINES).map((l) => `    ${l}`)
  return lines.length > SHOWN_OUTPUT_LINES ? [...shown, dim(`    … ${lines.length - SHOWN_OUTPUT_LINES} more line(s); --json shows all`)] : shown
}

/**
 * A filter over what each poll of a watching worker did. Ran and Stopped happen once per action, but a
 * Skipped action stays in the queue and is met again at every poll: it is reported the first time only
 * (again only if the reason changes).
 */
export const reportedOnce = (): ((done: ReadonlyArray<Execution>) => ReadonlyArray<Execution>) => {
  const seen = new Set<string>()
  return (done) =>
    done.filter((e) => {
      if (e._tag !== "Skipped") return true
      const key = JSON.stringify([e.requestId, e.kind, e.reason])
      if (seen.has(key)) return false
      seen.add(key)
      return true
    })
}

/** The lines a person reads for one execution; the summary and the output are the model's and the command's, shown escaped. */
export const describeExecution = (e: Execution): ReadonlyArray<string> => {
  switch (e._tag) {
    case "Ran": {
      const head = printable(`ran ${e.tool}: ${e.summary} (${e.ok ? "ok" : "failed"}, ${e.durationMs} ms), result recorded in session ${e.sessionId}`)
      return [e.ok ? green(head) : red(head), ...indent(e.output)]
    }
    case "Stopped":
      return [red(printable(`not run: ${e.summary}: ${e.reason}`))]
    case "Skipped":
      return [dim(printable(`skipped ${e.requestId}: ${e.reason}`))]
  }
}

export const worker = (args: { readonly once: boolean; readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const principal = currentPrincipal()
      const w = yield* workerFrom(cfg, yield* securityFor(cfg, null))
      const report = (done: ReadonlyArray<Execution>) =>
        // A long-running worker prints JSON Lines: one execution per line, as it happens.
        args.json ? printLines(...done.map((e) => JSON.stringify(executionJson(e)))) : printLines(...done.flatMap(describeExecution))
      if (args.once) {
        const done = yield* asCli(w.drain(principal))
        if (args.json) return yield* printJson(done.map(executionJson))
        return yield* printLines(...(done.length === 0 ? [`no approved actions waiting to run for ${principal}`] : done.flatMap(describeExecution)))
      }
      if (!args.json) yield* printLines(dim(`watching the approved actions of ${principal}; Ctrl-C stops`))
      const fresh = reportedOnce()
      return yield* asCli(w.drain(principal)).pipe(
        Effect.flatMap((done) => report(fresh(done))),
        Effect.zipRight(Effect.sleep(POLL_INTERVAL)),
        Effect.forever
      )
    })
  )
