/**
 * The agentic loop: one user turn of a session. The user's input is recorded (trusted), then the model is
 * called step by step; every tool call it proposes goes through `runTool`, so through the
 * SecurityInterceptor, and its result goes back to the model marked as untrusted data. The turn ends when
 * the model stops without asking for tools, or at `maxSteps` model calls. Every message the model is sent is
 * recorded first, so `conversation.ts` rebuilds the conversation from the log alone (the mapping is
 * described there). Interrupting the fiber (Ctrl-C) cancels the turn and records why as a "system"
 * message; tool calls left without results get a "cancelled" result, so the resumed conversation stays a
 * valid one for every provider. A failed model call (LlmError) ends the turn with that error after a
 * "system" note saying so; a failed store or interceptor ends it without one (recording would fail too).
 */
import { Clock, Effect, Either, Exit, Schema, Stream } from "effect"
import { LlmUsageRecorded } from "../../domain/events/budgetEvents.js"
import { MessageRecorded, SessionStarted } from "../../domain/events/sessionEvents.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import type { Classification } from "../../domain/envelope.js"
import { formatMicros } from "../../domain/security/budget.js"
import { sessionStream } from "../../domain/streams.js"
import { type PriceTable, usageCost } from "../../domain/modelCosts.js"
import { type EventDraft, EventLog } from "../eventLog.js"
import { EventStore } from "../ports/eventStore.js"
import { Ids } from "../ports/ids.js"
import { LlmProvider, type LlmMessage, type LlmRequest, type StopReason } from "../ports/llmProvider.js"
import { decodeRecorded } from "../streamState.js"
import { fitContext, fixedTokens } from "./contextWindow.js"
import type { BudgetLimits, BudgetServiceApi, Reservation } from "../security/budgetService.js"
import { workspaceStreamOf } from "../security/securityInterceptor.js"
import { runTool, type ToolResult } from "../tools/runTool.js"
import { type AnyTool, makeRunContext, type RunContext } from "../tools/tool.js"
import {
  AssistantContent,
  assistantMessage,
  conversationFromEvents,
  encodeAssistant,
  encodeToolResults,
  type ToolResultsContent,
  toolResultsMessage,
  wrapUntrusted
} from "./conversation.js"

export const DEFAULT_MAX_STEPS = 20
export const DEFAULT_MAX_TOKENS = 8192

/** What a frontend sees of a turn while it runs; every callback is optional and must not throw. */
export interface TurnObserver {
  /** A model step begins (1-based). */
  readonly onStep?: (step: number) => void
  /** A piece of the model's text, as it streams. */
  readonly onText?: (delta: string) => void
  /** The model proposed a tool call; it goes to the interceptor next. */
  readonly onToolCall?: (call: { readonly id: string; readonly name: string; readonly input: unknown }) => void
  /** The interceptor's decision and, when the tool ran, its output. */
  readonly onToolResult?: (call: { readonly id: string; readonly name: string }, result: ToolResult) => void
  /** A note the loop recorded (why a turn stopped). */
  readonly onNote?: (text: string) => void
  /** The usage of one model call and its cost in micro-dollars, as recorded in LlmUsageRecorded. */
  readonly onUsage?: (usage: { readonly inputTokens: number; readonly outputTokens: number; readonly costMicros: number }) => void
}

/**
 * Model calls paid from the budget: before each call the worst case (the prompt's estimated tokens plus
 * `maxTokens` of output, at the model's price) is reserved on the session and workspace streams like any
 * other action's cost; after the call the actual cost is committed in full and the rest released. A call
 * that cost more than was reserved is charged the difference at once (the commit names the overrun, and a
 * note says so); a call that does not fit, also because an overrun used the budget up, stops the turn. A
 * model with no price costs nothing and reserves nothing.
 */
export interface LlmBudget {
  readonly service: BudgetServiceApi
  readonly limits: BudgetLimits
  readonly workspaceStream: string
}

