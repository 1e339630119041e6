import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { JudgedTarget } from "../../application/tools/tool.js"
import { globTool } from "../tools/glob.js"
import { grepTool } from "../tools/grep.js"
import { readFileTool } from "../tools/readFile.js"
import { context, runDirect } from "../tools/toolTestKit.js"
import { writeFileTool } from "../tools/writeFile.js"
import {
  confinementSupport,
  listVerifiedDirectory,
  openVerifiedDirectory,
  openVerifiedForRead,
  openVerifiedForWrite,
  readAll,
  replaceContent,
  verifyDescriptor,
  walkVerified
} from "./confinedFs.js"

const temp = (): string => realpathSync(mkdtempSync(join(tmpdir(), "astrid-confined-")))

/** A workspace and, beside it, an "outside" holding a secret file and a secret folder. */
const world = () => {
  const ws = temp()
  const outside = temp()
  writeFileSync(join(outside, "secret.txt"), "SECRET\n")
  mkdirSync(join(outside, "dir"))
  writeFileSync(join(outside, "dir", "a.txt"), "SECRET\n")
  writeFileSync(join(outside, "dir", "only-outside.txt"), "SECRET\n")
  return { ws, outside }
}

const swapForLink = (path: string, target: string): void => {
  renameSync(path, `${path}.old`)
  symlinkSync(target, path)
}

const read = (path: string, allowHardLinks = false) => Effect.scoped(Effect.flatMap(openVerifiedForRead(path, { allowHardLinks }), readAll))

const failureOf = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)

describe("openVerifiedForRead", () => {
  it.effect("reads the judged regular file", () =>
    Effect.gen(function* () {
      const { ws } = world()
      writeFileSync(join(ws, "a.txt"), "public")
      expect((yield* read(join(ws, "a.txt"))).toString()).toBe("public")
    })
  )

  it.effect("refuses a link at the last component, and says what happened, to what, and what to do", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      symlinkSync(join(outside, "secret.txt"), join(ws, "a.txt"))
      const e = yield* failureOf(read(join(ws, "a.txt")))
      expect(e._tag).toBe("TargetChanged")
      expect(e.message).toBe(
        `${join(ws, "a.txt")} changed between the check and the open (it is now a symbolic link): a symbolic link or rename raced the action; it was not read. Propose the action again.`
      )
    })
  )

  it.effect("refuses a folder on the way that is now a link", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      mkdirSync(join(ws, "dir"))
      writeFileSync(join(ws, "dir", "a.txt"), "public")
      swapForLink(join(ws, "dir"), join(outside, "dir"))
      const e = yield* failureOf(read(join(ws, "dir", "a.txt")))
      expect(e._tag).toBe("TargetChanged")
      expect(e.message).toMatch(/is now a symbolic link/)
      // A link higher up, not at the parent itself: the parent's descriptor shows where it really is.
      mkdirSync(join(ws, "up", "dir"), { recursive: true })
      writeFileSync(join(ws, "up", "dir", "a.txt"), "public")
      swapForLink(join(ws, "up"), outside)
      const higher = yield* failureOf(read(join(ws, "up", "dir", "a.txt")))
      expect(higher._tag).toBe("TargetChanged")
      expect(higher.message).toContain(`now resolves to ${join(outside, "dir")}`)
    })
  )

  it.effect("refuses a hard-linked file unless the judgment placed it outside", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      linkSync(join(outside, "secret.txt"), join(ws, "h.txt"))
      const e = yield* failureOf(read(join(ws, "h.txt")))
      expect(e._tag).toBe("HardLinkRefused")
      expect(e.message).toMatch(/has 2 hard links.*it was not read.*cp, not ln/)
      expect((yield* read(join(ws, "h.txt"), true)).toString()).toBe("SECRET\n")
    })
  )

  it.effect("refuses folders, pipes and paths that are not canonical; a missing file says so", () =>
    Effect.gen(function* () {
      const { ws } = world()
      mkdirSync(join(ws, "d"))
      execFileSync("mkfifo", [join(ws, "pipe")])
      expect((yield* failureOf(read(join(ws, "d"))))._tag).toBe("WrongFileType")
      // Opened without blocking (no writer), then refused as not a regular file.
      expect(yield* failureOf(read(join(ws, "pipe")))).toMatchObject({ _tag: "WrongFileType", found: "other" })
      expect((yield* failureOf(read(`${ws}/d/../x`))).message).toMatch(/not a canonical absolute path/)
      expect((yield* failureOf(read("relative.txt"))).message).toMatch(/not a canonical absolute path/)
      expect(yield* failureOf(read(join(ws, "missing.txt")))).toMatchObject({ _tag: "FileAccessError", code: "ENOENT" })
    })
  )
})

