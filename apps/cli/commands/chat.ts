/**
 * `astrid chat`: a conversation with an agent whose every tool call goes through the SecurityInterceptor.
 *
 * - Interactive (the default): the model's answer streams as rendered markdown; a tool call that needs a
 *   human shows the approval prompt (terminalApproval.ts); `/help`, `/budget`, `/tokens`, `/approvals`,
 *   `/session`, `/quit`. Ctrl-C during a turn cancels it (the cancellation is recorded); Ctrl-C twice, Ctrl-D
 *   or `/quit` at the prompt leaves.
 * - `--print "PROMPT"`: one turn, no prompt. Nobody can be asked, so actions needing approval are deferred
 *   to the queue, never allowed. The answer goes to stdout; tool lines to stderr (or all of it as `--json`).
 * - `--session ID` resumes a session with its whole history, rebuilt from its events.
 * - Standard input that is not a terminal is read as one message per line; approvals are then deferred.
 */
import { Cause, Effect, Exit, Fiber, Layer, Option } from "effect"
import { resolve } from "node:path"
import * as readline from "node:readline"
import { DEFAULT_MAX_STEPS, makeSessionMemory, modelCallBudget, runTurn, type TurnObserver, type TurnResult } from "../../../application/agent/agentLoop.js"
import { loadConversation } from "../../../application/agent/conversation.js"
import { EventLog } from "../../../application/eventLog.js"
import { ApprovalChannel } from "../../../application/ports/approvalChannel.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { LlmProvider, type LlmProviderApi } from "../../../application/ports/llmProvider.js"
import { type Decision, SecurityInterceptor } from "../../../application/security/securityInterceptor.js"
import type { ToolResult } from "../../../application/tools/runTool.js"
import { makeRunContext } from "../../../application/tools/tool.js"
import { sessionStream } from "../../../domain/streams.js"
import { type LlmSettings, loadLlmSettings, PROVIDERS, type ProviderKind } from "../../../infrastructure/config/llmConfig.js"
import { IdsLive, uuidv7 } from "../../../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../../../infrastructure/event-store/memoryEventStore.js"
import { makeProvider } from "../../../infrastructure/llm/providerFactory.js"
import { agentTools } from "../agentTools.js"
import { makeMarkdownStream } from "../chat/markdown.js"
import { printable } from "../printable.js"
import { pushInterruptHandler } from "../signals.js"
import { asCli, CliError, usageError } from "../cliError.js"
import { currentPrincipal } from "../principal.js"
import { config, openStore, storeExists } from "../runtime.js"
import { securityFor } from "../securityRuntime.js"
import { ensureRuntimeKey } from "../runtimeKey.js"
import { checkResumable, sessionWorkspace } from "../sessionAccess.js"
import { makeTerminalApprovalChannel } from "../terminalApproval.js"

export interface ChatArgs {
  readonly session?: string | undefined
  readonly print?: string | undefined
  readonly workspace?: string | undefined
  readonly script?: string | undefined
  readonly provider?: string | undefined
  readonly model?: string | undefined
  readonly maxSteps?: number | undefined
  readonly json: boolean
}

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/

const useColour = (stream: NodeJS.WriteStream): boolean => stream.isTTY === true && process.env["NO_COLOR"] === undefined
const paint = (on: boolean, code: string, s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s)

