/**
 * Confined file access: the file a tool reads or writes is the file the SecurityInterceptor judged (I10).
 *
 * Why: the interceptor judges a canonical path (every symbolic link resolved). A tool that then opened that
 * path by name would open whatever the name leads to at that later moment: a process that flips a symbolic
 * link on the last component, or on any folder above it, between the check and the open makes an allowed
 * read return a file outside the workspace and an allowed write land outside. O_NOFOLLOW guards only the
 * last component.
 *
 * How: open once, check what was opened, never reopen by name. A folder is opened with
 * O_DIRECTORY|O_NOFOLLOW and the real path of its descriptor (readlink of /proc/self/fd/N) must equal the
 * judged folder. A name inside it is opened through `/proc/self/fd/N/name`, which the kernel resolves inside
 * the already-opened folder (Node has no openat); missing folders are made and opened the same way, one by
 * one. The opened file's descriptor must then have the judged real path, the device and inode the judged
 * name has, be a regular file, and have one link unless the judgment already placed it outside the
 * workspace (a hard link may be another name of a file outside). A write neither truncates nor writes a
 * byte before all of that holds.
 *
 * Limits: Linux only. Without /proc/self/fd (another platform, or /proc not mounted) every open is refused,
 * not done unchecked. The real path is the one the kernel reports for the descriptor: a bind mount shows
 * the path it was reached by. The link count is a heuristic: a hard link whose other name was deleted has
 * one link. A file created through a verified folder that a racing process moves elsewhere before the
 * file's own check is refused but stays there, empty. The guarantee is about the open: a file moved away
 * after its check is still the file that was judged, and is the one read or written.
 */
import { Data, Effect, type Scope } from "effect"
import { constants, existsSync, fstatSync, lstatSync, readlinkSync, type Stats } from "node:fs"
import { type FileHandle, lstat, mkdir, open, readdir, readlink } from "node:fs/promises"

/** What the caller was going to do, for messages: "it was not read", "nothing was written". */
export type Use = "read" | "write" | "list" | "search"

const notDone = (use: Use): string =>
  use === "read" ? "it was not read" : use === "write" ? "nothing was written" : use === "list" ? "it was not listed" : "it was not searched"

/** The path's target changed after it was judged: a symbolic link or rename raced the action. */
export class TargetChanged extends Data.TaggedError("TargetChanged")<{
  readonly path: string
  /** Where it leads now, when that is known. */
  readonly now: string | null
  readonly message: string
}> {}

/** A regular file with more than one hard link, judged inside the workspace: another name may be outside. */
export class HardLinkRefused extends Data.TaggedError("HardLinkRefused")<{ readonly path: string; readonly links: number; readonly message: string }> {}

/** The judged path is not the kind of file the use needs (a folder to read as a file, a device, a file to list). */
export class WrongFileType extends Data.TaggedError("WrongFileType")<{
  readonly path: string
  readonly found: "directory" | "file" | "other"
  readonly message: string
}> {}

/** No way to check what a descriptor is on this platform: refused rather than done unchecked. */
export class ConfinementUnsupported extends Data.TaggedError("ConfinementUnsupported")<{ readonly platform: string; readonly message: string }> {}

/** The operating system refused or could not do the operation (missing file, permission, ...). */
export class FileAccessError extends Data.TaggedError("FileAccessError")<{ readonly path: string; readonly code: string | null; readonly message: string }> {}

export type ConfinementError = TargetChanged | HardLinkRefused | WrongFileType | ConfinementUnsupported | FileAccessError

const codeOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

/** A message a model can act on for a failed file-system call on `path`. */
export const describeFsError = (path: string, e: unknown): string => {
  const code = codeOf(e)
  return code === "ENOENT"
    ? `${path} does not exist; check the path with list_directory or glob`
    : code === "EISDIR"
      ? `${path} is a directory; use list_directory to see what it holds`
      : code === "ENOTDIR"
        ? `${path}: a component of the path is a file, not a directory`
        : code === "EACCES" || code === "EPERM"
          ? `${path}: permission denied by the operating system`
          : `${path}: ${e instanceof Error ? e.message : String(e)}`
}

const accessError = (path: string) => (e: unknown): FileAccessError =>
  new FileAccessError({ path, code: codeOf(e) ?? null, message: describeFsError(path, e) })

