/**
 * `astrid run --script FILE`: one agent turn end to end with the scripted provider, the built-in tools and
 * the real interceptor over the configured store, for reproducible runs and CI. Approvals come from an
 * answers file when one is given; without one nobody can be asked, so such actions are deferred to the
 * queue (never allowed). Model calls are paid from the session and workspace budgets exactly as in
 * `astrid chat` (the same `runTurn` charging, the same `modelCallBudget`): a model priced in
 * `[llm.prices.scripted]` reserves before each call and commits what the script's usage cost.
 */
import { Effect, Either, Layer, ParseResult, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { modelCallBudget, runTurn } from "../../../application/agent/agentLoop.js"
import { EventLog } from "../../../application/eventLog.js"
import { ApprovalChannel, type ApprovalAnswer, type ApprovalChannelApi, ApprovalUnavailable } from "../../../application/ports/approvalChannel.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { LlmProvider } from "../../../application/ports/llmProvider.js"
import { type Decision, SecurityInterceptor, type SecurityInterceptorApi } from "../../../application/security/securityInterceptor.js"
import type { ActionRequest } from "../../../domain/security/action.js"
import { IdsLive, uuidv7 } from "../../../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../../../infrastructure/event-store/memoryEventStore.js"
import { loadScript, makeScriptedProvider } from "../../../infrastructure/llm/scriptedProvider.js"
import { loadLlmSettings } from "../../../infrastructure/config/llmConfig.js"
import { agentTools } from "../agentTools.js"
import { asCli, CliError, usageError } from "../cliError.js"
import { dim, green, printJson, printLines, red } from "../output.js"
import { currentPrincipal } from "../principal.js"
import { printable } from "../printable.js"
import { config, openStore, storeExists } from "../runtime.js"
import { securityFor } from "../securityRuntime.js"
import { checkResumable, sessionWorkspace } from "../sessionAccess.js"

export const DEFAULT_PROMPT = "run the script"
const APPROVER = "answers-file"

/** One entry of an answers file; `match`, when present, must occur in the action's summary. */
const ScriptedAnswer = Schema.Struct({
  answer: Schema.Literal("once", "session", "workspace", "always", "deny"),
  reason: Schema.optional(Schema.String),
  match: Schema.optional(Schema.String)
})
type ScriptedAnswer = typeof ScriptedAnswer.Type
const AnswersFile = Schema.parseJson(Schema.Array(ScriptedAnswer))

const loadAnswers = (path: string) =>
  Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (e) => usageError(`could not read the answers file ${path} (${e instanceof Error ? e.message : String(e)}); check the path`)
    })
    const decoded = Schema.decodeUnknownEither(AnswersFile)(text)
    if (Either.isLeft(decoded)) {
      const detail = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
      const where = detail === undefined || detail.path.length === 0 ? "" : ` at ${detail.path.join(".")}`
      return yield* Effect.fail(
        usageError(`${path} is not a valid answers file${where}: ${detail?.message ?? "invalid"}; expected a JSON array of {"answer": "once"|"session"|"workspace"|"always"|"deny", "reason"?, "match"?}`)
      )
    }
    return decoded.right
  })

const toAnswer = (a: ScriptedAnswer): ApprovalAnswer => {
  switch (a.answer) {
    case "once":
      return { _tag: "AllowOnce" }
    case "session":
      return { _tag: "AllowSession" }
    case "workspace":
      return { _tag: "AllowWorkspace" }
    case "always":
      return { _tag: "AllowAlways" }
    case "deny":
      return { _tag: "Deny", reason: a.reason ?? null }
  }
}

/**
 * Answers in file order. An answer whose `match` does not fit the action is kept for a later one, and this
 * action is deferred: a reproducible run never lets an answer meant for one action approve another.
 */
const answersChannel = (answers: ReadonlyArray<ScriptedAnswer>): ApprovalChannelApi => {
  let next = 0
  return {
    name: APPROVER,
    ask: (prompt) =>
      Effect.suspend(() => {
        const entry = answers[next]
        if (entry === undefined) return Effect.fail(new ApprovalUnavailable({ message: "the answers file has no answer left" }))
        if (entry.match !== undefined && !prompt.summary.includes(entry.match)) {
          return Effect.fail(new ApprovalUnavailable({ message: `answer ${next + 1} is for an action matching '${entry.match}'` }))
        }
        next += 1
        return Effect.succeed({ answer: toAnswer(entry), approver: APPROVER })
      })
  }
}

interface DecisionRecord {
  readonly actionId: string
  readonly action: string
  readonly decision: Decision["_tag"]
  readonly detail: string
}

