/**
 * One agent session end to end: the real `runTurn`, the scripted provider, the built-in `read_file` tool,
 * the real SecurityInterceptor and ONE EventLog (automatic checkpoints every 1,000 events, signed with a
 * runtime key) over a SQLite file in a temp folder, synchronous=FULL (the durable default), wired as
 * `astrid run --script` wires them (bench/lib/turnFixture.ts).
 *
 * 1. `turn.tool_call`: the overhead of one tool call, timed around `runTool(read_file, {path: "src/lib.rs"})`
 *    as the agent loop calls it. Inside the span: decoding the input (Schema), building the action,
 *    `interceptor.guard` = intercept (realpath of root and path, classify, policy, workspace boundary in
 *    guided mode: a read inside the workspace passes without asking; session owner check from the cache; a
 *    zero-cost action reserves no budget; ONE durable append ActionProposed + ActionAllowed), then the tool
 *    (readFile of a 48-line 1.2 kB file, numbering the lines, cutting the output), then `complete` (ONE
 *    durable append ToolResultRecorded, untrusted). Two fsyncs in all. Outside the span: the model, the
 *    assistant and tool MessageRecorded appends (those are in `turn.tool_step`). ROUNDS x BLOCK calls after
 *    a warm-up round, in blocks of BLOCK per session, taking turns with the two peers:
 *      `turn.tool_call.intercept_only`  interceptor.intercept of the same request alone (one commit)
 *      `turn.tool_call.read_only`       prepare + run of read_file alone, no interceptor, no store
 *    so run_tool - intercept - read = the ToolResultRecorded append and the glue. The same three with
 *    synchronous=NORMAL follow (`.sync_normal`, secondary: what the fsyncs cost).
 *
 * 2. A session of SESSION_TURNS turns in a child process started with --expose-gc (bench/lib/turnSession.ts),
 *    so memory is read in a process that did nothing else: each turn is a user message, one model step with
 *    one read_file call, one final model step (9 events on the session stream). Per turn: the whole turn,
 *    the time to the first model request (runTurn re-reads and decodes the whole session stream to rebuild
 *    the conversation, then appends the user message), the tool-calling step (first request to second:
 *    model step, assistant append, runTool, tool message append) and the final step.
 *      `turn.turn_time` (turns 1-100) beside `turn.turn_time.last100` (the last 100 turns): the growth.
 *      `turn.tool_step`, `turn.to_first_request` (+ `.last100`), `turn.rebuild_growth` (loadConversation
 *      sampled every 100 turns), `turn.session_rss` (RSS before / after / after GC, peak), `turn.session_heap`.
 *
 * 3. The same child goes on with turns until the session stream holds >= RESUME_EVENTS events, then:
 *      `turn.resume.load_conversation`  open the file freshly (its own copy each repetition), time
 *                                        loadConversation (read + decode + rebuild); peer: readStream alone
 *      `turn.resume.first_request`      open the copy for writing, build the EventLog and the interceptor,
 *                                        call runTurn: time until the provider receives the first request
 *    RESUME_REPS repetitions, median. Module loading (`coldstart`) is not included; the OS page cache is warm
 *    (the copy was just written).
 */
import { spawnSync } from "node:child_process"
import { copyFileSync, existsSync, realpathSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Either, Ref } from "effect"
import { runTurn } from "../application/agent/agentLoop.js"
import { loadConversation } from "../application/agent/conversation.js"
import { EventStore } from "../application/ports/eventStore.js"
import { SecurityInterceptor } from "../application/security/securityInterceptor.js"
import { runTool } from "../application/tools/runTool.js"
import { type JudgedTarget, makeRunContext } from "../application/tools/tool.js"
import { sessionStream } from "../domain/streams.js"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { makeScriptedProvider } from "../infrastructure/llm/scriptedProvider.js"
import { builtinTools } from "../infrastructure/tools/builtinTools.js"
import { readFileToolErased } from "../infrastructure/tools/readFile.js"
import { emit, median, quantile, round, summarize } from "./lib/measure.js"
import {
  makeTurnFixture,
  MODEL,
  openSession,
  PRINCIPAL,
  READ_PATH,
  removeDb,
  scriptForTurns,
  SESSION_ID,
  type Sync,
  timedProvider,
  type TurnFixture,
  userInput
} from "./lib/turnFixture.js"
import type { SessionReport, TurnTiming } from "./lib/turnSession.js"

