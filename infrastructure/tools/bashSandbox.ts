/**
 * The mount namespace a bash call runs in, so that the runtime's own state is out of the command's reach
 * whatever its command line computes (I10): the policy reads a command's words, and words can be built at
 * run time (`d=.ast; cat ~/${d}rid/keys/…`), unpacked (`tar xf`), copied in (`cp -r src/. .`) or checked out.
 *
 * Where this machine allows it, each call gets its own PID and mount namespace (`unshare --pid --fork
 * --kill-child --mount-proc --propagation private`, as non-root inside a user namespace mapping it to root),
 * and the namespace's first process, a small `sh` script, prepares it before the command runs:
 * - an empty read-only tmpfs is mounted over every `$ASTRID_HOME` root, so the keys, the config and the
 *   event database are not there to read or write, under any name;
 * - the workspace's own `.astrid/` is bind-mounted read-only over itself (a mount point cannot be renamed
 *   or removed either), so its restrictions cannot be loosened for the next run;
 * - as root, `/proc/sys` and `/sys` are made read-only (a `core_pattern` helper would run outside);
 * then the command starts without the power to undo that: as root, with CAP_SYS_ADMIN (mount, umount,
 * setns), CAP_DAC_READ_SEARCH (open_by_handle_at), CAP_MKNOD, CAP_SYS_RAWIO, CAP_SYS_MODULE, CAP_BPF,
 * CAP_PERFMON and CAP_SYS_BOOT dropped from its bounding set; as non-root, as the user again in a nested
 * user namespace, with no capability at all. Any new namespace it makes gets these mounts locked.
 *
 * Paths reach the script as arguments, never as shell text. It fails closed: a mount that fails ends the
 * script before the command, with the reason, and the tool reports that the command was not run.
 *
 * Where this cannot be set up (no `unshare`/`setpriv`, user namespaces off), bash falls back to a PID
 * namespace alone or to the /proc scan (processReaper.ts), and protected state is kept from bash by the
 * policy's reading of the command only. `bashContainment` says which mode this process uses.
 */
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Containment, containment, probeCommand } from "./processReaper.js"

/** How this process contains a bash call: its own PID and mount namespace, a PID namespace only, or the /proc scan. */
export type BashContainment = "namespace" | "pid-namespace" | "scan"

/** A call in its own PID and mount namespace: the `unshare` prefix, and what the setup script execs the command through. */
export interface MountNamespace {
  readonly _tag: "MountNamespace"
  readonly prefix: ReadonlyArray<string>
  readonly dropPrivileges: ReadonlyArray<string>
  /** Root only: `/proc/sys` and `/sys` read-only, since root could write them. */
  readonly hardenKernel: boolean
}

export type CallContainment = MountNamespace | Containment

/** What one call is shielded from: folders hidden outright, and the workspace's `.astrid` (or null) made read-only. */
export interface Shield {
  readonly hidden: ReadonlyArray<string>
  readonly readOnly: string | null
}

const DROPPED_CAPABILITIES = ["sys_admin", "dac_read_search", "mknod", "sys_rawio", "sys_module", "bpf", "perfmon", "sys_boot"]

const mountNamespace = (): MountNamespace => {
  const root = process.getuid?.() === 0
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const dropped = DROPPED_CAPABILITIES.map((c) => `-${c}`).join(",")
  return {
    _tag: "MountNamespace",
    prefix: ["unshare", ...(root ? [] : ["--user", "--map-root-user"]), "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"],
    dropPrivileges: root
      ? ["setpriv", "--bounding-set", dropped, "--inh-caps", dropped, "--"]
      : ["unshare", "--user", `--map-user=${uid}`, `--map-group=${gid}`, "--"],
    hardenKernel: root
  }
}

/**
 * Run by the namespace's first process as `sh -c SETUP astrid-sandbox MARK N ROOT… ASTRID_DIR HARDEN CMD…`.
 * What it and `mount` print goes to stdout; its last line is `MARK ok` just before the command starts, or
 * `MARK failed KIND PATH`, and exit 125. The command gets its stderr on stdout too (the tool combines them
 * anyway): one pipe keeps the verdict strictly before anything the command prints.
 */
const SETUP = `mark=$1; n=$2; shift 2
fail() { printf '\\n%s failed %s %s\\n' "$mark" "$1" "$2"; exit 125; }
while [ "$n" -gt 0 ]; do
  mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=0500 astrid-protected "$1" 2>&1 || fail hide "$1"
  shift; n=$((n - 1))
done
if [ -n "$1" ]; then mount --bind -o ro "$1" "$1" 2>&1 || fail read-only "$1"; fi
if [ "$2" = harden ]; then
  mount --bind -o ro /proc/sys /proc/sys 2>&1 || fail harden /proc/sys
  if [ -d /sys/kernel ]; then mount -o remount,bind,ro /sys 2>&1 || fail harden /sys; fi
fi
shift 2
printf '%s ok\\n' "$mark"
exec "$@" 2>&1`

