/**
 * `spark`: the agent's identity, which it can read and evolve. An identity is five short fields:
 *
 *   callsign  the name the agent answers to
 *   class     its role or archetype ("reviewer", "navigator")
 *   aura      its temperament, how it comes across
 *   signal    how it communicates (terse, thorough, ...)
 *   core      the values and standing directives it keeps
 *
 * The identity is never stored as a file: it is the fold of `IdentityEvolved` events on the principal's
 * identity stream (`astrid-identity-<principal>`), so every change and what it replaced is in the audit
 * chain. Reading is a low-risk `agent_identity` action. Evolving is a high-risk `agent_identity` write
 * that always asks a human, in every workspace mode, and is approved once only: no pre-approval, standing
 * allowance or capability token covers it. The identity belongs to the principal across every workspace
 * and goes into the system prompt of every later session, so an unreviewed evolution (one autonomous
 * workspace with a hostile README) would be a standing prompt injection everywhere. The approver sees every
 * new value in full. Sub-agents never get this tool. Values are checked (length, no control characters,
 * single-line except `core`) before anything is proposed.
 */
import { Effect, Either, Schema } from "effect"
import { EventLog } from "../../application/eventLog.js"
import { EventStore } from "../../application/ports/eventStore.js"
import { decodeRecorded } from "../../application/streamState.js"
import { type AnyTool, decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { IdentityEvolved, type IdentityFields } from "../../domain/events/agentEvents.js"
import type { AstridEvent } from "../../domain/events/astridEvent.js"
import { identityStream } from "../../domain/streams.js"

export type Identity = IdentityFields
export type IdentityField = keyof Identity

export const IDENTITY_FIELDS: ReadonlyArray<IdentityField> = ["callsign", "class", "aura", "signal", "core"]

/** Longest value of each field, in characters. */
export const IDENTITY_LIMITS: Readonly<Record<IdentityField, number>> = { callsign: 40, class: 60, aura: 200, signal: 200, core: 2000 }

/** The identity after `event`: the changed fields replace the old ones. */
export const evolveIdentity = (identity: Identity, event: AstridEvent): Identity => (event._tag === "IdentityEvolved" ? { ...identity, ...event.changes } : identity)

/** Why a value cannot be a field's value, or null when it can. */
export const invalidValue = (field: IdentityField, value: string): string | null => {
  if (value.trim() === "") return `${field} is empty; give it a value or leave it out`
  const max = IDENTITY_LIMITS[field]
  if ([...value].length > max) return `${field} is ${[...value].length} characters long; the limit is ${max}`
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0
    const lineBreak = ch === "\n"
    if (lineBreak && field !== "core") return `${field} must be one line; only core may span lines`
    if (!lineBreak && (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0))) return `${field} contains a control character (U+${code.toString(16).padStart(4, "0")})`
    if ((code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)) return `${field} contains a bidirectional override (U+${code.toString(16)})`
  }
  return null
}

/**
 * A short system-prompt paragraph for the identity, or "" when nothing is set. The values were the agent's
 * own words, approved when they were evolved; they are framed as the agent's self-description, not as
 * instructions from the user.
 */
export const identityPrompt = (identity: Identity): string => {
  const parts: Array<string> = []
  if (identity.callsign !== undefined) parts.push(`Your callsign is ${identity.callsign}.`)
  if (identity.class !== undefined) parts.push(`Your class: ${identity.class}.`)
  if (identity.aura !== undefined) parts.push(`Your aura: ${identity.aura}.`)
  if (identity.signal !== undefined) parts.push(`How you communicate: ${identity.signal}.`)
  if (identity.core !== undefined) parts.push(`Your core, in your own words:\n${identity.core}`)
  return parts.length === 0 ? "" : `Your identity (spark), as you shaped it with the spark tool:\n${parts.join("\n")}`
}

const render = (identity: Identity): string => {
  const set = IDENTITY_FIELDS.filter((f) => identity[f] !== undefined)
  if (set.length === 0) return "no identity yet: every field (callsign, class, aura, signal, core) is unset; use action evolve to set them"
  return IDENTITY_FIELDS.map((f) => `${f}: ${identity[f] ?? "(unset)"}`).join("\n")
}

const Value = Schema.String
const Input = Schema.Union(
  Schema.Struct({ action: Schema.Literal("read") }),
  Schema.Struct({
    action: Schema.Literal("evolve"),
    callsign: Schema.optionalWith(Value, { exact: true }),
    class: Schema.optionalWith(Value, { exact: true }),
    aura: Schema.optionalWith(Value, { exact: true }),
    signal: Schema.optionalWith(Value, { exact: true }),
    core: Schema.optionalWith(Value, { exact: true })
  })
)
type Input = typeof Input.Type