const oneLine = (value: unknown, max = 120): string => {
  const text = typeof value === "string" ? value : JSON.stringify(value)
  const flat = printable(text ?? "").replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

/** One line for a decision, as the chat shows it. */
export const decisionLine = (result: ToolResult): { readonly text: string; readonly tone: "ok" | "bad" | "wait" } => {
  const d: Decision | null = result.decision
  if (d === null) return { text: `not run: ${oneLine(result.output, 200)}`, tone: "bad" }
  switch (d._tag) {
    case "Allowed":
      return { text: `allowed (${d.proof})${result.ok ? "" : `, failed: ${oneLine(result.output, 160)}`}`, tone: result.ok ? "ok" : "bad" }
    case "Denied":
      return { text: `denied at ${d.stage}: ${d.reason}${d.remedy === null ? "" : ` (${d.remedy})`}`, tone: "bad" }
    case "Deferred":
      return { text: `deferred: request ${d.requestId} waits in the queue (${d.reason.replace(/_/g, " ")}); approve with 'astrid approvals approve ${d.requestId}'`, tone: "wait" }
  }
}

const preview = (output: string, lines = 3): string => {
  const all = printable(output).split("\n")
  const shown = all.slice(0, lines).map((l) => (l.length > 160 ? `${l.slice(0, 159)}…` : l))
  return `${shown.join("\n")}${all.length > lines ? `\n… ${all.length - lines} more line(s)` : ""}`
}

interface DecisionRecord {
  readonly tool: string
  readonly input: unknown
  readonly decision: Decision["_tag"] | "NotRun"
  readonly actionId: string | null
  readonly detail: string
  readonly ok: boolean
}

const resolveSettings = (args: ChatArgs) =>
  Effect.gen(function* () {
    const cfg = yield* config
    const env = { ...process.env }
    if (args.provider !== undefined) {
      if (!(PROVIDERS as ReadonlyArray<string>).includes(args.provider)) {
        return yield* Effect.fail(usageError(`--provider ${args.provider} is not a provider; use one of ${PROVIDERS.join(", ")}`))
      }
      env["ASTRID_LLM_PROVIDER"] = args.provider
    }
    if (args.script !== undefined) {
      env["ASTRID_LLM_PROVIDER"] = "scripted" satisfies ProviderKind
      env["ASTRID_LLM_SCRIPT"] = resolve(args.script)
    }
    if (args.model !== undefined) env["ASTRID_MODEL"] = args.model
    const { llm, agents } = yield* asCli(loadLlmSettings(cfg.configPath, env))
    const priced = Object.prototype.hasOwnProperty.call(llm.prices, llm.model)
    // Local models (Ollama) and the scripted provider cost nothing unless a price says otherwise. Any other
    // model must have a price: without one its calls could not be held to the budget (fail closed).
    const local = llm.provider === "ollama" || llm.provider === "scripted"
    if (!priced && !local) {
      return yield* Effect.fail(
        usageError(
          `the model ${llm.model} has no price, so its calls could not be held to the budget; add [llm.prices."${llm.model}"] with input_per_million and output_per_million (micro-dollars per million tokens; 0 for a free or local model) to ${cfg.configPath}`
        )
      )
    }
    const prices = priced ? llm.prices : { ...llm.prices, [llm.model]: { inputPerMillion: 0, outputPerMillion: 0 } }
    const settings: LlmSettings = { ...llm, prices, maxSteps: args.maxSteps ?? llm.maxSteps }
    return { cfg, llm: settings, agents, env }
  })

export const chat = (args: ChatArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      if (args.session !== undefined && !SESSION_ID.test(args.session)) {
        return yield* Effect.fail(usageError(`'${args.session}' is not a session id: use letters, digits and . _ : @ - (at most 128 characters)`))
      }
      if (args.print !== undefined && args.print.trim() === "") return yield* Effect.fail(usageError("--print needs a non-empty prompt"))
      if (args.json && args.print === undefined) return yield* Effect.fail(usageError("--json needs --print: an interactive chat prints for people"))
      const { cfg, llm, agents } = yield* resolveSettings(args)
      const provider = yield* asCli(makeProvider(llm, process.env))
      const principal = currentPrincipal()
      const sessionId = args.session ?? uuidv7(Date.now())
      // Resuming: the session's owner, state and workspace come first, from its own events.
      const resumed =
        args.session !== undefined && storeExists(cfg)
          ? yield* Effect.scoped(Effect.flatMap(openStore(cfg, "read"), (store) => checkResumable(sessionId, principal).pipe(Effect.provideService(EventStore, store))))
          : yield* checkResumable(sessionId, principal).pipe(Effect.provideService(EventStore, makeMemoryEventStore()))
      const workspaceRoot = yield* sessionWorkspace(sessionId, resumed, args.workspace)
      const createdKey = yield* ensureRuntimeKey(cfg)
      const security = yield* securityFor(cfg, workspaceRoot)
      const llmBudget = modelCallBudget(security, workspaceRoot)
      const wsStream = llmBudget.workspaceStream

      const interactive = args.print === undefined
      const terminal = process.stdin.isTTY === true && process.stdout.isTTY === true
      const context = yield* makeRunContext(workspaceRoot)
      const memory = makeSessionMemory(sessionId)
      const base = Layer.mergeAll(
        Layer.succeed(EventLog, security.log),
        Layer.succeed(EventStore, security.store),
        IdsLive,
        Layer.succeed(LlmProvider, provider satisfies LlmProviderApi),
        Layer.succeed(SecurityInterceptor, security.interceptor)
      )
      // Only a person at a terminal can be asked; everywhere else the interceptor defers.
      const services =
        interactive && terminal
          ? Layer.merge(base, Layer.succeed(ApprovalChannel, makeTerminalApprovalChannel({ input: process.stdin, output: process.stdout }, { approver: principal })))
          : base

      const { tools, system, abandoned } = yield* agentTools({ principal, sessionId, workspaceRoot, llm, agents, security, services })

      const out = process.stdout
      const info = args.print === undefined ? process.stdout : process.stderr
      const colour = useColour(info as NodeJS.WriteStream)
      const say = (text: string) => void (args.json ? undefined : info.write(`${text}\n`))
      if (abandoned.length > 0) {
        say(paint(colour, "2", `settled ${abandoned.length} sub-agent(s) left unfinished by an interrupted process (their sessions ended, unspent budget released)`))
      }
      if (createdKey !== null) say(paint(colour, "2", `created the runtime signing key ${createdKey} in ${cfg.home}/keys (it signs Allow Always tokens and checkpoints)`))
      const decisions: Array<DecisionRecord> = []

      const turnOnce = (userInput: string) =>
        Effect.gen(function* () {
          const md = makeMarkdownStream(!args.json && useColour(out), Math.min(out.columns ?? 100, 120))
          const inputs = new Map<string, unknown>()
          const spent = { inputTokens: 0, outputTokens: 0, costMicros: 0 }
          let atLineStart = true
          const write = (text: string) => {
            if (args.json || text === "") return
            out.write(text)
            atLineStart = text.endsWith("\n")
          }
          const observer: TurnObserver = {
            // The model's text is printed, never interpreted by the terminal.
            onText: (delta) => write(md.push(printable(delta))),
            onToolCall: (call) => {
              inputs.set(call.id, call.input)
              write(md.flush())
              if (!atLineStart) write("\n")
              say(paint(colour, "36", `⏺ ${printable(call.name)} ${oneLine(call.input)}`))
            },
            onToolResult: (call, result) => {
              const line = decisionLine(result)
              decisions.push({
                tool: call.name,
                input: inputs.get(call.id),
                decision: result.decision?._tag ?? "NotRun",
                actionId: result.decision?.actionId ?? null,
                detail: line.text,
                ok: result.ok
              })
              say(paint(colour, line.tone === "ok" ? "32" : line.tone === "bad" ? "31" : "33", `  ${printable(line.text)}`))
              if (result.decision?._tag === "Allowed" && result.output !== "") say(paint(colour, "2", preview(result.output).replace(/^/gm, "  │ ")))
            },
            onNote: (text) => say(paint(colour, "2", `  (${printable(text)})`)),
            onUsage: (u) => {
              spent.inputTokens += u.inputTokens
              spent.outputTokens += u.outputTokens
              spent.costMicros += u.costMicros
            }
          }
          const result = yield* runTurn({
            principal,
            sessionId,
            workspaceRoot,
            userInput,
            tools,
            model: llm.model,
            maxSteps: llm.maxSteps,
            maxTokens: llm.maxTokens,
            ...(llm.contextTokens === null ? {} : { contextTokens: llm.contextTokens }),
            system,
            prices: llm.prices,
            context,
            memory,
            observer,
            llmBudget
          }).pipe(Effect.provide(services))
          write(md.flush())
          if (!atLineStart) write("\n")
          if (interactive) {
            say(paint(colour, "2", `  ${result.steps} step(s) · ${spent.inputTokens + spent.outputTokens} tokens · $${(spent.costMicros / 1e6).toFixed(4)}`))
          }
          return result
        })

      if (!interactive) {
        const exit = yield* Effect.exit(turnOnce(args.print ?? ""))
        if (Exit.isFailure(exit)) {
          const error = Cause.failureOption(exit.cause)
          const message = Option.isSome(error) ? error.value.message : Cause.pretty(exit.cause).split("\n")[0]
          return yield* Effect.fail(new CliError({ message: `the turn in session ${sessionId} failed: ${message}`, exitCode: 1 }))
        }
        const result: TurnResult = exit.value
        if (args.json) {
          out.write(`${JSON.stringify({ sessionId, text: result.text, steps: result.steps, stopReason: result.stopReason, decisions }, null, 2)}\n`)
          return
        }
        say(paint(colour, "2", `session ${sessionId}: ${result.steps} model step(s), stopped by ${result.stopReason}; resume with 'astrid chat --session ${sessionId}'`))
        return
      }

      yield* interactiveLoop({ sessionId, resumed, llm, workspaceRoot, terminal, colour, say, principal, security, wsStream, turnOnce })
    })
  )

