import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { parseCommandLine, type SimpleCommand } from "./commandLine.js"
import { commandTouchesProtected, globOptionsOf, protectedPath, type ProtectedState, workingFolders } from "./protectedState.js"

const STATE: ProtectedState = { roots: ["/srv/astrid-home"], home: "/home/ada" }
const commandsOf = (line: string): ReadonlyArray<SimpleCommand> => {
  const parsed = parseCommandLine(line)
  if (parsed._tag !== "Parsed") throw new Error(`does not parse: ${line}`)
  return parsed.commands
}
const touches = (line: string, cwd = "/home/ada/project"): boolean => {
  const commands = commandsOf(line)
  const folders = workingFolders(commands, STATE, cwd)
  return commands.some((c, i) => commandTouchesProtected(STATE, c, folders[i], globOptionsOf(line)) !== undefined)
}

describe("protectedPath (file actions, on canonical paths)", () => {
  it.each([
    ["/srv/astrid-home", "ASTRID_HOME"],
    ["/srv/astrid-home/keys/runtime.key", "ASTRID_HOME"],
    ["/home/ada/project/.astrid/config.toml", ".astrid"],
    ["/home/ada/.astrid", ".astrid"]
  ])("%s is protected by %s", (path, setting) => {
    expect(protectedPath(STATE, path)?.setting).toBe(setting)
  })

  it.each(["/srv/astrid-home2/x", "/srv", "/home/ada/project/.astrid-notes", "/home/ada/project/src/astrid.ts"])("%s is not", (path) => {
    expect(protectedPath(STATE, path)).toBeUndefined()
  })
})

describe("commandTouchesProtected (command words)", () => {
  it.each([
    "cat /srv/astrid-home/keys/runtime.key",
    "cat /srv/./astrid-home/config.toml",
    "cat /srv/x/../astrid-home/config.toml",
    "cat ../../../srv/astrid-home/astrid.db",
    "sqlite3 /srv/astrid-home/astrid.db .dump",
    "cp x /srv/astrid-home/config.toml",
    "echo x > /srv/astrid-home/config.toml",
    "tee -a /srv/astrid-home/config.toml",
    "cat /srv/astrid-*/keys/*",
    "cat /srv/*/keys/runtime.key",
    "tar cf - /srv",
    "grep -rn key /srv",
    "rsync -a / /backup",
    "vim .astrid/config.toml",
    "git --git-dir=.astrid/x log",
    // Found by review: brace alternatives, case-blind globbing, a cd earlier on the line, recursion spelled
    // another way or with no folder named.
    "cat /srv/{astrid-home,x}/keys/runtime.key",
    "cat .ast{r,}id/config.toml",
    "shopt -s nocaseglob; cat .ASTRI?/config.toml",
    "cd /srv; cat astrid-home/keys/runtime.key",
    "pushd /srv && cat astrid-home/config.toml",
    "cd /srv && grep -r key",
    "cd /srv; find -name '*.key'",
    "grep -d recurse key /srv",
    "grep --directories=recurse key /srv",
    "7z a /tmp/x.7z /srv",
    "zip -R /tmp/x.zip /srv"
  ])("%s reaches it", (line) => {
    expect(touches(line)).toBe(true)
  })

  it.each([
    "ls /srv",
    "cat /srv/other/file",
    "grep key /srv/notes.txt",
    "cat *.ts",
    "ls -la",
    "cat src/astrid.ts",
    "echo .astridx",
    "ls -d .*",
    "du -sh .[!.]*",
    "grep -r foo .",
    "find . -name '*.ts'",
    "cd /tmp && grep -r key"
  ])("%s does not", (line) => {
    expect(touches(line)).toBe(false)
  })

  it("a word with more brace alternatives than are written out is still checked, as the glob they make", () => {
    const many = Array.from({ length: 70 }, (_, i) => `a${i}`).join(",")
    expect(touches(`cat /home/ada/project/{${many},}.ast{r,}id/config.toml`)).toBe(true)
    expect(touches(`cat /srv/{${many},}astrid-home/{k,x}eys/runtime.key`)).toBe(true)
    expect(touches(`cat /srv/{${many}}/{a,b}/notes.txt`)).toBe(false)
  })

  it("a command run from inside the protected root is caught whatever its words", () => {
    expect(touches("cat keys/runtime.key", "/srv/astrid-home")).toBe(true)
    expect(touches("ls", "/home/ada/project/.astrid")).toBe(true)
  })

  it("property: any file below a protected root, named by an absolute or a dotted path, is caught", () => {
    const segment = fc.stringMatching(/^[a-zA-Z0-9_-]{1,8}$/)
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.constantFrom("cat", "head -n1", "cp", "rm", "less"), (rest, program) => {
        const path = `/srv/astrid-home/${rest.join("/")}`
        expect(touches(`${program} ${path}`)).toBe(true)
        expect(touches(`${program} /srv/x/../astrid-home/${rest.join("/")}`)).toBe(true)
        expect(protectedPath(STATE, path)).toBeDefined()
      }),
      { numRuns: 200 }
    )
  })
})
