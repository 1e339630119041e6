/**
 * The SecurityInterceptor end to end, and its pure decision beside Cedar, in one run.
 *
 * 1. `intercept.token_covered`, `intercept.policy_allowed`, `intercept.policy_blocked`: the real
 *    SecurityInterceptor (EventLog with automatic checkpoints every 1,000 events and a runtime key, token and
 *    budget services, the file-system PathResolver) over a SQLite store in a temp folder, synchronous=FULL
 *    (the durable default). Latency per intercept (ms, p50 / p99) and intercepts per second, over
 *    ROUNDS x BLOCK intercepts per path after a warm-up round; the three paths take turns in blocks of BLOCK,
 *    each block in a session of its own, so the budget never runs out and noise falls on all paths alike.
 *      token_covered   file_write src/main.rs in guided mode (which asks), covered by a reusable token on
 *                      file:///<workspace>/** [write]: ActionProposed + BudgetReserved + ActionAllowed
 *      token_covered_command  command_exec "cargo build --release && cargo test -q -- --nocapture", covered
 *                      by an exec://cargo token only because every program in the line is cargo (I9)
 *      policy_allowed  file_read src/lib.rs (guided mode lets reads inside the workspace pass)
 *      policy_blocked  command_exec "sudo rm -rf /tmp/x" (blocked_commands: sudo): ActionProposed + ActionDenied
 *    A zero-cost allowed intercept makes one durable append (ActionProposed + ActionAllowed: nothing to
 *    reserve); a paid one (the `.paid` lines) makes two: BudgetReserved on the workspace stream, then the
 *    three events above on the session stream (BudgetService.reserve reserves workspace first, then session).
 *    The peer of each line is "the append alone": the very events that path's measured intercepts wrote, read
 *    back and appended again through EventLog (same grouping, same order, same checkpoint setting) into a fresh
 *    store with the same synchronous setting, timed per intercept. intercept - append = the decision, the
 *    reads and the folds. The same lines with synchronous=NORMAL follow, labelled `.sync_normal`: a secondary
 *    figure (not durable on power loss), showing what the fsync costs.
 *    `intercept.token_covered.commit_floor`: the rows the token-covered intercepts wrote, inserted with raw
 *    better-sqlite3 in ONE transaction per intercept beside TWO (the current shape): the floor under any
 *    design, and what merging the two commits would save.
 *
 * 2. `decision.pure` beside `decision.cedar` and `decision.cedar_preparsed`: the same REQUESTS decided by
 *    - ours: classify + evaluatePolicy + boundaryVerdict + token lookup (the TokenService's cheap filters, then
 *      checkToken with the signature check served from a cache keyed by the token's BLAKE3 content hash, as
 *      the service does: the hash is computed on every check, the ed25519 verification is not), no I/O;
 *      canonical paths are resolved before timing (the PathResolver is I/O);
 *    - Cedar 4 (`@cedar-policy/cedar-wasm/nodejs`) `isAuthorized` with an equivalent policy set as text (Cedar
 *      parses it on every call: that is this API), and `statefulIsAuthorized` with the same set preparsed once.
 *    Equivalent policy set: a `forbid` per blocked command, per denied path, for unparseable and run-time
 *    programs and for the argument size; a `permit` for reads inside the workspace (guided mode) and one per
 *    token (principal, action = permission, resource URI glob, validity window with the clock-skew tolerance).
 *    The request's facts Cedar needs (programs and wrappers of the parsed command line, option shapes, the
 *    canonical path, the argument size) are built into entities and context BEFORE timing, with our parser:
 *    Cedar cannot parse a shell line. That favours Cedar. Outcomes are compared three ways: allow; blocked
 *    (ours: a policy block; Cedar: deny with a satisfied forbid); ask (ours: a human would be asked; Cedar:
 *    deny with no satisfied policy). Every decision of every round must agree, or an error line is printed.
 *    Modelling limit: Cedar cannot quantify over the simple commands of a line, so the option shapes of
 *    "rm -rf /"-style entries are pooled per line, not per simple command ("rm -r a; rm -f /" would differ);
 *    the REQUESTS here do not depend on that, and the agreement check would say so if they did.
 */
import {
  type AuthorizationAnswer,
  type AuthorizationCall,
  type EntityJson,
  type EntityUidJson,
  getCedarVersion,
  isAuthorized,
  preparsePolicySet,
  type StatefulAuthorizationCall,
  statefulIsAuthorized
} from "@cedar-policy/cedar-wasm/nodejs"
import Database from "better-sqlite3"
import { Effect, Layer } from "effect"
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { EventLog, type EventDraft, EventLogLive } from "../application/eventLog.js"
import { Crypto, type CryptoApi } from "../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../application/ports/eventStore.js"
import { KeyRing, type KeyRingApi } from "../application/ports/keyRing.js"
import { BudgetServiceLive } from "../application/security/budgetService.js"
import {
  type Decision,
  type Proposal,
  SecurityInterceptor,
  SecurityInterceptorLive,
  type SecuritySettings
} from "../application/security/securityInterceptor.js"
import { TokenService, TokenServiceLive } from "../application/security/tokenService.js"
import { decodeRecorded } from "../application/streamState.js"
import type { ActionRequest, Permission } from "../domain/security/action.js"
import {
  type CapabilityToken,
  checkToken,
  DEFAULT_CLOCK_SKEW_MS,
  tokenCanonicalText,
  tokenCovers,
  tokenSigningText,
  type UnsignedCapabilityToken
} from "../domain/security/capabilityToken.js"
import { classify } from "../domain/security/classify.js"
import { parseCommandLine, programName } from "../domain/security/commandLine.js"
import { DEFAULT_POLICY, evaluatePolicy, type SecurityPolicy } from "../domain/security/policy.js"
import { boundaryVerdict } from "../domain/security/workspaceBoundary.js"
import { DEFAULT_CHECKPOINT_EVERY } from "../infrastructure/config/astridConfig.js"
import { makeCrypto } from "../infrastructure/crypto/cryptoLive.js"
import { IdsLive, uuidv7 } from "../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { SCHEMA_SQL } from "../infrastructure/event-store/sqliteSchema.js"
import { generateKey, loadKeyRing, localTrustedKeys } from "../infrastructure/keys/keyFiles.js"
import { PathResolverLive, resolveWorkspacePath } from "../infrastructure/workspace/pathResolver.js"
import { benchDir, emit, quantile, round, summarize } from "./lib/measure.js"

