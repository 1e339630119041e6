/**
 * Many writers (issue 5, item 3): two runtime processes (test/fixtures/writerProcess.ts) share one store
 * and, from the same moment on, append to the same session stream, reserve and settle budget on the same
 * session and workspace streams, and race to use the same single-use tokens. The whole thing runs once on a
 * SQLite file and once on the EventStoreDB adapter over one protocol stand-in that both children connect to.
 *
 * Afterwards the log must show: every chain intact (verifyStore, checkpoints from both runtimes included:
 * dense revisions, every link, zero issues) and every acknowledged append at the revision it was told; no
 * prefix of a budget stream over its limit and no reservation left open, with the money on the workspace
 * equal to the money on the sessions and to what the children reported; each token used exactly once, by the
 * one child that was told so. And the children really raced: both made progress and the store refused at
 * least one append because the other had got there first.
 */
import { Effect, Either, Layer, Schema } from "effect"
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { verifyStore } from "../../application/audit/verifyStore.js"
import { EventLogLive } from "../../application/eventLog.js"
import { EventStore, type EventStoreApi } from "../../application/ports/eventStore.js"
import { KeyRing } from "../../application/ports/keyRing.js"
import { TokenService, TokenServiceLive } from "../../application/security/tokenService.js"
import { decodeRecorded } from "../../application/streamState.js"
import type { RecordedEvent } from "../../domain/envelope.js"
import { principalStream, sessionStream, workspaceStream } from "../../domain/streams.js"
import { testKeyRing } from "../../test/knownAnswerChain.js"
import { type WriterConfig, WRITER_CONFIG_ENV, WriterLine } from "../../test/fixtures/writerProcess.js"
import { CryptoLive, makeCrypto } from "../crypto/cryptoLive.js"
import { IdsLive } from "../crypto/uuidv7.js"
import { connectEsdbEventStore } from "./esdbEventStore.js"
import { type EsdbStandIn, startEsdbStandIn } from "./esdbStandIn.js"
import { openSqliteEventStore } from "./sqliteEventStore.js"

const FIXTURE = fileURLToPath(new URL("../../test/fixtures/writerProcess.ts", import.meta.url))

/** Signs the tokens the parent mints; the children trust it as a token issuer. */
const TOKEN_KEY = testKeyRing(31)
/** Each runtime signs its checkpoints with a key of its own, as two daemons would. */
const CHILDREN = [
  { name: "a", peer: "b", checkpointKey: 41 },
  { name: "b", peer: "a", checkpointKey: 42 }
] as const
const PRINCIPAL = "writer-alice"
const SESSION_IDS = ["many-main", "many-side"] as const
const WORKSPACE_HASH = "many-ws"
// Each child asks for 40..69 per step and, of every three steps, commits one in full and one by half: even at
// 40 a step the two commit 960 or more if nothing is refused, against a workspace limit of 900, so some
// reservations must be refused (asserted below); which limit refuses them depends on the interleaving.
const LIMITS = { perActionMicros: 100, perSessionMicros: 600, perWorkspaceMicros: 900 }
const APPENDS = 20
const BUDGET_STEPS = 24
const TOKENS = 8

const MAIN = sessionStream(SESSION_IDS[0])
const SIDE = sessionStream(SESSION_IDS[1])
const WORKSPACE = workspaceStream(WORKSPACE_HASH)
const PRINCIPAL_STREAM = principalStream(PRINCIPAL)

const decodeLine = Schema.decodeUnknownEither(Schema.parseJson(WriterLine))

