/** Test helpers for the built-in tools: a temp workspace and a direct run that bypasses the interceptor. */
import { Effect, Either, Ref } from "effect"
import { mkdtempSync, realpathSync } from "node:fs"
import { tmpdir } from "node:os"
import { isAbsolute, join, resolve } from "node:path"
import { type JudgedTarget, makeRunContext, type RunContext, type Tool } from "../../application/tools/tool.js"
import { resolveWorkspacePath } from "../workspace/pathResolver.js"

export const tempDir = (): string => realpathSync(mkdtempSync(join(tmpdir(), "astrid-tools-")))

/**
 * What the interceptor would hand a tool for `path` now: its canonical path and whether it lies inside
 * the workspace (a hard-linked file counts as outside, as the classifier treats it). A path that cannot be
 * resolved is judged as written and not inside, as `classify` does.
 */
export const judge = (workspaceRoot: string, path: string): JudgedTarget =>
  Either.match(resolveWorkspacePath(workspaceRoot, path), {
    onLeft: () => ({ path: isAbsolute(path) ? resolve(path) : resolve(workspaceRoot, path), insideWorkspace: false }),
    onRight: (r) => ({ path: r.canonical, insideWorkspace: r.insideWorkspace && !r.hardLinked })
  })

/** The judgment of the action `tool` would propose for `input`; no path for kinds without one. */
export const judgeCall = <I>(tool: Tool<I>, input: I, ctx: RunContext): JudgedTarget => {
  const request = tool.request(input, { workspaceRoot: ctx.workspaceRoot, cwd: Effect.runSync(Ref.get(ctx.cwd)) })
  return "path" in request && typeof request.path === "string" ? judge(ctx.workspaceRoot, request.path) : { insideWorkspace: null }
}

/**
 * Decodes and runs `tool` directly; Left is the decode or tool error message. Without `judged`, the tool
 * gets the judgment the interceptor would make at this moment.
 */
export const runDirect = <I>(tool: Tool<I>, input: unknown, ctx: RunContext, judged?: JudgedTarget): Promise<Either.Either<string, string>> => {
  const decoded = tool.decode(input)
  if (Either.isLeft(decoded)) return Promise.resolve(Either.left(`decode: ${decoded.left}`))
  const target = judged ?? judgeCall(tool, decoded.right, ctx)
  return Effect.runPromise(Effect.either(Effect.mapError(tool.run(decoded.right, ctx, target), (e) => e.message)))
}

export const context = (root: string): Promise<RunContext> => Effect.runPromise(makeRunContext(root))

export const rightOf = (e: Either.Either<string, string>): string => {
  if (Either.isLeft(e)) throw new Error(`expected success, got: ${e.left}`)
  return e.right
}

export const leftOf = (e: Either.Either<string, string>): string => {
  if (Either.isRight(e)) throw new Error(`expected failure, got: ${e.right}`)
  return e.left
}
