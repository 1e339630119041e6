/**
 * A temporary ASTRID_HOME (runtime key, SQLite store) whose approval queue holds alice's tool calls, deferred
 * by the real interceptor because nobody could be asked: what the approvals and worker commands start from.
 */
import { Effect } from "effect"
import { join } from "node:path"
import { type Proposal, SecurityInterceptor } from "../application/security/securityInterceptor.js"
import { runTool } from "../application/tools/runTool.js"
import { type AnyTool, makeRunContext } from "../application/tools/tool.js"
import { generateKey, loadKeyRing } from "../infrastructure/keys/keyFiles.js"
import { makeHarness } from "./securityHarness.js"
import { tempHome } from "./seedStore.js"

/** A home whose queue holds alice's tool calls, deferred because nobody could be asked. */
export const deferredQueue = async (
  calls: ReadonlyArray<{ readonly tool: AnyTool; readonly input: unknown }>,
  /** Proposed straight to the interceptor: tool calls the worker does not have, with a cost to reserve. */
  proposals: ReadonlyArray<Pick<Proposal, "request" | "toolCall" | "estimatedCostMicros">> = [],
  /** Where the test keeps the homes it removes afterwards. */
  homes: Array<string>
) => {
  const home = tempHome()
  homes.push(home)
  process.env["ASTRID_HOME"] = home
  process.env["ASTRID_PRINCIPAL"] = "alice"
  process.env["NO_COLOR"] = "1"
  await Effect.runPromise(Effect.orDie(generateKey(home, false, Date.now())))
  const key = await Effect.runPromise(Effect.orDie(loadKeyRing(home)))
  const h = await makeHarness({ sqlitePath: join(home, "astrid.db"), keyRing: key, trustedIssuers: new Map([[key.keyId, key.publicKeyHex]]) })
  const requestIds: Array<string> = []
  for (const call of calls) {
    const context = await Effect.runPromise(makeRunContext(h.workspace))
    const result = await h.run(Effect.provideService(runTool(call.tool, call.input, { principal: "alice", sessionId: "s1", context }), SecurityInterceptor, h.interceptor))
    if (result.decision?._tag !== "Deferred") throw new Error("expected a deferral")
    requestIds.push(result.decision.requestId)
  }
  for (const p of proposals) {
    const d = await h.run(h.interceptor.intercept({ principal: "alice", sessionId: "s1", workspaceRoot: h.workspace, ...p }))
    if (d._tag !== "Deferred") throw new Error("expected a deferral")
    requestIds.push(d.requestId)
  }
  return { home, workspace: h.workspace, requestIds, h }
}

