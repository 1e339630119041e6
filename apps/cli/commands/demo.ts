/**
 * `astrid demo`: an offline tour in a temporary ASTRID_HOME and workspace. An agent driven by the scripted
 * provider (its turns are built below, no network) runs real turns with the built-in tools through the real
 * SecurityInterceptor: a read inside the workspace passes, `sudo` is blocked by policy, a write outside the
 * workspace asks, Allow Always mints a token that lets the same write pass without asking, an action over
 * the per-action budget is denied, and an action with nobody to ask is deferred, approved from the queue
 * and run by the deferred worker. The person at the terminal answers the approvals; without a terminal
 * (or with --yes) the demo's own script answers, and says so. Then the log is checkpointed, verified,
 * exported and verified offline, and tampered copies are caught.
 */
import Database from "better-sqlite3"
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runTurn } from "../../../application/agent/agentLoop.js"
import { type Execution, makeDeferredWorker } from "../../../application/agent/deferredWorker.js"
import { RUNTIME_PRINCIPAL } from "../../../application/audit/checkpointer.js"
import type { VerifyReport } from "../../../application/audit/verifier.js"
import { verifyStore } from "../../../application/audit/verifyStore.js"
import { EventLog } from "../../../application/eventLog.js"
import { ApprovalChannel, type ApprovalChannelApi, type ApprovalReply } from "../../../application/ports/approvalChannel.js"
import { Crypto } from "../../../application/ports/crypto.js"
import { EventStore, type EventStoreApi } from "../../../application/ports/eventStore.js"
import { Ids } from "../../../application/ports/ids.js"
import { KeyRing } from "../../../application/ports/keyRing.js"
import { LlmProvider, type LlmRequest } from "../../../application/ports/llmProvider.js"
import { BudgetServiceLive } from "../../../application/security/budgetService.js"
import { type Decision, type Proposal, SecurityInterceptor, type SecurityInterceptorApi, SecurityInterceptorLive } from "../../../application/security/securityInterceptor.js"
import { TokenServiceLive } from "../../../application/security/tokenService.js"
import { decodeRecorded } from "../../../application/streamState.js"
import { RiskLevel } from "../../../domain/events/actionEvents.js"
import { type ActionRequest, ActionRequest as ActionRequestSchema } from "../../../domain/security/action.js"
import { classify } from "../../../domain/security/classify.js"
import { DEFAULT_POLICY } from "../../../domain/security/policy.js"
import { keysStream, sessionStream } from "../../../domain/streams.js"
import { exportBundle, verifyBundle } from "../../../infrastructure/bundle/auditBundle.js"
import { uuidv7 } from "../../../infrastructure/crypto/uuidv7.js"
import { openSqliteEventStore } from "../../../infrastructure/event-store/sqliteEventStore.js"
import { generateKey, localTrustedKeys } from "../../../infrastructure/keys/keyFiles.js"
import { makeScriptedProvider, type ScriptTurn } from "../../../infrastructure/llm/scriptedProvider.js"
import { builtinTools } from "../../../infrastructure/tools/builtinTools.js"
import { PathResolverLive } from "../../../infrastructure/workspace/pathResolver.js"
import { asCli } from "../cliError.js"
import { dim, green, printLines, red } from "../output.js"
import { makeTerminalApprovalChannel } from "../terminalApproval.js"
import { config, crypto, eventLogFor, openStore, withKeyRing } from "../runtime.js"
import { describeExecution } from "./worker.js"

const SESSION = "demo-1"
const PRINCIPAL = "alice"
const MODEL = "scripted"
const SCRIPT_APPROVER = "demo-script"
const PER_ACTION_LIMIT_MICROS = 1_000_000
/** The demo's estimate of what a command costs (a paid publish); everything else is free. */
const COMMAND_COSTS: ReadonlyArray<{ readonly command: string; readonly micros: number }> = [{ command: "npm publish", micros: 2_000_000 }]
const RELEASE_COMMAND = "echo 'v0.1.0 shipped' > RELEASE.txt && cat RELEASE.txt"

const dollars = (micros: number): string => `$${(micros / 1_000_000).toFixed(2)}`

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
      return green(`      -> allowed (${d.proof})`)
    case "Denied":
      return red(`      -> denied at the ${d.stage} stage: ${d.reason}`)
    case "Deferred":
      return `      -> deferred to the approval queue (${d.reason.replace("_", " ")}), request ${d.requestId.slice(0, 13)}…`
  }
}

const estimateCost = (request: ActionRequest): number =>
  request._tag === "command_exec" ? (COMMAND_COSTS.find((c) => request.command.trim().startsWith(c.command))?.micros ?? 0) : 0