const WARMUP_ROUNDS = 1
const ROUNDS = Number(process.env["ASTRID_BENCH_TURN_ROUNDS"] ?? 8)
/** Calls per path per round, all in one session. */
const BLOCK = 250
const SESSION_TURNS = Number(process.env["ASTRID_BENCH_TURN_SESSION"] ?? 1_000)
const RESUME_EVENTS = Number(process.env["ASTRID_BENCH_TURN_RESUME_EVENTS"] ?? 10_000)
const RESUME_REPS = 9
const WINDOW = 100

type PathName = "run_tool" | "intercept_only" | "read_only"
const PATHS: ReadonlyArray<PathName> = ["run_tool", "intercept_only", "read_only"]

const mean = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
const mb = (bytes: number): number => round(bytes / (1024 * 1024))

// ---------------------------------------------------------------------------------------------------------
// 1. One tool call

const measureToolCalls = (fixture: TurnFixture, sync: Sync): Promise<Record<PathName, Array<number>>> => {
  const path = join(fixture.dir, `tool-${sync}.db`)
  removeDb(path)
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const { interceptor } = yield* openSession(path, sync, fixture)
        const context = yield* makeRunContext(fixture.workspace)
        const input = { path: READ_PATH }
        const prepared = readFileToolErased.prepare(input)
        if (Either.isLeft(prepared)) return yield* Effect.dieMessage(`read_file refused its input: ${prepared.left}`)
        const request = prepared.right.request({ workspaceRoot: fixture.workspace, cwd: yield* Ref.get(context.cwd) })
        // What the interceptor would judge, resolved once outside the timed span (the read-only peer has no interceptor).
        const judged: JudgedTarget = { path: realpathSync(join(fixture.workspace, READ_PATH)), insideWorkspace: true }
        const latencies: Record<PathName, Array<number>> = { run_tool: [], intercept_only: [], read_only: [] }
        for (let r = 0; r < WARMUP_ROUNDS + ROUNDS; r++) {
          const warm = r < WARMUP_ROUNDS
          for (const name of PATHS) {
            const sessionId = `bench-${name.replace("_", "-")}-${sync}-${r}`
            for (let i = 0; i < BLOCK; i++) {
              const t = performance.now()
              let ok: boolean
              switch (name) {
                case "run_tool": {
                  const result = yield* runTool(readFileToolErased, input, { principal: PRINCIPAL, sessionId, context }).pipe(
                    Effect.provideService(SecurityInterceptor, interceptor)
                  )
                  ok = result.ok && result.decision?._tag === "Allowed"
                  break
                }
                case "intercept_only": {
                  const decision = yield* interceptor.intercept({ principal: PRINCIPAL, sessionId, workspaceRoot: fixture.workspace, request, estimatedCostMicros: 0 })
                  ok = decision._tag === "Allowed"
                  break
                }
                case "read_only": {
                  const call = readFileToolErased.prepare(input)
                  ok = Either.isRight(call) && (yield* call.right.run(context, judged)).length > 0
                  break
                }
              }
              const elapsed = performance.now() - t
              if (!ok) return yield* Effect.dieMessage(`${name}: the read of ${READ_PATH} was not allowed or failed`)
              if (!warm) latencies[name].push(elapsed)
            }
          }
        }
        return latencies
      })
    ).pipe(Effect.orDie)
  )
}

const runToolCalls = async (fixture: TurnFixture): Promise<void> => {
  for (const sync of ["full", "normal"] as const) {
    const lat = await measureToolCalls(fixture, sync)
    const suffix = sync === "full" ? "" : ".sync_normal"
    const figure = sync === "full" ? "primary: synchronous=FULL, the durable default" : "secondary: synchronous=NORMAL, may lose the last commits on power loss (not the default)"
    const run = summarize(lat.run_tool, false)
    const intercept = summarize(lat.intercept_only, false)
    const read = summarize(lat.read_only, false)
    emit({
      name: `turn.tool_call${suffix}`,
      n: lat.run_tool.length,
      median: run.median,
      p99: run.p99,
      unit: "ms/tool call",
      meanMs: round(mean(lat.run_tool)),
      synchronous: sync,
      figure,
      what: "runTool(read_file src/lib.rs): decode + intercept (1 commit: ActionProposed+ActionAllowed) + readFile + ToolResultRecorded (1 commit)",
      peer: { name: "interceptor.intercept of the same request alone (same run)", median: intercept.median, p99: intercept.p99, unit: "ms/intercept" },
      ratio: round(run.median / intercept.median),
      ratioMeaning: "tool call p50 / intercept-alone p50",
      readOnlyMedianMs: read.median,
      resultAppendAndGlueMs: round(run.median - intercept.median - read.median)
    })
    emit({ name: `turn.tool_call.intercept_only${suffix}`, n: lat.intercept_only.length, median: intercept.median, p99: intercept.p99, unit: "ms/intercept", meanMs: round(mean(lat.intercept_only)), synchronous: sync })
    emit({ name: `turn.tool_call.read_only${suffix}`, n: lat.read_only.length, median: read.median, p99: read.p99, unit: "ms/read", meanMs: round(mean(lat.read_only)), synchronous: sync, what: "read_file prepare + run alone: no interceptor, no store" })
  }
}