/** What `modelCallBudget` needs of a frontend's security wiring. */
export interface ModelCallBudgetSource {
  readonly budget: BudgetServiceApi
  readonly settings: { readonly budget: BudgetLimits }
  readonly crypto: { readonly blake3Hex: (text: string) => string }
}

/**
 * The budget a turn's model calls are paid from in the workspace `canonicalRoot` (its real path): the
 * limits and the workspace stream the interceptor charges tool actions to. Every frontend builds its
 * LlmBudget here, so `astrid chat` and `astrid run` charge model calls alike.
 */
export const modelCallBudget = (security: ModelCallBudgetSource, canonicalRoot: string): LlmBudget => ({
  service: security.budget,
  limits: security.settings.budget,
  workspaceStream: workspaceStreamOf(security.crypto.blake3Hex, canonicalRoot)
})

export interface TurnInput {
  readonly principal: string
  readonly sessionId: string
  readonly workspaceRoot: string
  readonly userInput: string
  readonly tools: ReadonlyArray<AnyTool>
  readonly model: string
  /** Model calls allowed in this turn (default 20). */
  readonly maxSteps?: number
  readonly maxTokens?: number
  readonly system?: string
  /** Prices for LlmUsageRecorded; a model missing from it costs 0 (default: empty table). */
  readonly prices?: PriceTable
  /** The session's shell state; pass the same one to every turn to keep bash's working directory. */
  readonly context?: RunContext
  /**
   * How far the user message may be trusted: "trusted" (default) for a person's own words; a sub-agent's
   * task, written by its parent model, is "pre-authorized", never the person's authority.
   */
  readonly userClassification?: Classification
  /** The session that spawned this one (a sub-agent's parent), recorded in SessionStarted. */
  readonly parentSessionId?: string
  /**
   * The model's context window in tokens: older exchanges that do not fit are left out of the request
   * (never out of the log), and a note says so. Without it every message is sent.
   */
  readonly contextTokens?: number
  readonly observer?: TurnObserver
  /** The session as this process last read it (see SessionMemory); without it the whole stream is read. */
  readonly memory?: SessionMemory
  /** Debit model calls from the budget (see LlmBudget); without it usage is only recorded. */
  readonly llmBudget?: LlmBudget
}

/** Why the turn ended: the model's own stop, or the loop's step limit. */
export type TurnStopReason = Exclude<StopReason, "tool_use"> | "max_steps" | "budget"

export interface TurnResult {
  /** The text of the model's last step. */
  readonly text: string
  /** Model calls made in this turn. */
  readonly steps: number
  readonly stopReason: TurnStopReason
}

interface Collected {
  readonly text: string
  readonly toolCalls: ReadonlyArray<AssistantContent["toolCalls"][number]>
  readonly inputTokens: number
  readonly outputTokens: number
  readonly stop: StopReason | null
}

const emptyCollected: Collected = { text: "", toolCalls: [], inputTokens: 0, outputTokens: 0, stop: null }

/**
 * What one process remembers of a session between turns: the events the conversation is rebuilt from and
 * how far the stream was read. Pass the same memory to every turn of a session so that each turn reads only
 * the events written since the last one (by this process or any other), instead of the whole stream.
 */
export interface SessionMemory {
  readonly sessionId: string
  readonly events: Array<AstridEvent>
  nextRevision: number
  /** Model-call reservations (reservation id to action id) not yet committed or released. */
  readonly openModelReservations: Map<string, string>
}

export const makeSessionMemory = (sessionId: string): SessionMemory => ({ sessionId, events: [], nextRevision: 0, openModelReservations: new Map() })

/** The events a conversation is rebuilt from; everything else in a session stream is the security record. */
const CONVERSATION_TYPES: ReadonlySet<string> = new Set(["SessionStarted", "MessageRecorded"])
const BUDGET_TYPES: ReadonlySet<string> = new Set(["BudgetReserved", "BudgetCommitted", "BudgetReleased"])
/** Model calls reserve under action ids with this prefix. */
export const MODEL_CALL_PREFIX = "llm-"

