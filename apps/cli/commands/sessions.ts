/**
 * `astrid sessions list|show|delete|cleanup`: the current principal's agent sessions.
 *
 * Listings read the sessions view, caught up with the log first. Everything that decides (show, delete,
 * cleanup) reads the session's own stream, so it is right even when the view is behind. Deleting appends
 * `SessionEnded{reason: "deleted", detail: why}` to the session's stream with the revision it read: the
 * session disappears from listings, every event stays in the chain (the audit log keeps what happened).
 * A principal only sees and deletes its own sessions (I7).
 */
import { Clock, Effect, Either, Schema } from "effect"
import { printable } from "../printable.js"
import { AssistantContent, ToolResultsContent } from "../../../application/agent/conversation.js"
import type { EventStoreApi } from "../../../application/ports/eventStore.js"
import { decodeRecorded } from "../../../application/streamState.js"
import type { RecordedEvent } from "../../../domain/envelope.js"
import type { AstridEvent } from "../../../domain/events/astridEvent.js"
import { EventMetadata } from "../../../domain/envelope.js"
import { sessionStream } from "../../../domain/streams.js"
import type { AstridConfig } from "../../../infrastructure/config/astridConfig.js"
import { loadKeyRing } from "../../../infrastructure/keys/keyFiles.js"
import {
  inactiveSessions,
  listSessions,
  type SessionRow,
  sessionsByPrefix,
  sessionsView,
  spendMicros,
  summarizeSession
} from "../../../projections/sessionsView.js"
import { asCli, CliError, usageError } from "../cliError.js"
import { dim, green, printJson, printLines, red, table } from "../output.js"
import { currentPrincipal } from "../principal.js"
import { config, eventLogFor, openStore, storeExists, withKeyRing } from "../runtime.js"
import { caughtUpViews } from "./projections.js"

const DAY_MS = 86_400_000
const MAX_REASON = 1000
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/

// ---- presentation

/** Micro-dollars as dollars: "$0", "$0.012345", "$1.50". */
export const formatMicros = (micros: number): string => {
  if (micros === 0) return "$0"
  const whole = Math.trunc(micros / 1_000_000)
  const fraction = String(micros % 1_000_000).padStart(6, "0").replace(/0{1,4}$/, "")
  return `$${whole}.${fraction}`
}

/** "2026-11-25 19:01Z" from an ISO time; "-" when unknown. */
const shortTime = (iso: string | null): string => (iso === null || iso.length < 16 ? "-" : `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`)
const clockTime = (iso: string): string => (iso.length >= 19 ? iso.slice(11, 19) : "")

/**
 * Text that came from a model, a tool or a user, made safe for a terminal: control characters (escape
 * sequences could rewrite the screen or pose as Astrid's own output) become visible `\u001b` forms.
 */
export { printable }

