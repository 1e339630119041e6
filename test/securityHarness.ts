/**
 * Test harness for the SecurityInterceptor: the real EventLog, token and budget services and path
 * resolver over a memory store or a real SQLite file, a test signing key, and a scripted approval
 * channel whose answers and calls the test controls.
 */
import { Clock, Deferred, Effect, Layer, Option } from "effect"
import { mkdirSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLogLive } from "../application/eventLog.js"
import { ApprovalChannel, type ApprovalChannelApi, type ApprovalPrompt, type ApprovalReply, ApprovalUnavailable } from "../application/ports/approvalChannel.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../application/ports/eventStore.js"
import { KeyRing, type KeyRingApi } from "../application/ports/keyRing.js"
import { BudgetServiceLive } from "../application/security/budgetService.js"
import {
  type Decision,
  type Proposal,
  SecurityInterceptor,
  type SecurityInterceptorApi,
  SecurityInterceptorLive,
  type SecuritySettings
} from "../application/security/securityInterceptor.js"
import { TokenService, type TokenServiceApi, TokenServiceLive } from "../application/security/tokenService.js"
import { decodeRecorded } from "../application/streamState.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"
import { DEFAULT_POLICY } from "../domain/security/policy.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { makeMemoryEventStore } from "../infrastructure/event-store/memoryEventStore.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { PathResolverLive } from "../infrastructure/workspace/pathResolver.js"
import { testKeyRing } from "./knownAnswerChain.js"

export const DEFAULT_TEST_SETTINGS: SecuritySettings = {
  policy: DEFAULT_POLICY,
  workspaceMode: "guided",
  escapePolicy: "ask",
  approvalTimeoutMs: 2_000,
  budget: { perActionMicros: 1_000_000, perSessionMicros: 5_000_000, perWorkspaceMicros: 20_000_000, warnAtPercent: 80 },
  allowAlwaysTtlMs: 3_600_000,
  preApproved: []
}

export type Script = (prompt: ApprovalPrompt) => Effect.Effect<ApprovalReply, ApprovalUnavailable>

/** A channel that records every prompt and answers with `script`. */
export const scriptedChannel = (script: Script): ApprovalChannelApi & { readonly prompts: Array<ApprovalPrompt> } => {
  const prompts: Array<ApprovalPrompt> = []
  return {
    name: "scripted",
    prompts,
    ask: (prompt) => Effect.suspend(() => {
      prompts.push(prompt)
      return script(prompt)
    })
  }
}

export const answer = (a: ApprovalReply["answer"], approver = "bob"): Script => () => Effect.succeed({ answer: a, approver })
export const unavailable: Script = () => Effect.fail(new ApprovalUnavailable({ message: "nobody is at the terminal" }))
/** Never answers: the interceptor's timeout (or an interruption) ends the wait. */
export const neverAnswers: Script = () => Effect.never

export interface Harness {
  readonly store: EventStoreApi
  readonly interceptor: SecurityInterceptorApi
  readonly tokens: TokenServiceApi
  readonly workspace: string
  readonly events: (stream: string) => Promise<ReadonlyArray<AstridEvent>>
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  readonly intercept: (p: Partial<Proposal> & Pick<Proposal, "request">) => Promise<Decision>
  /** As `intercept`, with the clock moved by `offsetMs` (expiry tests without waiting). */
  readonly interceptAt: (offsetMs: number, p: Partial<Proposal> & Pick<Proposal, "request">) => Promise<Decision>
}

/** The real clock moved by `offsetMs`. */
export const shiftedClock = (offsetMs: number): Clock.Clock => {
  const real = Clock.make()
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => real.unsafeCurrentTimeMillis() + offsetMs,
    unsafeCurrentTimeNanos: () => real.unsafeCurrentTimeNanos() + BigInt(offsetMs) * 1_000_000n,
    currentTimeMillis: Effect.sync(() => real.unsafeCurrentTimeMillis() + offsetMs),
    currentTimeNanos: Effect.sync(() => real.unsafeCurrentTimeNanos() + BigInt(offsetMs) * 1_000_000n),
    sleep: (duration) => real.sleep(duration)
  }
}

