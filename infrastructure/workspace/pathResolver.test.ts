import { Effect, Either } from "effect"
import fc from "fast-check"
import { closeSync, linkSync, mkdirSync, mkdtempSync, openSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PathResolver } from "../../application/ports/pathResolver.js"
import { classify } from "../../domain/security/classify.js"
import { DEFAULT_POLICY, evaluatePolicy } from "../../domain/security/policy.js"
import { PathResolverLive, resolveWorkspacePath } from "./pathResolver.js"

let base: string
let ws: string
let outside: string

beforeAll(() => {
  // realpath: the temp dir itself may sit behind a link (macOS /var -> /private/var).
  base = realpathSync(mkdtempSync(join(tmpdir(), "astrid-paths-")))
  ws = join(base, "ws")
  outside = join(base, "outside")
  mkdirSync(join(ws, "a", "b"), { recursive: true })
  mkdirSync(join(outside, "deep"), { recursive: true })
  writeFileSync(join(ws, "file.txt"), "")
  writeFileSync(join(outside, "secret.txt"), "")
  symlinkSync("/etc", join(ws, "etc-link"))
  symlinkSync("../outside", join(ws, "out-link"))
  symlinkSync("a/b", join(ws, "in-link"))
  symlinkSync(join(outside, "new-file.txt"), join(ws, "dangling-out"))
  symlinkSync("a/new-file.txt", join(ws, "dangling-in"))
  symlinkSync("dangling-out", join(ws, "chain-out"))
  symlinkSync("loop-b", join(ws, "loop-a"))
  symlinkSync("loop-a", join(ws, "loop-b"))
  symlinkSync("..", join(ws, "a", "up"))
  symlinkSync(ws, join(outside, "back-in"))
})

afterAll(() => {
  rmSync(base, { recursive: true, force: true })
})

const resolve = (requested: string) => resolveWorkspacePath(ws, requested)
const ok = (requested: string) => {
  const r = resolve(requested)
  if (Either.isLeft(r)) throw new Error(`${requested}: ${r.left.message}`)
  return r.right
}

/**
 * Where the kernel creates `path`, found by creating it and removing it again; null if it cannot be created.
 * Only ever inside the temp tree: `..` can climb out of it, and the tests may run as root.
 */
const createAndLocate = (path: string): string | null => {
  let parent: string
  try {
    parent = realpathSync.native(dirname(path))
  } catch {
    return null
  }
  if (!parent.startsWith(`${base}/`)) return null
  try {
    closeSync(openSync(path, "a"))
  } catch {
    return null
  }
  const created = realpathSync.native(path)
  unlinkSync(created)
  if (!created.startsWith(`${base}/`)) throw new Error(`created ${created} outside the temp tree`)
  return created
}