const WARMUP_ROUNDS = 1
const ROUNDS = Number(process.env["ASTRID_BENCH_INTERCEPT_ROUNDS"] ?? 12)
/** Intercepts per path per round, all in one session. */
const BLOCK = 250
const TARGET = { p50Ms: 0.5, p99Ms: 3 } as const
const PRINCIPAL = "alice"
const DECISION_WARMUP = 300
const DECISION_ROUNDS = Number(process.env["ASTRID_BENCH_DECISION_ROUNDS"] ?? 400)

type Sync = "full" | "normal"
type PathName = "token_covered" | "token_covered_command" | "policy_allowed" | "policy_blocked"
const PATHS: ReadonlyArray<PathName> = ["token_covered", "token_covered_command", "policy_allowed", "policy_blocked"]

const REQUEST_OF: Readonly<Record<PathName, ActionRequest>> = {
  token_covered: { _tag: "file_write", path: "src/main.rs", bytes: 120 },
  // A command line covered by a program grant: every program in it is parsed and checked against the token.
  token_covered_command: { _tag: "command_exec", command: "cargo build --release && cargo test -q -- --nocapture" },
  policy_allowed: { _tag: "file_read", path: "src/lib.rs" },
  policy_blocked: { _tag: "command_exec", command: "sudo rm -rf /tmp/x" }
}

const EXPECTED_OF: Readonly<Record<PathName, (d: Decision) => boolean>> = {
  token_covered: (d) => d._tag === "Allowed" && d.proof === "token",
  token_covered_command: (d) => d._tag === "Allowed" && d.proof === "token",
  policy_allowed: (d) => d._tag === "Allowed" && d.proof === "policy",
  policy_blocked: (d) => d._tag === "Denied" && d.stage === "policy"
}

const describe = (d: Decision): string =>
  d._tag === "Allowed" ? `Allowed (${d.proof})` : d._tag === "Denied" ? `Denied at ${d.stage}: ${d.reason}` : `Deferred (${d.reason})`

const MODE = "guided"
const ESCAPE = "ask"

const settings = (): SecuritySettings => ({
  policy: DEFAULT_POLICY,
  workspaceMode: MODE,
  escapePolicy: ESCAPE,
  approvalTimeoutMs: 1_000,
  // Large limits: the bench never commits, so reservations pile up on the workspace stream.
  budget: { perActionMicros: 1_000_000, perSessionMicros: 1_000_000_000_000, perWorkspaceMicros: 1_000_000_000_000, warnAtPercent: 80 },
  allowAlwaysTtlMs: 3_600_000,
  preApproved: []
})

const removeDb = (path: string): void => {
  for (const p of [path, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true })
}

const makeWorkspace = (dir: string): string => {
  const ws = join(dir, "ws")
  mkdirSync(join(ws, "src"), { recursive: true })
  writeFileSync(join(ws, "src", "main.rs"), "fn main() {}\n")
  writeFileSync(join(ws, "src", "lib.rs"), "pub fn f() {}\n")
  writeFileSync(join(ws, "README.md"), "# bench\n")
  return realpathSync.native(ws)
}

interface Fixture {
  readonly dir: string
  readonly workspace: string
  readonly keyRing: KeyRingApi
  readonly trusted: ReadonlyMap<string, string>
  readonly crypto: CryptoApi
}

const makeFixture = async (): Promise<Fixture> => {
  const dir = mkdtempSync(join(benchDir(), "intercept-"))
  const home = join(dir, "home")
  const workspace = makeWorkspace(dir)
  const { keyRing, trusted } = await Effect.runPromise(
    Effect.gen(function* () {
      yield* generateKey(home, false, Date.now())
      return { keyRing: yield* loadKeyRing(home), trusted: yield* localTrustedKeys(home) }
    })
  )
  return { dir, workspace, keyRing, trusted, crypto: await makeCrypto() }
}

// ---------------------------------------------------------------------------------------------------------
// 1. End to end

interface Measured {
  /** ms per intercept, by path. */
  readonly latencies: Record<PathName, Array<number>>
  /** Seconds spent in each path's measured blocks (for intercepts per second). */
  readonly seconds: Record<PathName, number>
  /** The action ids of the measured intercepts, by path, in order. */
  readonly actionIds: Record<PathName, Array<string>>
  readonly errors: Array<string>
}