describe("verifyDescriptor", () => {
  it.effect("passes for the open file at its path and fails once it was moved, naming where it is now", () =>
    Effect.gen(function* () {
      const { ws } = world()
      writeFileSync(join(ws, "a.txt"), "x")
      const fd = openSync(join(ws, "a.txt"), "r")
      try {
        const stats = yield* verifyDescriptor(fd, join(ws, "a.txt"))
        expect(stats.isFile()).toBe(true)
        renameSync(join(ws, "a.txt"), join(ws, "b.txt"))
        writeFileSync(join(ws, "a.txt"), "another file at the same name")
        const e = yield* failureOf(verifyDescriptor(fd, join(ws, "a.txt")))
        expect(e).toMatchObject({ _tag: "TargetChanged", now: join(ws, "b.txt") })
      } finally {
        closeSync(fd)
      }
    })
  )

  it("refuses outright where descriptors cannot be checked (fail closed), naming the platform", () => {
    expect(confinementSupport("linux", true)).toBeNull()
    expect(confinementSupport("darwin", false)?.message).toMatch(/this platform \(darwin\) does not have.*nothing was opened/)
    expect(confinementSupport("linux", false)?.message).toMatch(/is not mounted here/)
  })
})

describe("openVerifiedForWrite", () => {
  const write = (path: string, content: string, mode: "create" | "update" = "create", createParents = true) =>
    Effect.scoped(Effect.flatMap(openVerifiedForWrite(path, { createParents, mode, allowHardLinks: false }), (f) => replaceContent(f, Buffer.from(content))))

  it.effect("creates missing folders one by one and the file, and replaces an existing file's content", () =>
    Effect.gen(function* () {
      const { ws } = world()
      yield* write(join(ws, "a", "b", "c.txt"), "first, longer")
      expect(readFileSync(join(ws, "a", "b", "c.txt"), "utf8")).toBe("first, longer")
      yield* write(join(ws, "a", "b", "c.txt"), "second")
      expect(readFileSync(join(ws, "a", "b", "c.txt"), "utf8")).toBe("second")
      expect(yield* failureOf(write(join(ws, "x", "y.txt"), "z", "create", false))).toMatchObject({ _tag: "FileAccessError", code: "ENOENT" })
      expect(yield* failureOf(write(join(ws, "nope.txt"), "z", "update"))).toMatchObject({ _tag: "FileAccessError", code: "ENOENT" })
      expect(existsSync(join(ws, "nope.txt"))).toBe(false)
    })
  )

  it.effect("a parent replaced by a link, or a missing folder made a link, carries nothing outside", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      mkdirSync(join(ws, "dir"))
      swapForLink(join(ws, "dir"), join(outside, "dir"))
      expect((yield* failureOf(write(join(ws, "dir", "new.txt"), "leak")))._tag).toBe("TargetChanged")
      symlinkSync(join(outside, "dir"), join(ws, "made"))
      expect((yield* failureOf(write(join(ws, "made", "deeper", "new.txt"), "leak")))._tag).toBe("TargetChanged")
      expect(readdirSync(join(outside, "dir")).sort()).toEqual(["a.txt", "only-outside.txt"])
    })
  )

  it.effect("checks before it truncates: a hard-linked file is refused with its content whole", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      linkSync(join(outside, "secret.txt"), join(ws, "h.txt"))
      expect((yield* failureOf(write(join(ws, "h.txt"), "")))._tag).toBe("HardLinkRefused")
      expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("SECRET\n")
    })
  )
})