const changesOf = (input: Extract<Input, { action: "evolve" }>): Identity => {
  const changes: { -readonly [K in IdentityField]?: string } = {}
  for (const f of IDENTITY_FIELDS) {
    const v = input[f]
    if (v !== undefined) changes[f] = v
  }
  return changes
}

const decode = (raw: unknown): Either.Either<Input, string> =>
  Either.flatMap(
    Either.mapLeft(decodeWith(Input)(raw), (e) => `expected {"action":"read"} or {"action":"evolve", callsign?, class?, aura?, signal?, core?}:\n${e}`),
    (input): Either.Either<Input, string> => {
      if (input.action === "read") return Either.right(input)
      const changes = changesOf(input)
      const fields = Object.keys(changes)
      if (fields.length === 0) return Either.left("evolve needs at least one of callsign, class, aura, signal, core")
      for (const f of IDENTITY_FIELDS) {
        const v = changes[f]
        const problem = v === undefined ? null : invalidValue(f, v)
        if (problem !== null) return Either.left(problem)
      }
      return Either.right(input)
    }
  )

/** The identity of `principal`, folded from its stream. */
export const loadIdentity = (principal: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    let identity: Identity = {}
    for (const r of yield* store.readStream(identityStream(principal))) {
      if (r.type !== "IdentityEvolved") continue
      const e = decodeRecorded(r)
      if (e !== undefined) identity = evolveIdentity(identity, e)
    }
    return identity
  })

export interface SparkOptions {
  /** Whose identity the tool reads and evolves. */
  readonly principal: string
  /** The session the tool runs in, recorded in the envelope of IdentityEvolved. */
  readonly sessionId?: string
}

/**
 * The `spark` tool for one principal. It needs the EventStore (to read the identity) and the EventLog (to
 * append its evolutions), taken from the context it is built in.
 */
export const makeSparkTool = (options: SparkOptions): Effect.Effect<AnyTool, never, EventStore | EventLog> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const log = yield* EventLog
    const stream = identityStream(options.principal)
    const failed = (what: string) => (e: { readonly message: string }) => new ToolError({ tool: "spark", message: `${what}: ${e.message}; try again later` })
    const load = loadIdentity(options.principal).pipe(Effect.provideService(EventStore, store), Effect.mapError(failed("could not read the identity")))

    const tool: Tool<Input> = {
      name: "spark",
      description:
        "Read or evolve your own identity (spark): callsign, class, aura, signal, core. " +
        'Use {"action":"read"} to see it and {"action":"evolve", ...fields} to change some fields; an evolution always asks a person to approve it and is kept in the audit log.',
      inputSchema: {
        type: "object",
        properties: {
          action: { type: "string", enum: ["read", "evolve"] },
          callsign: { type: "string", maxLength: IDENTITY_LIMITS.callsign, description: "The name you answer to (one line)" },
          class: { type: "string", maxLength: IDENTITY_LIMITS.class, description: "Your role or archetype (one line)" },
          aura: { type: "string", maxLength: IDENTITY_LIMITS.aura, description: "Your temperament (one line)" },
          signal: { type: "string", maxLength: IDENTITY_LIMITS.signal, description: "How you communicate (one line)" },
          core: { type: "string", maxLength: IDENTITY_LIMITS.core, description: "Your values and standing directives" }
        },
        required: ["action"],
        additionalProperties: false
      },
      decode,
      request: (input) =>
        input.action === "read"
          ? { _tag: "agent_identity", principal: options.principal }
          : { _tag: "agent_identity", principal: options.principal, changes: { ...changesOf(input) } },
      run: (input) =>
        Effect.gen(function* () {
          if (input.action === "read") return render(yield* load)
          const changes = changesOf(input)
          // Read and append at the same revision: two evolutions racing cannot both claim the same `previous`.
          const recorded = yield* store.readStream(stream).pipe(Effect.mapError(failed("could not read the identity")))
          let current: Identity = {}
          for (const r of recorded) {
            const e = r.type === "IdentityEvolved" ? decodeRecorded(r) : undefined
            if (e !== undefined) current = evolveIdentity(current, e)
          }
          const previous: { -readonly [K in IdentityField]?: string } = {}
          for (const f of IDENTITY_FIELDS) {
            const old = current[f]
            if (changes[f] !== undefined && old !== undefined) previous[f] = old
          }
          const revision = recorded.at(-1)?.revision
          yield* log
            .append(stream, revision ?? "no_stream", [
              { event: IdentityEvolved.make({ changes, previous }), principal: options.principal, ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }) }
            ])
            .pipe(
              Effect.mapError((e) =>
                e._tag === "WrongExpectedRevision"
                  ? new ToolError({ tool: "spark", message: "the identity changed while evolving it; read it again and retry" })
                  : failed("could not record the evolution")(e)
              )
            )
          return `identity evolved (${Object.keys(changes).join(", ")}):\n${render({ ...current, ...changes })}`
        })
    }
    return eraseTool(tool)
  })