interface LoopDeps {
  readonly sessionId: string
  readonly resumed: "new" | { readonly messages: number }
  readonly llm: LlmSettings
  readonly workspaceRoot: string
  readonly terminal: boolean
  readonly colour: boolean
  readonly principal: string
  readonly say: (text: string) => void
  readonly security: Effect.Effect.Success<ReturnType<typeof securityFor>>
  readonly wsStream: string
  readonly turnOnce: (input: string) => Effect.Effect<TurnResult, { readonly message: string }>
}

const HELP = [
  "/help        this list",
  "/budget      what this session and workspace have spent, and the limits",
  "/tokens      your capability tokens (Allow Always answers)",
  "/approvals   your deferred actions waiting in the queue",
  "/session     this session's id and how to resume it",
  "/quit        leave (also /exit, Ctrl-D, or Ctrl-C twice)",
  "Ctrl-C during a turn cancels the turn; the cancellation is recorded."
]

const dollars = (micros: number) => `$${(micros / 1e6).toFixed(4)}`

const slashCommand = (line: string, d: LoopDeps) =>
  Effect.gen(function* () {
    const [command] = line.trim().split(/\s+/)
    switch (command) {
      case "/help":
        d.say(HELP.join("\n"))
        return "continue" as const
      case "/quit":
      case "/exit":
        return "quit" as const
      case "/session":
        d.say(`session ${d.sessionId} (model ${d.llm.model} via ${d.llm.provider}); resume with 'astrid chat --session ${d.sessionId}'`)
        return "continue" as const
      case "/budget": {
        const limits = d.security.settings.budget
        const session = yield* asCli(d.security.budget.snapshot(sessionStream(d.sessionId)))
        const workspace = yield* asCli(d.security.budget.snapshot(d.wsStream))
        d.say(
          [
            `session    spent ${dollars(session.spentMicros)}, held ${dollars(session.reservedMicros)} of ${dollars(limits.perSessionMicros)}`,
            `workspace  spent ${dollars(workspace.spentMicros)}, held ${dollars(workspace.reservedMicros)} of ${dollars(limits.perWorkspaceMicros)}`,
            `per action at most ${dollars(limits.perActionMicros)}`
          ].join("\n")
        )
        return "continue" as const
      }
      case "/tokens": {
        const records = yield* asCli(d.security.tokens.list(d.principal))
        const active = records.filter((r) => r.status === "active")
        d.say(
          active.length === 0
            ? `no active capability tokens for ${d.principal}`
            : active.map((r) => `${r.token.tokenId}  ${r.token.permissions.join(",")}  ${r.token.resource}  until ${r.token.expiresAt}`).join("\n")
        )
        return "continue" as const
      }
      case "/approvals": {
        const pending = yield* asCli(d.security.interceptor.pendingFor(d.principal))
        d.say(
          pending.length === 0
            ? "no deferred actions waiting"
            : [...pending.map((q) => `${q.requestId}  [${q.risk}] ${q.summary}  (session ${q.sessionId})`), "approve with 'astrid approvals approve ID' in another terminal"].join("\n")
        )
        return "continue" as const
      }
      default:
        d.say(`unknown command ${command}; /help lists the commands`)
        return "continue" as const
    }
  })