/** `seen` overrides the default account of what the path is now (for a link found where none was judged). */
const changed = (path: string, now: string | null, use: Use, seen?: string): TargetChanged =>
  new TargetChanged({
    path,
    now,
    message: `${path} changed between the check and the open (${seen ?? (now === null ? "it no longer leads to the file that was checked" : `it now resolves to ${now}`)}): a symbolic link or rename raced the action; ${notDone(use)}. Propose the action again.`
  })

const FD_DIR = "/proc/self/fd"
const fdPath = (fd: number): string => `${FD_DIR}/${fd}`

/** Whether descriptors can be checked here; a function of its inputs so the refusal can be tested. */
export const confinementSupport = (platform: string, hasProcFd: boolean): ConfinementUnsupported | null =>
  platform === "linux" && hasProcFd
    ? null
    : new ConfinementUnsupported({
        platform,
        message: `file tools check that the file they open is the file that was judged through ${FD_DIR}, which ${platform === "linux" ? "is not mounted here" : `this platform (${platform}) does not have`}; nothing was opened. Run Astrid on Linux with /proc mounted`
      })

let support: ConfinementUnsupported | null | undefined
const supported: Effect.Effect<void, ConfinementUnsupported> = Effect.suspend(() => {
  if (support === undefined) support = confinementSupport(process.platform, existsSync(FD_DIR))
  return support === null ? Effect.void : Effect.fail(support)
})

/** An absolute path with no empty, `.` or `..` component and no trailing slash: what the resolver produces. */
const isCanonical = (path: string): boolean => path === "/" || (path.startsWith("/") && path.slice(1).split("/").every((c) => c !== "" && c !== "." && c !== ".."))

const splitLast = (path: string): { readonly parent: string; readonly name: string } => {
  const at = path.lastIndexOf("/")
  return { parent: at <= 0 ? "/" : path.slice(0, at), name: path.slice(at + 1) }
}

const joinPath = (dir: string, name: string): string => (dir === "/" ? `/${name}` : `${dir}/${name}`)

const notCanonical = (path: string): FileAccessError =>
  new FileAccessError({ path, code: null, message: `${path} is not a canonical absolute path, so it cannot be the path that was judged; nothing was opened. Propose the action again` })

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW
// O_NONBLOCK: a FIFO swapped in must not hang the open (it is refused after fstat); O_NOCTTY: a terminal
// must not become ours.
const SAFE = constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY
const READ_FLAGS = constants.O_RDONLY | SAFE
// No O_TRUNC: truncating before the check would damage the wrong file.
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | SAFE
const UPDATE_FLAGS = constants.O_RDWR | SAFE

const closeQuietly = (handle: FileHandle): Effect.Effect<void> => Effect.promise(() => handle.close().catch(() => undefined))

const acquire = (path: string, flags: number, mode?: number): Effect.Effect<FileHandle, unknown, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => open(path, flags, mode), catch: (e) => e }),
    closeQuietly
  )

