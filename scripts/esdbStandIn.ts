/**
 * Starts the EventStoreDB protocol stand-in on its own, so the CLI and daemon can be tried against an
 * `esdb://` store on a machine without EventStoreDB. It is a stand-in for tests and trials, not the
 * product: events live in memory and are gone when it stops.
 *
 *   npm run esdb:standin -- --port 2113 [--host 127.0.0.1]
 */
import { startEsdbStandIn } from "../infrastructure/event-store/esdbStandIn.js"

const usage = "usage: npm run esdb:standin -- [--port 2113] [--host 127.0.0.1]"

const parseArgs = (args: ReadonlyArray<string>): { port: number; host: string } | string => {
  let port = 2113
  let host = "127.0.0.1"
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]
    const value = args[i + 1]
    if (flag === "--help" || flag === "-h") return usage
    if ((flag === "--port" || flag === "--host") && value === undefined) return `${flag} needs a value\n${usage}`
    if (flag === "--port") {
      const n = Number(value)
      if (!Number.isInteger(n) || n < 0 || n > 65535) return `--port must be a whole number from 0 to 65535, not '${value}'\n${usage}`
      port = n
      i++
    } else if (flag === "--host" && value !== undefined) {
      host = value
      i++
    } else {
      return `unknown argument '${flag}'\n${usage}`
    }
  }
  return { port, host }
}

const parsed = parseArgs(process.argv.slice(2))
if (typeof parsed === "string") {
  console.error(parsed)
  process.exit(parsed === usage ? 0 : 2)
}

try {
  const standIn = await startEsdbStandIn(parsed)
  console.log(`EventStoreDB protocol stand-in (for tests and trials, not a real server; events are kept in memory only)`)
  console.log(standIn.url)
  const stop = () => {
    void standIn.close().then(() => process.exit(0))
  }
  process.on("SIGINT", stop)
  process.on("SIGTERM", stop)
} catch (e) {
  const reason = e instanceof Error ? e.message : String(e)
  console.error(`cannot listen on ${parsed.host}:${parsed.port} (${reason}); choose another --port or stop what is using it`)
  process.exit(1)
}