/**
 * An upper bound on a request's input tokens: its UTF-8 bytes. Tokenizers for text put at least one byte
 * in a token, so the bound holds for any script (English runs near 4 bytes a token, so the reservation is
 * generous; the unused part is released as soon as the call reports its usage).
 */
const estimateInputTokens = (request: LlmRequest): number => {
  let bytes = Buffer.byteLength(request.system ?? "", "utf8")
  for (const m of request.messages) bytes += Buffer.byteLength(typeof m.content === "string" ? m.content : JSON.stringify(m.content), "utf8")
  for (const t of request.tools ?? []) bytes += Buffer.byteLength(t.name + t.description + JSON.stringify(t.inputSchema), "utf8")
  return bytes
}

const decodeAssistantContent = Schema.decodeUnknownEither(Schema.parseJson(AssistantContent))

/** Tool calls of the last assistant message that have no tool results after them. */
export const openToolCalls = (history: ReadonlyArray<AstridEvent>): ReadonlyArray<AssistantContent["toolCalls"][number]> => {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i]
    if (e === undefined || e._tag !== "MessageRecorded") continue
    // A runtime notice (an untrusted "user" message, e.g. a deferred action's outcome) can land while a
    // tool round is open; it does not close the round.
    if (e.role === "user" && e.inputClassification === "untrusted") continue
    if (e.role === "tool" || e.role === "user") return []
    if (e.role === "assistant") {
      const decoded = decodeAssistantContent(e.content)
      return Either.isRight(decoded) ? decoded.right.toolCalls : []
    }
  }
  return []
}