const emptyByPath = <A>(make: () => A): Record<PathName, A> => ({ token_covered: make(), token_covered_command: make(), policy_allowed: make(), policy_blocked: make() })

/** The real interceptor over a fresh SQLite store; the EventLog as production wires it (checkpoints, a key). */
const withStore = <A>(
  path: string,
  sync: Sync,
  fixture: Fixture,
  use: (services: { store: EventStoreApi; log: Effect.Effect.Success<typeof EventLog> }) => Effect.Effect<A, unknown>
): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        removeDb(path)
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "write", synchronous: sync }), (s) => Effect.sync(() => s.close()))
        const deps = Layer.mergeAll(Layer.succeed(EventStore, store.api), Layer.succeed(Crypto, fixture.crypto), IdsLive, Layer.succeed(KeyRing, fixture.keyRing))
        const log = yield* EventLog.pipe(Effect.provide(EventLogLive({ checkpointEvery: DEFAULT_CHECKPOINT_EVERY }).pipe(Layer.provide(deps))))
        return yield* use({ store: store.api, log })
      })
    ).pipe(Effect.orDie)
  )

const measureIntercepts = (path: string, sync: Sync, fixture: Fixture, costMicros: number): Promise<Measured> =>
  withStore(path, sync, fixture, ({ store, log }) =>
    Effect.gen(function* () {
      const base = Layer.mergeAll(
        Layer.succeed(EventLog, log),
        Layer.succeed(EventStore, store),
        Layer.succeed(Crypto, fixture.crypto),
        IdsLive,
        Layer.succeed(KeyRing, fixture.keyRing)
      )
      const services = Layer.provideMerge(
        Layer.mergeAll(BudgetServiceLive, TokenServiceLive({ trustedIssuers: fixture.trusted })),
        Layer.merge(base, PathResolverLive)
      )
      const { interceptor, tokens } = yield* Effect.all({ interceptor: SecurityInterceptor, tokens: TokenService }).pipe(
        Effect.provide(Layer.provideMerge(SecurityInterceptorLive(settings()), services))
      )
      yield* tokens.mint({
        principal: PRINCIPAL,
        resource: `file://${fixture.workspace}/**`,
        permissions: ["write"],
        ttlMs: 3_600_000,
        singleUse: false,
        approvalEventId: "bench-approval"
      })
      yield* tokens.mint({ principal: PRINCIPAL, resource: "exec://cargo", permissions: ["execute"], ttlMs: 3_600_000, singleUse: false, approvalEventId: "bench-approval" })

      const measured: Measured = {
        latencies: emptyByPath(() => []),
        seconds: emptyByPath(() => 0),
        actionIds: emptyByPath(() => []),
        errors: []
      }
      for (let r = 0; r < WARMUP_ROUNDS + ROUNDS; r++) {
        const warm = r < WARMUP_ROUNDS
        for (const name of PATHS) {
          const sessionId = `bench-${name.replace("_", "-")}-${r}`
          const started = performance.now()
          for (let i = 0; i < BLOCK; i++) {
            // The action id is drawn inside the timing: the interceptor would otherwise draw it itself.
            const t = performance.now()
            const actionId = uuidv7(Date.now())
            const proposal: Proposal = {
              principal: PRINCIPAL,
              sessionId,
              workspaceRoot: fixture.workspace,
              request: REQUEST_OF[name],
              estimatedCostMicros: costMicros,
              actionId
            }
            const decision = yield* interceptor.intercept(proposal)
            const elapsed = performance.now() - t
            if (!EXPECTED_OF[name](decision) && measured.errors.length < 5) measured.errors.push(`${name}: ${describe(decision)}`)
            if (!warm) {
              measured.latencies[name].push(elapsed)
              measured.actionIds[name].push(actionId)
            }
          }
          if (!warm) measured.seconds[name] += (performance.now() - started) / 1000
        }
      }
      return measured
    })
  )

/** One row of the events table, as the store wrote it. */
type Row = readonly [string, number, string, string, string, string, string]

interface Batch {
  readonly stream: string
  readonly drafts: ReadonlyArray<EventDraft>
  readonly rows: ReadonlyArray<Row>
}

const metadataOf = (text: string): { principal: string; sessionId?: string; correlationId?: string; classification?: "trusted" | "untrusted" } | undefined => {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof m !== "object" || m === null || !("principal" in m) || typeof m.principal !== "string") return undefined
  return {
    principal: m.principal,
    ...("sessionId" in m && typeof m.sessionId === "string" ? { sessionId: m.sessionId } : {}),
    ...("correlationId" in m && typeof m.correlationId === "string" ? { correlationId: m.correlationId } : {}),
    ...("classification" in m && (m.classification === "trusted" || m.classification === "untrusted") ? { classification: m.classification } : {})
  }
}

/** The appends each action id made, as batches (one per stream, in the order they were written). */
const readBatches = (path: string): Promise<Map<string, Array<Batch>>> => {
  const byAction = new Map<string, Array<{ stream: string; drafts: Array<EventDraft>; rows: Array<Row> }>>()
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close()))
        let after = 0
        for (;;) {
          const page = yield* store.api.readAll({ after, maxCount: 5_000 })
          for (const recorded of page) {
            after = recorded.position
            const meta = metadataOf(recorded.metadata)
            const event = decodeRecorded(recorded)
            if (meta === undefined || event === undefined || meta.correlationId === undefined) continue
            const batches = byAction.get(meta.correlationId) ?? []
            const last = batches[batches.length - 1]
            const draft: EventDraft = { event, ...meta }
            const row: Row = [recorded.stream, recorded.revision, recorded.eventId, recorded.type, recorded.data, recorded.metadata, recorded.hash]
            if (last !== undefined && last.stream === recorded.stream) {
              last.drafts.push(draft)
              last.rows.push(row)
            } else batches.push({ stream: recorded.stream, drafts: [draft], rows: [row] })
            byAction.set(meta.correlationId, batches)
          }
          if (page.length < 5_000) break
        }
        return byAction
      })
    ).pipe(Effect.orDie)
  )
}