const isSymbolicLink = (path: string): boolean => {
  try {
    return lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}

const readlinkOf = (fd: number): string | null => {
  try {
    return readlinkSync(fdPath(fd))
  } catch {
    return null
  }
}

/**
 * Checks that the open descriptor `fd` is `expectedPath` now: the kernel's real path of the descriptor
 * equals it, and the name still leads to the same device and inode. Never opens anything.
 */
export const verifyDescriptor = (fd: number, expectedPath: string, use: Use = "read"): Effect.Effect<Stats, TargetChanged | ConfinementUnsupported> =>
  Effect.flatMap(supported, () =>
    Effect.suspend(() => {
      const real = readlinkOf(fd)
      if (real !== expectedPath) return Effect.fail(changed(expectedPath, real, use))
      let opened: Stats
      let named: Stats | undefined
      try {
        opened = fstatSync(fd)
        named = lstatSync(expectedPath, { throwIfNoEntry: false })
      } catch {
        return Effect.fail(changed(expectedPath, null, use))
      }
      if (named === undefined || named.dev !== opened.dev || named.ino !== opened.ino) return Effect.fail(changed(expectedPath, null, use))
      return Effect.succeed(opened)
    })
  )

/** A folder opened and checked to be the judged one; names inside it resolve through `at(name)`. */
export interface VerifiedDirectory {
  readonly path: string
  readonly handle: FileHandle
  /** A path the kernel resolves inside this already-opened folder, whatever its name leads to now. */
  readonly at: (name: string) => string
}

/** A file opened and checked to be the judged one; read and write it only through `handle`. */
export interface VerifiedFile {
  readonly path: string
  readonly handle: FileHandle
  readonly stats: Stats
}

const directoryOf = (path: string, handle: FileHandle): VerifiedDirectory => ({ path, handle, at: (name) => `${fdPath(handle.fd)}/${name}` })

/** Opens `openAt` (a name or an fd path) as a folder without following a link there, then checks it is `expected`. */
const openDirectoryAs = (openAt: string, expected: string, use: Use, reportAs: string): Effect.Effect<VerifiedDirectory, ConfinementError, Scope.Scope> =>
  Effect.gen(function* () {
    const handle = yield* acquire(openAt, DIR_FLAGS).pipe(
      Effect.mapError((e): ConfinementError => {
        const code = codeOf(e)
        // The judged path has no link in it; one there now was put there after the check. With O_DIRECTORY
        // Linux reports a link at the last component as ENOTDIR, like a file; a look (only to word the
        // refusal) tells them apart.
        if (code === "ELOOP" || (code === "ENOTDIR" && isSymbolicLink(openAt))) return changed(reportAs, null, use, `${expected} is now a symbolic link`)
        if (code === "ENOTDIR") return new WrongFileType({ path: reportAs, found: "file", message: `${reportAs}: ${expected} is not a directory; ${notDone(use)}` })
        return accessError(reportAs)(e)
      })
    )
    yield* verifyDescriptor(handle.fd, expected, use).pipe(
      Effect.mapError((e) =>
        e._tag === "TargetChanged" && expected !== reportAs
          ? changed(reportAs, null, use, e.now === null ? `the folder ${expected} was replaced` : `the folder ${expected} now resolves to ${e.now}`)
          : e
      )
    )
    return directoryOf(expected, handle)
  })

/**
 * Opens the judged folder `judgedDir` (canonical) and checks that the descriptor is that folder. The
 * handle is closed with the scope.
 */
export const openVerifiedDirectory = (judgedDir: string, use: Use = "list"): Effect.Effect<VerifiedDirectory, ConfinementError, Scope.Scope> =>
  Effect.flatMap(supported, () => (isCanonical(judgedDir) ? openDirectoryAs(judgedDir, judgedDir, use, judgedDir) : Effect.fail(notCanonical(judgedDir))))

/**
 * The parent folder of `judgedPath`, opened and checked; with `createParents`, folders missing on the way
 * are made one by one inside the deepest folder that exists, each through the checked descriptor of the
 * one above it, and checked in turn.
 */
const openParent = (judgedPath: string, createParents: boolean, use: Use): Effect.Effect<VerifiedDirectory, ConfinementError, Scope.Scope> =>
  Effect.gen(function* () {
    const { parent } = splitLast(judgedPath)
    const missing: Array<string> = []
    let base = parent
    for (;;) {
      const opened = yield* Effect.either(openDirectoryAs(base, base, use, judgedPath))
      if (opened._tag === "Right") {
        let dir = opened.right
        for (const name of missing) {
          const next = joinPath(dir.path, name)
          yield* Effect.tryPromise({ try: () => mkdir(dir.at(name), 0o777), catch: (e) => e }).pipe(
            // Made by someone else in the meantime: the open below checks what it is.
            Effect.catchAll((e) => (codeOf(e) === "EEXIST" ? Effect.void : Effect.fail(accessError(next)(e))))
          )
          dir = yield* openDirectoryAs(dir.at(name), next, use, judgedPath)
        }
        return dir
      }
      const e = opened.left
      if (!createParents || e._tag !== "FileAccessError" || e.code !== "ENOENT" || base === "/") {
        return yield* Effect.fail(e)
      }
      const up = splitLast(base)
      missing.unshift(up.name)
      base = up.parent
    }
  })

/** Checks an opened file: the judged one, a regular file, and not hard-linked unless judged outside. */
const checkFile = (handle: FileHandle, judgedPath: string, allowHardLinks: boolean, use: Use): Effect.Effect<VerifiedFile, ConfinementError> =>
  Effect.gen(function* () {
    const stats = yield* verifyDescriptor(handle.fd, judgedPath, use)
    if (stats.isDirectory()) {
      return yield* Effect.fail(new WrongFileType({ path: judgedPath, found: "directory", message: `${judgedPath} is a directory; use list_directory to see what it holds` }))
    }
    if (!stats.isFile()) {
      return yield* Effect.fail(
        new WrongFileType({ path: judgedPath, found: "other", message: `${judgedPath} is not a regular file (a device, socket or pipe); ${notDone(use)}. File tools only read and write regular files` })
      )
    }
    if (stats.nlink > 1 && !allowHardLinks) {
      return yield* Effect.fail(
        new HardLinkRefused({
          path: judgedPath,
          links: stats.nlink,
          message: `${judgedPath} has ${stats.nlink} hard links, so the same file may also be reachable by a name outside the workspace; ${notDone(use)}. If it belongs to the workspace, replace the hard link with a copy (cp, not ln); otherwise propose the action again and it will be judged as touching a file outside the workspace`
        })
      )
    }
    return { path: judgedPath, handle, stats }
  })

const openFileIn = (dir: VerifiedDirectory, judgedPath: string, flags: number, use: Use): Effect.Effect<FileHandle, ConfinementError, Scope.Scope> =>
  acquire(dir.at(splitLast(judgedPath).name), flags, 0o666).pipe(
    Effect.mapError((e): ConfinementError => {
      const code = codeOf(e)
      if (code === "ELOOP") return changed(judgedPath, null, use, "it is now a symbolic link")
      if (code === "EISDIR") return new WrongFileType({ path: judgedPath, found: "directory", message: describeFsError(judgedPath, e) })
      if (code === "ENXIO") return new WrongFileType({ path: judgedPath, found: "other", message: `${judgedPath} is not a regular file (a device, socket or pipe); ${notDone(use)}` })
      return accessError(judgedPath)(e)
    })
  )

export interface ConfinedOpenOptions {
  /**
   * The judgment already placed the file outside the workspace (and it was allowed as such), so another
   * name elsewhere changes nothing: a file with several hard links is then opened. Otherwise refused.
   */
  readonly allowHardLinks: boolean
}

/** Opens the judged regular file `judgedPath` for reading and checks it is that file. Closed with the scope. */
export const openVerifiedForRead = (judgedPath: string, options: ConfinedOpenOptions): Effect.Effect<VerifiedFile, ConfinementError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* supported
    if (!isCanonical(judgedPath) || judgedPath === "/") return yield* Effect.fail(notCanonical(judgedPath))
    const dir = yield* openParent(judgedPath, false, "read")
    const handle = yield* openFileIn(dir, judgedPath, READ_FLAGS, "read")
    return yield* checkFile(handle, judgedPath, options.allowHardLinks, "read")
  })