/** Reads one line: a fresh readline per line on a terminal, so the approval prompt owns stdin during a turn. */
const makeLineReader = (terminal: boolean, history: Array<string>) => {
  if (!terminal) {
    const rl = readline.createInterface({ input: process.stdin, terminal: false })
    const iterator = rl[Symbol.asyncIterator]()
    return {
      next: (): Promise<string | null> => iterator.next().then((r) => (r.done === true ? null : String(r.value))),
      close: () => rl.close()
    }
  }
  let interrupts = 0
  return {
    next: (): Promise<string | null> =>
      new Promise((resolveLine) => {
        const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true, history: [...history], historySize: 200 })
        let done = false
        const finish = (value: string | null) => {
          if (done) return
          done = true
          rl.close()
          resolveLine(value)
        }
        rl.on("SIGINT", () => {
          interrupts += 1
          if (interrupts >= 2) return finish(null)
          process.stdout.write("\n(press Ctrl-C again, Ctrl-D or type /quit to leave)\n")
          rl.prompt()
        })
        rl.on("close", () => finish(null))
        rl.setPrompt("you › ")
        rl.prompt()
        rl.once("line", (line) => {
          interrupts = 0
          if (line.trim() !== "") history.unshift(line)
          finish(line)
        })
      }),
    close: () => undefined
  }
}

