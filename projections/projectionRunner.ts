/**
 * The one runner that keeps every view in step with the log. It reads from each view's checkpoint
 * (`readAll` pages to catch up, `subscribeToAll` to follow), decodes each event once, and hands each
 * page to the store, which folds it into every view and moves their checkpoints in one transaction.
 * Any view can be dropped and rebuilt from zero; the result is the same as the incremental one because
 * `evolve` is pure and every event is folded exactly once, in log order.
 */
import { Chunk, Data, Effect, Option, Stream } from "effect"
import type { RecordedEvent } from "../domain/envelope.js"
import { STREAM_PREFIX } from "../domain/streams.js"
import type { EventStoreApi, EventStoreError } from "../application/ports/eventStore.js"
import { decodeRecorded } from "../application/streamState.js"
import type { Projection } from "./projection.js"
import { type DecodedEvent, type EnsureOutcome, ProjectionError, type ProjectionStoreApi } from "./sqliteProjectionStore.js"

/** Why a run started a view from zero. */
export type RebuildReason = Exclude<EnsureOutcome, "current"> | "log_changed" | "requested"

export interface ProjectionProgress {
  readonly name: string
  readonly version: number
  /** The checkpoint when the run ended: global position of the last event folded in. */
  readonly position: number
  /** Events of the log this run read into the view (including types the view ignores). */
  readonly events: number
  readonly rebuilt: RebuildReason | null
}