/** The same appends again, through EventLog into a fresh store, timed per intercept (ms). */
const replayAppends = (path: string, sync: Sync, fixture: Fixture, order: ReadonlyArray<{ name: PathName; batches: ReadonlyArray<Batch> }>) =>
  withStore(path, sync, fixture, ({ log }) =>
    Effect.gen(function* () {
      const latencies = emptyByPath((): Array<number> => [])
      for (const { name, batches } of order) {
        const t = performance.now()
        for (const b of batches) yield* log.append(b.stream, "any", b.drafts)
        latencies[name].push(performance.now() - t)
      }
      return latencies
    })
  )

/**
 * The floor under any intercept design: raw better-sqlite3 IMMEDIATE transactions of the very rows the
 * token-covered intercepts wrote, same schema and pragmas, no EventLog, no decision. "two" = the current
 * shape (workspace row, then the session rows: two commits, two syncs); "one" = all rows in one commit. The
 * two shapes alternate per intercept, each in its own fresh file. ms per intercept.
 */
const commitFloor = (dir: string, sync: Sync, intercepts: ReadonlyArray<ReadonlyArray<Batch>>): { one: Array<number>; two: Array<number> } => {
  const open = (name: string) => {
    const path = join(dir, name)
    removeDb(path)
    const db = new Database(path)
    db.pragma("journal_mode = WAL")
    db.exec(SCHEMA_SQL)
    db.pragma(`synchronous = ${sync === "normal" ? "NORMAL" : "FULL"}`)
    const insert = db.prepare("INSERT INTO events (stream_id, revision, event_id, type, data, metadata, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")
    const tx = db.transaction((rows: ReadonlyArray<Row>) => {
      for (const r of rows) insert.run(...r)
    })
    return { db, tx, path }
  }
  const one = open("floor-one.db")
  const two = open("floor-two.db")
  const result: { one: Array<number>; two: Array<number> } = { one: [], two: [] }
  try {
    for (const batches of intercepts) {
      let t = performance.now()
      for (const b of batches) two.tx.immediate(b.rows)
      result.two.push(performance.now() - t)
      t = performance.now()
      one.tx.immediate(batches.flatMap((b) => b.rows))
      result.one.push(performance.now() - t)
    }
  } finally {
    one.db.close()
    two.db.close()
    removeDb(one.path)
    removeDb(two.path)
  }
  return result
}

/**
 * Variants: a zero-cost action (most tool calls: reading or writing a file costs nothing) holds no budget,
 * so its one durable write is the decision; a paid action (1,000 micro-dollars) also reserves on the
 * workspace stream first, a second commit. Both are durable (FULL); NORMAL is the secondary figure.
 */
const VARIANTS = [
  { sync: "full", costMicros: 0, suffix: "" },
  { sync: "full", costMicros: 1_000, suffix: ".paid" },
  { sync: "normal", costMicros: 0, suffix: ".sync_normal" }
] as const

