/**
 * `write_file`: writes a whole file, creating missing parent directories.
 *
 * The interceptor judged the path as it resolved then; a symbolic link put at the final component
 * afterwards (between the judgment and the write) must not carry the write somewhere else, so the file is
 * opened with O_NOFOLLOW and a link there is refused instead of followed.
 */
import { Effect, Schema } from "effect"
import { constants } from "node:fs"
import { type FileHandle, lstat, mkdir, open } from "node:fs/promises"
import { dirname } from "node:path"
import { decodeWith, eraseTool, ToolError, type Tool } from "../../application/tools/tool.js"
import { fsError, toolPath } from "./workspaceFiles.js"

const Input = Schema.Struct({ path: Schema.String, content: Schema.String })
type Input = typeof Input.Type

const codeOf = (e: unknown): string | undefined => (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined)

const symlinkRefused = (tool: string, path: string): ToolError =>
  new ToolError({
    tool,
    message: `${path} is a symbolic link; ${tool} does not write through links, since a link can point outside what was approved. Write to the link's target path instead, or remove the link first`
  })

/**
 * Opens `path` for writing without following a symbolic link at its last component (the parent folders
 * were resolved when the action was judged). `mode` is "create" (create or truncate) or "update" (an
 * existing file, read and written through the same handle so nothing is swapped in between).
 */
export const openNoFollow = (tool: string, path: string, mode: "create" | "update"): Effect.Effect<FileHandle, ToolError> =>
  Effect.gen(function* () {
    const noFollow: number | undefined = constants.O_NOFOLLOW
    const flags = (mode === "create" ? constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC : constants.O_RDWR) | (noFollow ?? 0)
    if (noFollow === undefined) {
      // No O_NOFOLLOW on this platform (Windows): the best available is to look first.
      const seen = yield* Effect.tryPromise({ try: () => lstat(path), catch: (e) => e }).pipe(Effect.option)
      if (seen._tag === "Some" && seen.value.isSymbolicLink()) return yield* Effect.fail(symlinkRefused(tool, path))
    }
    return yield* Effect.tryPromise({
      try: () => open(path, flags, 0o666),
      // O_NOFOLLOW on a link fails with ELOOP (EMLINK on some BSDs).
      catch: (e) => (codeOf(e) === "ELOOP" || codeOf(e) === "EMLINK" ? symlinkRefused(tool, path) : fsError(tool, path)(e))
    })
  })

/** Writes all of `bytes` at offset 0 of `handle` (a positional write may write less than asked). */
export const writeAllAt0 = (tool: string, path: string, handle: FileHandle, bytes: Uint8Array): Effect.Effect<void, ToolError> =>
  Effect.tryPromise({
    try: async () => {
      let done = 0
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, done)
        done += bytesWritten
      }
    },
    catch: fsError(tool, path)
  })

const closing = (handle: FileHandle) => Effect.promise(() => handle.close().catch(() => undefined))

export const writeFileTool: Tool<Input> = {
  name: "write_file",
  description: "Write a file with the given content, replacing it if it exists and creating missing parent directories.",
  inputSchema: {
    type: "object",
    properties: {
      path: { type: "string", description: "File path, absolute or relative to the workspace root" },
      content: { type: "string", description: "The whole new content of the file" }
    },
    required: ["path", "content"],
    additionalProperties: false
  },
  decode: decodeWith(Input),
  request: (input, ctx) => ({ _tag: "file_write", path: toolPath(ctx.workspaceRoot, input.path), bytes: Buffer.byteLength(input.content, "utf8") }),
  run: (input, ctx) =>
    Effect.gen(function* () {
      const path = toolPath(ctx.workspaceRoot, input.path)
      yield* Effect.tryPromise({ try: () => mkdir(dirname(path), { recursive: true }), catch: fsError("write_file", path) })
      const bytes = Buffer.from(input.content, "utf8")
      yield* Effect.acquireUseRelease(openNoFollow("write_file", path, "create"), (handle) => writeAllAt0("write_file", path, handle, bytes), closing)
      return `wrote ${bytes.length} bytes to ${path}`
    })
}

export const writeFileToolErased = eraseTool(writeFileTool)
