/**
 * `astrid projections rebuild|status`: the read models (views) built from the log, in
 * $ASTRID_HOME/projections.db, and how far each has read it. Also the one way other commands get a view
 * to read: `caughtUpViews`, which brings the views up to the end of the log first.
 */
import { Effect, Option } from "effect"
import { existsSync } from "node:fs"
import { STREAM_PREFIX } from "../../../domain/streams.js"
import type { EventStoreApi } from "../../../application/ports/eventStore.js"
import type { AstridConfig } from "../../../infrastructure/config/astridConfig.js"
import { makeMemoryEventStore } from "../../../infrastructure/event-store/memoryEventStore.js"
import type { Projection } from "../../../projections/projection.js"
import { makeProjectionRunner, type ProjectionProgress } from "../../../projections/projectionRunner.js"
import { PROJECTIONS } from "../../../projections/registry.js"
import {
  type ProjectionCheckpoint,
  type ProjectionStoreApi,
  projectionsPath,
  scopedSqliteProjectionStore
} from "../../../projections/sqliteProjectionStore.js"
import { asCli, CliError, usageError } from "../cliError.js"
import { dim, printJson, printLines, table } from "../output.js"
import { config, openStore, storeExists } from "../runtime.js"

const PAGE = 10_000

/**
 * The log to read views from. With no event store yet the log is empty (not an error): views then come
 * out empty, and a projections.db left from another log is started again.
 */
const openLog = (cfg: AstridConfig) =>
  storeExists(cfg) ? openStore(cfg, "read") : Effect.succeed<EventStoreApi>(makeMemoryEventStore())

const openViews = (cfg: AstridConfig, mode: "read" | "write") =>
  asCli(scopedSqliteProjectionStore({ path: projectionsPath(cfg.home), mode, busyTimeoutMs: cfg.eventStore.busyTimeoutMs }))

/**
 * The views, caught up with the end of the log, for a command that reads them (e.g. `approvals list`
 * with `listPending`). Closed when the surrounding scope ends.
 */
export const caughtUpViews = (cfg: AstridConfig, projections: ReadonlyArray<Projection> = PROJECTIONS) =>
  Effect.gen(function* () {
    const log = yield* openLog(cfg)
    const views = yield* openViews(cfg, "write")
    const runner = yield* asCli(makeProjectionRunner(log, views, PROJECTIONS))
    yield* asCli(runner.catchUp(projections))
    return views
  })

const rowsOf = (views: ProjectionStoreApi, p: Projection) =>
  asCli(views.rowCounts(p)).pipe(Effect.map((tables) => ({ tables, rows: Object.values(tables).reduce((a, b) => a + b, 0) })))

export interface RebuildArgs {
  readonly names: ReadonlyArray<string>
  readonly json: boolean
}

/** Drops the named views (all when none is named) and replays the whole log into them. */
export const rebuild = (args: RebuildArgs) =>
  Effect.scoped(
    Effect.gen(function* () {
      const known = PROJECTIONS.map((p) => p.name)
      const unknown = args.names.filter((n) => !known.includes(n))
      if (unknown.length > 0) {
        return yield* Effect.fail(
          usageError(`unknown projection ${unknown.map((n) => `'${n}'`).join(", ")}; the projections are ${known.join(", ")} ('astrid projections status' lists them)`)
        )
      }
      const cfg = yield* config
      const log = yield* openLog(cfg)
      const views = yield* openViews(cfg, "write")
      const runner = yield* asCli(makeProjectionRunner(log, views, PROJECTIONS))
      const progress = yield* asCli(runner.rebuild([...new Set(args.names)]))
      const results: Array<ProjectionProgress & { readonly rows: number; readonly tables: Readonly<Record<string, number>> }> = []
      for (const p of progress) {
        const projection = PROJECTIONS.find((q) => q.name === p.name)
        const counts = projection === undefined ? { rows: 0, tables: {} } : yield* rowsOf(views, projection)
        results.push({ ...p, ...counts })
      }
      if (args.json) return yield* printJson({ database: views.location, projections: results })
      yield* printLines(
        ...table(
          ["PROJECTION", "VERSION", "EVENTS READ", "POSITION", "ROWS"],
          results.map((r) => [r.name, String(r.version), String(r.events), String(r.position), String(r.rows)])
        ),
        dim(`rebuilt from the log into ${views.location}`)
      )
    })
  )

export type ProjectionState = "current" | "behind" | "not built" | "outdated" | "from another log"

/** Astrid events after `position`: how far behind the log a view is. */
const eventsAfter = (log: EventStoreApi, position: number) =>
  Effect.gen(function* () {
    let n = 0
    let after = position
    for (;;) {
      const page = yield* asCli(log.readAll({ after, maxCount: PAGE, streamPrefix: STREAM_PREFIX }))
      n += page.length
      const last = page[page.length - 1]
      if (last === undefined || page.length < PAGE) return n
      after = last.position
    }
  })

/** Whether the checkpoint names the event at its position in this log. */
const fromThisLog = (log: EventStoreApi, c: ProjectionCheckpoint) =>
  Effect.gen(function* () {
    if (c.position === 0) return true
    if (c.lastEventId === null) return false
    const found = yield* asCli(log.findEvent(c.lastEventId))
    return Option.isSome(found) && found.value.position === c.position
  })

/** Per projection: its checkpoint against the end of the log, its rows, and what the next read will do. Writes nothing. */
export const status = (args: { readonly json: boolean }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cfg = yield* config
      const log = yield* openLog(cfg)
      const logEnd = (yield* asCli(log.stats)).lastPosition
      const path = projectionsPath(cfg.home)
      const views = existsSync(path) ? yield* openViews(cfg, "read") : undefined
      const results = []
      for (const p of PROJECTIONS) {
        const stored = views === undefined ? Option.none() : yield* asCli(views.checkpoint(p.name))
        const counts = views === undefined ? { rows: 0, tables: Object.fromEntries(p.tables.map((t) => [t.name, 0])) } : yield* rowsOf(views, p)
        let state: ProjectionState
        let position = 0
        if (Option.isNone(stored)) {
          state = "not built"
        } else {
          position = stored.value.position
          if (stored.value.version !== p.version) state = "outdated"
          else if (!(yield* fromThisLog(log, stored.value))) state = "from another log"
          else state = "current"
        }
        // Anything but a current view is rebuilt from zero at its next read, so it is behind by the whole log.
        const behind = yield* eventsAfter(log, state === "current" ? position : 0)
        if (state === "current" && behind > 0) state = "behind"
        results.push({
          name: p.name,
          version: p.version,
          storedVersion: Option.isSome(stored) ? stored.value.version : null,
          state,
          position,
          logEnd,
          behind,
          ...counts
        })
      }
      if (args.json) return yield* printJson({ database: path, exists: views !== undefined, logEnd, projections: results })
      yield* printLines(
        ...table(
          ["PROJECTION", "VERSION", "STATE", "POSITION", "LOG END", "BEHIND", "ROWS"],
          results.map((r) => [r.name, String(r.version), r.state, String(r.position), String(r.logEnd), String(r.behind), String(r.rows)])
        ),
        dim(
          views === undefined
            ? `no ${path} yet; it is built by 'astrid projections rebuild' or the first command that reads a view`
            : "views behind, outdated or from another log catch up (or rebuild) at their next read"
        )
      )
    })
  )

export { CliError }
