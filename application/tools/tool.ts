/**
 * A built-in tool the model can call: what it is called, the JSON schema the model sees, how its input is
 * decoded, the action the interceptor judges before it runs, and how it runs. Tools never run on their own:
 * `runTool` puts every call through the SecurityInterceptor.
 */
import { Data, Effect, Either, ParseResult, Ref, Schema } from "effect"
import type { ActionRequest, ClassifiedAction } from "../../domain/security/action.js"

/** A tool could not do what it was asked; the message is shown to the model and says what to do next. */
export class ToolError extends Data.TaggedError("ToolError")<{ readonly tool: string; readonly message: string }> {}

/** What a tool's `request` sees: enough to name the action, nothing to perform it. */
export interface RequestContext {
  readonly workspaceRoot: string
  /** The shell's working directory for this session (absolute). */
  readonly cwd: string
}

/** What a tool's `run` sees. `cwd` is the session's shell state, kept between calls. */
export interface RunContext {
  readonly workspaceRoot: string
  readonly cwd: Ref.Ref<string>
}

/**
 * What the interceptor judged, handed to the tool that runs the action: a file tool opens `path` (never a
 * path it derives again from its input) and checks that what it opened is still that file (I10).
 */
export interface JudgedTarget {
  /** The canonical path the interceptor judged; absent for kinds without a path. */
  readonly path?: string
  /** Whether the judged path lay inside the workspace; null when it could not be placed or has no path. */
  readonly insideWorkspace: boolean | null
}

/** The judgment of an allowed action, as its tool receives it. */
export const judgedTargetOf = (action: ClassifiedAction): JudgedTarget =>
  action.path === undefined ? { insideWorkspace: action.insideWorkspace } : { path: action.path, insideWorkspace: action.insideWorkspace }

export interface Tool<Input> {
  readonly name: string
  readonly description: string
  /** JSON schema of the input, as handed to the model. */
  readonly inputSchema: Readonly<Record<string, unknown>>
  readonly decode: (input: unknown) => Either.Either<Input, string>
  readonly request: (input: Input, ctx: RequestContext) => ActionRequest
  /** Runs the call the interceptor allowed; `judged` is what it judged (tools without a path ignore it). */
  readonly run: (input: Input, ctx: RunContext, judged: JudgedTarget) => Effect.Effect<string, ToolError>
}

/** A decoded call, its input type hidden, ready to be judged and run. */
export interface ToolCall {
  readonly request: (ctx: RequestContext) => ActionRequest
  readonly run: (ctx: RunContext, judged: JudgedTarget) => Effect.Effect<string, ToolError>
}

/** A tool with its input type erased, so tools of different inputs fit in one registry. */
export interface AnyTool {
  readonly name: string
  readonly description: string
  readonly inputSchema: Readonly<Record<string, unknown>>
  readonly prepare: (input: unknown) => Either.Either<ToolCall, string>
}

export const eraseTool = <Input>(tool: Tool<Input>): AnyTool => ({
  name: tool.name,
  description: tool.description,
  inputSchema: tool.inputSchema,
  prepare: (input) =>
    Either.map(tool.decode(input), (decoded) => ({
      request: (ctx) => tool.request(decoded, ctx),
      run: (ctx, judged) => tool.run(decoded, ctx, judged)
    }))
})

/** A `decode` from a Schema, with the parse error rendered for the model. */
export const decodeWith =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (input: unknown): Either.Either<A, string> =>
    Either.mapLeft(Schema.decodeUnknownEither(schema)(input, { onExcessProperty: "error" }), (e) => ParseResult.TreeFormatter.formatErrorSync(e))

/** A fresh session shell state starting at the workspace root. */
export const makeRunContext = (workspaceRoot: string): Effect.Effect<RunContext> =>
  Effect.map(Ref.make(workspaceRoot), (cwd) => ({ workspaceRoot, cwd }))