const runEndToEnd = async (fixture: Fixture): Promise<void> => {
  for (const { sync, costMicros, suffix } of VARIANTS) {
    const interceptPath = join(fixture.dir, `intercept-${sync}-${costMicros}.db`)
    const replayPath = join(fixture.dir, `replay-${sync}-${costMicros}.db`)
    const measured = await measureIntercepts(interceptPath, sync, fixture, costMicros)
    const batches = await readBatches(interceptPath)
    // Replay in the order the intercepts ran: blocks of BLOCK per path, paths taking turns.
    const order: Array<{ name: PathName; batches: ReadonlyArray<Batch> }> = []
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of PATHS) {
        for (const id of measured.actionIds[name].slice(r * BLOCK, (r + 1) * BLOCK)) order.push({ name, batches: batches.get(id) ?? [] })
      }
    }
    const appendsPerIntercept = emptyByPath(() => 0)
    const eventsPerIntercept = emptyByPath(() => 0)
    for (const name of PATHS) {
      const first = batches.get(measured.actionIds[name][0] ?? "") ?? []
      appendsPerIntercept[name] = first.length
      eventsPerIntercept[name] = first.reduce((n, b) => n + b.drafts.length, 0)
    }
    const replayed = await replayAppends(replayPath, sync, fixture, order)
    const floor = costMicros === 0 ? undefined : commitFloor(
      fixture.dir,
      sync,
      measured.actionIds.token_covered.map((id) => batches.get(id) ?? [])
    )
    removeDb(interceptPath)
    removeDb(replayPath)

    for (const name of PATHS) {
      const lat = measured.latencies[name]
      const s = summarize(lat, false)
      const peer = summarize(replayed[name], false)
      const targeted = (name === "token_covered" || name === "token_covered_command") && costMicros === 0
      const durable = sync === "full"
      const met = s.median <= TARGET.p50Ms && s.p99 <= TARGET.p99Ms
      emit({
        name: `intercept.${name}${suffix}`,
        estimatedCostMicros: costMicros,
        n: lat.length,
        median: s.median,
        p99: s.p99,
        unit: "ms/intercept",
        synchronous: sync,
        figure: durable ? "primary: synchronous=FULL, the durable default" : "secondary: synchronous=NORMAL, may lose the last commits on power loss (not the default)",
        request: REQUEST_OF[name],
        appendsPerIntercept: appendsPerIntercept[name],
        eventsPerIntercept: eventsPerIntercept[name],
        interceptsPerSecond: Math.round(lat.length / measured.seconds[name]),
        p999: round(quantile(lat, 0.999)),
        max: round(Math.max(...lat)),
        peer: {
          name: `the same ${appendsPerIntercept[name]} append(s) alone: these intercepts' events read back and appended again through EventLog into a fresh store, synchronous=${sync}`,
          median: peer.median,
          p99: peer.p99,
          unit: "ms/intercept"
        },
        ratio: round(s.median / peer.median),
        ratioMeaning: "intercept p50 / append-alone p50; the rest of the intercept is decision, reads and folds",
        p50BeyondAppendMs: round(s.median - peer.median),
        ...(targeted
          ? {
              limit: { p50Ms: TARGET.p50Ms, p99Ms: TARGET.p99Ms, appliesTo: "token-covered zero-cost intercept with its durable append (synchronous=FULL)" },
              met: durable ? met : null,
              ...(durable && !met
                ? { missedBy: { p50Ms: round(Math.max(0, s.median - TARGET.p50Ms)), p99Ms: round(Math.max(0, s.p99 - TARGET.p99Ms)) } }
                : {})
            }
          : {}),
        ...(measured.errors.length > 0 ? { error: `unexpected decisions: ${measured.errors.join("; ")}` } : {})
      })
    }
    if (floor === undefined) continue
    const one = summarize(floor.one, false)
    const two = summarize(floor.two, false)
    emit({
      name: `intercept.token_covered.commit_floor${suffix}`,
      n: floor.one.length,
      median: one.median,
      p99: one.p99,
      unit: "ms/intercept",
      synchronous: sync,
      what: "raw better-sqlite3: the rows of one token-covered intercept in ONE IMMEDIATE transaction (no EventLog, no decision): the floor of a one-commit intercept",
      peer: {
        name: "the same rows in TWO transactions (workspace row, then session rows), as the interceptor commits them today",
        median: two.median,
        p99: two.p99,
        unit: "ms/intercept"
      },
      ratio: round(one.median / two.median),
      ratioMeaning: "one commit p50 / two commits p50"
    })
  }
}

// ---------------------------------------------------------------------------------------------------------
// 2. The pure decision beside Cedar

type Outcome = "allow" | "blocked" | "ask"

/** The decision mix: every path of the pure flow, with the default policy. */
const requestsFor = (ws: string): ReadonlyArray<ActionRequest> => [
  { _tag: "file_write", path: "src/main.rs", bytes: 120 },
  { _tag: "command_exec", command: "cargo build --release" },
  { _tag: "file_read", path: "src/lib.rs" },
  { _tag: "file_read", path: `${ws}/README.md` },
  { _tag: "command_exec", command: "sudo rm -rf /tmp/x" },
  { _tag: "command_exec", command: "rm -rf /" },
  { _tag: "command_exec", command: "mkfs.ext4 /dev/sda1" },
  { _tag: "command_exec", command: "env sudo ls" },
  { _tag: "command_exec", command: `sh -c "dd if=/dev/zero of=/dev/sda"` },
  { _tag: "command_exec", command: "$PROG --help" },
  { _tag: "file_write", path: "/etc/passwd", bytes: 10 },
  { _tag: "file_delete", path: "/boot/vmlinuz" },
  { _tag: "file_read", path: "../../../../../etc/hosts" },
  { _tag: "file_write", path: "/tmp/astrid-bench-outside.txt", bytes: 5 },
  { _tag: "command_exec", command: "ls -la src" },
  { _tag: "command_exec", command: "ddrescue /dev/sdb disk.img" },
  { _tag: "financial_transaction", amountMicros: 5_000_000, currency: "USD", counterparty: "acme" }
]

interface Prepared {
  readonly request: ActionRequest
  readonly canonicalPath: string | undefined
  readonly cedar: AuthorizationCall
  readonly stateful: StatefulAuthorizationCall
}

interface PureContext {
  readonly policy: SecurityPolicy
  readonly root: string
  readonly tokens: ReadonlyArray<CapabilityToken>
  readonly trusted: ReadonlyMap<string, string>
  readonly nowMs: number
  readonly hashOf: (token: CapabilityToken) => string
  readonly verified: ReadonlySet<string>
}

const NO_IDS = { has: (_: string) => false }