describe("folders", () => {
  it.effect("a judged folder swapped for a link is refused; listing looks at entries without following them", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      mkdirSync(join(ws, "d"))
      writeFileSync(join(ws, "d", "f.txt"), "12")
      symlinkSync(join(outside, "secret.txt"), join(ws, "d", "link"))
      const entries = yield* listVerifiedDirectory(join(ws, "d"))
      expect([...entries].sort((a, b) => a.name.localeCompare(b.name)).map((e) => [e.name, e.kind, e.kind === "file" ? e.size : e.target])).toEqual([
        ["f.txt", "file", 2],
        ["link", "symlink", join(outside, "secret.txt")]
      ])
      swapForLink(join(ws, "d"), join(outside, "dir"))
      expect((yield* failureOf(listVerifiedDirectory(join(ws, "d"))))._tag).toBe("TargetChanged")
    })
  )

  it.effect("a folder the walk listed, swapped for a link before it is opened, is refused", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      mkdirSync(join(ws, "sub"))
      const listed = yield* listVerifiedDirectory(ws)
      expect(listed.map((e) => [e.name, e.kind])).toEqual([["sub", "directory"]])
      swapForLink(join(ws, "sub"), join(outside, "dir"))
      expect((yield* failureOf(Effect.scoped(openVerifiedDirectory(join(ws, "sub"), "search"))))._tag).toBe("TargetChanged")
    })
  )

  it.effect("the walk never enters a link, skips the runtime's and dependency folders, and refuses a swapped root", () =>
    Effect.gen(function* () {
      const { ws, outside } = world()
      mkdirSync(join(ws, "src"))
      mkdirSync(join(ws, ".astrid"))
      writeFileSync(join(ws, "src", "a.ts"), "")
      writeFileSync(join(ws, ".astrid", "state"), "")
      symlinkSync(join(outside, "dir"), join(ws, "out"))
      const walk = yield* walkVerified(ws, { limit: 100, skipNames: new Set([".astrid"]) })
      expect(walk.files.map((f) => f.path)).toEqual([join(ws, "src", "a.ts")])
      expect(walk.skipped).toEqual([])
      const root = join(ws, "src")
      swapForLink(root, join(outside, "dir"))
      expect((yield* failureOf(walkVerified(root, { limit: 100, skipNames: new Set() })))._tag).toBe("TargetChanged")
    })
  )
})

/**
 * A child process flips links as fast as it can while the tools run with the path judged before: on the
 * last component (a file renamed over by a link to the secret, and back) and on a parent folder (a real
 * folder swapped for a link to the secret folder, and back). Refusals are fine; an escape is not.
 */
