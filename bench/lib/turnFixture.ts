/**
 * What bench/turn.ts and its child process (bench/lib/turnSession.ts) share: a workspace with a source file
 * to read, a runtime key, and the production wiring of one agent session's services over a SQLite file:
 * ONE EventLog (automatic checkpoints every 1,000 events, signed with the runtime key) shared by the
 * SecurityInterceptor (token, budget and path services as `apps/cli/securityRuntime.ts` builds them) and
 * `runTurn`, as `astrid run --script` wires it, with the scripted provider.
 */
import { Effect, Layer, type Scope } from "effect"
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { EventLog, EventLogLive } from "../../application/eventLog.js"
import { Crypto, type CryptoApi } from "../../application/ports/crypto.js"
import { EventStore, type EventStoreApi, type EventStoreError } from "../../application/ports/eventStore.js"
import { Ids } from "../../application/ports/ids.js"
import { KeyRing, type KeyRingApi } from "../../application/ports/keyRing.js"
import { LlmProvider, type LlmProviderApi, type LlmRequest } from "../../application/ports/llmProvider.js"
import { BudgetServiceLive } from "../../application/security/budgetService.js"
import { SecurityInterceptor, type SecurityInterceptorApi, SecurityInterceptorLive, type SecuritySettings } from "../../application/security/securityInterceptor.js"
import { TokenServiceLive } from "../../application/security/tokenService.js"
import { DEFAULT_POLICY } from "../../domain/security/policy.js"
import { DEFAULT_CHECKPOINT_EVERY } from "../../infrastructure/config/astridConfig.js"
import { makeCrypto } from "../../infrastructure/crypto/cryptoLive.js"
import { IdsLive } from "../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, loadKeyRing, localTrustedKeys } from "../../infrastructure/keys/keyFiles.js"
import type { ScriptTurn } from "../../infrastructure/llm/scriptedProvider.js"
import { PathResolverLive } from "../../infrastructure/workspace/pathResolver.js"
import { benchDir } from "./measure.js"

export type Sync = "full" | "normal"

export const PRINCIPAL = "alice"
export const MODEL = "scripted"
/** The one session of the 1,000-turn run and of the resume fixture. */
export const SESSION_ID = "bench-turn-session"
/** The file every tool call reads: 48 lines of Rust, 1.2 kB. */
export const READ_PATH = "src/lib.rs"

const SOURCE = [
  "//! A small ring buffer, the file the benchmark's agent keeps reading.",
  "",
  "pub struct Ring<T> {",
  "    items: Vec<Option<T>>,",
  "    head: usize,",
  "    len: usize,",
  "}",
  "",
  "impl<T> Ring<T> {",
  "    pub fn with_capacity(capacity: usize) -> Self {",
  "        assert!(capacity > 0, \"a ring needs room for one item\");",
  "        let mut items = Vec::with_capacity(capacity);",
  "        items.resize_with(capacity, || None);",
  "        Ring { items, head: 0, len: 0 }",
  "    }",
  "",
  "    pub fn push(&mut self, item: T) -> Option<T> {",
  "        let capacity = self.items.len();",
  "        let tail = (self.head + self.len) % capacity;",
  "        let evicted = self.items[tail].replace(item);",
  "        if self.len == capacity {",
  "            self.head = (self.head + 1) % capacity;",
  "        } else {",
  "            self.len += 1;",
  "        }",
  "        evicted",
  "    }",
  "",
  "    pub fn pop(&mut self) -> Option<T> {",
  "        if self.len == 0 {",
  "            return None;",
  "        }",
  "        let item = self.items[self.head].take();",
  "        self.head = (self.head + 1) % self.items.len();",
  "        self.len -= 1;",
  "        item",
  "    }",
  "",
  "    pub fn len(&self) -> usize {",
  "        self.len",
  "    }",
  "",
  "    pub fn is_empty(&self) -> bool {",
  "        self.len == 0",
  "    }",
  "}",
  "",
  "// end of file",
  ""
].join("\n")

/** Guided mode lets reads inside the workspace pass without asking: no approval channel is needed. */
export const benchSettings = (): SecuritySettings => ({
  policy: DEFAULT_POLICY,
  workspaceMode: "guided",
  escapePolicy: "ask",
  approvalTimeoutMs: 1_000,
  budget: { perActionMicros: 1_000_000, perSessionMicros: 1_000_000_000_000, perWorkspaceMicros: 1_000_000_000_000, warnAtPercent: 80 },
  allowAlwaysTtlMs: 3_600_000,
  preApproved: []
})

export interface TurnFixture {
  readonly dir: string
  readonly home: string
  readonly workspace: string
  readonly keyRing: KeyRingApi
  readonly trusted: ReadonlyMap<string, string>
  readonly crypto: CryptoApi
}