const oneLine = (text: string, max = 120): string => {
  const flat = printable(text).replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

const statusText = (row: SessionRow): string => {
  switch (row.status) {
    case "active":
      return green("active")
    case "ended":
      return `ended (${row.end_reason ?? "?"})`
    case "deleted":
      return red("deleted")
  }
}

export const sessionJson = (row: SessionRow) => ({
  sessionId: row.session_id,
  principal: row.principal,
  status: row.status,
  endReason: row.end_reason,
  endDetail: row.end_detail,
  endedAt: row.ended_at,
  endedBy: row.ended_by,
  workspace: row.workspace,
  parentSessionId: row.parent_session_id,
  model: row.model,
  startedAt: row.started_at,
  lastActivityAt: row.last_activity_at,
  events: row.events,
  messages: row.messages,
  toolCalls: row.tool_calls,
  denied: row.denied,
  deferred: row.deferred,
  inputTokens: row.input_tokens,
  outputTokens: row.output_tokens,
  llmCostMicros: row.llm_cost_micros,
  committedMicros: row.committed_micros,
  subagentMicros: row.subagent_micros,
  spendMicros: spendMicros(row)
})

// ---- reading a session from the log

interface SessionEvent {
  readonly recorded: RecordedEvent
  readonly event: AstridEvent | undefined
}

interface LoadedSession {
  readonly row: SessionRow
  readonly events: ReadonlyArray<SessionEvent>
  /** The stream's last revision: a deletion appends expecting exactly this. */
  readonly revision: number
}

const streamOf = (id: string) =>
  ID_PATTERN.test(id)
    ? Effect.succeed(sessionStream(id))
    : Effect.fail(usageError(`'${oneLine(id, 60)}' is not a session id (letters, digits and . _ : @ -, at most 128); 'astrid sessions list' shows yours`))

const readSession = (store: EventStoreApi, sessionId: string) =>
  Effect.gen(function* () {
    const stream = yield* streamOf(sessionId)
    const recorded = yield* asCli(store.readStream(stream))
    const events = recorded.map((r): SessionEvent => ({ recorded: r, event: decodeRecorded(r) }))
    const last = recorded[recorded.length - 1]
    const summary = summarizeSession(events)
    if (last === undefined || summary._tag === "None") return undefined
    return { row: summary.value, events, revision: last.revision } satisfies LoadedSession
  })

const notFound = (id: string, principal: string) =>
  usageError(`no session '${oneLine(id, 60)}' for principal '${principal}'; 'astrid sessions list --all' shows yours`)

/**
 * The session an id names: the exact id, else the one session of the principal whose id starts with it.
 * Another principal's session is refused, never shown (I7).
 */
const resolveSession = (cfg: AstridConfig, store: EventStoreApi, id: string, principal: string) =>
  Effect.gen(function* () {
    yield* streamOf(id)
    let loaded = yield* readSession(store, id)
    if (loaded === undefined) {
      const views = yield* caughtUpViews(cfg, [sessionsView])
      const matches = yield* asCli(sessionsByPrefix(views, principal, id))
      const [only, ...more] = matches
      if (only === undefined) return yield* Effect.fail(notFound(id, principal))
      if (more.length > 0) {
        return yield* Effect.fail(
          usageError(`'${id}' matches ${matches.length} of your sessions (${matches.slice(0, 3).map((m) => m.session_id).join(", ")}${matches.length > 3 ? ", ..." : ""}); give more of the id`)
        )
      }
      loaded = yield* readSession(store, only.session_id)
      if (loaded === undefined) return yield* Effect.fail(notFound(id, principal))
    }
    if (loaded.row.principal !== principal) {
      return yield* Effect.fail(
        usageError(`session ${loaded.row.session_id} is not yours (you are '${principal}'); a principal can only see and delete its own sessions`)
      )
    }
    return loaded
  })

const noStore = (cfg: AstridConfig, id: string, principal: string) =>
  storeExists(cfg) ? Effect.void : Effect.fail(notFound(id, principal))

// ---- list

export interface ListArgs {
  readonly all: boolean
  readonly json: boolean
}

export const list = (args: ListArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const principal = currentPrincipal()
      const cfg = yield* config
      const rows = storeExists(cfg) ? yield* asCli(listSessions(yield* caughtUpViews(cfg, [sessionsView]), { principal, includeDeleted: true })) : []
      const shown = args.all ? rows : rows.filter((r) => r.status !== "deleted")
      const hidden = rows.length - shown.length
      if (args.json) return yield* printJson(shown.map(sessionJson))
      if (shown.length === 0) {
        return yield* printLines(
          `no sessions for principal '${principal}'${hidden > 0 ? ` (${hidden} deleted; --all shows them)` : ""}`,
          ...(rows.length === 0 ? [dim("'astrid run' (or a chat) records one")] : [])
        )
      }
      yield* printLines(
        ...table(
          ["SESSION", "STARTED", "LAST ACTIVE", "MSGS", "TOOLS", "SPEND", "STATUS", "WORKSPACE"],
          shown.map((r) => [
            printable(r.session_id),
            shortTime(r.started_at),
            shortTime(r.last_activity_at),
            String(r.messages),
            String(r.tool_calls),
            formatMicros(spendMicros(r)),
            statusText(r),
            r.workspace === null ? "-" : printable(r.workspace)
          ])
        ),
        dim(
          `${shown.length} session(s) of '${principal}', newest first${hidden > 0 ? `; ${hidden} deleted hidden (--all shows them)` : ""}; 'astrid sessions show ID' for one`
        )
      )
    })
  )

// ---- show

const RecordedToolCalls = Schema.decodeUnknownEither(Schema.parseJson(AssistantContent))
const RecordedToolResults = Schema.decodeUnknownEither(Schema.parseJson(ToolResultsContent))
const decodeMetadata = Schema.decodeUnknownEither(Schema.parseJson(EventMetadata))

