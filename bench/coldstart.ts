/**
 * Cold start of the `astrid` command: wall time of `astrid --version` and of `astrid audit verify` on an
 * empty store, each a fresh `node bin/astrid.mjs` process, beside a bare `node -e 0` in the same run.
 * Prints a line with an `error` field, instead of failing, when the CLI is not built.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { openSqliteEventStore } from "../infrastructure/event-store/sqliteEventStore.js"
import { benchDir, emit, round, summarize } from "./lib/measure.js"

const RUNS = 10
const root = fileURLToPath(new URL("..", import.meta.url))
const bin = join(root, "bin", "astrid.mjs")
const bundle = join(root, "dist", "astrid.mjs")

interface Timed {
  readonly ms: Array<number>
  readonly error?: string
}

/** Runs `node args` RUNS times (after one untimed run that warms the file cache); stops at the first failure. */
const time = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Timed => {
  const ms: Array<number> = []
  for (let i = 0; i <= RUNS; i++) {
    const started = performance.now()
    const result = spawnSync(process.execPath, args, { env, encoding: "utf8", cwd: root })
    const elapsed = performance.now() - started
    if (result.status !== 0) {
      const why = (result.stderr || result.stdout || String(result.error ?? "")).trim().split("\n")[0] ?? ""
      return { ms, error: `node ${args.join(" ")} exited with ${String(result.status)}: ${why}` }
    }
    if (i > 0) ms.push(elapsed)
  }
  return { ms }
}

export const run = async (): Promise<void> => {
  const home = mkdtempSync(join(benchDir(), "coldstart-"))
  try {
    // An empty store, created the way the runtime creates it.
    await Effect.runPromise(openSqliteEventStore({ path: join(home, "astrid.db"), mode: "write" }).pipe(Effect.map((s) => s.close())))
    const env: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "", ASTRID_HOME: home, NO_COLOR: "1" }
    const bare = time(["-e", "0"], env)
    const peer = summarize(bare.ms, false)
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      ["coldstart.version", ["--version"]],
      ["coldstart.audit-verify", ["audit", "verify"]]
    ]
    for (const [name, args] of cases) {
      if (!existsSync(bin) || !existsSync(bundle)) {
        emit({ name, n: 0, median: Number.NaN, p99: Number.NaN, unit: "ms", error: `the CLI is not built (${existsSync(bin) ? "dist/astrid.mjs" : "bin/astrid.mjs"} is missing); run 'npm run build'` })
        continue
      }
      const measured = time([bin, ...args], env)
      const stats = summarize(measured.ms, false)
      emit({
        name,
        n: measured.ms.length,
        median: stats.median,
        p99: stats.p99,
        unit: "ms",
        command: `node bin/astrid.mjs ${args.join(" ")}`,
        ...(measured.error === undefined ? {} : { error: measured.error }),
        peer: { name: "node -e 0", median: peer.median, p99: peer.p99, unit: "ms" },
        ratio: round(stats.median / peer.median),
        ratioMeaning: "CLI wall time / bare node start"
      })
    }
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
}