export interface ProjectionRunner {
  /** The projections this runner knows, by which `rebuild` resolves names. */
  readonly projections: ReadonlyArray<Projection>
  /** Brings the views (all known ones by default) up to the end of the log, then returns. */
  readonly catchUp: (projections?: ReadonlyArray<Projection>) => Effect.Effect<ReadonlyArray<ProjectionProgress>, ProjectionError | EventStoreError>
  /** Catches up, then follows the log's subscription until interrupted. */
  readonly runLive: (projections?: ReadonlyArray<Projection>) => Effect.Effect<never, ProjectionError | EventStoreError>
  /** Drops the named views (all by default) and replays the log into them; other views are untouched. */
  readonly rebuild: (names?: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<ProjectionProgress>, ProjectionError | EventStoreError>
}

export interface RunnerOptions {
  /** Events per read and per transaction. */
  readonly pageSize?: number
}

/** A view was reset by someone else while this runner followed the log: catch up again from its checkpoint. */
class FellBehind extends Data.TaggedError("FellBehind")<{}> {}

const RESERVED_TABLES = new Set(["projection_meta", "projection_checkpoints"])

/** Names and tables must be unique: a table belongs to one projection, which alone writes and drops it. */
export const validateProjections = (projections: ReadonlyArray<Projection>): ProjectionError | undefined => {
  const names = new Set<string>()
  const tables = new Map<string, string>()
  for (const p of projections) {
    if (names.has(p.name)) return new ProjectionError({ kind: "invalid", message: `two projections are named ${p.name}` })
    names.add(p.name)
    if (!Number.isSafeInteger(p.version) || p.version < 1) {
      return new ProjectionError({ kind: "invalid", message: `projection ${p.name} has version ${p.version}; use a positive integer` })
    }
    for (const t of p.tables) {
      const owner = tables.get(t.name)
      if (owner !== undefined || RESERVED_TABLES.has(t.name) || t.name.startsWith("sqlite_")) {
        return new ProjectionError({ kind: "invalid", message: `table ${t.name} of projection ${p.name} is already used by ${owner ?? "the store itself"}` })
      }
      tables.set(t.name, p.name)
    }
  }
  return undefined
}

const decode = (page: ReadonlyArray<RecordedEvent>): ReadonlyArray<DecodedEvent> => page.map((recorded) => ({ recorded, event: decodeRecorded(recorded) }))

const minimum = (positions: ReadonlyMap<string, number>): number => Math.min(...positions.values())

export const makeProjectionRunner = (
  events: EventStoreApi,
  views: ProjectionStoreApi,
  registry: ReadonlyArray<Projection>,
  options: RunnerOptions = {}
): Effect.Effect<ProjectionRunner, ProjectionError> =>
  Effect.gen(function* () {
    const invalid = validateProjections(registry)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    const pageSize = options.pageSize ?? 2000
    if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
      return yield* Effect.fail(new ProjectionError({ kind: "invalid", message: `page size ${pageSize} must be a positive integer` }))
    }

    const check = (ps: ReadonlyArray<Projection>): Effect.Effect<void, ProjectionError> => {
      const problem = validateProjections(ps)
      return problem === undefined ? Effect.void : Effect.fail(problem)
    }

    /**
     * Makes the view exist at its version, and starts it again when its checkpoint names an event that
     * is not at that position in this log (astrid.db was replaced or restored while projections.db stayed).
     */
    const prepare = (p: Projection) =>
      Effect.gen(function* () {
        const ensured = yield* views.ensure(p)
        let rebuilt: RebuildReason | null = ensured.outcome === "current" ? null : ensured.outcome
        const c = ensured.checkpoint
        if (c.position > 0) {
          const found = c.lastEventId === null ? Option.none() : yield* events.findEvent(c.lastEventId)
          if (Option.isNone(found) || found.value.position !== c.position) {
            yield* views.reset(p, c)
            rebuilt = "log_changed"
          }
        }
        const now = yield* views.checkpoint(p.name)
        return { position: Option.isSome(now) ? now.value.position : 0, rebuilt }
      })

    /** Folds pages into `ps` from their checkpoints until a short page shows the end of the log. */
    const fold = (ps: ReadonlyArray<Projection>, start: ReadonlyMap<string, number>) =>
      Effect.gen(function* () {
        let positions = start
        const counts = new Map(ps.map((p) => [p.name, 0]))
        if (ps.length === 0) return { positions, counts }
        for (;;) {
          const after = minimum(positions)
          const page = yield* events.readAll({ after, maxCount: pageSize, streamPrefix: STREAM_PREFIX })
          const last = page[page.length - 1]
          if (last === undefined) break
          const next = yield* views.applyBatch(ps, after, decode(page))
          for (const p of ps) {
            const before = positions.get(p.name) ?? 0
            const reached = next.get(p.name) ?? 0
            counts.set(p.name, (counts.get(p.name) ?? 0) + page.filter((e) => e.position > before && e.position <= reached).length)
          }
          positions = next
          // A view reset meanwhile by another process is behind `after` now; go round again for it.
          if (page.length < pageSize && minimum(positions) >= last.position) break
        }
        return { positions, counts }
      })

    const catchUp = (ps: ReadonlyArray<Projection> = registry) =>
      Effect.gen(function* () {
        yield* check(ps)
        const prepared = new Map<string, { position: number; rebuilt: RebuildReason | null }>()
        for (const p of ps) prepared.set(p.name, yield* prepare(p))
        const { positions, counts } = yield* fold(ps, new Map(ps.map((p) => [p.name, prepared.get(p.name)?.position ?? 0])))
        return ps.map(
          (p): ProjectionProgress => ({
            name: p.name,
            version: p.version,
            position: positions.get(p.name) ?? 0,
            events: counts.get(p.name) ?? 0,
            rebuilt: prepared.get(p.name)?.rebuilt ?? null
          })
        )
      })

    const follow = (ps: ReadonlyArray<Projection>): Effect.Effect<never, ProjectionError | EventStoreError | FellBehind> =>
      Effect.gen(function* () {
        const progress = yield* catchUp(ps)
        let after = Math.min(...progress.map((p) => p.position))
        yield* events.subscribeToAll({ after, streamPrefix: STREAM_PREFIX }).pipe(
          Stream.runForEachChunk((chunk) =>
            Effect.gen(function* () {
              const page = Chunk.toReadonlyArray(chunk)
              const last = page[page.length - 1]
              if (last === undefined) return
              const next = yield* views.applyBatch(ps, after, decode(page))
              if (minimum(next) < last.position) return yield* Effect.fail(new FellBehind())
              after = last.position
            })
          )
        )
        // A subscription never ends by itself; if one does, wait to be interrupted rather than spin.
        return yield* Effect.never
      })

    const runLive = (ps: ReadonlyArray<Projection> = registry): Effect.Effect<never, ProjectionError | EventStoreError> =>
      ps.length === 0 ? Effect.never : follow(ps).pipe(Effect.catchTag("FellBehind", () => Effect.suspend(() => runLive(ps))))

    const rebuild = (names?: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        const known = new Map(registry.map((p) => [p.name, p]))
        const unknown = (names ?? []).filter((n) => !known.has(n))
        if (unknown.length > 0) {
          return yield* Effect.fail(
            new ProjectionError({
              kind: "unknown",
              message: `unknown projection ${unknown.map((n) => `'${n}'`).join(", ")}; known: ${registry.map((p) => p.name).join(", ")}`
            })
          )
        }
        const chosen = names === undefined || names.length === 0 ? registry : registry.filter((p) => names.includes(p.name))
        for (const p of chosen) {
          yield* views.ensure(p)
          yield* views.reset(p)
        }
        const progress = yield* catchUp(chosen)
        return progress.map((p): ProjectionProgress => ({ ...p, rebuilt: "requested" }))
      })

    return { projections: registry, catchUp, runLive, rebuild } satisfies ProjectionRunner
  })