const parseData = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** One entry of the session's history for --json: where it is, who and when, and its content. */
const timelineEntry = (e: SessionEvent) => {
  const meta = decodeMetadata(e.recorded.metadata)
  const base = {
    revision: e.recorded.revision,
    eventId: e.recorded.eventId,
    type: e.recorded.type,
    at: Either.isRight(meta) ? meta.right.occurredAt : null,
    principal: Either.isRight(meta) ? meta.right.principal : null,
    classification: Either.isRight(meta) ? meta.right.classification : null
  }
  const event = e.event
  if (event?._tag === "MessageRecorded") {
    if (event.role === "assistant") {
      const content = RecordedToolCalls(event.content)
      if (Either.isRight(content)) return { ...base, role: event.role, text: content.right.text, toolCalls: content.right.toolCalls }
    }
    if (event.role === "tool") {
      const content = RecordedToolResults(event.content)
      if (Either.isRight(content)) return { ...base, role: event.role, results: content.right.results }
    }
    return { ...base, role: event.role, text: event.content }
  }
  return { ...base, data: parseData(e.recorded.data) }
}

const indentRest = (text: string, pad: string): string => printable(text).split("\n").join(`\n${pad}`)

const PAD = " ".repeat(21)

/** The human-readable lines of one event; none for bookkeeping a reader does not need (budget, usage). */
const timelineLines = (e: SessionEvent): ReadonlyArray<string> => {
  const meta = decodeMetadata(e.recorded.metadata)
  const time = Either.isRight(meta) ? clockTime(meta.right.occurredAt) : ""
  const line = (label: string, text: string) => `${time.padEnd(8)}  ${label.padEnd(10)} ${text}`
  const event = e.event
  if (event === undefined) return [line(printable(e.recorded.type), dim("(an event type this version does not know)"))]
  switch (event._tag) {
    case "SessionStarted":
      return [line("started", `in ${printable(event.workspace)}${event.model === null ? "" : ` with ${printable(event.model)}`}`)]
    case "MessageRecorded": {
      if (event.role === "user") {
        return event.inputClassification === "trusted"
          ? [line("user", indentRest(event.content, PAD))]
          : [line("notice", dim(`runtime notice with untrusted content (${event.content.length} chars; --json shows it)`))]
      }
      if (event.role === "system") return [line("system", dim(oneLine(event.content, 200)))]
      if (event.role === "tool") {
        const content = RecordedToolResults(event.content)
        if (Either.isLeft(content)) return [line("tool", dim(`${event.content.length} chars handed to the model`))]
        const errors = content.right.results.filter((r) => r.isError).length
        return [line("", dim(`${content.right.results.length} result(s) handed to the model${errors > 0 ? `, ${errors} error(s)` : ""}`))]
      }
      const content = RecordedToolCalls(event.content)
      if (Either.isLeft(content)) return [line("assistant", indentRest(event.content, PAD))]
      return [
        ...(content.right.text === "" ? [] : [line("assistant", indentRest(content.right.text, PAD))]),
        ...content.right.toolCalls.map((c) => line("  call", `${printable(c.name)} ${oneLine(JSON.stringify(c.input) ?? "", 100)}`))
      ]
    }
    case "ActionProposed":
      return [line("  proposed", `${oneLine(event.summary, 100)} (${event.kind}, ${event.risk} risk)`)]
    case "ActionAllowed": {
      const p = event.proof
      const why =
        p._tag === "PolicyAllowed"
          ? `by policy (${p.rule})`
          : p._tag === "TokenCovered"
            ? `by token ${p.tokenId}`
            : p._tag === "AllowanceCovered"
              ? `by a ${p.scope} allowance`
              : `approved by ${p.approver}`
      return [line("  allowed", green(printable(why)))]
    }
    case "ActionDenied":
      return [line("  denied", red(`at the ${event.stage} stage: ${oneLine(event.reason, 140)}`))]
    case "ActionDeferred":
      return [line("  deferred", printable(`to the approval queue as ${event.requestId} (${event.reason.replace(/_/g, " ")})`))]
    case "ApprovalRequested":
      return [line("  asked", `on ${printable(event.channel)}`)]
    case "ApprovalGranted":
      return [line("  approved", `by ${printable(event.approver)} (${event.scope})`)]
    case "ApprovalRefused":
      return [line("  refused", `by ${printable(event.approver)}${event.reason === null ? "" : `: ${oneLine(event.reason, 120)}`}`)]
    case "ToolResultRecorded":
      return [line("  result", `${event.ok ? "ok" : red("failed")}, ${event.output.length} chars${event.truncated ? " (truncated)" : ""}, ${event.durationMs} ms`)]
    case "SessionEnded": {
      const by = Either.isRight(meta) ? ` by ${printable(meta.right.principal)}` : ""
      return [line(event.reason === "deleted" ? "deleted" : "ended", `${event.reason === "deleted" ? "" : `${event.reason}`}${by}${event.detail === null ? "" : `: ${oneLine(event.detail, 160)}`}`.trim())]
    }
    default:
      return []
  }
}