/** What the interceptor decides before any I/O: stages 1 and 2, and whether the action passes without asking. */
const pureDecide = (p: Prepared, c: PureContext): Outcome => {
  const action = classify(p.request, { workspaceRoot: c.root, ...(p.canonicalPath === undefined ? {} : { canonicalPath: p.canonicalPath }) })
  const verdict = evaluatePolicy(c.policy, action)
  if (verdict._tag === "Blocked") return "blocked"
  const boundary = boundaryVerdict(MODE, ESCAPE, action)
  if (boundary === "deny") return "blocked"
  if (!action.alwaysAsk) {
    const ctx = {
      nowMs: c.nowMs,
      clockSkewMs: DEFAULT_CLOCK_SKEW_MS,
      trustedIssuers: c.trusted,
      revoked: NO_IDS,
      used: NO_IDS,
      // As the TokenService: the content hash on every check, the ed25519 verification only once per token.
      verifySignature: (t: CapabilityToken) => c.trusted.has(t.issuer) && c.verified.has(c.hashOf(t)),
      principal: PRINCIPAL,
      resource: action.resource,
      permission: action.permission
    }
    for (const token of c.tokens) {
      if (token.principal !== PRINCIPAL || !tokenCovers(token, action.resource, action.permission)) continue
      if (checkToken(token, ctx)._tag === "Valid") {
        c.hashOf(token) // the proof carries the token's hash
        return "allow"
      }
    }
  }
  return !action.alwaysAsk && verdict._tag === "NoObjection" && boundary === "pass" ? "allow" : "ask"
}

const cedarOutcome = (answer: AuthorizationAnswer): Outcome | string => {
  if (answer.type === "failure") return `cedar failure: ${answer.errors.map((e) => e.message).join("; ")}`
  const { decision, diagnostics } = answer.response
  if (diagnostics.errors.length > 0) return `cedar policy errors: ${diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`).join("; ")}`
  if (decision === "allow") return "allow"
  return diagnostics.reason.length > 0 ? "blocked" : "ask"
}

const cedarString = (s: string): string => {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`the bench's Cedar translation only handles printable ASCII: ${JSON.stringify(s)}`)
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`
}

/** A Cedar `like` pattern: `**` (any run, `/` included) is Cedar's `*`; a lone `*` cannot be expressed. */
const likeOfPathGlob = (glob: string): string => {
  const body = glob.replace(/\*\*/g, "\u0000")
  if (/[*?[\\]/.test(body)) throw new Error(`the bench's Cedar translation cannot express the glob ${glob}`)
  return cedarString(body.replace(/\u0000/g, "*"))
}

const OPTION_ALIASES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  rm: { "-R": "-r", "--recursive": "-r", "--force": "-f" },
  chmod: { "--recursive": "-R" },
  chown: { "--recursive": "-R" },
  chgrp: { "--recursive": "-R" }
}

const normalizeOperand = (a: string): string => {
  if (!a.startsWith("/")) return a
  const parts: Array<string> = []
  for (const seg of a.split("/")) {
    if (seg === "" || seg === ".") continue
    if (seg === "..") parts.pop()
    else parts.push(seg)
  }
  return `/${parts.join("/")}`
}

/** "rm flag -r", "rm arg /": the option shapes of one program's arguments, spelled as the policy compares them. */
const shapesOf = (program: string, args: ReadonlyArray<string>): Array<string> => {
  const aliases = OPTION_ALIASES[program] ?? {}
  const shapes: Array<string> = []
  let options = true
  for (const a of args) {
    if (options && a === "--") options = false
    else if (options && a.startsWith("--")) {
      const name = a.split("=")[0] ?? a
      shapes.push(`${program} flag ${aliases[name] ?? name}`)
    } else if (options && a.startsWith("-") && a.length > 1) {
      for (const ch of a.slice(1)) shapes.push(`${program} flag ${aliases[`-${ch}`] ?? `-${ch}`}`)
    } else shapes.push(`${program} arg ${normalizeOperand(a)}`)
  }
  return shapes
}

/** The policy set equivalent to `policy` in guided mode, escape_policy ask, with `tokens` as permits. */
const cedarPolicies = (policy: SecurityPolicy, root: string, tokens: ReadonlyArray<CapabilityToken>): string => {
  const out: Array<string> = []
  const command = "forbid (principal, action, resource is Astrid::Command)"
  out.push(`${command} when { !resource.parsed };`)
  out.push(`${command} when { resource.dynamic };`)
  for (const entry of policy.blockedCommands) {
    const words = entry.trim().split(/\s+/)
    const program = programName(words[0] ?? "").toLowerCase()
    if (words.length === 1) {
      if (!program.includes("*")) out.push(`${command} when { resource.programs.contains(${cedarString(program)}) };`)
      else if (/^[^*?[\\]+\*$/.test(program)) out.push(`${command} when { resource.programList like ${cedarString(`*|${program}`)} };`)
      else throw new Error(`the bench's Cedar translation cannot express the blocked command ${entry}`)
    } else {
      if (/[*?[\\]/.test(program)) throw new Error(`the bench's Cedar translation cannot express the blocked command ${entry}`)
      const needed = [...new Set(shapesOf(program, words.slice(1)))].map(cedarString).join(", ")
      out.push(`${command} when { resource.shapes.containsAll([${needed}]) };`)
    }
  }
  const file = "forbid (principal, action, resource is Astrid::File)"
  out.push(`${file} when { !resource.canonical };`)
  for (const denied of policy.deniedPaths) out.push(`${file} when { resource.path like ${likeOfPathGlob(denied)} };`)
  if (policy.allowedPaths.length > 0) throw new Error("the bench's Cedar translation has no allowed_paths")
  out.push(`forbid (principal, action, resource) when { context.argumentBytes > ${policy.maxArgumentBytes} };`)
  // guided: reads inside the workspace pass.
  out.push(
    `permit (principal, action == Astrid::Action::"read", resource is Astrid::File) when { resource.path == ${cedarString(root)} || resource.path like ${cedarString(`${root}/*`)} };`
  )
  for (const t of tokens) {
    const from = Date.parse(t.issuedAt) - DEFAULT_CLOCK_SKEW_MS
    const until = Date.parse(t.expiresAt) + DEFAULT_CLOCK_SKEW_MS
    const covers = t.resource.includes("**") ? `resource.uri like ${likeOfPathGlob(t.resource)}` : `resource.uri == ${cedarString(t.resource)}`
    if (t.resource.replace(/\*\*/g, "").includes("*")) throw new Error(`the bench's Cedar translation cannot express the token pattern ${t.resource}`)
    for (const permission of t.permissions) {
      out.push(
        `permit (principal == Astrid::Principal::${cedarString(t.principal)}, action == Astrid::Action::${cedarString(permission)}, resource) ` +
          `when { ${covers} && !context.alwaysAsk && context.now >= ${from} && context.now < ${until} };`
      )
    }
  }
  return out.join("\n")
}