// ---------------------------------------------------------------------------------------------------------
// 2. A long session, in a child process with --expose-gc

const runSessionChild = (fixture: TurnFixture, dbPath: string): SessionReport => {
  const child = fileURLToPath(new URL("./lib/turnSession.ts", import.meta.url))
  const result = spawnSync(process.execPath, [...process.execArgv, "--expose-gc", child, fixture.dir, dbPath, String(SESSION_TURNS), String(RESUME_EVENTS), "full"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024
  })
  if (result.status !== 0) throw new Error(`the session child failed with status ${result.status} (${result.error?.message ?? "see stderr"})`)
  return JSON.parse(result.stdout) as SessionReport
}

const pick = (timings: ReadonlyArray<TurnTiming>, key: keyof TurnTiming): Array<number> => timings.map((t) => t[key])

const reportSession = (report: SessionReport): void => {
  const first = report.timings.slice(0, WINDOW)
  const last = report.timings.slice(-WINDOW)
  const f = summarize(pick(first, "turnMs"), false)
  const l = summarize(pick(last, "turnMs"), false)
  const breakdown = (ts: ReadonlyArray<TurnTiming>) => ({
    toFirstRequestMs: round(median(pick(ts, "toFirstRequestMs"))),
    toolStepMs: round(median(pick(ts, "toolStepMs"))),
    finalStepMs: round(median(pick(ts, "finalStepMs")))
  })
  const firstSample = report.rebuild[0]
  const lastSample = report.rebuild.at(-1)
  emit({
    name: "turn.turn_time",
    n: first.length,
    median: f.median,
    p99: f.p99,
    unit: "ms/turn",
    what: `turns 1-${WINDOW} of one session: user message + model step with one read_file call + final model step (2 model steps, 6 durable appends, 9 events)`,
    medianBreakdown: breakdown(first),
    synchronous: "full"
  })
  emit({
    name: "turn.turn_time.last100",
    n: last.length,
    median: l.median,
    p99: l.p99,
    unit: "ms/turn",
    what: `turns ${report.turns - WINDOW + 1}-${report.turns} of the same session`,
    medianBreakdown: breakdown(last),
    peer: { name: `turns 1-${WINDOW} (same run)`, median: f.median, p99: f.p99, unit: "ms/turn" },
    ratio: round(l.median / f.median),
    ratioMeaning: "last 100 turns p50 / first 100 turns p50 (> 1: turns slow down as the session grows)",
    sessionSeconds: round(pick(report.timings, "turnMs").reduce((a, b) => a + b, 0) / 1000),
    toFirstRequestSeconds: round(pick(report.timings, "toFirstRequestMs").reduce((a, b) => a + b, 0) / 1000),
    synchronous: "full"
  })
  const ts = summarize(pick(first, "toolStepMs"), false)
  const tsLast = summarize(pick(last, "toolStepMs"), false)
  emit({
    name: "turn.tool_step",
    n: first.length,
    median: ts.median,
    p99: ts.p99,
    unit: "ms/tool-calling step",
    what: "first model request to the second, turns 1-100: scripted model step 1, assistant MessageRecorded+LlmUsageRecorded append, runTool (2 commits), tool MessageRecorded append (4 commits in all)",
    lastWindow: { median: tsLast.median, p99: tsLast.p99 },
    synchronous: "full"
  })
  const tf = summarize(pick(first, "toFirstRequestMs"), false)
  const tl = summarize(pick(last, "toFirstRequestMs"), false)
  emit({
    name: "turn.to_first_request.last100",
    n: last.length,
    median: tl.median,
    p99: tl.p99,
    unit: "ms/turn",
    what: "runTurn start to the first model request in the last 100 turns: readStream of the whole session + decode + conversationFromEvents + user message append",
    peer: { name: "the same in turns 1-100", median: tf.median, p99: tf.p99, unit: "ms/turn" },
    ratio: round(tl.median / tf.median),
    ratioMeaning: "last / first (> 1: the pre-request work grows with the session)"
  })
  if (firstSample !== undefined && lastSample !== undefined) {
    // Least-squares slope of rebuild time over events, ms per 1,000 events.
    const xs = report.rebuild.map((s) => s.events / 1000)
    const ys = report.rebuild.map((s) => s.loadConversationMs)
    const mx = mean(xs)
    const my = mean(ys)
    const perThousand = xs.reduce((a, x, i) => a + (x - mx) * ((ys[i] ?? 0) - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0)
    emit({
      name: "turn.rebuild_growth",
      n: report.rebuild.length,
      median: round(lastSample.loadConversationMs),
      p99: round(lastSample.loadConversationMs),
      unit: `ms/loadConversation at ${lastSample.events} events (best of 5 per sample)`,
      samples: report.rebuild.map((s) => ({ turns: s.turns, events: s.events, loadConversationMs: round(s.loadConversationMs), readStreamMs: round(s.readStreamMs) })),
      msPer1000Events: round(perThousand),
      peer: { name: `loadConversation at ${firstSample.events} events (turn ${firstSample.turns})`, median: round(firstSample.loadConversationMs), unit: "ms" },
      ratio: round(lastSample.loadConversationMs / firstSample.loadConversationMs),
      ratioMeaning: "rebuild time grows linearly with the session, so a session of N turns spends O(N^2) in rebuilds"
    })
  }
  const m = report.memory
  emit({
    name: "turn.session_rss",
    n: report.turns,
    median: mb(m.rssAfter),
    p99: mb(m.maxRss),
    unit: "MB RSS (median: after the session; p99: peak)",
    rssBeforeMb: mb(m.rssBefore),
    rssAfterGcMb: mb(m.rssAfterGc),
    peer: { name: "RSS before the first turn (imports, store and services loaded, after GC)", median: mb(m.rssBefore), unit: "MB" },
    ratio: round(m.rssAfter / m.rssBefore),
    gcAvailable: m.gcAvailable
  })
  emit({
    name: "turn.session_heap",
    n: report.turns,
    median: mb(m.heapUsedAfterGc),
    p99: mb(m.heapUsedAfter),
    unit: "MB heapUsed (median: after a full GC; p99: before it)",
    peer: { name: "heapUsed before the first turn, after GC", median: mb(m.heapUsedBefore), unit: "MB" },
    retainedPerTurnKb: round((m.heapUsedAfterGc - m.heapUsedBefore) / 1024 / report.turns),
    gcAvailable: m.gcAvailable
  })
}

// ---------------------------------------------------------------------------------------------------------
// 3. Resume

const copyDb = (from: string, to: string): void => {
  removeDb(to)
  copyFileSync(from, to)
  for (const suffix of ["-wal", "-shm"]) if (existsSync(`${from}${suffix}`)) copyFileSync(`${from}${suffix}`, `${to}${suffix}`)
}

interface ResumeSample {
  readonly openMs: number
  readonly loadMs: number
  readonly loadAgainMs: number
  readonly readStreamMs: number
  readonly messages: number
}

const resumeRebuild = (path: string): Promise<ResumeSample> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        let t = performance.now()
        const store = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close()))
        const openMs = performance.now() - t
        t = performance.now()
        const conversation = yield* loadConversation(SESSION_ID).pipe(Effect.provideService(EventStore, store.api))
        const loadMs = performance.now() - t
        t = performance.now()
        yield* loadConversation(SESSION_ID).pipe(Effect.provideService(EventStore, store.api))
        const loadAgainMs = performance.now() - t
        t = performance.now()
        yield* store.api.readStream(sessionStream(SESSION_ID))
        const readStreamMs = performance.now() - t
        return { openMs, loadMs, loadAgainMs, readStreamMs, messages: conversation.length }
      })
    ).pipe(Effect.orDie)
  )

