import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { ActionRequest, ClassifiedAction } from "./action.js"
import { classify } from "./classify.js"
import { DEFAULT_POLICY, evaluatePolicy, type SecurityPolicy } from "./policy.js"
import {
  boundaryVerdict,
  hostPatternCovers,
  pathPatternCovers,
  stricterEscape,
  stricterMode,
  tighten,
  tightenPolicy,
  type BoundaryVerdict,
  type EscapePolicy,
  type WorkspaceMode
} from "./workspaceBoundary.js"

const ROOT = "/home/ada/project"
const file = (request: ActionRequest, canonicalPath: string): ClassifiedAction => classify(request, { workspaceRoot: ROOT, canonicalPath })
const other = (request: ActionRequest): ClassifiedAction => classify(request, { workspaceRoot: ROOT })

const readIn = file({ _tag: "file_read", path: "a" }, `${ROOT}/a`)
const writeIn = file({ _tag: "file_write", path: "a" }, `${ROOT}/a`)
const deleteIn = file({ _tag: "file_delete", path: "a" }, `${ROOT}/a`)
const capsuleReadIn = file({ _tag: "capsule_file", capsule: "c", path: "a", write: false }, `${ROOT}/a`)
const capsuleWriteIn = file({ _tag: "capsule_file", capsule: "c", path: "a", write: true }, `${ROOT}/a`)
const readOut = file({ _tag: "file_read", path: "/tmp/a" }, "/tmp/a")
const writeOut = file({ _tag: "file_write", path: "/tmp/a" }, "/tmp/a")
const nonFile: ReadonlyArray<ClassifiedAction> = [
  other({ _tag: "command_exec", command: "ls" }),
  other({ _tag: "network_request", url: "https://x.test/", method: "GET" }),
  other({ _tag: "mcp_tool_call", server: "s", tool: "t", arguments: {} }),
  other({ _tag: "capsule_http", capsule: "c", url: "https://x.test/", method: "GET" }),
  other({ _tag: "capsule_process", capsule: "c", command: "ls" }),
  other({ _tag: "data_transmission", destination: "https://x.test/", bytes: 1 }),
  other({ _tag: "subagent_spawn", task: "t" }),
  other({ _tag: "financial_transaction", amountMicros: 1, currency: "EUR", counterparty: "x" }),
  other({ _tag: "access_control_change", target: "t", change: "c" }),
  other({ _tag: "capability_grant", resource: "r", permissions: [] })
]

describe("boundaryVerdict", () => {
  it.each<[string, ClassifiedAction, WorkspaceMode, BoundaryVerdict]>([
    ["read inside", readIn, "safe", "ask"],
    ["read inside", readIn, "guided", "pass"],
    ["read inside", readIn, "autonomous", "pass"],
    ["write inside", writeIn, "safe", "ask"],
    ["write inside", writeIn, "guided", "ask"],
    ["write inside", writeIn, "autonomous", "pass"],
    ["delete inside", deleteIn, "guided", "ask"],
    ["delete inside", deleteIn, "autonomous", "pass"],
    ["capsule read inside", capsuleReadIn, "guided", "pass"],
    ["capsule write inside", capsuleWriteIn, "guided", "ask"]
  ])("%s in %s mode: %s", (_label, action, mode, expected) => {
    for (const escape of ["ask", "deny", "allow"] as const) expect(boundaryVerdict(mode, escape, action)).toBe(expected)
  })

  it.each<[ClassifiedAction, WorkspaceMode, EscapePolicy, BoundaryVerdict]>([
    [readOut, "autonomous", "deny", "deny"],
    [readOut, "safe", "deny", "deny"],
    [readOut, "autonomous", "ask", "ask"],
    [readOut, "guided", "ask", "ask"],
    [readOut, "safe", "allow", "ask"],
    [readOut, "guided", "allow", "pass"],
    [writeOut, "guided", "allow", "ask"],
    [writeOut, "autonomous", "allow", "pass"]
  ])("outside the workspace: %#", (action, mode, escape, expected) => {
    expect(boundaryVerdict(mode, escape, action)).toBe(expected)
  })

  it("every non-file action asks in every mode", () => {
    for (const action of nonFile) for (const mode of ["safe", "guided", "autonomous"] as const) for (const escape of ["ask", "deny", "allow"] as const) {
      expect(boundaryVerdict(mode, escape, action)).toBe("ask")
    }
  })

  it("a file action that could not be placed counts as outside", () => {
    const unplaced = classify({ _tag: "file_read", path: "a" }, { workspaceRoot: ROOT })
    expect(boundaryVerdict("autonomous", "deny", unplaced)).toBe("deny")
    expect(boundaryVerdict("autonomous", "ask", unplaced)).toBe("ask")
  })
})