const interactiveLoop = (d: LoopDeps) =>
  Effect.gen(function* () {
    const banner =
      d.resumed === "new"
        ? `Astrid chat: new session ${d.sessionId}`
        : `Astrid chat: resumed session ${d.sessionId} (${d.resumed.messages} messages rebuilt from the log)`
    d.say(paint(d.colour, "1", banner))
    d.say(
      paint(
        d.colour,
        "2",
        `model ${d.llm.model} via ${d.llm.provider} · workspace ${d.workspaceRoot} · mode ${d.security.settings.workspaceMode} · ${d.terminal ? "approvals asked here" : "no terminal: actions needing approval are deferred"} · /help`
      )
    )
    if (d.resumed !== "new") {
      // Where the conversation stopped: the last thing said on each side.
      const conversation = yield* loadConversation(d.sessionId).pipe(Effect.provideService(EventStore, d.security.store), asCli)
      const lastOf = (role: "user" | "assistant") => {
        for (let i = conversation.length - 1; i >= 0; i--) {
          const m = conversation[i]
          if (m?.role !== role) continue
          const text = typeof m.content === "string" ? m.content : m.content.flatMap((p) => (p.type === "text" ? [p.text] : [])).join(" ")
          if (text.trim() !== "") return oneLine(text, 200)
        }
        return undefined
      }
      const user = lastOf("user")
      const assistant = lastOf("assistant")
      if (user !== undefined) d.say(paint(d.colour, "2", `  last you said: ${user}`))
      if (assistant !== undefined) d.say(paint(d.colour, "2", `  last the agent said: ${assistant}`))
    }
    const history: Array<string> = []
    const reader = makeLineReader(d.terminal, history)
    const loop = Effect.gen(function* () {
      for (;;) {
        const line = yield* Effect.promise(() => reader.next())
        if (line === null) break
        const text = line.trim()
        if (text === "") continue
        if (text.startsWith("/")) {
          const next = yield* slashCommand(text, d)
          if (next === "quit") break
          continue
        }
        if (!d.terminal) d.say(paint(d.colour, "2", `you › ${text}`))
        const fiber = yield* Effect.fork(d.turnOnce(text))
        const onSigint = () => {
          d.say(paint(d.colour, "33", "\n^C cancelling the turn…"))
          Effect.runFork(Fiber.interrupt(fiber))
        }
        const release = pushInterruptHandler(onSigint)
        const exit = yield* Fiber.await(fiber).pipe(Effect.ensuring(Effect.sync(release)))
        if (Exit.isSuccess(exit)) {
          const r = exit.value
          if (r.stopReason !== "end_turn") d.say(paint(d.colour, "2", `(turn ended: ${r.stopReason.replace(/_/g, " ")} after ${r.steps} model step(s))`))
          continue
        }
        if (Exit.isInterrupted(exit)) {
          d.say(paint(d.colour, "33", "turn cancelled; the cancellation is recorded in the session"))
          continue
        }
        // A failed turn (the model unreachable, a store or interceptor error) ends that turn only; what
        // was recorded stays recorded, and the person decides whether to go on.
        const failure = Cause.failureOption(exit.cause)
        const message = Option.isSome(failure) ? failure.value.message : (Cause.pretty(exit.cause).split("\n")[0] ?? "unknown error")
        const isModel = Option.isSome(failure) && "_tag" in failure.value && failure.value._tag === "LlmError"
        d.say(paint(d.colour, "31", `${isModel ? "the model call failed" : "the turn failed"}: ${message}`))
      }
    })
    yield* Effect.ensuring(loop, Effect.sync(() => reader.close()))
    d.say(paint(d.colour, "2", `bye; resume with 'astrid chat --session ${d.sessionId}'`))
  })

export const DEFAULTS = { maxSteps: DEFAULT_MAX_STEPS }