/**
 * The argv that runs `command` (an argv itself, `bash -c …`) in `mode`; `mark` is the call's random marker
 * the setup script prints its verdict with.
 */
export const sandboxedArgv = (mode: CallContainment, shield: Shield, mark: string, command: ReadonlyArray<string>): ReadonlyArray<string> => {
  switch (mode._tag) {
    case "Scan":
      return command
    case "PidNamespace":
      return [...mode.prefix, ...command]
    case "MountNamespace":
      return [
        ...mode.prefix,
        "sh",
        "-c",
        SETUP,
        "astrid-sandbox",
        mark,
        String(shield.hidden.length),
        ...shield.hidden,
        shield.readOnly ?? "",
        mode.hardenKernel ? "harden" : "-",
        ...mode.dropPrivileges,
        ...command
      ]
  }
}

/** The setup's verdict, read from the start of a call's output. */
export type SetupVerdict =
  | { readonly _tag: "Ready"; readonly output: string }
  | { readonly _tag: "Failed"; readonly kind: string; readonly path: string; readonly detail: string }
  | { readonly _tag: "Unknown"; readonly detail: string }

/**
 * Reads what the setup printed. The command runs only after the setup's `MARK ok` line, so the first such
 * line is the setup's whatever the command prints later; what precedes it is `mount`'s noise.
 */
export const setupVerdict = (raw: string, mark: string): SetupVerdict => {
  const ok = `${mark} ok\n`
  const at = raw.indexOf(ok)
  if (at !== -1) return { _tag: "Ready", output: raw.slice(at + ok.length) }
  const failed = raw.lastIndexOf(`\n${mark} failed `)
  if (failed === -1) return { _tag: "Unknown", detail: raw.trim() }
  const [kind = "", ...rest] = raw.slice(failed + mark.length + 9).replace(/\n$/, "").split(" ")
  return { _tag: "Failed", kind, path: rest.join(" "), detail: raw.slice(0, failed).trim() }
}

/** The message a failed setup becomes: what could not be done to what, that nothing ran, and what to do. */
export const setupFailureMessage = (verdict: Exclude<SetupVerdict, { readonly _tag: "Ready" }>): string => {
  const why = (detail: string) => (detail === "" ? "" : ` (${detail.replace(/\s+/g, " ")})`)
  if (verdict._tag === "Unknown") {
    return `could not set up the command's namespace${why(verdict.detail)}; the command was not run. Try again; if it keeps failing, report it with this message`
  }
  const what =
    verdict.kind === "hide"
      ? `could not hide ${verdict.path} (the runtime's own state, ASTRID_HOME) from the command`
      : verdict.kind === "read-only"
        ? `could not make ${verdict.path} (this workspace's restrictions) read-only for the command`
        : `could not make ${verdict.path} read-only for the command`
  return `${what}${why(verdict.detail)}; the command was not run. Check that ${verdict.path} is a folder on a local file system, then try again`
}

/** Runs the whole setup once on a scratch folder: the command must start as pid 1, see nothing of the folder and fail to unmount it. */
const probe = (mode: MountNamespace): Effect.Effect<boolean> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "astrid-probe-"))
      mkdirSync(join(dir, "hidden"))
      writeFileSync(join(dir, "hidden", "f"), "")
      return dir
    }),
    (dir) => {
      const mark = "astrid-probe"
      const check = 'test -e "$1/f" && echo visible; umount "$1" 2>/dev/null && echo unmounted; echo $$'
      const [file = "unshare", ...args] = sandboxedArgv(mode, { hidden: [join(dir, "hidden")], readOnly: null }, mark, ["bash", "-c", check, "bash", join(dir, "hidden")])
      return probeCommand(file, args, (out, code) => {
        const verdict = setupVerdict(out, mark)
        return code === 0 && verdict._tag === "Ready" && verdict.output.trim() === "1"
      })
    },
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

const detect: Effect.Effect<CallContainment> = Effect.gen(function* () {
  if (process.platform === "linux") {
    const mode = mountNamespace()
    if (yield* probe(mode)) return mode
  }
  return yield* containment
})

/** How bash calls are contained in this process, probed on first use and remembered. */
export const callContainment: Effect.Effect<CallContainment> = Effect.runSync(Effect.cached(detect))

/** Which containment bash calls get here: "namespace" (protected state hidden by the kernel), "pid-namespace" or "scan". */
export const bashContainment: Effect.Effect<BashContainment> = Effect.map(callContainment, (mode) =>
  mode._tag === "MountNamespace" ? "namespace" : mode._tag === "PidNamespace" ? "pid-namespace" : "scan"
)
