/**
 * Child process of bench/turn.ts (run with --expose-gc, so memory is read in a process that did nothing
 * else): TURNS agent turns in ONE session through `runTurn`, each a user message, one read_file call through
 * the real interceptor, and a final answer, over a SQLite file with the given synchronous setting. Then more
 * such turns until the session stream holds at least TARGET_EVENTS events (the resume fixture). Prints one
 * JSON object (`SessionReport`) on stdout.
 *
 *   node --import tsx --expose-gc bench/lib/turnSession.ts <fixture dir> <db path> <turns> <target events> <full|normal>
 */
import { Effect, Option } from "effect"
import { makeSessionMemory, runTurn } from "../../application/agent/agentLoop.js"
import { loadConversation } from "../../application/agent/conversation.js"
import { EventStore } from "../../application/ports/eventStore.js"
import { makeRunContext } from "../../application/tools/tool.js"
import { sessionStream } from "../../domain/streams.js"
import { makeScriptedProvider } from "../../infrastructure/llm/scriptedProvider.js"
import { builtinTools } from "../../infrastructure/tools/builtinTools.js"
import { makeTurnFixture, MODEL, openSession, PRINCIPAL, removeDb, scriptForTurns, SESSION_ID, type Sync, timedProvider, userInput } from "./turnFixture.js"

export interface TurnTiming {
  /** Whole runTurn, ms. */
  readonly turnMs: number
  /** runTurn start to the first model request: read + decode the session stream, rebuild, append the user message. */
  readonly toFirstRequestMs: number
  /** First model request to the second: model step 1 (scripted), its append, runTool, the tool message append. */
  readonly toolStepMs: number
  /** Second model request to the end: model step 2 (scripted) and its append. */
  readonly finalStepMs: number
}

export interface RebuildSample {
  /** Turns done when sampled. */
  readonly turns: number
  /** Events on the session stream. */
  readonly events: number
  /** loadConversation (read + decode + conversationFromEvents), best of 5 (least disturbed by other load), ms. */
  readonly loadConversationMs: number
  /** store.readStream of the session stream alone, best of 5, ms. */
  readonly readStreamMs: number
}

export interface SessionReport {
  readonly turns: number
  readonly timings: ReadonlyArray<TurnTiming>
  readonly rebuild: ReadonlyArray<RebuildSample>
  readonly memory: {
    readonly gcAvailable: boolean
    /** After imports, the store and services, before the first turn (after a GC), bytes. */
    readonly rssBefore: number
    readonly heapUsedBefore: number
    /** Right after the last of the TURNS turns, bytes. */
    readonly rssAfter: number
    readonly heapUsedAfter: number
    /** After a full GC, bytes. */
    readonly rssAfterGc: number
    readonly heapUsedAfterGc: number
    /** Peak resident set of the process so far, bytes. */
    readonly maxRss: number
  }
  /** The resume fixture: turns in all and events on the session stream once TARGET_EVENTS was reached. */
  readonly fixture: { readonly turns: number; readonly events: number; readonly sessionId: string; readonly bytes: number }
}

const [dir, dbPath, turnsArg, targetArg, syncArg] = process.argv.slice(2)
if (dir === undefined || dbPath === undefined || turnsArg === undefined || targetArg === undefined || (syncArg !== "full" && syncArg !== "normal")) {
  process.stderr.write("usage: turnSession.ts <fixture dir> <db path> <turns> <target events> <full|normal>\n")
  process.exit(2)
}
const turns = Number(turnsArg)
const targetEvents = Number(targetArg)
const sync: Sync = syncArg

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) {
    g()
    g()
  }
}

const fixture = await makeTurnFixture(dir)
removeDb(dbPath)