const summaryLines = (row: SessionRow): Array<string> => [
  `session     ${printable(row.session_id)}`,
  `principal   ${printable(row.principal)}`,
  `status      ${statusText(row)}${row.status === "active" ? "" : `${row.ended_by === null ? "" : ` by ${printable(row.ended_by)}`}${row.ended_at === null ? "" : ` at ${row.ended_at}`}`}${row.end_detail === null ? "" : ` (${oneLine(row.end_detail, 160)})`}`,
  `workspace   ${row.workspace === null ? "-" : printable(row.workspace)}`,
  `model       ${row.model === null ? "-" : printable(row.model)}`,
  ...(row.parent_session_id === null ? [] : [`parent      ${printable(row.parent_session_id)}`]),
  `started     ${row.started_at}`,
  `last active ${row.last_activity_at}`,
  `messages    ${row.messages}`,
  `tool calls  ${row.tool_calls}${row.denied + row.deferred > 0 ? ` (${row.denied} denied, ${row.deferred} deferred)` : ""}`,
  `tokens      ${row.input_tokens} in, ${row.output_tokens} out`,
  `spend       ${formatMicros(spendMicros(row))} (model ${formatMicros(row.llm_cost_micros)}, tools ${formatMicros(row.committed_micros)}, sub-agents ${formatMicros(row.subagent_micros)})`
]

export interface ShowArgs {
  readonly id: string
  readonly json: boolean
}

export const show = (args: ShowArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const principal = currentPrincipal()
      const cfg = yield* config
      yield* noStore(cfg, args.id, principal)
      const store = yield* openStore(cfg, "read")
      const session = yield* resolveSession(cfg, store, args.id, principal)
      if (args.json) return yield* printJson({ session: sessionJson(session.row), timeline: session.events.map(timelineEntry) })
      yield* printLines(
        ...summaryLines(session.row),
        "",
        ...session.events.flatMap(timelineLines),
        dim(`${session.events.length} events on ${sessionStream(session.row.session_id)}; --json shows every one in full`)
      )
    })
  )

// ---- delete and cleanup

/**
 * Appends the deletion at the revision the session was read at; when something was appended meanwhile,
 * reads it again and decides again (it may have been deleted by then, or become active).
 */
const appendDeletion = (
  cfg: AstridConfig,
  store: EventStoreApi,
  first: LoadedSession,
  detail: string | null,
  principal: string,
  stillWanted: (row: SessionRow) => boolean
) =>
  Effect.gen(function* () {
    const { log } = yield* eventLogFor(cfg, store, false)
    // The key only signs an automatic checkpoint the append may trigger; deleting works without one.
    const keyRing = Either.getOrUndefined(yield* Effect.either(loadKeyRing(cfg.home)))
    let session = first
    for (let attempt = 0; attempt < 5; attempt++) {
      if (session.row.status === "deleted") return { outcome: "already" as const, row: session.row }
      if (!stillWanted(session.row)) return { outcome: "skipped" as const, row: session.row }
      const appended = yield* Effect.either(
        withKeyRing(
          log.append(sessionStream(session.row.session_id), session.revision, [
            { event: { _tag: "SessionEnded", sessionId: session.row.session_id, reason: "deleted", detail }, principal, sessionId: session.row.session_id }
          ]),
          keyRing
        )
      )
      if (Either.isRight(appended)) {
        const again = yield* readSession(store, session.row.session_id)
        return { outcome: "deleted" as const, row: again?.row ?? session.row }
      }
      if (appended.left._tag !== "WrongExpectedRevision") {
        return yield* Effect.fail(usageError(`cannot record the deletion of session ${session.row.session_id}: ${appended.left.message}`))
      }
      const reread = yield* readSession(store, session.row.session_id)
      if (reread === undefined) return yield* Effect.fail(notFound(session.row.session_id, principal))
      session = reread
    }
    return yield* Effect.fail(
      usageError(`session ${session.row.session_id} kept changing while it was being deleted (is an agent still running in it?); try again when it is idle`)
    )
  })