interface ChildRun {
  readonly name: string
  readonly lines: ReadonlyArray<WriterLine>
  /** Stdout lines that are not outcome lines. */
  readonly other: ReadonlyArray<string>
  readonly stderr: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

interface Child {
  /** Resolves when the child has opened the store and found the tokens; rejects if it exits first. */
  readonly ready: Promise<void>
  readonly finished: Promise<ChildRun>
  readonly go: () => void
  readonly kill: () => void
}

const startChild = (config: WriterConfig): Child => {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, [WRITER_CONFIG_ENV]: JSON.stringify(config) },
    stdio: ["pipe", "pipe", "pipe"]
  })
  const lines: Array<WriterLine> = []
  const other: Array<string> = []
  let stderr = ""
  let pending = ""
  let onReady: (() => void) | undefined
  let onNotReady: ((e: Error) => void) | undefined
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve
    onNotReady = reject
  })
  // A child that hangs is killed; the test then fails on its exit and its missing lines, not on a timer.
  const giveUp = setTimeout(() => child.kill("SIGKILL"), 45_000)
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const text = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      const line = decodeLine(text)
      if (Either.isLeft(line)) {
        other.push(text)
        continue
      }
      lines.push(line.right)
      if (line.right.kind === "ready") onReady?.()
    }
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  // The parent writes "go" once; a child that already died must not make that write throw.
  child.stdin.on("error", () => undefined)
  const finished = new Promise<ChildRun>((resolve, reject) => {
    child.on("error", reject)
    // "close" comes after stdout has been read to its end, so every line the child wrote is here.
    child.on("close", (code, signal) => {
      clearTimeout(giveUp)
      onNotReady?.(new Error(`child ${config.name} exited (${String(code)} ${String(signal)}) before it was ready; stderr: ${stderr}`))
      resolve({ name: config.name, lines, other, stderr, code, signal })
    })
  })
  return { ready, finished, go: () => child.stdin.end("go\n"), kill: () => child.kill("SIGKILL") }
}

const tokenLayer = (store: EventStoreApi) =>
  Layer.provideMerge(
    TokenServiceLive({ trustedIssuers: new Map([[TOKEN_KEY.keyId, TOKEN_KEY.publicKeyHex]]) }),
    Layer.provideMerge(EventLogLive({ checkpointEvery: 0 }), Layer.mergeAll(Layer.succeed(EventStore, store), CryptoLive, IdsLive, Layer.succeed(KeyRing, TOKEN_KEY)))
  )

/** Mints the single-use tokens both children will try to use. */
const mintTokens = (store: EventStoreApi) =>
  Effect.gen(function* () {
    const tokens = yield* TokenService
    const ids: Array<string> = []
    for (let k = 0; k < TOKENS; k++) {
      const token = yield* tokens.mint({
        principal: PRINCIPAL,
        resource: `file:///work/many/${k}/**`,
        permissions: ["read"],
        singleUse: true,
        ttlMs: 3_600_000,
        approvalEventId: `approval-many-${k}`
      })
      ids.push(token.tokenId)
    }
    return ids
  }).pipe(Effect.provide(tokenLayer(store)))

interface BudgetAudit {
  readonly problems: ReadonlyArray<string>
  readonly spent: number
  readonly open: ReadonlyArray<string>
  /** reservation id -> the reasons of its releases, in order. */
  readonly reservations: ReadonlyMap<string, ReadonlyArray<string>>
}

/**
 * Replays a budget stream on its own (not through the domain's fold, which is what is under test) and
 * checks every prefix: spent + held never over the limit, every commit and release matches an open
 * reservation, and every reservation records the limit and scope it was checked against.
 */