/** ms from "open the file" and from "call runTurn" to the first model request, and the messages it carried. */
const resumeTurn = (path: string, fixture: TurnFixture, turnIndex: number): Promise<{ fromOpenMs: number; fromRunTurnMs: number; messages: number }> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const opened = performance.now()
        const services = yield* openSession(path, "full", fixture)
        const provider = timedProvider(yield* makeScriptedProvider(scriptForTurns(1), "bench/turn resume"))
        const context = yield* makeRunContext(fixture.workspace)
        const called = performance.now()
        yield* runTurn({ principal: PRINCIPAL, sessionId: SESSION_ID, workspaceRoot: fixture.workspace, userInput: userInput(turnIndex), tools: builtinTools, model: MODEL, context }).pipe(
          Effect.provide(services.layerWith(provider))
        )
        const first = provider.requests[0]
        if (first === undefined) return yield* Effect.dieMessage("the resumed turn made no model request")
        return { fromOpenMs: first.at - opened, fromRunTurnMs: first.at - called, messages: first.messages }
      })
    ).pipe(Effect.orDie)
  )

const runResume = async (fixture: TurnFixture, dbPath: string, report: SessionReport): Promise<void> => {
  const copy = join(fixture.dir, "resume.db")
  const rebuilds: Array<ResumeSample> = []
  const turns: Array<{ fromOpenMs: number; fromRunTurnMs: number; messages: number }> = []
  for (let r = 0; r < RESUME_REPS; r++) {
    copyDb(dbPath, copy)
    rebuilds.push(await resumeRebuild(copy))
    copyDb(dbPath, copy)
    turns.push(await resumeTurn(copy, fixture, report.fixture.turns))
  }
  removeDb(copy)
  const load = summarize(rebuilds.map((s) => s.loadMs), false)
  const read = summarize(rebuilds.map((s) => s.readStreamMs), false)
  const common = { sessionEvents: report.fixture.events, sessionTurns: report.fixture.turns, storeBytes: statSync(dbPath).size, repetitions: RESUME_REPS }
  emit({
    name: "turn.resume.load_conversation",
    n: rebuilds.length,
    median: load.median,
    p99: load.p99,
    unit: "ms/rebuild",
    what: "loadConversation from a freshly opened copy of the file (first call after open): readStream + decodeRecorded + conversationFromEvents",
    ...common,
    messages: rebuilds[0]?.messages,
    bestMs: round(Math.min(...rebuilds.map((s) => s.loadMs))),
    openMs: round(median(rebuilds.map((s) => s.openMs))),
    secondCallMs: round(median(rebuilds.map((s) => s.loadAgainMs))),
    peer: { name: "store.readStream of the session alone (no decoding)", median: read.median, p99: read.p99, unit: "ms" },
    ratio: round(load.median / read.median),
    ratioMeaning: "rebuild / raw read (the rest is decoding: Schema per event, JSON of every assistant and tool message)"
  })
  const fromOpen = summarize(turns.map((t) => t.fromOpenMs), false)
  const fromRunTurn = summarize(turns.map((t) => t.fromRunTurnMs), false)
  emit({
    name: "turn.resume.first_request",
    n: turns.length,
    median: fromOpen.median,
    p99: fromOpen.p99,
    unit: "ms to the first model request",
    what: "open the copy for writing (synchronous=FULL), build EventLog + interceptor + provider, runTurn: until the provider is called (module loading not included)",
    ...common,
    messagesInFirstRequest: turns[0]?.messages,
    bestMs: round(Math.min(...turns.map((t) => t.fromOpenMs))),
    peer: { name: "from the runTurn call alone (store and services already built)", median: fromRunTurn.median, p99: fromRunTurn.p99, unit: "ms" }
  })
}

export const run = async (): Promise<void> => {
  const fixture = await makeTurnFixture()
  try {
    await runToolCalls(fixture)
    process.stderr.write(`  turn: a session of ${SESSION_TURNS} turns (then up to ${RESUME_EVENTS} events) in a child process\n`)
    const dbPath = join(fixture.dir, "session.db")
    const report = runSessionChild(fixture, dbPath)
    reportSession(report)
    await runResume(fixture, dbPath, report)
    const q = (xs: ReadonlyArray<number>) => `${round(quantile(xs, 0.5))}`
    process.stderr.write(`  turn: whole-turn p50 by window of 100: ${chunks(pick(report.timings, "turnMs")).map(q).join(", ")} ms\n`)
  } finally {
    rmSync(fixture.dir, { recursive: true, force: true })
  }
}

const chunks = (xs: ReadonlyArray<number>): Array<Array<number>> => {
  const out: Array<Array<number>> = []
  for (let i = 0; i < xs.length; i += WINDOW) out.push(xs.slice(i, i + WINDOW))
  return out
}