describe("under a process flipping links", () => {
  const FLIPPER = `
import { existsSync, lstatSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
const [ws, outside] = process.argv.slice(2)
const attempt = (f) => { try { f() } catch {} }
const stat = (p) => { try { return lstatSync(p) } catch { return undefined } }
const dir = join(ws, "dir"), real = join(ws, "dir.real")
let flips = 0
const fileToLink = () => { attempt(() => rmSync(join(ws, "flip.l"), { force: true })); attempt(() => { symlinkSync(join(outside, "secret.txt"), join(ws, "flip.l")); renameSync(join(ws, "flip.l"), join(ws, "flip.txt")) }) }
const fileToReal = () => attempt(() => { writeFileSync(join(ws, "flip.f"), "public\\n"); renameSync(join(ws, "flip.f"), join(ws, "flip.txt")) })
const dirToLink = () => attempt(() => {
  const s = stat(dir)
  if (s?.isDirectory()) { if (stat(real) === undefined) renameSync(dir, real); else rmSync(dir, { recursive: true, force: true }) }
  attempt(() => rmSync(join(ws, "dir.l"), { force: true }))
  symlinkSync(join(outside, "dir"), join(ws, "dir.l"))
  renameSync(join(ws, "dir.l"), dir)
})
const dirToReal = () => attempt(() => {
  const s = stat(dir)
  if (s?.isDirectory()) return
  if (s?.isSymbolicLink()) unlinkSync(dir)
  if (stat(real) === undefined) { mkdirSync(real); writeFileSync(join(real, "a.txt"), "public\\n") }
  renameSync(real, dir)
})
const burst = () => {
  for (let i = 0; i < 200; i++) {
    fileToLink(); dirToLink(); fileToReal(); dirToReal(); flips += 4
  }
  if (flips === 800) process.stdout.write("ready\\n")
  setImmediate(burst)
}
process.on("SIGTERM", () => { process.stdout.write("flips " + flips + "\\n"); process.exit(0) })
burst()
`

  const startFlipper = (ws: string, outside: string) =>
    Effect.acquireRelease(
      Effect.async<{ readonly child: ChildProcess; readonly output: () => string }>((resume) => {
        const script = join(temp(), "flipper.mjs")
        writeFileSync(script, FLIPPER)
        const child = spawn(process.execPath, [script, ws, outside], { stdio: ["ignore", "pipe", "inherit"] })
        let out = ""
        child.stdout?.on("data", (chunk: Buffer) => {
          out += chunk.toString()
          if (out.startsWith("ready")) resume(Effect.succeed({ child, output: () => out }))
        })
      }),
      ({ child }) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGTERM")
        })
    )

  it.scopedLive(
    "1,000 reads and 1,000 writes through the tools: no read returns the secret, no write lands outside",
    () =>
      Effect.gen(function* () {
        const { ws, outside } = world()
        writeFileSync(join(ws, "flip.txt"), "public\n")
        mkdirSync(join(ws, "dir"))
        writeFileSync(join(ws, "dir", "a.txt"), "public\n")
        const inside = (path: string): JudgedTarget => ({ path: join(ws, path), insideWorkspace: true })
        const ctx = yield* Effect.promise(() => context(ws))
        const flipper = yield* startFlipper(ws, outside)

        const tally = { readOk: 0, writeOk: 0, changed: 0 }
        const escapes: Array<string> = []
        const count = (r: Either.Either<string, string>) => {
          if (Either.isRight(r)) return true
          if (/changed between the check and the open/.test(r.left)) tally.changed++
          return false
        }
        // The control: the same reads by name, as the tools did before, do reach the secret under this race.
        let namedReadsOfSecret = 0
        for (let i = 0; i < 500; i++) {
          for (const path of ["flip.txt", "dir/a.txt"]) {
            try {
              if (readFileSync(join(ws, path), "utf8").includes("SECRET")) namedReadsOfSecret++
            } catch {
              // Missing mid-flip.
            }
            const r = yield* Effect.promise(() => runDirect(readFileTool, { path }, ctx, inside(path)))
            if (Either.isRight(r) && r.right.includes("SECRET")) escapes.push(`read ${path}: ${r.right}`)
            if (count(r)) tally.readOk++
          }
          for (const path of ["flip.txt", "dir/w.txt"]) {
            const r = yield* Effect.promise(() => runDirect(writeFileTool, { path, content: `written ${i}\n` }, ctx, inside(path)))
            if (count(r)) tally.writeOk++
          }
          if (i % 5 === 0) {
            const grep = yield* Effect.promise(() => runDirect(grepTool, { pattern: "S[E]CRET|public|written" }, ctx, { path: ws, insideWorkspace: true }))
            const glob = yield* Effect.promise(() => runDirect(globTool, { pattern: "**" }, ctx, { path: ws, insideWorkspace: true }))
            for (const r of [grep, glob]) {
              const text = Either.isRight(r) ? r.right : r.left
              if (/SECRET|only-outside/.test(text)) escapes.push(`search: ${text}`)
            }
          }
        }
        const flips = flipper.output()

        expect(escapes).toEqual([])
        expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("SECRET\n")
        expect(readFileSync(join(outside, "dir", "a.txt"), "utf8")).toBe("SECRET\n")
        expect(readdirSync(join(outside, "dir")).sort()).toEqual(["a.txt", "only-outside.txt"])
        expect(readdirSync(outside).sort()).toEqual(["dir", "secret.txt"])
        // The race really ran: the flipper flipped, and the tools both succeeded and saw changes.
        expect(flips).toMatch(/^ready/)
        expect(namedReadsOfSecret).toBeGreaterThan(0)
        expect(tally.readOk).toBeGreaterThan(0)
        expect(tally.writeOk).toBeGreaterThan(0)
        expect(tally.changed).toBeGreaterThan(0)
      }),
    60_000
  )
})
