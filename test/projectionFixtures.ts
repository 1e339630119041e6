/**
 * Test helpers for projections: a real SQLite event store and EventLog in a temp dir, a projections.db
 * beside it, and event drafts for tokens, budgets and deferrals. Events are built by decoding a superset
 * of the fields the catalogue has had, so the helpers keep working while event schemas gain fields.
 */
import { Effect, Layer, Schema } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLog, type EventDraft, type EventLogApi, EventLogLive } from "../application/eventLog.js"
import { Crypto } from "../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../application/ports/eventStore.js"
import { AstridEvent } from "../domain/events/astridEvent.js"
import { approvalsStream, principalStream, sessionStream, workspaceStream } from "../domain/streams.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { openSqliteProjectionStore, type ProjectionStoreApi } from "../projections/sqliteProjectionStore.js"

const crypto = await makeCrypto()

export interface Harness {
  readonly dir: string
  readonly store: EventStoreApi
  readonly log: EventLogApi
  /** Opens (another connection to) a projections database in the dir; closed by `close`. */
  readonly views: (file?: string, mode?: "read" | "write") => ProjectionStoreApi
  readonly append: (stream: string, drafts: ReadonlyArray<EventDraft>) => Promise<void>
  readonly close: () => void
}

/** A temp dir with an event store (synchronous=normal: durability is not what these tests are about). */
export const openHarness = async (dir: string = mkdtempSync(join(tmpdir(), "astrid-proj-"))): Promise<Harness> => {
  const opened = await Effect.runPromise(openSqliteEventStore({ path: join(dir, "astrid.db"), mode: "write", synchronous: "normal" }))
  const layer = EventLogLive({ checkpointEvery: 0 }).pipe(
    Layer.provide(Layer.mergeAll(Layer.succeed(EventStore, opened.api), Layer.succeed(Crypto, crypto), IdsLive))
  )
  const log = await Effect.runPromise(EventLog.pipe(Effect.provide(layer)))
  const closers: Array<() => void> = [() => opened.close()]
  return {
    dir,
    store: opened.api,
    log,
    views: (file = "projections.db", mode = "write") => {
      const v = Effect.runSync(openSqliteProjectionStore({ path: join(dir, file), mode }))
      closers.push(v.close)
      return v.api
    },
    append: async (stream, drafts) => {
      await Effect.runPromise(Effect.orDie(log.append(stream, "any", drafts)))
    },
    close: () => {
      for (const c of closers.splice(0).reverse()) c()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

const decodeEvent = Schema.decodeUnknownSync(AstridEvent)

const draft = (principal: string, event: Record<string, unknown>, sessionId?: string): EventDraft => ({
  principal,
  event: decodeEvent(event),
  ...(sessionId === undefined ? {} : { sessionId })
})

const SIGNATURE = "ab".repeat(64)
const ISSUER = "ed25519:0123456789abcdef"

export const tokenGranted = (
  principal: string,
  tokenId: string,
  options: { singleUse?: boolean; expiresAt?: string; resource?: string } = {}
): { stream: string; draft: EventDraft } => ({
  stream: principalStream(principal),
  draft: draft(principal, {
    _tag: "CapabilityTokenGranted",
    token: {
      tokenId,
      principal,
      resource: options.resource ?? `file:///work/${tokenId}/**`,
      permissions: ["read", "write"],
      issuedAt: "2026-11-25T10:00:00.000Z",
      expiresAt: options.expiresAt ?? "2026-11-25T11:00:00.000Z",
      singleUse: options.singleUse ?? false,
      approvalEventId: `approval-${tokenId}`,
      issuer: ISSUER,
      signature: SIGNATURE
    }
  })
})

export const tokenUsed = (principal: string, tokenId: string, actionId: string): { stream: string; draft: EventDraft } => ({
  stream: principalStream(principal),
  draft: draft(principal, { _tag: "CapabilityTokenUsed", tokenId, actionId, sessionId: "s1" }, "s1")
})

export const tokenRevoked = (principal: string, tokenId: string, reason: string | null): { stream: string; draft: EventDraft } => ({
  stream: principalStream(principal),
  draft: draft(principal, { _tag: "CapabilityTokenRevoked", tokenId, revokedBy: principal, reason })
})

export type BudgetScopeName = "session" | "workspace"
export const budgetStream = (scope: BudgetScopeName, owner: string): string => (scope === "session" ? sessionStream(owner) : workspaceStream(owner))

export const budgetReserved = (scope: BudgetScopeName, owner: string, reservationId: string, amountMicros: number, limitMicros?: number) => ({
  stream: budgetStream(scope, owner),
  draft: draft("alice", {
    _tag: "BudgetReserved",
    reservationId,
    actionId: `act-${reservationId}`,
    amountMicros,
    scope,
    ...(limitMicros === undefined ? {} : { limitMicros })
  })
})

export const budgetCommitted = (scope: BudgetScopeName, owner: string, reservationId: string, amountMicros: number) => ({
  stream: budgetStream(scope, owner),
  draft: draft("alice", { _tag: "BudgetCommitted", reservationId, amountMicros })
})

export const RELEASE_REASONS = ["denied", "cancelled", "failed", "compensation", "actual_lower"] as const

/** Without `amountMicros`, a release as written before releases stated their amount. */
export const budgetReleased = (
  scope: BudgetScopeName,
  owner: string,
  reservationId: string,
  reason: (typeof RELEASE_REASONS)[number],
  amountMicros?: number
) => ({
  stream: budgetStream(scope, owner),
  draft: draft("alice", { _tag: "BudgetReleased", reservationId, reason, ...(amountMicros === undefined ? {} : { amountMicros }) })
})

export const deferralQueued = (requestId: string, principal: string, priority: number, sessionId = "s1") => ({
  stream: approvalsStream,
  draft: draft(
    principal,
    {
      _tag: "DeferredActionQueued",
      requestId,
      sessionId,
      actionId: `act-${requestId}`,
      principal,
      workspace: "/work/ws",
      request: { kind: "file_delete", path: "/work/ws/x" },
      estimatedCostMicros: 0,
      priority,
      summary: `delete for ${requestId}`,
      risk: "high",
      reason: "timeout"
    },
    sessionId
  )
})

export const OUTCOMES = ["approved", "denied", "expired"] as const

export const deferralResolved = (requestId: string, outcome: (typeof OUTCOMES)[number], resolver = "bob") => ({
  stream: approvalsStream,
  draft: draft(resolver, {
    _tag: "DeferredActionResolved",
    requestId,
    outcome,
    scope: outcome === "approved" ? "once" : null,
    resolver,
    reason: outcome === "denied" ? "not now" : null
  })
})

/** An event no view reads. */
export const noise = (n: number) => ({
  stream: sessionStream("noise"),
  draft: draft("alice", { _tag: "ToolResultRecorded", actionId: `noise-${n}`, tool: "read_file", ok: true, output: "x", truncated: false, durationMs: 1 }, "noise")
})