const auditBudget = (events: ReadonlyArray<RecordedEvent>, scope: "session" | "workspace", limit: number): BudgetAudit => {
  const problems: Array<string> = []
  const reservations = new Map<string, { remaining: number; status: "open" | "committed" | "released"; releases: Array<string> }>()
  let spent = 0
  let held = 0
  for (const recorded of events) {
    const at = `${recorded.stream}@${recorded.revision}`
    const event = decodeRecorded(recorded)
    if (event === undefined) {
      problems.push(`${at}: ${recorded.type} does not decode`)
      continue
    }
    if (event._tag === "BudgetReserved") {
      if (reservations.has(event.reservationId)) problems.push(`${at}: reservation ${event.reservationId} reserved twice`)
      if (event.scope !== scope || event.limitMicros !== limit) problems.push(`${at}: reserved against ${String(event.scope)} ${String(event.limitMicros)}, not ${scope} ${limit}`)
      reservations.set(event.reservationId, { remaining: event.amountMicros, status: "open", releases: [] })
      held += event.amountMicros
    } else if (event._tag === "BudgetCommitted") {
      const r = reservations.get(event.reservationId)
      if (r === undefined || r.status !== "open" || event.amountMicros > r.remaining) {
        problems.push(`${at}: commit of ${event.amountMicros} on ${event.reservationId}, which is ${r === undefined ? "unknown" : `${r.status} with ${r.remaining} held`}`)
        continue
      }
      spent += event.amountMicros
      held -= event.amountMicros
      r.remaining -= event.amountMicros
      r.status = "committed"
    } else if (event._tag === "BudgetReleased") {
      const r = reservations.get(event.reservationId)
      if (r === undefined || r.status === "released" || (r.status === "committed" && event.reason !== "actual_lower")) {
        problems.push(`${at}: release (${event.reason}) of ${event.reservationId}, which is ${r === undefined ? "unknown" : r.status}`)
        continue
      }
      if (event.amountMicros !== undefined && event.amountMicros !== r.remaining) problems.push(`${at}: release of ${event.amountMicros}, but ${r.remaining} was held`)
      held -= r.remaining
      r.remaining = 0
      if (r.status === "open") r.status = "released"
      r.releases.push(event.reason)
    }
    if (spent + held > limit) problems.push(`${at}: spent ${spent} + held ${held} is over the ${scope} limit ${limit}`)
    if (held < 0) problems.push(`${at}: held ${held} is negative`)
  }
  return {
    problems,
    spent,
    open: [...reservations].filter(([, r]) => r.status === "open" || r.remaining > 0).map(([id]) => id),
    reservations: new Map([...reservations].map(([id, r]) => [id, r.releases]))
  }
}

type LineOf<K extends WriterLine["kind"]> = Extract<WriterLine, { readonly kind: K }>
const linesOf = <K extends WriterLine["kind"]>(runs: ReadonlyArray<ChildRun>, kind: K): Array<LineOf<K>> =>
  runs.flatMap((r) => r.lines.filter((l): l is LineOf<K> => l.kind === kind))

interface Backend {
  readonly label: string
  readonly store: WriterConfig["store"]
  readonly open: () => Promise<{ readonly api: EventStoreApi; readonly close: () => Promise<void> | void }>
}

