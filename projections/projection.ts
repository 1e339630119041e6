/**
 * A projection: a read model folded from the event log. Its `evolve` is a pure function from the view
 * as it stands (read through a key lookup) and one event to the row changes that event makes; a store
 * applies those changes, and the runner commits them with the view's checkpoint in one transaction.
 * So the view after an event is `apply(view, evolve(view, event))`: the `(view, event) -> view` of
 * ARCHITECTURE.md, factored so that a view need never be held in memory (docs/decisions/projections.md).
 */
import { Option, Schema } from "effect"
import { EventMetadata, type RecordedEvent } from "../domain/envelope.js"
import type { AstridEvent } from "../domain/events/astridEvent.js"

/** What SQLite stores in a view column. */
export type SqlValue = string | number | null

export const isSqlValue = (v: unknown): v is SqlValue =>
  v === null || typeof v === "string" || (typeof v === "number" && Number.isFinite(v))

/** A column's SQLite type; NOT NULL unless it says NULL. View tables are STRICT, so SQLite checks it. */
export type ColumnType = "TEXT" | "INTEGER" | "TEXT NULL" | "INTEGER NULL"

/** What the store needs to know of a table: its name, columns, primary key and indexes. */
export interface TableShape {
  readonly name: string
  readonly columns: Readonly<Record<string, ColumnType>>
  readonly primaryKey: ReadonlyArray<string>
  readonly indexes: ReadonlyArray<ReadonlyArray<string>>
}

/** A view table: its shape plus the Schema its rows decode with (rows read back from SQLite are outside data). */
export interface Table<A, I, K extends keyof A & string> extends TableShape {
  readonly row: Schema.Schema<A, I>
  readonly columns: { readonly [C in keyof A & string]: ColumnType }
  readonly primaryKey: ReadonlyArray<K>
}

const IDENTIFIER = /^[a-z][a-z0-9_]*$/

/**
 * Declares a view table. Names are checked here, at module load, because they are spliced into SQL.
 * Primary-key columns must hold plain strings or integers (their decoded value is what is stored).
 */
export const defineTable = <A, I, K extends keyof A & string>(spec: {
  readonly name: string
  readonly row: Schema.Schema<A, I> & { readonly fields: object }
  readonly columns: { readonly [C in keyof A & string]: ColumnType }
  readonly primaryKey: readonly [K, ...ReadonlyArray<K>]
  readonly indexes?: ReadonlyArray<ReadonlyArray<keyof A & string>>
}): Table<A, I, K> => {
  const names = [spec.name, ...Object.keys(spec.columns)]
  for (const n of names) {
    if (!IDENTIFIER.test(n)) throw new Error(`view table or column name '${n}' must match ${IDENTIFIER.source}`)
  }
  const rowFields = Object.keys(spec.row.fields).sort().join(",")
  if (rowFields !== Object.keys(spec.columns).sort().join(",")) {
    throw new Error(`view table ${spec.name}: the row schema (${rowFields}) and the columns must name the same fields`)
  }
  return { name: spec.name, row: spec.row, columns: spec.columns, primaryKey: spec.primaryKey, indexes: spec.indexes ?? [] }
}

/** The SQL that creates a table and its indexes. */
export const createTableSql = (t: TableShape): ReadonlyArray<string> => {
  const columns = Object.entries(t.columns).map(([name, type]) =>
    type.endsWith(" NULL") ? `"${name}" ${type.slice(0, -" NULL".length)}` : `"${name}" ${type} NOT NULL`
  )
  const pk = t.primaryKey.map((c) => `"${c}"`).join(", ")
  return [
    `CREATE TABLE "${t.name}" (${columns.join(", ")}, PRIMARY KEY (${pk})) STRICT`,
    ...t.indexes.map((cols) => `CREATE INDEX "${t.name}__${cols.join("__")}" ON "${t.name}" (${cols.map((c) => `"${c}"`).join(", ")})`)
  ]
}

/** A row change produced by `evolve`. Values are already encoded for SQLite. */
export type ViewChange =
  | { readonly _tag: "Upsert"; readonly table: string; readonly row: Readonly<Record<string, unknown>> }
  | { readonly _tag: "Delete"; readonly table: string; readonly key: Readonly<Record<string, unknown>> }

/** Read access to the view as it stands before the event being folded. */
export interface ViewReader {
  readonly get: <A, I, K extends keyof A & string>(table: Table<A, I, K>, key: NoInfer<Pick<A, K>>) => A | undefined
}

/** Inserts the row, or replaces the one with the same primary key. */
export const upsert = <A, I extends object, K extends keyof A & string>(table: Table<A, I, K>, row: NoInfer<A>): ViewChange => {
  const encoded: object = Schema.encodeSync(table.row)(row)
  return { _tag: "Upsert", table: table.name, row: { ...encoded } }
}

export const remove = <A, I, K extends keyof A & string>(table: Table<A, I, K>, key: NoInfer<Pick<A, K>>): ViewChange => ({
  _tag: "Delete",
  table: table.name,
  key: { ...key }
})

export interface Projection {
  /** Stable name, used by `astrid projections rebuild NAME` and as the checkpoint's key. */
  readonly name: string
  /** Bump it whenever `evolve` or the tables change: the runner then drops the view and replays the log. */
  readonly version: number
  /** The tables this projection owns; their SQL comes from `createTableSql`. */
  readonly tables: ReadonlyArray<TableShape>
  /**
   * Pure: same view and event, same changes; no I/O, no clock. Events of types it does not use give [].
   * Throwing aborts the whole batch (view and checkpoint roll back together).
   */
  readonly evolve: (view: ViewReader, event: AstridEvent, recorded: RecordedEvent) => ReadonlyArray<ViewChange>
}

const decodeMetadata = Schema.decodeUnknownEither(Schema.parseJson(EventMetadata))

/** The envelope of a recorded event, or none when its metadata does not decode (a view then skips what needs it). */
export const envelopeOf = (recorded: RecordedEvent): Option.Option<EventMetadata> => Option.getRight(decodeMetadata(recorded.metadata))

/** `event[field]` when the event has a string there: for fields a newer or older event schema may lack. */
export const optionalString = (event: object, field: string): string | undefined => {
  const value: unknown = field in event ? Reflect.get(event, field) : undefined
  return typeof value === "string" ? value : undefined
}

export const optionalInt = (event: object, field: string): number | undefined => {
  const value: unknown = field in event ? Reflect.get(event, field) : undefined
  return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined
}
