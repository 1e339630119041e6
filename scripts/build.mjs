// Bundles the CLI into dist/ so that `astrid` starts fast: one ESM file for the command tree, with
// the command implementations split into chunks that load only when a command runs.
import { build } from "esbuild"
import { existsSync, rmSync } from "node:fs"

const entryPoints = { astrid: "apps/cli/main.ts" }
// Worker entries must be files of their own so `new Worker(url)` can load them from dist/.
if (existsSync("infrastructure/event-store/sqliteVerifyWorker.ts")) {
  entryPoints["sqliteVerifyWorker"] = "infrastructure/event-store/sqliteVerifyWorker.ts"
}

rmSync("dist", { recursive: true, force: true })
await build({
  entryPoints,
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  // Native addons cannot be bundled; they load from node_modules at run time.
  external: ["better-sqlite3"],
  banner: { js: "import { createRequire as __astridCreateRequire } from 'node:module'; const require = __astridCreateRequire(import.meta.url);" },
  legalComments: "none",
  logLevel: "warning"
})
