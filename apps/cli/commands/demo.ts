/**
 * `astrid demo`: an offline tour in a temporary ASTRID_HOME. A scripted agent proposes actions to the
 * real SecurityInterceptor (policy, tokens, budget, approvals, audit); the answers a person would give
 * come from the demo's own script, and it says so. Then the log is checkpointed, verified, exported and
 * verified offline, and tampered copies are caught.
 */
import Database from "better-sqlite3"
import { Clock, Effect, Layer } from "effect"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EventLog } from "../../../application/eventLog.js"
import { ApprovalChannel, type ApprovalChannelApi, type ApprovalReply } from "../../../application/ports/approvalChannel.js"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventStore } from "../../../application/ports/eventStore.js"
import { Ids } from "../../../application/ports/ids.js"
import { KeyRing } from "../../../application/ports/keyRing.js"
import { RUNTIME_PRINCIPAL } from "../../../application/audit/checkpointer.js"
import type { VerifyReport } from "../../../application/audit/verifier.js"
import { verifyStore } from "../../../application/audit/verifyStore.js"
import { BudgetServiceLive } from "../../../application/security/budgetService.js"
import { type Decision, type Proposal, SecurityInterceptor, SecurityInterceptorLive } from "../../../application/security/securityInterceptor.js"
import { TokenServiceLive } from "../../../application/security/tokenService.js"
import type { ActionRequest } from "../../../domain/security/action.js"
import { DEFAULT_POLICY } from "../../../domain/security/policy.js"
import { keysStream, sessionStream } from "../../../domain/streams.js"
import { exportBundle, verifyBundle } from "../../../infrastructure/bundle/auditBundle.js"
import { uuidv7 } from "../../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, localTrustedKeys } from "../../../infrastructure/keys/keyFiles.js"
import { PathResolverLive } from "../../../infrastructure/workspace/pathResolver.js"
import { asCli } from "../cliError.js"
import { green, printLines, red } from "../output.js"
import { config, crypto, eventLogFor, openStore, withKeyRing } from "../runtime.js"

const SESSION = "demo-1"
const PRINCIPAL = "alice"

const describeReport = (report: VerifyReport): ReadonlyArray<string> =>
  report.ok
    ? [green(`   intact: ${report.events} events in ${report.streams} streams, ${report.checkpoints} checkpoint(s), 0 issues`)]
    : [
        red(`   NOT intact: ${report.issues.length} issue(s)`),
        ...report.issues.map((i) => red(`     ${i.kind} at ${i.stream}${i.revision === null ? "" : `@${i.revision}`}: ${i.detail}`))
      ]

const describeDecision = (d: Decision): string => {
  switch (d._tag) {
    case "Allowed":
      return green(`   -> allowed (${d.proof})`)
    case "Denied":
      return red(`   -> denied at the ${d.stage} stage: ${d.reason}`)
    case "Deferred":
      return `   -> deferred to the approval queue (${d.reason.replace("_", " ")}), request ${d.requestId.slice(0, 13)}…`
  }
}

/** The answers a person would give, from the demo's script (there is no agent and no prompt here). */
const scriptedApprover = (lines: Array<string>): ApprovalChannelApi => ({
  name: "demo-script",
  ask: (prompt) =>
    Effect.sync((): ApprovalReply => {
      lines.push(`   asked: ${prompt.summary} [risk ${prompt.risk}] -> the demo's script answers Allow Always`)
      return { answer: { _tag: "AllowAlways" }, approver: "demo-script" }
    })
})