export interface DeleteArgs {
  readonly id: string
  readonly reason?: string | undefined
  readonly json: boolean
}

const reasonOf = (reason: string | undefined) => {
  const trimmed = reason?.trim() ?? ""
  if (trimmed.length > MAX_REASON) return Effect.fail(usageError(`--reason is ${trimmed.length} characters; keep it under ${MAX_REASON}`))
  return Effect.succeed(trimmed === "" ? null : trimmed)
}

export const deleteSession = (args: DeleteArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const principal = currentPrincipal()
      const detail = yield* reasonOf(args.reason)
      const cfg = yield* config
      yield* noStore(cfg, args.id, principal)
      const store = yield* openStore(cfg, "write")
      const session = yield* resolveSession(cfg, store, args.id, principal)
      const result = yield* appendDeletion(cfg, store, session, detail, principal, () => true)
      const row = result.row
      if (args.json) return yield* printJson({ deleted: result.outcome === "deleted", alreadyDeleted: result.outcome === "already", session: sessionJson(row) })
      if (result.outcome === "already") {
        return yield* printLines(
          `session ${row.session_id} was already deleted${row.ended_by === null ? "" : ` by ${printable(row.ended_by)}`}${row.ended_at === null ? "" : ` at ${row.ended_at}`}${row.end_detail === null ? "" : ` (${oneLine(row.end_detail, 160)})`}; nothing changed`
        )
      }
      yield* printLines(
        `deleted session ${row.session_id}${detail === null ? "" : ` (${oneLine(detail, 160)})`}`,
        dim(`hidden from 'astrid sessions list'; its ${row.events} events stay in the audit log ('astrid sessions list --all' and 'show' still find it)`)
      )
    })
  )

export interface CleanupArgs {
  readonly olderThanDays: number
  readonly dryRun: boolean
  readonly json: boolean
}

export const cleanup = (args: CleanupArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const principal = currentPrincipal()
      const days = args.olderThanDays
      if (!Number.isSafeInteger(days) || days < 1) {
        return yield* Effect.fail(
          usageError(`--older-than must be a whole number of days, at least 1 (got ${days}); to delete one session use 'astrid sessions delete ID'`)
        )
      }
      const cfg = yield* config
      const now = yield* Clock.currentTimeMillis
      const cutoff = new Date(now - days * DAY_MS).toISOString()
      const detail = `cleanup: inactive ${days} days`
      const candidates = storeExists(cfg) ? yield* asCli(inactiveSessions(yield* caughtUpViews(cfg, [sessionsView]), principal, cutoff)) : []
      const done: Array<SessionRow> = []
      if (!args.dryRun && candidates.length > 0) {
        const store = yield* openStore(cfg, "write")
        for (const candidate of candidates) {
          // The view may be behind: decide on the stream itself.
          const session = yield* readSession(store, candidate.session_id)
          if (session === undefined || session.row.principal !== principal) continue
          const result = yield* appendDeletion(cfg, store, session, detail, principal, (row) => row.last_activity_at < cutoff)
          if (result.outcome === "deleted") done.push(result.row)
        }
      }
      const affected = args.dryRun ? candidates : done
      if (args.json) {
        return yield* printJson({ principal, olderThanDays: days, cutoff, dryRun: args.dryRun, deleted: args.dryRun ? 0 : done.length, sessions: affected.map(sessionJson) })
      }
      if (affected.length === 0) return yield* printLines(`no sessions of '${principal}' inactive for ${days} days (since ${shortTime(cutoff)}); nothing to clean up`)
      yield* printLines(
        `${args.dryRun ? "would delete" : "deleted"} ${affected.length} session(s) of '${principal}' inactive for ${days} days:`,
        ...table(
          ["SESSION", "LAST ACTIVE", "MSGS", "STATUS"],
          affected.map((r) => [printable(r.session_id), shortTime(r.last_activity_at), String(r.messages), args.dryRun ? statusText(r) : `deleted (${detail})`])
        ),
        dim(args.dryRun ? "nothing was changed; run again without --dry-run to delete them" : "their events stay in the audit log; 'astrid sessions list --all' shows them")
      )
    })
  )

export { CliError }