const brief = (value: unknown, max = 90): string => {
  const text = JSON.stringify(value) ?? ""
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`
}

const call = (name: string, input: unknown): ScriptTurn["content"][number] => ({ type: "tool_call", name, input })
const say = (text: string): ScriptTurn["content"][number] => ({ type: "text", text })

/** The model's side of the demo: one tool call per step, so each decision is narrated on its own. */
const scriptTurns = (outsideFile: string): ReadonlyArray<ScriptTurn> => [
  // Turn 1, with someone to ask.
  { content: [say("Let me look at the project first."), call("read_file", { path: "README.md" })] },
  { content: [say("Clearing the system cache."), call("bash", { command: "sudo rm -rf /var/cache" })] },
  { content: [say("Saving my notes next to the project."), call("write_file", { path: outsideFile, content: "- tidy the README\n" })] },
  { content: [say("Adding one more line to the notes."), call("write_file", { path: outsideFile, content: "- tidy the README\n- publish\n" })] },
  { content: [say("Publishing the package."), call("bash", { command: "npm publish" })] },
  { content: [say("Done for now: the README is read, notes are saved; sudo and npm publish were refused.")] },
  // Turn 2, unattended: nobody to ask.
  { content: [say("Recording the release."), call("bash", { command: RELEASE_COMMAND })] },
  { content: [say("The release step waits for approval in the queue.")] },
  // Turn 3, after the worker ran the approved action.
  { content: [say("The release step was approved and ran: RELEASE.txt says v0.1.0 shipped.")] }
]

/** The answers a person would give, from the demo's script: Allow Always for a file write, Allow Once otherwise. */
const scriptedApprover = (lines: Array<string>, why: string): ApprovalChannelApi => ({
  name: SCRIPT_APPROVER,
  ask: (prompt) =>
    Effect.sync((): ApprovalReply => {
      const always = prompt.kind === "file_write"
      lines.push(`      asked: ${prompt.summary} [risk ${prompt.risk}] -> the demo's script answers ${always ? "Allow Always" : "Allow Once"} (${why})`)
      return { answer: always ? { _tag: "AllowAlways" } : { _tag: "AllowOnce" }, approver: SCRIPT_APPROVER }
    })
})

/** The session event that decided `actionId`, as an auditor would cite it. */
const proofOf = (store: EventStoreApi, actionId: string) =>
  Effect.gen(function* () {
    const recorded = yield* store.readStream(sessionStream(SESSION))
    for (const r of [...recorded].reverse()) {
      if (r.type !== "ActionAllowed" && r.type !== "ActionDenied" && r.type !== "ActionDeferred") continue
      const e = decodeRecorded(r)
      const detail =
        e?._tag === "ActionAllowed" && e.actionId === actionId
          ? e.proof._tag === "PolicyAllowed"
            ? `PolicyAllowed ${e.proof.rule}`
            : e.proof._tag === "TokenCovered"
              ? `TokenCovered by token ${e.proof.tokenId.slice(0, 13)}…`
              : e.proof._tag === "HumanApproved"
                ? `HumanApproved by ${e.proof.approver}`
                : `AllowanceCovered (${e.proof.scope})`
          : e?._tag === "ActionDenied" && e.actionId === actionId
            ? `stage ${e.stage}`
            : e?._tag === "ActionDeferred" && e.actionId === actionId
              ? `request ${e.requestId.slice(0, 13)}…`
              : undefined
      if (detail === undefined) continue
      return dim(`      proof: ${r.type} (${detail}) at ${r.stream}@${r.revision}, hash ${r.hash.slice(0, 12)}…`)
    }
    return dim("      proof: none found")
  })

const resultOf = (store: EventStoreApi, actionId: string) =>
  Effect.map(store.readStream(sessionStream(SESSION)), (recorded) => {
    for (const r of recorded) {
      if (r.type !== "ToolResultRecorded") continue
      const e = decodeRecorded(r)
      if (e?._tag === "ToolResultRecorded" && e.actionId === actionId) {
        const first = (e.output.split("\n")[0] ?? "").replace(/\s+/g, " ").trim()
        return dim(`      result: ${first.length <= 70 ? first : `${first.slice(0, 69)}…`}`)
      }
    }
    return undefined
  })

/**
 * The interceptor as the demo shows it: each proposal is narrated before it is judged, and its decision,
 * proof and result after. The demo's cost table gives a command its estimated cost here, as a pricing
 * front end would; the budget stage then judges that estimate like any other.
 */
