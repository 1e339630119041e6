/**
 * The SQLite file layout (documented in docs/audit-format.md). Auditors read this file with any SQLite
 * tool, so the names here are a public contract: change them only with a new format version.
 */
export const FORMAT_NAME = "astrid-event-store"
export const FORMAT_VERSION = "1"

export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS astrid_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events (
  global_position INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id       TEXT    NOT NULL,
  revision        INTEGER NOT NULL CHECK (revision >= 0),
  event_id        TEXT    NOT NULL UNIQUE,
  type            TEXT    NOT NULL,
  data            TEXT    NOT NULL,
  metadata        TEXT    NOT NULL,
  hash            TEXT    NOT NULL,
  UNIQUE (stream_id, revision)
);
`