const describeRequest = (r: ActionRequest): string => {
  const target =
    "path" in r ? r.path : "command" in r ? r.command : "url" in r ? r.url : "destination" in r ? r.destination : "tool" in r ? `${r.server}/${r.tool}` : ""
  return target === "" ? r._tag : `${r._tag} ${target}`
}

const record = (request: ActionRequest, d: Decision): DecisionRecord => {
  switch (d._tag) {
    case "Allowed":
      return { actionId: d.actionId, action: d.action.summary, decision: d._tag, detail: d.proof }
    case "Denied":
      return { actionId: d.actionId, action: describeRequest(request), decision: d._tag, detail: `${d.stage}: ${d.reason}` }
    case "Deferred":
      return { actionId: d.actionId, action: describeRequest(request), decision: d._tag, detail: `request ${d.requestId} (${d.reason.replace(/_/g, " ")})` }
  }
}

/** The interceptor, noting every decision it reaches in this run. */
const recordingInterceptor = (inner: SecurityInterceptorApi, decisions: Array<DecisionRecord>): SecurityInterceptorApi => ({
  ...inner,
  guard: (proposal, execute) => Effect.tap(inner.guard(proposal, execute), ({ decision }) => Effect.sync(() => decisions.push(record(proposal.request, decision))))
})

const line = (d: DecisionRecord): string => {
  // The action and its detail carry the model's words: shown, never sent to the terminal as controls.
  const text = printable(`${d.action}: ${d.decision.toLowerCase()} (${d.detail})`)
  return d.decision === "Allowed" ? green(text) : d.decision === "Denied" ? red(text) : text
}

export interface RunArgs {
  readonly script: string
  readonly answers?: string
  readonly prompt?: string
  readonly session?: string
  readonly workspace?: string
  readonly json: boolean
}

export const run = (args: RunArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const turns = yield* loadScript(args.script).pipe(
        Effect.mapError((e) => usageError(e.message.split("\n").filter((l) => l.trim() !== "").join(" ")))
      )
      const answers = args.answers === undefined ? undefined : yield* loadAnswers(args.answers)
      const cfg = yield* config
      const sessionId = args.session ?? uuidv7(Date.now())
      // Resuming: the session's owner, state and workspace come first, from its own events; a session
      // continues only in its own workspace (its real path names the workspace budget stream).
      const resumed =
        args.session !== undefined && storeExists(cfg)
          ? yield* Effect.scoped(Effect.flatMap(openStore(cfg, "read"), (store) => checkResumable(sessionId, currentPrincipal()).pipe(Effect.provideService(EventStore, store))))
          : yield* checkResumable(sessionId, currentPrincipal()).pipe(Effect.provideService(EventStore, makeMemoryEventStore()))
      const workspaceRoot = yield* sessionWorkspace(sessionId, resumed, args.workspace)
      const security = yield* securityFor(cfg, workspaceRoot)
      const { interceptor, store, log } = security
      const provider = yield* makeScriptedProvider(turns, args.script)
      const decisions: Array<DecisionRecord> = []
      const notes: Array<string> = []

      const services = Layer.mergeAll(
        Layer.succeed(EventLog, log),
        Layer.succeed(EventStore, store),
        IdsLive,
        Layer.succeed(LlmProvider, provider),
        Layer.succeed(SecurityInterceptor, recordingInterceptor(interceptor, decisions)),
        answers === undefined ? Layer.empty : Layer.succeed(ApprovalChannel, answersChannel(answers))
      )
      const { llm, agents } = yield* asCli(loadLlmSettings(cfg.configPath, { ...process.env, ASTRID_LLM_PROVIDER: "scripted", ASTRID_MODEL: "scripted" }))
      const { tools, system } = yield* agentTools({ principal: currentPrincipal(), sessionId, workspaceRoot, llm, agents, security, services })
      const result = yield* runTurn({
        principal: currentPrincipal(),
        sessionId,
        workspaceRoot,
        userInput: args.prompt ?? DEFAULT_PROMPT,
        tools,
        system,
        model: "scripted",
        maxTokens: llm.maxTokens,
        prices: llm.prices,
        llmBudget: modelCallBudget(security, workspaceRoot),
        observer: { onNote: (text) => notes.push(text) }
      }).pipe(
        Effect.provide(services),
        Effect.mapError((e) => new CliError({ message: `the run of ${args.script} in session ${sessionId} failed: ${e.message}`, exitCode: 1 }))
      )

      if (args.json) {
        return yield* printJson({ sessionId, text: result.text, steps: result.steps, stopReason: result.stopReason, decisions, notes })
      }
      yield* printLines(
        ...decisions.map(line),
        ...notes.map((n) => dim(`(${printable(n)})`)),
        ...(result.text === "" ? [] : [printable(result.text)]),
        dim(`session ${sessionId}: ${result.steps} model step(s), stopped by ${result.stopReason}`)
      )
    })
  )