export const runTurn = (input: TurnInput) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const store = yield* EventStore
    const ids = yield* Ids
    const provider = yield* LlmProvider
    const stream = sessionStream(input.sessionId)
    const maxSteps = Math.max(1, input.maxSteps ?? DEFAULT_MAX_STEPS)
    const prices = input.prices ?? {}
    const context = input.context ?? (yield* makeRunContext(input.workspaceRoot))

    const message = (role: (typeof MessageRecorded.Type)["role"], content: string, classification: Classification) =>
      Effect.map(Clock.currentTimeMillis, (now): EventDraft => ({
        event: MessageRecorded.make({ messageId: ids.uuidv7(now), role, content, inputClassification: classification }),
        principal: input.principal,
        sessionId: input.sessionId,
        classification
      }))
    const draft = (event: AstridEvent): EventDraft => ({ event, principal: input.principal, sessionId: input.sessionId })
    const append = (drafts: ReadonlyArray<EventDraft>) => log.append(stream, "any", drafts)
    const observer = input.observer ?? {}
    const note = (text: string) =>
      Effect.flatMap(message("system", text, "trusted"), (d) => append([d])).pipe(Effect.tap(() => Effect.sync(() => observer.onNote?.(text))))

    // Read only what this process has not seen of the session, and decode only what the conversation needs.
    const memory = input.memory !== undefined && input.memory.sessionId === input.sessionId ? input.memory : makeSessionMemory(input.sessionId)
    const catchUp = Effect.gen(function* () {
      for (const r of yield* store.readStream(stream, { fromRevision: memory.nextRevision })) {
        if (r.revision < memory.nextRevision) continue
        memory.nextRevision = r.revision + 1
        if (BUDGET_TYPES.has(r.type)) {
          const b = decodeRecorded(r)
          if (b?._tag === "BudgetReserved" && b.actionId.startsWith(MODEL_CALL_PREFIX)) memory.openModelReservations.set(b.reservationId, b.actionId)
          else if (b?._tag === "BudgetCommitted" || b?._tag === "BudgetReleased") memory.openModelReservations.delete(b.reservationId)
          continue
        }
        if (!CONVERSATION_TYPES.has(r.type)) continue
        const e = decodeRecorded(r)
        if (e !== undefined) memory.events.push(e)
      }
    })
    yield* catchUp
    // A model call's reservation is settled within its turn; one still open at the start of a turn was left
    // by a process that died mid-call. Give it back, so a crash never holds budget for good. (Two processes
    // running turns of one session at the same moment would see each other's in-flight reservation here;
    // a session is driven by one chat at a time.)
    if (input.llmBudget !== undefined && memory.openModelReservations.size > 0) {
      const leftOver = [...memory.openModelReservations]
      for (const [reservationId, actionId] of leftOver) {
        yield* input.llmBudget.service
          .release(
            { reservationId, actionId, sessionStream: stream, workspaceStream: input.llmBudget.workspaceStream, principal: input.principal, sessionId: input.sessionId, correlationId: actionId },
            "cancelled"
          )
          .pipe(Effect.catchAll((e) => Effect.logWarning(`the reservation ${reservationId} of an interrupted model call could not be released: ${e.message}`)))
      }
      yield* note(`session resumed after an interruption: ${leftOver.length} model-call reservation(s) left open by the interrupted process were released`)
      yield* catchUp
    }
    const history = memory.events
    const isNew = !history.some((e) => e._tag === "SessionStarted")
    // A process killed in the middle of a tool round leaves tool calls without results, which no provider
    // accepts. Close them first, in the log, saying why; the audit log shows whether each one ran.
    const open = openToolCalls(history)
    if (open.length > 0) {
      const closed: ToolResultsContent = {
        results: open.map((c) => ({
          toolCallId: c.id,
          content: `interrupted: the session stopped (the process ended) before the result of this ${c.name} call was recorded; check before repeating it`,
          isError: true
        }))
      }
      const drafts = [
        yield* message("tool", encodeToolResults(closed), "trusted"),
        yield* message("system", `session resumed after an interruption: ${open.length} tool call(s) had no recorded result and were closed as interrupted`, "trusted")
      ]
      yield* append(drafts)
      yield* catchUp
    }
    const messages: Array<LlmMessage> = [...conversationFromEvents(history)]

    const userDrafts: Array<EventDraft> = []
    if (isNew) {
      userDrafts.push(
        draft(SessionStarted.make({ sessionId: input.sessionId, workspace: input.workspaceRoot, parentSessionId: input.parentSessionId ?? null, model: input.model }))
      )
    }
    userDrafts.push(yield* message("user", input.userInput, input.userClassification ?? "trusted"))
    yield* append(userDrafts)
    messages.push({ role: "user", content: input.userInput })

    const llmTools = input.tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema }))
    const toolsByName = new Map(input.tools.map((t) => [t.name, t]))

    const budget = input.llmBudget
    type Held =
      | { readonly _tag: "Held"; readonly reservation: Reservation | null }
      | { readonly _tag: "Exceeded"; readonly estimate: number; readonly reason: string; readonly remedy: string }
    const reserveModelCall = (request: LlmRequest) =>
      Effect.gen(function* () {
        if (budget === undefined) return { _tag: "Held", reservation: null } as Held
        const estimate = usageCost(prices, input.model, { inputTokens: estimateInputTokens(request), outputTokens: request.maxTokens }).microDollars
        if (estimate === 0) return { _tag: "Held", reservation: null } as Held
        const now = yield* Clock.currentTimeMillis
        const outcome = yield* budget.service.reserve({
          sessionStream: stream,
          workspaceStream: budget.workspaceStream,
          actionId: `${MODEL_CALL_PREFIX}${ids.uuidv7(now)}`,
          amountMicros: estimate,
          limits: budget.limits,
          principal: input.principal,
          sessionId: input.sessionId
        })
        return outcome._tag === "Reserved"
          ? ({ _tag: "Held", reservation: outcome.reservation } as Held)
          : ({ _tag: "Exceeded", estimate, reason: outcome.reason, remedy: outcome.remedy } as Held)
      })

    let unpricedWarned = false
    // How many of the oldest messages the last request left out (a note is recorded when it changes).
    let shownFrom = 0
    // Mutable state the interruption handler reads: how far the turn got and which calls await results.
    let steps = 0
    let pending: ReadonlyArray<AssistantContent["toolCalls"][number]> = []
    // Results of the open round so far: on cancellation, calls that finished keep their real result.
    let finished: Array<ToolResultsContent["results"][number]> = []

    const loop = Effect.gen(function* () {
      let lastText = ""
      for (;;) {
        if (steps >= maxSteps) {
          yield* note(`turn stopped: the model was called ${steps} times, the limit for one turn (maxSteps ${maxSteps})`)
          return { text: lastText, steps, stopReason: "max_steps" } satisfies TurnResult
        }
        steps += 1
        const maxTokens = input.maxTokens ?? DEFAULT_MAX_TOKENS
        const window =
          input.contextTokens === undefined
            ? { messages, dropped: 0 }
            : fitContext(messages, input.contextTokens - fixedTokens({ system: input.system, tools: llmTools, maxTokens }))
        if (window.dropped !== shownFrom) {
          shownFrom = window.dropped
          if (window.dropped > 0) {
            yield* note(`the model is sent the last ${messages.length - window.dropped} of ${messages.length} messages: the earlier ones do not fit its context window (context_tokens ${input.contextTokens})`)
          }
        }
        const leftOut = window.dropped === 0 ? "" : `\n\n(The first ${window.dropped} messages of this conversation are not shown: they did not fit the context window.)`
        const system = leftOut === "" ? input.system : `${input.system ?? ""}${leftOut}`.replace(/^\n+/, "")
        const request: LlmRequest = {
          model: input.model,
          messages: [...window.messages],
          tools: llmTools,
          maxTokens,
          ...(system === undefined ? {} : { system })
        }
        observer.onStep?.(steps)
        const held = yield* reserveModelCall(request)
        if (held._tag === "Exceeded") {
          yield* note(`turn stopped: the next model call (up to $${(held.estimate / 1e6).toFixed(4)}) does not fit the budget: ${held.reason} (${held.remedy})`)
          return { text: lastText, steps: steps - 1, stopReason: "budget" } satisfies TurnResult
        }
        const modelCall = Stream.runFold(provider.stream(request), emptyCollected, (acc, event): Collected => {
          switch (event._tag) {
            case "TextDelta":
              observer.onText?.(event.text)
              return { ...acc, text: acc.text + event.text }
            case "ToolCall":
              return { ...acc, toolCalls: [...acc.toolCalls, { id: event.id, name: event.name, input: event.input }] }
            case "Usage":
              return { ...acc, inputTokens: acc.inputTokens + event.inputTokens, outputTokens: acc.outputTokens + event.outputTokens }
            case "Stop":
              return { ...acc, stop: event.reason }
          }
        })
        const collected = yield* (held.reservation === null
          ? modelCall
          : modelCall.pipe(
              Effect.onExit((exit) =>
                exit._tag === "Success" || held.reservation === null || budget === undefined
                  ? Effect.void
                  : budget.service.release(held.reservation, Exit.isInterrupted(exit) ? "cancelled" : "failed").pipe(
                      Effect.catchAll((e) => Effect.logError(`the reservation of a failed model call could not be released: ${e.message}`))
                    )
              )
            ))
        const assistant: AssistantContent = { text: collected.text, toolCalls: collected.toolCalls }
        const usage = { inputTokens: collected.inputTokens, outputTokens: collected.outputTokens }
        const cost = usageCost(prices, input.model, usage)
        let overrun: { readonly charged: number; readonly reserved: number; readonly overrun: number } | null = null
        if (held.reservation !== null && budget !== undefined) {
          // A call that reports no usage is charged what was reserved: unknown spend is never counted as free.
          const reported = collected.inputTokens + collected.outputTokens > 0
          const settled = yield* budget.service.commit(held.reservation, reported ? cost.microDollars : held.reservation.amountMicros)
          overrun = settled.overrunMicros > 0 ? { charged: settled.committedMicros, reserved: held.reservation.amountMicros, overrun: settled.overrunMicros } : null
        }
        if (!cost.priced && Object.keys(prices).length > 0 && provider.name !== "scripted" && !unpricedWarned) {
          unpricedWarned = true
          yield* Effect.logWarning(`model ${input.model} has no price in the table; its usage is recorded at cost 0`)
        }
        yield* append([
          yield* message("assistant", encodeAssistant(assistant), "trusted"),
          draft(LlmUsageRecorded.make({ provider: provider.name, model: input.model, ...usage, costMicros: cost.microDollars }))
        ])
        if (overrun !== null) {
          yield* note(
            `the model call cost ${formatMicros(overrun.charged)}, ${formatMicros(overrun.overrun)} more than the ${formatMicros(overrun.reserved)} reserved for it; the whole cost is charged to the session and workspace budgets`
          )
        }
        observer.onUsage?.({ ...usage, costMicros: cost.microDollars })
        messages.push(assistantMessage(assistant))
        lastText = collected.text

        if (collected.toolCalls.length === 0) {
          const stop = collected.stop ?? "end_turn"
          const stopReason: TurnStopReason = stop === "tool_use" ? "end_turn" : stop
          if (stopReason !== "end_turn") yield* note(`turn stopped: the model stopped with ${stopReason}`)
          return { text: lastText, steps, stopReason } satisfies TurnResult
        }

        pending = collected.toolCalls
        const results: Array<ToolResultsContent["results"][number]> = []
        finished = results
        for (const call of collected.toolCalls) {
          const tool = toolsByName.get(call.name)
          if (tool === undefined) {
            const content = `unknown tool ${call.name}; the tools available are: ${[...toolsByName.keys()].join(", ")}`
            observer.onToolCall?.(call)
            observer.onToolResult?.(call, { ok: false, output: content, truncated: false, decision: null })
            results.push({ toolCallId: call.id, content, isError: true })
            continue
          }
          observer.onToolCall?.(call)
          const result = yield* runTool(tool, call.input, { principal: input.principal, sessionId: input.sessionId, context })
          observer.onToolResult?.(call, result)
          // Only output of a tool that ran is outside data; denials and input errors are the runtime's own words.
          const ran = result.decision !== null && result.decision._tag === "Allowed"
          results.push({ toolCallId: call.id, content: ran ? wrapUntrusted(result.output) : result.output, isError: !result.ok })
        }
        const handed: ToolResultsContent = { results }
        yield* append([yield* message("tool", encodeToolResults(handed), "untrusted")])
        pending = []
        finished = []
        messages.push(toolResultsMessage(handed))
      }
    })

    const recordCancellation = Effect.gen(function* () {
      const drafts: Array<EventDraft> = []
      if (pending.length > 0) {
        const cancelled: ToolResultsContent = {
          results: pending.map((c) => {
            const done = finished.find((r) => r.toolCallId === c.id)
            if (done !== undefined) return done
            const inFlight = finished.length === pending.findIndex((p) => p.id === c.id)
            return {
              toolCallId: c.id,
              content: inFlight
                ? "cancelled: the user interrupted the turn while this call was running; it may have partly run, so check its effects before repeating it"
                : "cancelled: the user interrupted the turn before this call started; it did not run",
              isError: true
            }
          })
        }
        drafts.push(yield* message("tool", encodeToolResults(cancelled), "trusted"))
      }
      drafts.push(yield* message("system", `turn cancelled by the user during model step ${steps}`, "trusted"))
      yield* append(drafts)
    }).pipe(Effect.catchAll((e) => Effect.logError(`the cancellation of a turn could not be recorded: ${e.message}`)))

    // A failed model call ends the turn; the note keeps the log honest about why the conversation stops there.
    const recordModelFailure = (message: string) =>
      note(`turn failed: ${message}`).pipe(Effect.catchAll((e) => Effect.logError(`the failure of a turn could not be recorded: ${e.message}`)))

    return yield* Effect.onInterrupt(loop, () => recordCancellation).pipe(
      Effect.tapError((e) => (e._tag === "LlmError" ? recordModelFailure(e.message) : Effect.void))
    )
  })

/** The services a turn needs. */
export type TurnServices = Effect.Effect.Context<ReturnType<typeof runTurn>>
/** What can end a turn with an error (model failure, store failure, interceptor failure). */
export type TurnError = Effect.Effect.Error<ReturnType<typeof runTurn>>