export interface HarnessOptions {
  readonly settings?: Partial<SecuritySettings>
  readonly channel?: ApprovalChannelApi
  /** A SQLite file to use (a fresh store each harness over the same file simulates a restart). */
  readonly sqlitePath?: string
  readonly keyRing?: KeyRingApi
  readonly trustedIssuers?: ReadonlyMap<string, string>
  readonly workspace?: string
  /** SQLite durability (default "normal": tests need no fsync). */
  readonly synchronous?: "full" | "normal"
  /** Yield before every store read and append, so concurrent fibers interleave between check and append. */
  readonly interleave?: boolean
}

const interleaving = (store: EventStoreApi): EventStoreApi => ({
  ...store,
  readStream: (stream, options) => Effect.zipRight(Effect.yieldNow(), store.readStream(stream, options)),
  streamHead: (stream) => Effect.zipRight(Effect.yieldNow(), store.streamHead(stream)),
  append: (stream, expected, events) => Effect.zipRight(Effect.yieldNow(), store.append(stream, expected, events))
})

export const TEST_KEY = testKeyRing(9)

export const tempWorkspace = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "astrid-ws-"))
  mkdirSync(join(dir, "src"), { recursive: true })
  return dir
}

export const makeHarness = async (options: HarnessOptions = {}): Promise<Harness> => {
  const crypto = await makeCrypto()
  const opened =
    options.sqlitePath === undefined
      ? makeMemoryEventStore()
      : await Effect.runPromise(Effect.map(Effect.orDie(openSqliteEventStore({ path: options.sqlitePath, mode: "write", synchronous: options.synchronous ?? "normal" })), (s) => s.api))
  const store = options.interleave === true ? interleaving(opened) : opened
  const keyRing = options.keyRing ?? TEST_KEY
  const base = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, crypto), IdsLive, Layer.succeed(KeyRing, keyRing), PathResolverLive)
  const withLog = Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), base)
  const services = Layer.provideMerge(
    Layer.mergeAll(BudgetServiceLive, TokenServiceLive({ trustedIssuers: options.trustedIssuers ?? new Map([[TEST_KEY.keyId, TEST_KEY.publicKeyHex]]) })),
    withLog
  )
  const settings = { ...DEFAULT_TEST_SETTINGS, ...options.settings }
  const full = Layer.provideMerge(SecurityInterceptorLive(settings), services)
  const withChannel = options.channel === undefined ? full : Layer.merge(full, Layer.succeed(ApprovalChannel, options.channel))
  const { interceptor, tokens } = await Effect.runPromise(
    Effect.all({ interceptor: SecurityInterceptor, tokens: TokenService }).pipe(Effect.provide(withChannel))
  )
  const channel = options.channel
  const provideChannel = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    channel === undefined ? effect : Effect.provideService(effect, ApprovalChannel, channel)
  const workspace = options.workspace ?? tempWorkspace()
  return {
    store,
    interceptor,
    tokens,
    workspace,
    events: (stream) =>
      Effect.runPromise(
        Effect.map(Effect.orDie(store.readStream(stream)), (list) => list.flatMap((e) => Option.toArray(Option.fromNullable(decodeRecorded(e)))))
      ),
    run: (effect) => Effect.runPromise(provideChannel(effect)),
    intercept: (p) =>
      Effect.runPromise(
        provideChannel(
          Effect.orDie(
            interceptor.intercept({ principal: "alice", sessionId: "s1", workspaceRoot: workspace, estimatedCostMicros: 0, ...p })
          )
        )
      ),
    interceptAt: (offsetMs, p) =>
      Effect.runPromise(
        provideChannel(
          Effect.orDie(interceptor.intercept({ principal: "alice", sessionId: "s1", workspaceRoot: workspace, estimatedCostMicros: 0, ...p })).pipe(
            Effect.withClock(shiftedClock(offsetMs))
          )
        )
      )
  }
}

/** Resolves when the channel has been asked once (for cancellation tests). */
export const signalOnAsk = (): { script: Script; asked: Promise<void> } => {
  const gate = Effect.runSync(Deferred.make<void>())
  return {
    script: () => Deferred.succeed(gate, undefined).pipe(Effect.zipRight(Effect.never)),
    asked: Effect.runPromise(Deferred.await(gate))
  }
}