/** A fresh temp folder with a workspace and a runtime key (`dir` given: reuse that folder's, made by the parent). */
export const makeTurnFixture = async (existing?: string): Promise<TurnFixture> => {
  const dir = existing ?? mkdtempSync(join(benchDir(), "turn-"))
  const home = join(dir, "home")
  const ws = join(dir, "ws")
  if (existing === undefined) {
    mkdirSync(join(ws, "src"), { recursive: true })
    writeFileSync(join(ws, READ_PATH), SOURCE)
  }
  const workspace = realpathSync.native(ws)
  const { keyRing, trusted } = await Effect.runPromise(
    Effect.gen(function* () {
      if (existing === undefined) yield* generateKey(home, false, Date.now())
      return { keyRing: yield* loadKeyRing(home), trusted: yield* localTrustedKeys(home) }
    })
  )
  return { dir, home, workspace, keyRing, trusted, crypto: await makeCrypto() }
}

export const removeDb = (path: string): void => {
  for (const p of [path, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true })
}

export interface SessionServices {
  readonly store: EventStoreApi
  readonly log: Effect.Effect.Success<typeof EventLog>
  readonly interceptor: SecurityInterceptorApi
  /** Everything `runTurn` and `runTool` need, with `provider` as the model. */
  readonly layerWith: (provider: LlmProviderApi) => Layer.Layer<EventLog | EventStore | Crypto | KeyRing | LlmProvider | SecurityInterceptor | Ids>
}

/**
 * Opens (write mode) the store at `path` and builds the services over it, as production does. The store is
 * closed when the scope ends. Opening, building the EventLog and the interceptor are all inside this effect,
 * so timing it times "a freshly started runtime over an existing file" (module loading excepted).
 */
export const openSession = (path: string, sync: Sync, fixture: TurnFixture): Effect.Effect<SessionServices, EventStoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const opened = yield* Effect.acquireRelease(openSqliteEventStore({ path, mode: "write", synchronous: sync }), (s) => Effect.sync(() => s.close()))
    const store = opened.api
    const deps = Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Crypto, fixture.crypto), IdsLive, Layer.succeed(KeyRing, fixture.keyRing))
    const log = yield* EventLog.pipe(Effect.provide(EventLogLive({ checkpointEvery: DEFAULT_CHECKPOINT_EVERY }).pipe(Layer.provide(deps))))
    const base = Layer.mergeAll(
      Layer.succeed(EventLog, log),
      Layer.succeed(EventStore, store),
      Layer.succeed(Crypto, fixture.crypto),
      IdsLive,
      Layer.succeed(KeyRing, fixture.keyRing)
    )
    const services = Layer.provideMerge(Layer.mergeAll(BudgetServiceLive, TokenServiceLive({ trustedIssuers: fixture.trusted })), Layer.merge(base, PathResolverLive))
    const interceptor = yield* SecurityInterceptor.pipe(Effect.provide(Layer.provideMerge(SecurityInterceptorLive(benchSettings()), services)))
    return {
      store,
      log,
      interceptor,
      layerWith: (provider) => Layer.mergeAll(base, Layer.succeed(SecurityInterceptor, interceptor), Layer.succeed(LlmProvider, provider))
    }
  })

/** One agent turn of the script: a short remark and one read_file call, then a final answer. */
export const scriptForTurns = (turns: number): ReadonlyArray<ScriptTurn> => {
  const script: Array<ScriptTurn> = []
  for (let i = 0; i < turns; i++) {
    script.push({
      content: [
        { type: "text", text: "Let me look at the ring buffer first." },
        { type: "tool_call", name: "read_file", input: { path: READ_PATH } }
      ],
      usage: { input_tokens: 1_200, output_tokens: 40 }
    })
    script.push({
      content: [{ type: "text", text: `Turn ${i + 1}: push overwrites the oldest item once the ring is full, and pop takes from the head.` }],
      usage: { input_tokens: 1_700, output_tokens: 30 }
    })
  }
  return script
}

/** The user's message of turn `i`. */
export const userInput = (i: number): string => `Turn ${i + 1}: what does ${READ_PATH} do when the ring is full?`

/** A provider that notes when each model request was made (performance.now()) and how long the conversation was. */
export const timedProvider = (inner: LlmProviderApi): LlmProviderApi & { readonly requests: Array<{ readonly at: number; readonly messages: number }> } => {
  const requests: Array<{ at: number; messages: number }> = []
  return {
    name: inner.name,
    requests,
    stream: (request: LlmRequest) => {
      requests.push({ at: performance.now(), messages: request.messages.length })
      return inner.stream(request)
    }
  }
}