const narrating = (inner: SecurityInterceptorApi, store: EventStoreApi, transcript: Array<string>): SecurityInterceptorApi => {
  let step = 0
  return {
    ...inner,
    guard: (proposal, execute) =>
      Effect.gen(function* () {
        const cost = estimateCost(proposal.request)
        const priced: Proposal = { ...proposal, estimatedCostMicros: Math.max(proposal.estimatedCostMicros, cost) }
        const letter = String.fromCharCode(97 + step++)
        const what = proposal.toolCall === undefined ? proposal.request._tag : `${proposal.toolCall.tool} ${brief(proposal.toolCall.input)}`
        yield* printLines(
          ` ${letter}. the agent calls ${what}`,
          ...(cost > 0 ? [dim(`      the demo's cost table estimates this at ${dollars(cost)}; the per-action limit is ${dollars(PER_ACTION_LIMIT_MICROS)}`)] : [])
        )
        const out = yield* inner.guard(priced, execute)
        const result = out.decision._tag === "Allowed" ? yield* Effect.orElseSucceed(resultOf(store, out.decision.actionId), () => undefined) : undefined
        yield* printLines(
          ...transcript.splice(0),
          describeDecision(out.decision),
          yield* Effect.orElseSucceed(proofOf(store, out.decision.actionId), () => ""),
          ...(result === undefined ? [] : [result])
        )
        return out
      })
  }
}