const report = await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const services = yield* openSession(dbPath, sync, fixture)
      // Enough script for the TURNS turns and the extra ones up to TARGET_EVENTS (9 events per turn).
      const extra = Math.max(0, Math.ceil((targetEvents - 9 * turns) / 9)) + 10
      const provider = timedProvider(yield* makeScriptedProvider(scriptForTurns(turns + extra), "bench/turn"))
      const layer = services.layerWith(provider)
      const context = yield* makeRunContext(fixture.workspace)
      // As \`astrid chat\` does: one memory for the whole session, so each turn reads only new events.
      const memory = makeSessionMemory(SESSION_ID)
      const stream = sessionStream(SESSION_ID)

      const oneTurn = (i: number) =>
        Effect.gen(function* () {
          const before = provider.requests.length
          const started = performance.now()
          const result = yield* runTurn({
            principal: PRINCIPAL,
            sessionId: SESSION_ID,
            workspaceRoot: fixture.workspace,
            userInput: userInput(i),
            tools: builtinTools,
            model: MODEL,
            context,
            memory
          }).pipe(Effect.provide(layer))
          const ended = performance.now()
          const first = provider.requests[before]
          const second = provider.requests[before + 1]
          if (result.steps !== 2 || first === undefined || second === undefined) {
            return yield* Effect.dieMessage(`turn ${i + 1}: expected 2 model steps, got ${result.steps} (${result.stopReason})`)
          }
          return { turnMs: ended - started, toFirstRequestMs: first.at - started, toolStepMs: second.at - first.at, finalStepMs: ended - second.at } satisfies TurnTiming
        })

      const eventsInSession = Effect.map(services.store.streamHead(stream), (head) => Option.match(head, { onNone: () => 0, onSome: (h) => h.revision + 1 }))

      const sampleRebuild = (done: number) =>
        Effect.gen(function* () {
          const load: Array<number> = []
          const read: Array<number> = []
          for (let r = 0; r < 5; r++) {
            let t = performance.now()
            yield* services.store.readStream(stream)
            read.push(performance.now() - t)
            t = performance.now()
            yield* loadConversation(SESSION_ID).pipe(Effect.provideService(EventStore, services.store))
            load.push(performance.now() - t)
          }
          return { turns: done, events: yield* eventsInSession, loadConversationMs: Math.min(...load), readStreamMs: Math.min(...read) } satisfies RebuildSample
        })

      gc()
      const rssBefore = process.memoryUsage().rss
      const heapUsedBefore = process.memoryUsage().heapUsed
      const timings: Array<TurnTiming> = []
      const rebuild: Array<RebuildSample> = []
      for (let i = 0; i < turns; i++) {
        timings.push(yield* oneTurn(i))
        if ((i + 1) % 100 === 0) {
          rebuild.push(yield* sampleRebuild(i + 1))
          process.stderr.write(`  turn: ${i + 1} turns, ${rebuild.at(-1)?.events} events, last turn ${timings.at(-1)?.turnMs.toFixed(1)} ms\n`)
        }
      }
      const rssAfter = process.memoryUsage().rss
      const heapUsedAfter = process.memoryUsage().heapUsed
      gc()
      const rssAfterGc = process.memoryUsage().rss
      const heapUsedAfterGc = process.memoryUsage().heapUsed
      const maxRss = process.resourceUsage().maxRSS * 1024

      let done = turns
      while ((yield* eventsInSession) < targetEvents) {
        yield* oneTurn(done)
        done += 1
      }
      const stats = yield* services.store.stats
      return {
        turns,
        timings,
        rebuild,
        memory: { gcAvailable: (globalThis as { gc?: unknown }).gc !== undefined, rssBefore, heapUsedBefore, rssAfter, heapUsedAfter, rssAfterGc, heapUsedAfterGc, maxRss },
        fixture: { turns: done, events: yield* eventsInSession, sessionId: SESSION_ID, bytes: stats.bytes }
      } satisfies SessionReport
    })
  ).pipe(Effect.orDie)
)

process.stdout.write(`${JSON.stringify(report)}\n`)