export interface ConfinedWriteOptions extends ConfinedOpenOptions {
  /** Make missing parent folders (each through the checked descriptor of the one above it). */
  readonly createParents: boolean
  /** "create": create the file or open it as it is (nothing truncated); "update": an existing file, read-write. */
  readonly mode: "create" | "update"
}

/**
 * Opens the judged file `judgedPath` for writing through its checked parent folder and checks it is that
 * file. Nothing is truncated: replace its content with `replaceContent` once this succeeded.
 */
export const openVerifiedForWrite = (judgedPath: string, options: ConfinedWriteOptions): Effect.Effect<VerifiedFile, ConfinementError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* supported
    if (!isCanonical(judgedPath) || judgedPath === "/") return yield* Effect.fail(notCanonical(judgedPath))
    const dir = yield* openParent(judgedPath, options.createParents && options.mode === "create", "write")
    const handle = yield* openFileIn(dir, judgedPath, options.mode === "create" ? CREATE_FLAGS : UPDATE_FLAGS, "write")
    return yield* checkFile(handle, judgedPath, options.allowHardLinks, "write")
  })

/** The whole content of a verified file, read through its descriptor. */
export const readAll = (file: VerifiedFile): Effect.Effect<Buffer, FileAccessError> =>
  Effect.tryPromise({ try: () => file.handle.readFile(), catch: accessError(file.path) })

