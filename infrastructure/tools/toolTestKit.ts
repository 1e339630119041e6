/** Test helpers for the built-in tools: a temp workspace and a direct run that bypasses the interceptor. */
import { Effect, Either } from "effect"
import { mkdtempSync, realpathSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { makeRunContext, type RunContext, type Tool } from "../../application/tools/tool.js"

export const tempDir = (): string => realpathSync(mkdtempSync(join(tmpdir(), "astrid-tools-")))

/** Decodes and runs `tool` directly; Left is the decode or tool error message. */
export const runDirect = <I>(tool: Tool<I>, input: unknown, ctx: RunContext): Promise<Either.Either<string, string>> => {
  const decoded = tool.decode(input)
  if (Either.isLeft(decoded)) return Promise.resolve(Either.left(`decode: ${decoded.left}`))
  return Effect.runPromise(Effect.either(Effect.mapError(tool.run(decoded.right, ctx), (e) => e.message)))
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