describe("tighten", () => {
  it("orders modes safe > guided > autonomous and escape deny > ask > allow", () => {
    expect(stricterMode("autonomous", "safe")).toBe("safe")
    expect(stricterMode("guided", "autonomous")).toBe("guided")
    expect(stricterEscape("allow", "ask")).toBe("ask")
    expect(stricterEscape("deny", "allow")).toBe("deny")
  })

  it("a workspace can tighten but never loosen mode and escape policy", () => {
    const user = { mode: "guided", escapePolicy: "ask", policy: DEFAULT_POLICY } as const
    expect(tighten(user, { mode: "autonomous", escapePolicy: "allow" })).toMatchObject({ mode: "guided", escapePolicy: "ask" })
    expect(tighten(user, { mode: "safe", escapePolicy: "deny" })).toMatchObject({ mode: "safe", escapePolicy: "deny" })
    expect(tighten(user, {})).toEqual(user)
  })

  it("unions blocked and denied lists, takes the smaller limit", () => {
    const t = tightenPolicy(DEFAULT_POLICY, {
      blockedCommands: ["curl", "sudo"],
      deniedPaths: ["/home/ada/.ssh/**"],
      deniedHosts: ["evil.com"],
      alwaysAskTools: ["*:delete_*"],
      maxArgumentBytes: 4096
    })
    expect(t.blockedCommands).toEqual([...DEFAULT_POLICY.blockedCommands, "curl"])
    expect(t.deniedPaths).toContain("/home/ada/.ssh/**")
    expect(t.deniedHosts).toEqual(["evil.com"])
    expect(t.alwaysAskTools).toEqual(["*:delete_*"])
    expect(t.maxArgumentBytes).toBe(4096)
    expect(tightenPolicy(DEFAULT_POLICY, { maxArgumentBytes: 1e12 }).maxArgumentBytes).toBe(DEFAULT_POLICY.maxArgumentBytes)
    expect(tightenPolicy(DEFAULT_POLICY, { maxArgumentBytes: Number.NaN }).maxArgumentBytes).toBe(0)
  })

  it("a workspace cannot empty a list the user set", () => {
    const user = { ...DEFAULT_POLICY, allowedPaths: ["/home/ada/**"] }
    expect(tightenPolicy(user, { blockedCommands: [], deniedPaths: [], allowedPaths: [] })).toEqual(user)
  })

  it("allowed lists only narrow", () => {
    const user = { ...DEFAULT_POLICY, allowedPaths: ["/home/ada/**"], allowedHosts: ["*.github.com"] }
    const narrowed = tightenPolicy(user, { allowedPaths: ["/home/ada/project/**", "/tmp/**"], allowedHosts: ["api.github.com", "example.org"] })
    expect(narrowed.allowedPaths).toEqual(["/home/ada/project/**"])
    expect(narrowed.allowedHosts).toEqual(["api.github.com"])
    // From "no allow-list" to one: that narrows too.
    expect(tightenPolicy(DEFAULT_POLICY, { allowedPaths: ["/home/ada/project/**"] }).allowedPaths).toEqual(["/home/ada/project/**"])
  })

  it("if no workspace entry lies inside the user's allow-list, nothing is allowed (not everything)", () => {
    const user = { ...DEFAULT_POLICY, allowedPaths: ["/home/ada/**"], allowedHosts: ["github.com"] }
    const t = tightenPolicy(user, { allowedPaths: ["/srv/**"], allowedHosts: ["example.org"] })
    expect(t.deniedPaths).toContain("/**")
    expect(t.deniedHosts).toContain("*")
    const read = file({ _tag: "file_read", path: "a" }, "/home/ada/a")
    expect(evaluatePolicy(t, read)._tag).toBe("Blocked")
  })

  it("pattern containment only says yes when it is certain", () => {
    expect(pathPatternCovers("/home/ada/**", "/home/ada/project/**")).toBe(true)
    expect(pathPatternCovers("/home/ada/**", "/home/ada")).toBe(true)
    expect(pathPatternCovers("/home/ada/**", "/home/ada/*.txt")).toBe(true)
    expect(pathPatternCovers("/home/ada/**", "/home/ada*")).toBe(false)
    expect(pathPatternCovers("/home/ada/**", "/home/adam/x")).toBe(false)
    expect(pathPatternCovers("/home/ada/**", "/home/ada/../etc/**")).toBe(false)
    expect(pathPatternCovers("/home/*/x/**", "/home/ada/x/y")).toBe(false)
    expect(pathPatternCovers("/**", "/anything/**")).toBe(true)
    expect(hostPatternCovers("*.github.com", "api.github.com")).toBe(true)
    expect(hostPatternCovers("*.github.com", "*.api.github.com")).toBe(true)
    expect(hostPatternCovers("*.github.com", "github.com")).toBe(false)
    expect(hostPatternCovers("*.github.com", "evilgithub.com")).toBe(false)
    expect(hostPatternCovers("github.com", "*.github.com")).toBe(false)
    expect(hostPatternCovers("*", "anything.org")).toBe(true)
  })

  const patterns = fc.array(fc.constantFrom("/home/ada/**", "/home/ada/project/**", "/home/*/x", "/tmp/**", "/home/ada*", "/**", "/home/ada/a"), { maxLength: 3 })
  const hosts = fc.array(fc.constantFrom("github.com", "*.github.com", "api.github.com", "*", "example.org", "*.org"), { maxLength: 3 })
  const policy: fc.Arbitrary<SecurityPolicy> = fc.record({
    blockedCommands: fc.array(fc.constantFrom("sudo", "rm -rf /", "curl", "git"), { maxLength: 3 }),
    deniedPaths: patterns,
    allowedPaths: patterns,
    deniedHosts: hosts,
    allowedHosts: hosts,
    maxArgumentBytes: fc.integer({ min: 0, max: 400 }),
    alwaysAskTools: fc.array(fc.constantFrom("s:*", "s:t", "x:*"), { maxLength: 2 }),
    protectedState: fc.constant({ roots: [] })
  })
  const actions = fc.oneof(
    fc.constantFrom("/home/ada/a", "/home/ada/project/b", "/home/adam/x", "/tmp/z", "/home/bob/x", "/etc/passwd").map((p) => file({ _tag: "file_write", path: p }, p)),
    fc.constantFrom("https://github.com/", "https://api.github.com/x", "https://example.org/", "https://a.b.org/").map((url) => other({ _tag: "network_request", url, method: "GET" })),
    fc.constantFrom("git status", "curl x", "sudo ls", "rm -rf /", "ls").map((command) => other({ _tag: "command_exec", command })),
    fc.constantFrom("t", "u").map((tool) => other({ _tag: "mcp_tool_call", server: "s", tool, arguments: { x: "y".repeat(100) } }))
  )
  const strictness = { NoObjection: 0, AskRequired: 1, Blocked: 2 } as const
  const boundaryStrictness = { pass: 0, ask: 1, deny: 2 } as const

  it("never loosens: whatever the user's policy blocks or asks, the tightened one does too", () => {
    fc.assert(
      fc.property(policy, policy, actions, (user, workspace, action) => {
        const before = evaluatePolicy(user, action)._tag
        const after = evaluatePolicy(tightenPolicy(user, workspace), action)._tag
        expect(strictness[after]).toBeGreaterThanOrEqual(strictness[before])
      }),
      { numRuns: 3000 }
    )
  })

  it("never loosens the boundary verdict either", () => {
    const mode = fc.constantFrom<WorkspaceMode>("safe", "guided", "autonomous")
    const escape = fc.constantFrom<EscapePolicy>("ask", "deny", "allow")
    const boundaryActions = fc.constantFrom(readIn, writeIn, deleteIn, readOut, writeOut, ...nonFile)
    fc.assert(
      fc.property(mode, escape, fc.option(mode, { nil: undefined }), fc.option(escape, { nil: undefined }), boundaryActions, (um, ue, wm, we, action) => {
        const t = tighten(
          { mode: um, escapePolicy: ue, policy: DEFAULT_POLICY },
          { ...(wm === undefined ? {} : { mode: wm }), ...(we === undefined ? {} : { escapePolicy: we }) }
        )
        expect(boundaryStrictness[boundaryVerdict(t.mode, t.escapePolicy, action)]).toBeGreaterThanOrEqual(boundaryStrictness[boundaryVerdict(um, ue, action)])
      }),
      { numRuns: 2000 }
    )
  })
})