export const run = (args: { readonly keep: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const home = mkdtempSync(join(tmpdir(), "astrid-demo-"))
      process.env["ASTRID_HOME"] = home
      // The demo is offline and self-contained: always the embedded store, whatever the environment says.
      delete process.env["ASTRID_DB"]
      delete process.env["ASTRID_EVENT_STORE_URL"]
      yield* Effect.addFinalizer(() => Effect.sync(() => (args.keep ? undefined : rmSync(home, { recursive: true, force: true }))))
      const cfg = yield* config
      const c = yield* crypto
      const now = yield* Clock.currentTimeMillis
      yield* printLines(`Astrid demo: offline, in a temporary ASTRID_HOME (${home})`, "")

      const key = yield* asCli(generateKey(home, false, now))
      const store = yield* openStore(cfg, "write")
      const { log, keyRing } = yield* eventLogFor(cfg, store, true)
      yield* asCli(
        log.append(keysStream, "no_stream", [
          { principal: RUNTIME_PRINCIPAL, event: { _tag: "RuntimeKeyGenerated", keyId: key.keyId, algorithm: "ed25519", publicKey: key.publicKey, replaces: null } }
        ])
      )
      yield* printLines(`1. Generated the runtime signing key ${key.keyId} (ed25519, keys/runtime.key, mode 0600).`)

      const workspace = join(home, "workspace")
      mkdirSync(workspace, { recursive: true })
      writeFileSync(join(workspace, "README.md"), "# Demo project\n")
      const outside = join(home, "outside")
      mkdirSync(outside, { recursive: true })

      const layers = Layer.mergeAll(
        Layer.succeed(EventLog, log),
        Layer.succeed(EventStore, store),
        Layer.succeed(Crypto, c),
        Layer.succeed(Ids, { uuidv7 }),
        PathResolverLive,
        keyRing === undefined ? Layer.empty : Layer.succeed(KeyRing, keyRing)
      )
      const services = Layer.provideMerge(Layer.mergeAll(BudgetServiceLive, TokenServiceLive({ trustedIssuers: new Map([[key.keyId, key.publicKey]]) })), layers)
      const settings = {
        policy: DEFAULT_POLICY,
        workspaceMode: "guided" as const,
        escapePolicy: "ask" as const,
        approvalTimeoutMs: 5_000,
        allowAlwaysTtlMs: 3_600_000,
        preApproved: [],
        budget: { perActionMicros: 1_000_000, perSessionMicros: 10_000_000, perWorkspaceMicros: 100_000_000, warnAtPercent: 80 }
      }
      const interceptor = yield* SecurityInterceptor.pipe(Effect.provide(Layer.provideMerge(SecurityInterceptorLive(settings), services)))
      const transcript: Array<string> = []
      const approver = scriptedApprover(transcript)
      const propose = (title: string, request: ActionRequest, costMicros: number, withApprover: boolean) =>
        Effect.gen(function* () {
          const proposal: Proposal = { principal: PRINCIPAL, sessionId: SESSION, workspaceRoot: workspace, request, estimatedCostMicros: costMicros }
          const intercept = interceptor.intercept(proposal)
          const decision = yield* asCli(withApprover ? Effect.provideService(intercept, ApprovalChannel, approver) : intercept)
          yield* printLines(title, ...transcript.splice(0), describeDecision(decision))
          return decision
        })

      yield* printLines(
        "",
        `2. A scripted agent proposes actions to the security interceptor (workspace ${workspace}, mode guided):`
      )
      yield* propose(" a. read README.md inside the workspace", { _tag: "file_read", path: "README.md" }, 0, true)
      yield* propose(" b. run 'sudo rm -rf /var/cache'", { _tag: "command_exec", command: "sudo rm -rf /var/cache" }, 0, true)
      const outsideFile = join(outside, "notes.txt")
      yield* propose(` c. write ${outsideFile}, outside the workspace`, { _tag: "file_write", path: outsideFile }, 1_000, true)
      yield* propose(" d. the same write again: the Allow Always token covers it, nobody is asked", { _tag: "file_write", path: outsideFile }, 1_000, true)
      yield* propose(" e. run 'npm publish', estimated at $2.00 (the per-action limit is $1.00)", { _tag: "command_exec", command: "npm publish" }, 2_000_000, true)
      const deferred = yield* propose(" f. run 'make deploy' with nobody there to ask", { _tag: "command_exec", command: "make deploy" }, 5_000, false)
      if (deferred._tag === "Deferred") {
        const resolved = yield* asCli(
          interceptor.resolveDeferred({ requestId: deferred.requestId, principal: PRINCIPAL, resolver: PRINCIPAL, answer: { _tag: "Approve", scope: "once" } })
        )
        yield* printLines(" g. later, alice approves it from the queue ('astrid approvals approve'); policy and budget are checked again", describeDecision(resolved))
      }

      const signed = yield* asCli(withKeyRing(log.checkpoint, keyRing))
      if (signed._tag === "Signed") {
        yield* printLines("", `3. Signed checkpoint #${signed.revision}: ${signed.body.heads.length} stream heads, Merkle root ${signed.body.merkleRoot.slice(0, 16)}…`)
      }
      const trusted = yield* asCli(localTrustedKeys(home))
      const options = { trustedKeys: trusted, blake3Hex: c.blake3Hex, verifyText: c.verifyText }
      yield* printLines("4. astrid audit verify", ...describeReport(yield* asCli(verifyStore(store, options))))

      const bundle = join(home, "history.astrid-bundle.jsonl")
      const exported = yield* asCli(exportBundle(store, bundle, { publicKeys: [{ keyId: key.keyId, publicKey: key.publicKey }], nowMs: now }))
      const offline = yield* asCli(verifyBundle(bundle, options))
      yield* printLines(`5. Exported ${exported.events} events to a bundle and verified it offline, trusting only ${key.keyId}:`, ...describeReport(offline.report))

      const session = sessionStream(SESSION)
      const [denial] = (yield* asCli(store.readStream(session))).filter((e) => e.type === "ActionDenied" && e.data.includes('"stage":"policy"'))
      const tamper = (name: string, sql: string, params: ReadonlyArray<string | number>) =>
        Effect.gen(function* () {
          const path = join(home, `${name}.db`)
          // VACUUM INTO copies what a reader sees, including commits still in the WAL.
          const live = new Database(cfg.eventStore.path, { readonly: true })
          live.prepare("VACUUM INTO ?").run(path)
          live.close()
          const db = new Database(path)
          db.prepare(sql).run(...params)
          db.close()
          const copy = yield* asCli(Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close())))
          return yield* asCli(verifyStore(copy.api, options))
        })
      if (denial !== undefined) {
        const edited = yield* tamper("edited", "UPDATE events SET data = replace(data, 'blocked', 'allowed') WHERE stream_id = ? AND revision = ?", [session, denial.revision])
        yield* printLines(`6. In a copy of the database, someone edits the sudo denial (${session}@${denial.revision}) to read 'allowed':`, ...describeReport(edited))
        const cut = yield* tamper("truncated", "DELETE FROM events WHERE stream_id = ? AND revision >= ?", [session, denial.revision])
        yield* printLines("7. In another copy, someone deletes the denial and everything after it:", ...describeReport(cut))
      }
      yield* printLines(
        "",
        args.keep ? `Kept ${home}; look around with: ASTRID_HOME=${home} npx astrid audit list` : "The temporary home is removed (pass --keep to look around).",
        "Next: 'astrid keys generate' in your own ASTRID_HOME, then 'astrid audit verify'."
      )
    })
  )
