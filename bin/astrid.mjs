#!/usr/bin/env node
// The `astrid` command: runs the bundled CLI built by `npm run build` (which `npm ci` runs as `prepare`).
import { existsSync } from "node:fs"

const bundle = new URL("../dist/astrid.mjs", import.meta.url)
if (!existsSync(bundle)) {
  process.stderr.write("astrid: the CLI is not built (dist/astrid.mjs is missing); run 'npm run build' in the astrid folder\n")
  process.exit(2)
}
await import(bundle.href)