const utf8Bytes = (request: ActionRequest): number => Buffer.byteLength(JSON.stringify(request), "utf8")

/** The entity and context Cedar needs for one request, built with our parser and path resolution (not timed). */
const cedarRequest = (request: ActionRequest, canonicalPath: string | undefined, root: string, nowMs: number) => {
  const action = classify(request, { workspaceRoot: root, ...(canonicalPath === undefined ? {} : { canonicalPath }) })
  let resource: EntityUidJson
  let attrs: EntityJson["attrs"]
  if (request._tag === "command_exec" || request._tag === "capsule_process") {
    const parsed = parseCommandLine(request.command)
    const commands = parsed._tag === "Parsed" ? parsed.commands : []
    const programs = [...new Set(commands.flatMap((c) => [c.program.toLowerCase(), ...c.wrappers.map((w) => w.toLowerCase())]))]
    resource = { type: "Astrid::Command", id: request.command }
    attrs = {
      uri: action.resource,
      parsed: parsed._tag === "Parsed",
      dynamic: commands.some((c) => c.dynamic),
      programs,
      programList: `|${programs.join("|")}|`,
      shapes: [...new Set(commands.flatMap((c) => shapesOf(c.program.toLowerCase(), c.argv)))]
    }
  } else if (action.path !== undefined) {
    const path = action.path
    resource = { type: "Astrid::File", id: path }
    attrs = { uri: action.resource, path, canonical: path.startsWith("/") && !path.slice(1).split("/").some((s) => s === "" || s === "." || s === "..") }
  } else {
    resource = { type: "Astrid::Resource", id: action.resource }
    attrs = { uri: action.resource }
  }
  const common = {
    principal: { type: "Astrid::Principal", id: PRINCIPAL },
    action: { type: "Astrid::Action", id: action.permission },
    resource,
    context: { now: nowMs, argumentBytes: utf8Bytes(request), alwaysAsk: action.alwaysAsk },
    entities: [{ uid: resource, attrs, parents: [] }, { uid: { type: "Astrid::Principal", id: PRINCIPAL }, attrs: {}, parents: [] }]
  }
  return common
}

const signToken = (keyRing: KeyRingApi, nowMs: number, resource: string, permissions: ReadonlyArray<Permission>): CapabilityToken => {
  const unsigned: UnsignedCapabilityToken = {
    tokenId: uuidv7(nowMs),
    principal: PRINCIPAL,
    resource,
    permissions: [...permissions],
    issuedAt: new Date(nowMs).toISOString(),
    expiresAt: new Date(nowMs + 3_600_000).toISOString(),
    singleUse: false,
    approvalEventId: "bench-approval",
    issuer: keyRing.keyId
  }
  return { ...unsigned, signature: keyRing.signText(tokenSigningText(unsigned)) }
}

interface Timing {
  readonly ns: Array<number>
  totalMs: number
}