/** Mints, runs both children from one start signal, and checks the log they left. */
const scenario = async (backend: Backend, dir: string): Promise<void> => {
  const opened = await backend.open()
  try {
    const store = opened.api
    const tokenIds = await Effect.runPromise(mintTokens(store))

    const children = CHILDREN.map((c) =>
      startChild({
        name: c.name,
        peer: c.peer,
        dir,
        store: backend.store,
        principal: PRINCIPAL,
        sessionIds: SESSION_IDS,
        workspaceHash: WORKSPACE_HASH,
        limits: LIMITS,
        appends: APPENDS,
        budgetSteps: BUDGET_STEPS,
        tokenIds,
        trustedIssuer: { keyId: TOKEN_KEY.keyId, publicKeyHex: TOKEN_KEY.publicKeyHex },
        checkpointKeySeed: c.checkpointKey,
        checkpointEvery: 16,
        maxSteps: 3_000
      })
    )
    try {
      await Promise.all(children.map((c) => c.ready))
    } catch (e) {
      for (const c of children) c.kill()
      throw e
    }
    for (const c of children) c.go()
    const runs = await Promise.all(children.map((c) => c.finished))

    for (const run of runs) {
      const context = `${backend.label}, child ${run.name}: exit ${String(run.code)} ${String(run.signal)}; stderr: ${run.stderr}`
      expect(run.code, context).toBe(0)
      expect(run.other, context).toEqual([])
      expect(run.lines.filter((l) => l.kind === "done"), context).toHaveLength(1)
    }

    const crypto = await makeCrypto()
    const checks = Effect.gen(function* () {
      // 1. Chains: nothing forked, every link holds, checkpoints of both runtimes verify.
      const checkpointKeys = CHILDREN.map((c) => testKeyRing(c.checkpointKey))
      const report = yield* verifyStore(store, {
        trustedKeys: new Map(checkpointKeys.map((k) => [k.keyId, k.publicKeyHex])),
        blake3Hex: crypto.blake3Hex,
        verifyText: crypto.verifyText
      })
      expect(report.issues).toEqual([])
      expect(report.ok).toBe(true)
      expect(report.checkpoints).toBeGreaterThan(0)
      const stats = yield* store.stats
      expect(report.events).toBe(stats.events)
      expect(report.streams).toBe(5)
      const signers = new Set<string>()
      for (const e of yield* store.readStream("astrid-checkpoints")) {
        const event = decodeRecorded(e)
        if (event?._tag === "CheckpointSigned") signers.add(event.keyId)
      }
      expect(signers.size, "checkpoints signed by both runtimes").toBe(2)

      // Every acknowledged append is at the revision its writer was told, and no revision was told twice.
      const main = yield* store.readStream(MAIN)
      expect(main.map((e) => e.revision)).toEqual(main.map((_, i) => i))
      const appended = linesOf(runs, "appended")
      expect(new Set(appended.map((l) => l.revision)).size).toBe(appended.length)
      for (const line of appended) {
        expect(line.stream).toBe(MAIN)
        expect(main[line.revision]?.eventId, `${line.name}'s append at ${MAIN}@${line.revision}`).toBe(line.eventId)
      }
      expect(main.filter((e) => e.type === "MessageRecorded")).toHaveLength(appended.length)

      // 2. Budgets: no prefix over its limit, nothing left open, the same money everywhere.
      const side = yield* store.readStream(SIDE)
      const workspace = yield* store.readStream(WORKSPACE)
      const audits = {
        main: auditBudget(main, "session", LIMITS.perSessionMicros),
        side: auditBudget(side, "session", LIMITS.perSessionMicros),
        workspace: auditBudget(workspace, "workspace", LIMITS.perWorkspaceMicros)
      }
      for (const [name, audit] of Object.entries(audits)) {
        expect(audit.problems, name).toEqual([])
        expect(audit.open, `${name}: open reservations`).toEqual([])
      }
      const committed = linesOf(runs, "committed")
      expect(audits.workspace.spent).toBe(audits.main.spent + audits.side.spent)
      expect(audits.workspace.spent).toBe(committed.reduce((sum, l) => sum + l.committedMicros, 0))

      const reserved = linesOf(runs, "reserved")
      const inSessions = new Map([...audits.main.reservations, ...audits.side.reservations])
      expect([...inSessions.keys()].sort()).toEqual(reserved.map((l) => l.reservationId).sort())
      for (const line of reserved) {
        expect(audits.workspace.reservations.has(line.reservationId), `${line.reservationId} on the workspace`).toBe(true)
        expect((line.sessionStream === MAIN ? audits.main : audits.side).reservations.has(line.reservationId)).toBe(true)
      }
      const settled = [...committed, ...linesOf(runs, "released")].map((l) => l.reservationId).sort()
      expect(settled).toEqual(reserved.map((l) => l.reservationId).sort())
      // A workspace reservation without its session pair was given back, explicitly, because the session said no.
      const compensations = [...audits.workspace.reservations].filter(([id]) => !inSessions.has(id))
      for (const [id, reasons] of compensations) expect(reasons, id).toEqual(["compensation"])
      const exceeded = linesOf(runs, "exceeded")
      expect(compensations).toHaveLength(exceeded.filter((l) => l.compensated).length)
      expect(exceeded.length, "the limits were hit").toBeGreaterThan(0)

      // 3. Tokens: each used exactly once, by the one child that was told it succeeded.
      const usedEvents = new Map<string, Array<string>>()
      for (const e of yield* store.readStream(PRINCIPAL_STREAM)) {
        const event = decodeRecorded(e)
        if (event?._tag === "CapabilityTokenUsed") usedEvents.set(event.tokenId, [...(usedEvents.get(event.tokenId) ?? []), event.actionId])
      }
      const used = linesOf(runs, "tokenUsed")
      const rejected = linesOf(runs, "tokenRejected")
      for (const tokenId of tokenIds) {
        const winners = used.filter((l) => l.tokenId === tokenId)
        const losers = rejected.filter((l) => l.tokenId === tokenId)
        expect(winners, `winners of ${tokenId}`).toHaveLength(1)
        expect(losers.map((l) => l.reason), `losers of ${tokenId}`).toEqual(["used"])
        expect([...winners, ...losers].map((l) => l.name).sort()).toEqual(["a", "b"])
        expect(usedEvents.get(tokenId), `CapabilityTokenUsed of ${tokenId}`).toEqual(winners.map((l) => l.actionId))
      }
      expect([...usedEvents.keys()].sort()).toEqual([...tokenIds].sort())

      // 4. They raced: both made progress, and the store turned appends away because of the other one.
      const done = linesOf(runs, "done")
      for (const run of runs) {
        expect(appended.filter((l) => l.name === run.name).length, `${run.name}'s appends`).toBeGreaterThanOrEqual(APPENDS)
        expect(reserved.filter((l) => l.name === run.name).length, `${run.name}'s reservations`).toBeGreaterThan(0)
      }
      const conflicts = done.reduce((sum, l) => sum + l.conflicts, 0)
      expect(conflicts, "appends refused because the other writer moved the stream").toBeGreaterThan(0)
      console.info(
        `manyWriters ${backend.label}: ${done.map((l) => `${l.name}: ${l.steps} steps, ${l.conflicts} refused appends`).join("; ")}; ` +
          `${stats.events} events, ${report.checkpoints} checkpoints, ${reserved.length} reservations, ${exceeded.length} refused ` +
          `(${exceeded.map((l) => l.scope).join(",")}), ${audits.workspace.spent} spent of ${LIMITS.perWorkspaceMicros}`
      )
    })
    await Effect.runPromise(checks)
  } finally {
    await opened.close()
  }
}

describe("two runtime processes writing to one store at once", () => {
  let dir = ""
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "astrid-many-"))
  })
  afterAll(async () => {
    if (dir !== "") await rm(dir, { recursive: true, force: true })
  })

  it("on one SQLite file: no fork, no budget over its limit, no single-use token used twice", async () => {
    const path = join(dir, "sqlite", "astrid.db")
    await scenario(
      {
        label: "sqlite",
        store: { kind: "sqlite", path },
        open: () => Effect.runPromise(openSqliteEventStore({ path, mode: "write", synchronous: "normal" }))
      },
      await mkdtemp(join(dir, "sqlite-"))
    )
  })

  describe("on EventStoreDB (both children connected to one protocol stand-in)", () => {
    let standIn: EsdbStandIn | undefined
    afterAll(async () => {
      await standIn?.close()
    })

    it("no fork, no budget over its limit, no single-use token used twice", async () => {
      const server = await startEsdbStandIn()
      standIn = server
      await scenario(
        {
          label: "esdb stand-in",
          store: { kind: "esdb", url: server.url },
          open: () => Effect.runPromise(connectEsdbEventStore(server.url))
        },
        await mkdtemp(join(dir, "esdb-"))
      )
    })
  })
})