describe("resolveWorkspacePath", () => {
  it("resolves relative paths against the root, and the root itself", () => {
    expect(ok("file.txt")).toEqual({ canonical: join(ws, "file.txt"), root: ws, insideWorkspace: true, hardLinked: false })
    expect(ok(".")).toMatchObject({ canonical: ws, insideWorkspace: true })
    expect(ok("a/./b/../b")).toMatchObject({ canonical: join(ws, "a", "b"), insideWorkspace: true })
  })

  it("a symlink inside the workspace pointing to /etc resolves outside (acceptance)", () => {
    const r = ok("etc-link/passwd")
    expect(r.canonical).toBe(`${realpathSync("/etc")}/passwd`)
    expect(r.insideWorkspace).toBe(false)
    // ... and the policy then blocks writing through it.
    const action = classify({ _tag: "file_write", path: "etc-link/passwd" }, { workspaceRoot: r.root, canonicalPath: r.canonical })
    expect(evaluatePolicy(DEFAULT_POLICY, action)).toMatchObject({ _tag: "Blocked" })
  })

  it("`..` traversal out of the workspace is outside; into /etc it is blocked by the policy (acceptance)", () => {
    expect(ok("../outside/secret.txt")).toMatchObject({ canonical: join(outside, "secret.txt"), insideWorkspace: false })
    const depth = ws.split("/").length - 1
    const r = ok(`${"../".repeat(depth + 3)}etc/passwd`)
    expect(r).toMatchObject({ canonical: `${realpathSync("/etc")}/passwd`, insideWorkspace: false })
    const action = classify({ _tag: "file_read", path: "../../etc/passwd" }, { workspaceRoot: r.root, canonicalPath: r.canonical })
    expect(evaluatePolicy(DEFAULT_POLICY, action)._tag).toBe("Blocked")
  })

  it("`..` after a symlink goes to the parent of its target, as the kernel does", () => {
    // out-link -> ../outside, so out-link/.. is base, not ws.
    expect(ok("out-link/../ws/file.txt")).toMatchObject({ canonical: join(ws, "file.txt"), insideWorkspace: true })
    expect(ok("out-link/..")).toMatchObject({ canonical: base, insideWorkspace: false })
    // in-link -> a/b, so in-link/.. is a.
    expect(ok("in-link/..")).toMatchObject({ canonical: join(ws, "a"), insideWorkspace: true })
    // a/up -> .. (that is ws), so a/up/.. is base.
    expect(ok("a/up/..")).toMatchObject({ canonical: base, insideWorkspace: false })
  })

  it("follows dangling symlinks to where a write would land", () => {
    expect(ok("dangling-out")).toMatchObject({ canonical: join(outside, "new-file.txt"), insideWorkspace: false })
    expect(ok("chain-out")).toMatchObject({ canonical: join(outside, "new-file.txt"), insideWorkspace: false })
    expect(ok("dangling-in")).toMatchObject({ canonical: join(ws, "a", "new-file.txt"), insideWorkspace: true })
  })

  it("appends components that do not exist yet", () => {
    expect(ok("a/new/dir/file")).toMatchObject({ canonical: join(ws, "a", "new", "dir", "file"), insideWorkspace: true })
    expect(ok("out-link/new.txt")).toMatchObject({ canonical: join(outside, "new.txt"), insideWorkspace: false })
  })

  it("absolute paths: inside only if they resolve inside", () => {
    expect(ok(join(ws, "a"))).toMatchObject({ insideWorkspace: true })
    expect(ok(join(outside, "back-in", "file.txt"))).toMatchObject({ canonical: join(ws, "file.txt"), insideWorkspace: true })
    expect(ok(`${ws}-sibling/x`)).toMatchObject({ insideWorkspace: false })
  })

  it("flags a regular file with more than one hard link, through a link too; folders and missing files are not", () => {
    writeFileSync(join(outside, "shared.txt"), "")
    linkSync(join(outside, "shared.txt"), join(ws, "a", "hard.txt"))
    symlinkSync("a/hard.txt", join(ws, "to-hard"))
    try {
      expect(ok("a/hard.txt")).toMatchObject({ canonical: join(ws, "a", "hard.txt"), insideWorkspace: true, hardLinked: true })
      expect(ok("to-hard")).toMatchObject({ canonical: join(ws, "a", "hard.txt"), hardLinked: true })
      expect(ok("file.txt").hardLinked).toBe(false)
      expect(ok("a").hardLinked).toBe(false)
      expect(ok("a/not-yet.txt").hardLinked).toBe(false)
    } finally {
      unlinkSync(join(ws, "to-hard"))
      unlinkSync(join(ws, "a", "hard.txt"))
    }
  })

  it.each([
    ["", "empty"],
    ["a\u0000b", "NUL"],
    ["loop-a/x", "symbolic links"],
    ["file.txt/x", "not a directory"],
    ["missing/../../etc/passwd", "'..'"]
  ])("refuses %j (%s)", (requested, message) => {
    const r = resolve(requested)
    expect(Either.isLeft(r)).toBe(true)
    if (Either.isLeft(r)) expect(r.left.message).toContain(message)
  })

  it("refuses a workspace root that does not exist", () => {
    const r = resolveWorkspacePath(join(base, "nope"), "a")
    expect(Either.isLeft(r) && r.left.message).toContain("cannot be resolved")
  })

  it("is served by the PathResolver layer", () => {
    const r = Effect.runSync(Effect.flatMap(PathResolver, (p) => p.resolve(ws, "in-link")).pipe(Effect.provide(PathResolverLive)))
    expect(r).toEqual({ canonical: join(ws, "a", "b"), root: ws, insideWorkspace: true, hardLinked: false })
    const failure = Effect.runSync(Effect.flip(Effect.flatMap(PathResolver, (p) => p.resolve(ws, "loop-a"))).pipe(Effect.provide(PathResolverLive)))
    expect(failure._tag).toBe("PathResolutionError")
  })

  it("never reports inside for a path that escapes: random paths checked against the kernel", () => {
    const segment = fc.constantFrom("a", "b", "..", ".", "", "file.txt", "out-link", "in-link", "etc-link", "dangling-out", "dangling-in", "a/up", "new", "outside", "ws")
    const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join("/"))
    let compared = 0
    let outsideSeen = 0
    fc.assert(
      fc.property(path, (requested) => {
        const r = resolve(requested)
        if (Either.isLeft(r)) return
        const { canonical, insideWorkspace } = r.right
        expect(insideWorkspace).toBe(canonical === ws || canonical.startsWith(`${ws}/`))
        // Ask the kernel where this path really is: realpath if it exists, otherwise create it and look.
        const asWritten = requested.startsWith("/") ? requested : `${ws}/${requested}`
        let kernel: string | null = null
        try {
          kernel = realpathSync.native(asWritten)
        } catch {
          kernel = createAndLocate(asWritten)
        }
        if (kernel !== null) {
          expect(canonical).toBe(kernel)
          compared++
          if (!insideWorkspace) outsideSeen++
        }
      }),
      { numRuns: 1000 }
    )
    // The property is only worth something if the kernel was asked often, escapes included.
    expect(compared).toBeGreaterThan(200)
    expect(outsideSeen).toBeGreaterThan(20)
  })
})