export const run = (args: { readonly keep: boolean; readonly yes?: boolean }) =>
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
      const atTerminal = args.yes !== true && process.stdin.isTTY === true && process.stdout.isTTY === true
      yield* printLines(
        `Astrid demo: offline, in a temporary ASTRID_HOME (${home})`,
        atTerminal
          ? "You answer the approvals at this terminal."
          : `Approvals: ${args.yes === true ? "--yes was given" : "there is no terminal to ask"}, so the demo's own script answers them and says so each time.`,
        ""
      )

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
      const outsideFile = join(outside, "notes.txt")

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
        approvalTimeoutMs: atTerminal ? 300_000 : 5_000,
        allowAlwaysTtlMs: 3_600_000,
        preApproved: [],
        budget: { perActionMicros: PER_ACTION_LIMIT_MICROS, perSessionMicros: 10_000_000, perWorkspaceMicros: 100_000_000, warnAtPercent: 80 }
      }
      const interceptor = yield* SecurityInterceptor.pipe(Effect.provide(Layer.provideMerge(SecurityInterceptorLive(settings), services)))
      const transcript: Array<string> = []
      const approver = atTerminal ? makeTerminalApprovalChannel({ input: process.stdin, output: process.stdout }, { approver: PRINCIPAL }) : scriptedApprover(transcript, args.yes === true ? "--yes" : "no terminal")

      const requests: Array<LlmRequest> = []
      const scripted = yield* makeScriptedProvider(scriptTurns(outsideFile), "the demo's script")
      const provider = { name: scripted.name, stream: (r: LlmRequest) => (requests.push(r), scripted.stream(r)) }
      const turnServices = Layer.mergeAll(
        Layer.succeed(EventLog, log),
        Layer.succeed(EventStore, store),
        Layer.succeed(Ids, { uuidv7 }),
        Layer.succeed(LlmProvider, provider),
        Layer.succeed(SecurityInterceptor, narrating(interceptor, store, transcript))
      )
      const turn = (userInput: string, channel: ApprovalChannelApi | undefined) =>
        Effect.gen(function* () {
          yield* printLines(`   user: ${userInput}`)
          const turnRun = runTurn({ principal: PRINCIPAL, sessionId: SESSION, workspaceRoot: workspace, userInput, tools: builtinTools, model: MODEL, maxSteps: 10 })
          const result = yield* asCli(Effect.provide(channel === undefined ? turnRun : Effect.provideService(turnRun, ApprovalChannel, channel), turnServices))
          yield* printLines(`   agent: ${result.text}`)
        })

      yield* printLines(
        "",
        `2. A scripted agent (the scripted provider, offline) works in ${workspace} (mode guided); every tool call goes through the security interceptor:`
      )
      yield* turn("Tidy up the project and publish it.", approver)

      yield* printLines("", "3. Later the session goes on unattended: nobody is there to ask.")
      yield* turn("Record the release.", undefined)

      const [queued] = yield* asCli(interceptor.pendingFor(PRINCIPAL))
      if (queued !== undefined) {
        yield* printLines(
          "",
          `4. ${PRINCIPAL} looks at the queue ('astrid approvals list'): ${queued.requestId.slice(0, 13)}… ${queued.summary}`,
          "   and approves it ('astrid approvals approve'); policy and budget are checked again first:"
        )
        // The person (or the script) is asked about the queued action as the queue shows it.
        const request = Schema.decodeUnknownOption(ActionRequestSchema)(queued.request)
        const action = Option.map(request, (r) => classify(r, { workspaceRoot: workspace }))
        const reply = yield* Effect.either(
          approver.ask({
            requestId: queued.requestId,
            actionId: queued.actionId,
            principal: PRINCIPAL,
            sessionId: queued.sessionId,
            kind: Option.match(action, { onNone: () => "unknown", onSome: (a) => a.kind }),
            resource: Option.match(action, { onNone: () => "unknown", onSome: (a) => a.resource }),
            risk: Option.getOrElse(Schema.decodeUnknownOption(RiskLevel)(queued.risk), () => "high" as const),
            summary: queued.summary,
            reason: "approving a deferred action from the queue"
          })
        )
        const scopes = { AllowOnce: "once", AllowSession: "session", AllowWorkspace: "workspace", AllowAlways: "always" } as const
        const answer =
          reply._tag === "Left"
            ? ({ _tag: "Deny", reason: "no answer" } as const)
            : reply.right.answer._tag === "Deny"
              ? ({ _tag: "Deny", reason: reply.right.answer.reason } as const)
              : ({ _tag: "Approve", scope: scopes[reply.right.answer._tag] } as const)
        const resolved = yield* asCli(interceptor.resolveDeferred({ requestId: queued.requestId, principal: PRINCIPAL, resolver: PRINCIPAL, answer }))
        yield* printLines(...transcript.splice(0), describeDecision(resolved), yield* Effect.orElseSucceed(proofOf(store, resolved.actionId), () => ""))
        if (resolved._tag === "Allowed") {
          const worker = yield* makeDeferredWorker({ tools: builtinTools, name: "astrid demo worker" }).pipe(
            Effect.provide(Layer.mergeAll(layers, Layer.succeed(SecurityInterceptor, interceptor)))
          )
          const execution: Execution = yield* asCli(worker.execute({ requestId: queued.requestId, principal: PRINCIPAL, decision: resolved }))
          yield* printLines("   the deferred worker claims it (so it runs once) and runs it:", ...describeExecution(execution).map((l) => `      ${l}`))
          const again = yield* asCli(worker.execute({ requestId: queued.requestId, principal: PRINCIPAL }))
          if (again._tag === "Skipped") yield* printLines(dim(`      a second run is refused: ${again.reason}`))
        }

        yield* printLines("", "5. The session resumes; the agent is handed what happened as a runtime notice, the output marked untrusted:")
        yield* turn("Did the release go out?", undefined)
        const notice = Option.fromNullable(
          requests[requests.length - 1]?.messages.find((m) => m.role === "user" && typeof m.content === "string" && m.content.startsWith("[Astrid runtime notice"))
        )
        if (Option.isSome(notice) && typeof notice.value.content === "string") {
          yield* printLines(...notice.value.content.split("\n").map((l) => dim(`      | ${l}`)))
        }
      }

      const signed = yield* asCli(withKeyRing(log.checkpoint, keyRing))
      if (signed._tag === "Signed") {
        yield* printLines("", `6. Signed checkpoint #${signed.revision}: ${signed.body.heads.length} stream heads, Merkle root ${signed.body.merkleRoot.slice(0, 16)}…`)
      }
      const trusted = yield* asCli(localTrustedKeys(home))
      const options = { trustedKeys: trusted, blake3Hex: c.blake3Hex, verifyText: c.verifyText }
      yield* printLines("7. astrid audit verify", ...describeReport(yield* asCli(verifyStore(store, options))))

      const bundle = join(home, "history.astrid-bundle.jsonl")
      const exported = yield* asCli(exportBundle(store, bundle, { publicKeys: [{ keyId: key.keyId, publicKey: key.publicKey }], nowMs: now }))
      const offline = yield* asCli(verifyBundle(bundle, options))
      yield* printLines(`8. Exported ${exported.events} events to a bundle and verified it offline, trusting only ${key.keyId}:`, ...describeReport(offline.report))

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
        yield* printLines(`9. In a copy of the database, someone edits the sudo denial (${session}@${denial.revision}) to read 'allowed':`, ...describeReport(edited))
        const cut = yield* tamper("truncated", "DELETE FROM events WHERE stream_id = ? AND revision >= ?", [session, denial.revision])
        yield* printLines("10. In another copy, someone deletes the denial and everything after it:", ...describeReport(cut))
      }
      yield* printLines(
        "",
        args.keep ? `Kept ${home}; look around with: ASTRID_HOME=${home} npx astrid audit list` : "The temporary home is removed (pass --keep to look around).",
        "Next: 'astrid init' in your project, then 'astrid chat' (or 'astrid chat --script FILE' offline); 'astrid audit verify' any time."
      )
    })
  )