const runDecisions = (fixture: Fixture): void => {
  const root = fixture.workspace
  const nowMs = Date.now()
  const tokens = [signToken(fixture.keyRing, nowMs, `file://${root}/**`, ["write"]), signToken(fixture.keyRing, nowMs, "exec://cargo", ["execute"])]
  const hashOf = (t: CapabilityToken): string => fixture.crypto.blake3Hex(tokenCanonicalText(t))
  const verified = new Set<string>()
  for (const t of tokens) {
    const key = fixture.trusted.get(t.issuer)
    if (key !== undefined && fixture.crypto.verifyText(t.signature, tokenSigningText(t), key)) verified.add(hashOf(t))
  }
  const policyText = cedarPolicies(DEFAULT_POLICY, root, tokens)
  const policySetId = "astrid-bench"
  const preparsed = preparsePolicySet(policySetId, { staticPolicies: policyText })
  if (preparsed.type === "failure") {
    emit({ name: "decision.cedar", n: 0, median: Number.NaN, p99: Number.NaN, unit: "ns/decision", error: `Cedar refused the policy set: ${preparsed.errors.map((e) => e.message).join("; ")}` })
    return
  }
  const prepared: Array<Prepared> = requestsFor(root).map((request) => {
    const requested = "path" in request ? request.path : undefined
    const resolved = requested === undefined ? undefined : resolveWorkspacePath(root, requested)
    const canonicalPath = resolved?._tag === "Right" ? resolved.right.canonical : undefined
    const common = cedarRequest(request, canonicalPath, root, nowMs)
    return {
      request,
      canonicalPath,
      cedar: { ...common, policies: { staticPolicies: policyText } },
      stateful: { ...common, preparsedPolicySetId: policySetId }
    }
  })
  const ctx: PureContext = { policy: DEFAULT_POLICY, root, tokens, trusted: fixture.trusted, nowMs, hashOf, verified }

  // Agreement first: every request, three ways.
  const expected = prepared.map((p) => pureDecide(p, ctx))
  const problems: Array<string> = []
  prepared.forEach((p, i) => {
    for (const [label, answer] of [["isAuthorized", isAuthorized(p.cedar)], ["statefulIsAuthorized", statefulIsAuthorized(p.stateful)]] as const) {
      const theirs = cedarOutcome(answer)
      if (theirs !== expected[i]) problems.push(`${label} on ${JSON.stringify(p.request)}: ours ${String(expected[i])}, Cedar ${theirs}`)
    }
  })

  const ours: Timing = { ns: [], totalMs: 0 }
  const cedarText: Timing = { ns: [], totalMs: 0 }
  const cedarPre: Timing = { ns: [], totalMs: 0 }
  let disagreements = 0
  const timeOne = (timing: Timing, record: boolean, decide: () => Outcome | string, want: Outcome | undefined) => {
    const t = performance.now()
    const got = decide()
    const dt = performance.now() - t
    if (got !== want) disagreements++
    if (record) {
      timing.ns.push(dt * 1e6)
      timing.totalMs += dt
    }
  }
  for (let r = 0; r < DECISION_WARMUP + DECISION_ROUNDS; r++) {
    const record = r >= DECISION_WARMUP
    // Each round: the whole mix by each decider, in turn, so machine noise falls on all three alike.
    prepared.forEach((p, i) => timeOne(ours, record, () => pureDecide(p, ctx), expected[i]))
    prepared.forEach((p, i) => timeOne(cedarText, record, () => cedarOutcome(isAuthorized(p.cedar)), expected[i]))
    prepared.forEach((p, i) => timeOne(cedarPre, record, () => cedarOutcome(statefulIsAuthorized(p.stateful)), expected[i]))
  }
  if (disagreements > 0) problems.push(`${disagreements} timed decisions disagreed with the first pass`)

  const counts = { allow: 0, blocked: 0, ask: 0 }
  for (const e of expected) counts[e]++
  const n = ours.ns.length
  const meanNs = (t: Timing) => round((t.totalMs * 1e6) / t.ns.length)
  const o = summarize(ours.ns, false)
  const c = summarize(cedarText.ns, false)
  const cp = summarize(cedarPre.ns, false)
  const cedarVersion = getCedarVersion()
  const facts = {
    requests: prepared.length,
    outcomes: counts,
    policies: policyText.split("\n").length,
    agree: problems.length === 0,
    cedarVersion
  }
  const error = problems.length === 0 ? {} : { error: `ours and Cedar disagree: ${problems.slice(0, 5).join(" | ")}` }
  emit({
    name: "decision.pure",
    n,
    median: o.median,
    p99: o.p99,
    unit: "ns/decision",
    meanNs: meanNs(ours),
    what: "classify + evaluatePolicy + boundaryVerdict + token lookup with cached signature (content hash per check), no I/O",
    ...facts,
    peer: { name: `Cedar ${cedarVersion} isAuthorized, policy set as text (parsed per call)`, median: c.median, p99: c.p99, unit: "ns/decision" },
    ratio: round(o.median / c.median),
    ratioMeaning: "pure p50 / Cedar isAuthorized p50 (< 1: ours is faster)",
    meanRatio: round(meanNs(ours) / meanNs(cedarText)),
    preparsedPeer: { name: `Cedar ${cedarVersion} statefulIsAuthorized, policy set preparsed once`, median: cp.median, p99: cp.p99, unit: "ns/decision" },
    preparsedRatio: round(o.median / cp.median),
    preparsedMeanRatio: round(meanNs(ours) / meanNs(cedarPre)),
    ...error
  })
  emit({
    name: "decision.cedar",
    n: cedarText.ns.length,
    median: c.median,
    p99: c.p99,
    unit: "ns/decision",
    meanNs: meanNs(cedarText),
    what: "isAuthorized(principal, action, resource, context, policies as text, entities prebuilt)",
    ...facts,
    peer: { name: "decision.pure on the same requests", median: o.median, p99: o.p99, unit: "ns/decision" },
    ratio: round(c.median / o.median),
    ratioMeaning: "Cedar p50 / pure p50 (> 1: ours is faster)",
    ...error
  })
  emit({
    name: "decision.cedar_preparsed",
    n: cedarPre.ns.length,
    median: cp.median,
    p99: cp.p99,
    unit: "ns/decision",
    meanNs: meanNs(cedarPre),
    what: "statefulIsAuthorized(principal, action, resource, context, preparsed policy set id, entities prebuilt)",
    ...facts,
    peer: { name: "decision.pure on the same requests", median: o.median, p99: o.p99, unit: "ns/decision" },
    ratio: round(cp.median / o.median),
    ratioMeaning: "Cedar preparsed p50 / pure p50 (> 1: ours is faster)",
    ...error
  })
}

export const run = async (): Promise<void> => {
  const fixture = await makeFixture()
  try {
    runDecisions(fixture)
    await runEndToEnd(fixture)
  } finally {
    rmSync(fixture.dir, { recursive: true, force: true })
  }
}
