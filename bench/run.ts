/**
 * `npm run bench` runs every benchmark below; `npm run bench -- NAME...` runs the named ones. Each prints one
 * JSON line per measurement on stdout; progress notes go to stderr.
 */
// Each benchmark is loaded only when it runs: some pull in heavy modules (gRPC, Cedar) the others do not need.
const benchmarks: ReadonlyArray<readonly [string, () => Promise<void>]> = [
  ["append", () => import("./append.js").then((m) => m.run())],
  ["verify", () => import("./verify.js").then((m) => m.run())],
  ["coldstart", () => import("./coldstart.js").then((m) => m.run())],
  ["intercept", () => import("./intercept.js").then((m) => m.run())],
  ["esdb", () => import("./esdb.js").then((m) => m.run())],
  ["turn", () => import("./turn.js").then((m) => m.run())]
]

const wanted = process.argv.slice(2)
const unknown = wanted.filter((name) => !benchmarks.some(([known]) => known === name))
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(", ")}; choose from ${benchmarks.map(([name]) => name).join(", ")}\n`)
  process.exit(2)
}

for (const [name, run] of benchmarks) {
  if (wanted.length > 0 && !wanted.includes(name)) continue
  const started = performance.now()
  process.stderr.write(`bench ${name}...\n`)
  await run()
  process.stderr.write(`bench ${name} took ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
}