/** Replaces a verified file's whole content: truncate, then write every byte from offset 0. */
export const replaceContent = (file: VerifiedFile, bytes: Uint8Array): Effect.Effect<void, FileAccessError> =>
  Effect.tryPromise({
    try: async () => {
      await file.handle.truncate(0)
      let done = 0
      // A positional write may write less than asked.
      while (done < bytes.length) {
        const { bytesWritten } = await file.handle.write(bytes, done, bytes.length - done, done)
        done += bytesWritten
      }
    },
    catch: accessError(file.path)
  })

/** One entry of a checked folder, seen without following a link. */
export interface ConfinedEntry {
  readonly name: string
  readonly path: string
  readonly kind: "directory" | "file" | "symlink" | "other"
  readonly size: number
  readonly mtimeMs: number
  /** For a symbolic link: the text it holds (read, never followed). */
  readonly target?: string
}

/** The entries of an opened, checked folder, each looked at (lstat) inside that folder, not by name. */
const entriesOf = (dir: VerifiedDirectory): Effect.Effect<ReadonlyArray<ConfinedEntry>, FileAccessError> =>
  Effect.gen(function* () {
    const names = yield* Effect.tryPromise({ try: () => readdir(fdPath(dir.handle.fd)), catch: accessError(dir.path) })
    const out: Array<ConfinedEntry> = []
    for (const name of names) {
      const s = yield* Effect.option(Effect.tryPromise(() => lstat(dir.at(name))))
      // Deleted since the listing: nothing to report.
      if (s._tag === "None") continue
      const st = s.value
      const kind = st.isDirectory() ? "directory" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink" : "other"
      const entry = { name, path: joinPath(dir.path, name), kind, size: st.size, mtimeMs: st.mtimeMs } as const
      if (kind !== "symlink") {
        out.push(entry)
        continue
      }
      const target = yield* Effect.option(Effect.tryPromise(() => readlink(dir.at(name))))
      out.push(target._tag === "Some" ? { ...entry, target: target.value } : entry)
    }
    return out
  })

/** The entries of the judged folder `judgedDir`, read through its checked descriptor. */
export const listVerifiedDirectory = (judgedDir: string): Effect.Effect<ReadonlyArray<ConfinedEntry>, ConfinementError> =>
  Effect.scoped(Effect.flatMap(openVerifiedDirectory(judgedDir, "list"), entriesOf))

export interface WalkedFile {
  readonly path: string
  readonly mtimeMs: number
  readonly size: number
}

export interface ConfinedWalk {
  readonly files: ReadonlyArray<WalkedFile>
  /** One line per folder left out because it was not the folder listed when the walk reached it. */
  readonly skipped: ReadonlyArray<string>
}

/**
 * Every regular file below the judged folder `root`, up to `limit`, without following links. Each folder
 * is opened and checked to be the one its parent listed before it is read, so a folder swapped for a
 * link during the walk is skipped (with a note), never entered; the root itself must be the judged one.
 */
export const walkVerified = (
  root: string,
  options: { readonly limit: number; readonly skipNames: ReadonlySet<string> }
): Effect.Effect<ConfinedWalk, ConfinementError> =>
  Effect.gen(function* () {
    const files: Array<WalkedFile> = []
    const skipped: Array<string> = []
    const rootEntries = yield* Effect.scoped(Effect.flatMap(openVerifiedDirectory(root, "search"), entriesOf))
    const pending: Array<ReadonlyArray<ConfinedEntry>> = [rootEntries]
    while (pending.length > 0 && files.length < options.limit) {
      const entries = pending.pop()
      if (entries === undefined) break
      for (const entry of entries) {
        if (entry.kind === "file") {
          files.push({ path: entry.path, mtimeMs: entry.mtimeMs, size: entry.size })
          if (files.length >= options.limit) break
        } else if (entry.kind === "directory" && !options.skipNames.has(entry.name)) {
          const listed = yield* Effect.either(Effect.scoped(Effect.flatMap(openVerifiedDirectory(entry.path, "search"), entriesOf)))
          if (listed._tag === "Right") pending.push(listed.right)
          else if (listed.left._tag === "TargetChanged") skipped.push(`skipped ${entry.path}: it changed during the search (a symbolic link or rename raced it); it was not searched`)
          // Gone or unreadable since it was listed: as before, nothing to report.
        }
      }
    }
    return { files, skipped }
  })
