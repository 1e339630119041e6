import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { makeBashTool } from "./bash.js"
import { bashContainment } from "./bashSandbox.js"
import { context, leftOf, rightOf, runDirect, tempDir } from "./toolTestKit.js"

/**
 * These run the tool directly, past the policy: what they show is what the kernel keeps from a command the
 * word-reading policy let through.
 */
const mode = await Effect.runPromise(bashContainment)
const namespaced = mode === "namespace"
if (!namespaced) console.log(`bash sandbox tests skipped: containment here is "${mode}" (no mount namespace), so protected state is kept from bash by policy only`)
const asRoot = process.getuid?.() === 0
/** A bash tool that hides no ASTRID_HOME: only the workspace's own `.astrid/` is made read-only. */
const plain = makeBashTool({ protectedRoots: [] })

const KEY = "KEY-0f1e2d"
const HOME_CONFIG = "[security]\nworkspace_mode = \"guided\"\n"
const WS_CONFIG = "[security]\nworkspace_mode = \"strict\"\n"

/** A temp "home" holding ASTRID_HOME (`.astrid`) and a project whose own `.astrid/` holds its restrictions. */
const layout = () => {
  const home = tempDir()
  const astridHome = join(home, ".astrid")
  mkdirSync(join(astridHome, "keys"), { recursive: true })
  writeFileSync(join(astridHome, "keys", "runtime.key"), `${KEY}\n`)
  writeFileSync(join(astridHome, "config.toml"), HOME_CONFIG)
  const workspace = join(home, "project")
  mkdirSync(join(workspace, ".astrid"), { recursive: true })
  writeFileSync(join(workspace, ".astrid", "config.toml"), WS_CONFIG)
  const tool = makeBashTool({ protectedRoots: [astridHome] })
  return { home, astridHome, workspace, tool }
}

describe.skipIf(!namespaced)("bash in its own mount namespace (I10)", () => {
  it("cannot read the runtime key through a path the shell computes", async () => {
    const { home, workspace, tool } = layout()
    const out = rightOf(await runDirect(tool, { command: `d=.ast; cat "${home}/\${d}rid/keys/runtime.key"; echo "listing:[$(ls -A "${home}/\${d}rid")]"` }, await context(workspace)))
    expect(out).not.toContain(KEY)
    expect(out).toMatch(/No such file or directory/)
    expect(out).toContain("listing:[]")
  })

  it("cannot write ASTRID_HOME's config, nor create a file there", async () => {
    const { home, astridHome, workspace, tool } = layout()
    const out = rightOf(await runDirect(tool, { command: `d=.ast; echo '[security]' > "${home}/\${d}rid/config.toml"; touch "${home}/\${d}rid/new"` }, await context(workspace)))
    expect(out).toMatch(/Read-only file system/)
    expect(readFileSync(join(astridHome, "config.toml"), "utf8")).toBe(HOME_CONFIG)
    expect(existsSync(join(astridHome, "new"))).toBe(false)
  })

  it("cannot undo the mounts: umount is refused and a nested namespace gets them locked", async () => {
    const { home, workspace, tool } = layout()
    const out = rightOf(
      await runDirect(
        tool,
        {
          command: [
            `umount "${home}/.astrid" "${workspace}/.astrid"`,
            `umount -l "${home}/.astrid"`,
            `unshare --user --map-root-user --mount sh -c 'umount "$1"; cat "$1/keys/runtime.key"' sh "${home}/.astrid"`,
            `cat "${home}/.astrid/keys/runtime.key"`,
            "echo done"
          ].join("\n")
        },
        await context(workspace)
      )
    )
    expect(out).not.toContain(KEY)
    expect(out).toMatch(/done\n\[exit code: 0\]$/)
  })

  it("cannot change the workspace's .astrid/config.toml with echo, cp -r or tar", async () => {
    const { workspace } = layout()
    const evil = tempDir()
    mkdirSync(join(evil, "src", ".astrid"), { recursive: true })
    writeFileSync(join(evil, "src", ".astrid", "config.toml"), "[security]\nworkspace_mode = \"autonomous\"\n")
    spawnSync("tar", ["cf", join(evil, "evil.tar"), "-C", join(evil, "src"), ".astrid"])
    const ctx = await context(workspace)
    const lines = [
      `d=.ast; echo evil > "\${d}rid/config.toml"`,
      `cp -r "${evil}/src/." .`,
      `tar xf "${evil}/evil.tar"`,
      `d=.ast; rm -rf "\${d}rid"`,
      `d=.ast; mv "\${d}rid" gone`
    ]
    for (const command of lines) {
      const out = rightOf(await runDirect(plain, { command }, ctx))
      expect(out, command).toMatch(/Read-only file system|Device or resource busy|Cannot open|cannot/i)
    }
    expect(readFileSync(join(workspace, ".astrid", "config.toml"), "utf8")).toBe(WS_CONFIG)
    // The workspace itself stays writable.
    expect(rightOf(await runDirect(plain, { command: "echo ok > made.txt && cat made.txt" }, ctx))).toBe("ok\n[exit code: 0]")
  })

  it("fails closed: when a protected folder cannot be hidden the command does not run", async () => {
    const { workspace } = layout()
    const notAFolder = join(tempDir(), "state-file")
    writeFileSync(notAFolder, "x")
    const marker = join(workspace, "ran")
    const err = leftOf(await runDirect(makeBashTool({ protectedRoots: [notAFolder] }), { command: `touch "${marker}"` }, await context(workspace)))
    expect(err).toMatch(/could not hide .*state-file.*the command was not run/s)
    expect(existsSync(marker)).toBe(false)
  })

  it("refuses to run where the workspace's .astrid is a symbolic link, which a command could repoint", async () => {
    const workspace = tempDir()
    const elsewhere = tempDir()
    symlinkSync(elsewhere, join(workspace, ".astrid"))
    const err = leftOf(await runDirect(plain, { command: "echo hi" }, await context(workspace)))
    expect(err).toMatch(/\.astrid is a symbolic link.*the command was not run/s)
  })

  it.skipIf(!asRoot)("as root, /proc/sys and /sys are read-only (a core_pattern helper would run outside the namespace)", async () => {
    const out = rightOf(
      await runDirect(plain, { command: 'v=$(cat /proc/sys/vm/swappiness); echo "$v" > /proc/sys/vm/swappiness; touch /sys/astrid-probe' }, await context(tempDir()))
    )
    expect(out.match(/Read-only file system/g)).toHaveLength(2)
  })

  it("reports that the call ran in a namespace, and a forced fallback still runs", async () => {
    expect(await Effect.runPromise(bashContainment)).toBe("namespace")
    const { home, workspace } = layout()
    const out = rightOf(await runDirect(makeBashTool({ protectedRoots: [join(home, ".astrid")], containment: "pid-namespace" }), { command: "echo $$" }, await context(workspace)))
    expect(out).toBe("1\n[exit code: 0]")
  })
})
