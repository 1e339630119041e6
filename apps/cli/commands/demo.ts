/**
 * `astrid demo`: an offline tour of the audit core in a temporary ASTRID_HOME. It records a short
 * agent session's events (the security interceptor that will produce them in real runs comes in a
 * later release, so the demo writes them itself and says so), signs a checkpoint, verifies the log and
 * an exported bundle, then tampers with copies of the database and shows verification catching it.
 */
import Database from "better-sqlite3"
import { Clock, Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { EventDraft } from "../../../application/eventLog.js"
import type { VerifyReport } from "../../../application/audit/verifier.js"
import { verifyStore } from "../../../application/audit/verifyStore.js"
import { RUNTIME_PRINCIPAL } from "../../../application/audit/checkpointer.js"
import { keysStream, sessionStream } from "../../../domain/streams.js"
import { exportBundle, verifyBundle } from "../../../infrastructure/bundle/auditBundle.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, localTrustedKeys } from "../../../infrastructure/keys/keyFiles.js"
import { asCli } from "../cliError.js"
import { dim, green, printLines, red } from "../output.js"
import { config, crypto, eventLogFor, openStore, withKeyRing } from "../runtime.js"

const SESSION = "demo-1"
const PRINCIPAL = "alice"

const sessionEvents = (workspace: string): ReadonlyArray<EventDraft> => {
  const base = { principal: PRINCIPAL, sessionId: SESSION }
  const untrusted = { ...base, classification: "untrusted" as const }
  return [
    { ...base, event: { _tag: "SessionStarted", sessionId: SESSION, workspace, parentSessionId: null, model: "scripted" } },
    { ...base, event: { _tag: "MessageRecorded", messageId: "m1", role: "user", content: "Read the README, then clean up /tmp/cache with sudo.", inputClassification: "trusted" } },
    {
      ...base,
      event: {
        _tag: "ActionProposed",
        actionId: "a1",
        kind: "file_read",
        resource: `file://${workspace}/README.md`,
        risk: "low",
        summary: "read_file README.md",
        arguments: { path: "README.md" },
        estimatedCostMicros: 0
      }
    },
    { ...base, event: { _tag: "ActionAllowed", actionId: "a1", proof: { _tag: "PolicyAllowed", rule: "workspace.guided.read_inside" } } },
    { ...untrusted, event: { _tag: "ToolResultRecorded", actionId: "a1", tool: "read_file", ok: true, output: "# Demo project\n", truncated: false, durationMs: 1 } },
    {
      ...base,
      event: {
        _tag: "ActionProposed",
        actionId: "a2",
        kind: "command_exec",
        resource: "exec://sudo",
        risk: "critical",
        summary: "bash: sudo rm -rf /tmp/cache",
        arguments: { command: "sudo rm -rf /tmp/cache" },
        estimatedCostMicros: 0
      }
    },
    {
      ...base,
      event: { _tag: "ActionDenied", actionId: "a2", stage: "policy", reason: "blocked command: sudo", remedy: "an administrator must change [security.policy] blocked_commands" }
    },
    { ...base, event: { _tag: "LlmUsageRecorded", provider: "scripted", model: "scripted", inputTokens: 812, outputTokens: 96, costMicros: 3876 } },
    { ...base, event: { _tag: "SessionEnded", sessionId: SESSION, reason: "completed", detail: null } }
  ]
}

const describe = (report: VerifyReport): ReadonlyArray<string> =>
  report.ok
    ? [green(`  intact: ${report.events} events in ${report.streams} streams, ${report.checkpoints} checkpoint(s), 0 issues`)]
    : [
        red(`  NOT intact: ${report.issues.length} issue(s)`),
        ...report.issues.map((i) => red(`    ${i.kind} at ${i.stream}${i.revision === null ? "" : `@${i.revision}`}: ${i.detail}`))
      ]

export const run = (args: { readonly keep: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const home = mkdtempSync(join(tmpdir(), "astrid-demo-"))
      process.env["ASTRID_HOME"] = home
      delete process.env["ASTRID_DB"]
      yield* Effect.addFinalizer(() => Effect.sync(() => (args.keep ? undefined : rmSync(home, { recursive: true, force: true }))))
      const cfg = yield* config
      const c = yield* crypto
      const now = yield* Clock.currentTimeMillis
      yield* printLines(`Astrid audit demo (offline, temporary ASTRID_HOME ${home})`, "")

      const key = yield* asCli(generateKey(home, false, now))
      yield* printLines(`1. Generated the runtime signing key ${key.keyId} (ed25519, ${join("keys", "runtime.key")}, mode 0600).`)

      const store = yield* openStore(cfg, "write")
      const { log, keyRing } = yield* eventLogFor(cfg, store, true)
      yield* asCli(
        log.append(keysStream, "no_stream", [
          { principal: RUNTIME_PRINCIPAL, event: { _tag: "RuntimeKeyGenerated", keyId: key.keyId, algorithm: "ed25519", publicKey: key.publicKey, replaces: null } }
        ])
      )
      const events = sessionEvents(join(home, "workspace"))
      const appended = yield* asCli(log.append(sessionStream(SESSION), "no_stream", events))
      yield* printLines(
        `2. Recorded a session as ${events.length} chained events on ${appended.stream}`,
        dim("   (written by the demo itself: the interceptor that records them in real runs comes with the next release)"),
        dim("   a read inside the workspace allowed by policy, its untrusted tool output, 'sudo rm -rf' denied by policy, LLM usage")
      )
      const signed = yield* asCli(withKeyRing(log.checkpoint, keyRing))
      if (signed._tag === "Signed") {
        yield* printLines(`3. Signed checkpoint #${signed.revision}: ${signed.body.heads.length} stream heads, Merkle root ${signed.body.merkleRoot.slice(0, 16)}…`)
      }
      const trusted = yield* asCli(localTrustedKeys(home))
      const options = { trustedKeys: trusted, blake3Hex: c.blake3Hex, verifyText: c.verifyText }
      yield* printLines("4. astrid audit verify", ...describe(yield* asCli(verifyStore(store, options))))

      const bundle = join(home, "history.astrid-bundle.jsonl")
      const exported = yield* asCli(exportBundle(store, bundle, { publicKeys: [{ keyId: key.keyId, publicKey: key.publicKey }], nowMs: now }))
      const offline = yield* asCli(verifyBundle(bundle, options))
      yield* printLines(
        `5. Exported ${exported.events} events to a bundle and verified it offline, trusting only ${key.keyId}:`,
        ...describe(offline.report)
      )

      const tamper = (name: string, sql: string) =>
        Effect.gen(function* () {
          const path = join(home, `${name}.db`)
          // VACUUM INTO copies what a reader sees, including commits still in the WAL.
          const live = new Database(cfg.eventStore.path, { readonly: true })
          live.prepare("VACUUM INTO ?").run(path)
          live.close()
          const db = new Database(path)
          db.exec(sql)
          db.close()
          const copy = yield* asCli(Effect.acquireRelease(openSqliteEventStore({ path, mode: "read" }), (s) => Effect.sync(() => s.close())))
          return yield* asCli(verifyStore(copy.api, options))
        })
      const s = sessionStream(SESSION)
      const edited = yield* tamper("edited", `UPDATE events SET data = replace(data, 'sudo rm -rf', 'ls -la     ') WHERE stream_id = '${s}' AND revision = 5`)
      yield* printLines("6. Someone edits the denied 'sudo' proposal in a copy of the database to look harmless:", ...describe(edited))
      const cut = yield* tamper("truncated", `DELETE FROM events WHERE stream_id = '${s}' AND revision >= 6`)
      yield* printLines("7. Someone deletes the denial and everything after it:", ...describe(cut))
      yield* printLines(
        "",
        args.keep ? `Kept ${home}; try: ASTRID_HOME=${home} npx astrid audit list` : "The temporary home is removed (pass --keep to look around).",
        "Next: 'astrid keys generate' in your own ASTRID_HOME, then 'astrid audit verify'."
      )
    })
  )
