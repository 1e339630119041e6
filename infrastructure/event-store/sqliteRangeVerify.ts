/**
 * Verifies one contiguous range of global positions of a SQLite event store, for the parallel verifier
 * (sqliteParallelVerify.ts). It applies LogVerifier.push's per-event rule to the events of its range and
 * leaves to the caller only what needs the ranges before it: the chain verdict of each stream's first
 * event in the range, which it summarises instead (revision, hash check, prevHash), together with the
 * stream's head at the end of the range.
 *
 * Runs in a worker thread or in the calling thread; it imports no Effect, so a worker starts quickly.
 * It opens its own read-only connection and never writes.
 */
import Database from "better-sqlite3"
import type { IssueKind } from "../../application/audit/verifier.js"
import { EVENT_HASH_TAG, genesisPreimage } from "../../domain/chain.js"
import { type Blake3, loadBlake3 } from "../crypto/blake3.js"

export interface PinnedHash {
  readonly hash: string
  readonly checkpointRevision: number
}

export interface RangeTask {
  readonly path: string
  /** Events with after < global_position <= upTo. */
  readonly after: number
  readonly upTo: number
  /** Only streams whose name starts with this are read (verifyStore reads with the same prefix). */
  readonly prefix: string
  /** The streams in scope, the checkpoint stream included; null: every stream. */
  readonly streams: ReadonlyArray<string> | null
  /** Issues kept (the first ones in position order); the rest are only counted. */
  readonly maxIssues: number
}

/** What pass 1 (the checkpoint stream) tells a range. */
export interface CheckpointPins {
  /** stream -> revision -> the hash a trusted checkpoint recorded there. */
  readonly pins: ReadonlyMap<string, ReadonlyMap<number, PinnedHash>>
  /** Events after this position are not covered by any checkpoint. */
  readonly coveredPosition: number
}

/**
 * How a range gets the checkpoint pins: they may arrive while it runs (pass 1 runs beside pass 2), so it
 * polls between pages and waits only if it finishes first.
 */
export interface PinsSource {
  readonly poll: () => CheckpointPins | undefined
  readonly wait: () => Promise<CheckpointPins>
}

/** An issue found in the range; `order` = 2 × position (+ 1 for the checkpoint comparison). */
export interface RangeIssue {
  readonly order: number
  readonly kind: IssueKind
  readonly stream: string
  readonly revision: number | null
  readonly detail: string
}

/** A stream as this range saw it: its first event (for the caller to link) and its head at the end. */
export interface StreamInRange {
  readonly stream: string
  readonly firstPosition: number
  readonly firstRevision: number
  /** Whether the first event's stored hash is its computed hash. */
  readonly firstHashOk: boolean
  /** The first event's prevHash (as JSON.parse reads it), when its hash verified and it has one. */
  readonly firstPrevHash: string | null
  /** Highest revision in the range, and the hash of the last event at that revision (LogVerifier's state). */
  readonly lastRevision: number
  readonly lastHash: string
}

export type RangeOutcome =
  | {
      readonly _tag: "Verified"
      /** Rows read, in scope or not (for progress). */
      readonly scanned: number
      readonly events: number
      readonly uncheckpointed: number
      readonly issues: ReadonlyArray<RangeIssue>
      readonly issueCount: number
      readonly streams: ReadonlyArray<StreamInRange>
    }
  /** A row this path does not model exactly (e.g. a non-integer revision): the caller uses the reference verifier. */
  | { readonly _tag: "Unusual"; readonly reason: string }

/** The stream state LogVerifier keeps: highest revision seen, and the hash of the last event at it. */
export interface StreamState {
  lastRevision: number
  lastHash: string
}

export interface LinkIssue {
  readonly kind: IssueKind
  readonly revision: number
  readonly detail: string
}

/**
 * LogVerifier.push's verdict for an event whose stored hash verified, given its stream's state before it
 * (undefined for the stream's first event). The texts must stay those of verifier.ts: the parallel
 * verifier's tests compare both reports field by field.
 */
export const linkIssue = (
  stream: string,
  revision: number,
  prevHash: string | undefined,
  state: StreamState | undefined,
  genesisOf: (stream: string) => string
): LinkIssue | undefined => {
  const expectedRevision = state === undefined ? 0 : state.lastRevision + 1
  if (revision !== expectedRevision) {
    return revision > expectedRevision
      ? { kind: "revision_gap", revision: expectedRevision, detail: `revisions ${expectedRevision}..${revision - 1} are missing (next present: ${revision})` }
      : { kind: "revision_gap", revision, detail: `revision ${revision} appears again after revision ${expectedRevision - 1}` }
  }
  if (prevHash === undefined) return { kind: "malformed_event", revision, detail: "metadata has no prevHash" }
  if (revision === 0) {
    return prevHash === genesisOf(stream) ? undefined : { kind: "bad_genesis", revision: 0, detail: `prevHash of revision 0 is not the genesis hash of ${stream}` }
  }
  if (state !== undefined && prevHash !== state.lastHash) {
    return {
      kind: "broken_link",
      revision,
      detail: `prevHash ${prevHash.slice(0, 12)}… does not match revision ${state.lastRevision} (${state.lastHash.slice(0, 12)}…)`
    }
  }
  return undefined
}

export const hashMismatchDetail = (stored: string, computed: string): string =>
  `stored hash ${stored.slice(0, 12)}… but the event hashes to ${computed.slice(0, 12)}…`

export const pinMismatchDetail = (pin: PinnedHash, stored: string, checkpointStream: string): string =>
  `checkpoint ${checkpointStream}@${pin.checkpointRevision} recorded hash ${pin.hash.slice(0, 12)}… here, the store has ${stored.slice(0, 12)}…`

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** LogVerifier's reading of prevHash: JSON.parse, then the top-level `prevHash` if it is a string. */
export const readPrevHashByParse = (metadata: string): string | undefined => {
  try {
    const parsed: unknown = JSON.parse(metadata)
    if (!isRecord(parsed)) return undefined
    const value = parsed["prevHash"]
    return typeof value === "string" ? value : undefined
  } catch {
    return undefined
  }
}

/**
 * A flat JSON object whose last `prevHash` member has a string value, which the group captures. Members
 * have keys of ASCII letters and values that are strings without escapes or control characters, or
 * integers: every text that matches is valid JSON, which JSON.parse reads as a plain object whose keys are
 * the literal keys, the last of a repeated key winning. No member after the captured one is a `prevHash`
 * (the lookahead), so the captured value is the one JSON.parse keeps. Canonical metadata written by
 * EventLog always matches; any other text (a number there, whitespace, escapes, nesting) goes to JSON.parse.
 */
const MEMBER = String.raw`"[A-Za-z]+":(?:"[^"\\\u0000-\u001f]*"|-?(?:0|[1-9][0-9]*))`
const FLAT_WITH_PREV_HASH = new RegExp(String.raw`^\{(?:${MEMBER},)*?"prevHash":"([^"\\\u0000-\u001f]*)"(?:,(?!"prevHash":)${MEMBER})*\}$`)

/**
 * The lazy prefix retries the tail at each `prevHash` member, so a crafted text with many of them costs
 * quadratic time; above this length (canonical metadata is a few hundred characters) JSON.parse reads it.
 */
const FLAT_MAX_LENGTH = 4_096

/** Equal to readPrevHashByParse for every text (see FLAT_WITH_PREV_HASH), about three times as fast on canonical metadata. */
export const readPrevHash = (metadata: string): string | undefined => {
  const match = metadata.length <= FLAT_MAX_LENGTH ? FLAT_WITH_PREV_HASH.exec(metadata) : null
  return match === null ? readPrevHashByParse(metadata) : match[1]
}

const PAGE = 500

type Preimage = (stream: string, revision: number, type: string, dataText: string, metadataText: string) => string

/**
 * domain/chain.ts's eventPreimage, remembering the JSON text of the last stream name and of type names:
 * JSON.stringify of a short string costs about a tenth of the whole text's assembly. It must return what
 * eventPreimage returns for every input (held by a property test beside this file).
 */
export const makePreimage = (): Preimage => {
  let lastStream: string | undefined
  let lastStreamJson = ""
  const typeJson = new Map<string, string>()
  return (stream, revision, type, dataText, metadataText) => {
    if (stream !== lastStream) {
      lastStream = stream
      lastStreamJson = JSON.stringify(stream)
    }
    let typeText = typeJson.get(type)
    if (typeText === undefined) {
      typeText = JSON.stringify(type)
      // A log has a few dozen event types; a tampered one may have any number, which are not kept.
      if (typeJson.size < 1_024) typeJson.set(type, typeText)
    }
    return `${EVENT_HASH_TAG}{"data":${dataText},"metadata":${metadataText},"revision":${revision},"stream":${lastStreamJson},"type":${typeText}}`
  }
}

const HEX_DIGITS = "0123456789abcdef"
const HEX_CODES = Array.from(HEX_DIGITS, (c) => c.charCodeAt(0))

/**
 * The digest blake3.hexOfText computes (the UTF-8 bytes of the text, encoded into one growing buffer), kept as
 * bytes: comparing them with the stored hex text costs less than making a hex string per event.
 */
const makeDigestOfText = (blake3: Blake3): ((text: string) => Uint8Array) => {
  const encoder = new TextEncoder()
  let scratch = new Uint8Array(64 * 1024)
  return (text) => {
    if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3)
    const { written } = encoder.encodeInto(text, scratch)
    return blake3.bytesOf(scratch.subarray(0, written))
  }
}

/** Whether `hex` is exactly the lowercase hex of `digest`, i.e. equal to the string hexOfText returns. */
const digestEquals = (digest: Uint8Array, hex: string): boolean => {
  if (hex.length !== digest.length * 2) return false
  for (let i = 0; i < digest.length; i++) {
    const byte = digest[i] ?? 0
    if (hex.charCodeAt(2 * i) !== HEX_CODES[byte >> 4] || hex.charCodeAt(2 * i + 1) !== HEX_CODES[byte & 15]) return false
  }
  return true
}

const toHex = (digest: Uint8Array): string => Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("hex")

/** Keeps the first `max` issues in log order, whatever order they are found in; counts all. */
class IssueList {
  private readonly kept: Array<RangeIssue> = []
  count = 0
  constructor(private readonly max: number) {}

  add(issue: RangeIssue): void {
    this.count++
    this.kept.push(issue)
    // Trimming to the first `max` only ever drops issues that `max` others precede.
    if (this.kept.length >= 2 * Math.max(this.max, 1_000)) this.trim()
  }

  private trim(): void {
    this.kept.sort((a, b) => a.order - b.order)
    this.kept.length = Math.min(this.kept.length, this.max)
  }

  first(): ReadonlyArray<RangeIssue> {
    this.trim()
    return this.kept
  }
}

interface RangeStream extends StreamState {
  readonly first: Omit<StreamInRange, "lastRevision" | "lastHash">
  /** This stream's pins; null until pass 1 has given them. */
  pins: ReadonlyMap<number, PinnedHash> | undefined | null
}

/** Events read before the pins arrived, to compare with them then. */
interface Backlog {
  readonly streams: Array<string>
  readonly revisions: Array<number>
  readonly hashes: Array<string>
  readonly positions: Array<number>
}

/** Rows between progress reports: often enough for a progress bar, rarely enough to cost nothing. */
const PROGRESS_EVERY = 10_000

/** Reads and verifies one range. `onPage` gets the rows read so far, every PROGRESS_EVERY rows and at the end. */
export const verifyRange = async (
  task: RangeTask,
  checkpointStream: string,
  pinsSource: PinsSource,
  onPage?: (scanned: number) => void
): Promise<RangeOutcome> => {
  const blake3 = await loadBlake3()
  const db = new Database(task.path, { readonly: true, fileMustExist: true })
  try {
    // Reads go through the memory map instead of a copy per page.
    db.pragma("mmap_size = 1073741824")
    // The same columns, read as the store adapter reads them, so every value is the one LogVerifier sees.
    const page = db
      .prepare(
        "SELECT global_position, stream_id, revision, type, data, metadata, hash FROM events WHERE global_position > ? AND global_position <= ? ORDER BY global_position LIMIT ?"
      )
      .raw()
    const scope = task.streams === null ? null : new Set(task.streams)
    const genesis = new Map<string, string>()
    const genesisOf = (stream: string): string => {
      let hash = genesis.get(stream)
      if (hash === undefined) genesis.set(stream, (hash = blake3.hexOfText(genesisPreimage(stream))))
      return hash
    }
    // One lookup per event finds the stream's state and the checkpoint pins that concern it.
    const states = new Map<string, RangeStream>()
    const digestOf = makeDigestOfText(blake3)
    const preimage = makePreimage()
    const issues = new IssueList(task.maxIssues)
    const pinIssue = (pin: PinnedHash | undefined, stream: string, revision: number, hash: string, position: number): void => {
      if (pin !== undefined && pin.hash !== hash) {
        issues.add({ order: position * 2 + 1, kind: "checkpoint_mismatch", stream, revision, detail: pinMismatchDetail(pin, hash, checkpointStream) })
      }
    }
    let checkpoints = pinsSource.poll()
    const backlog: Backlog = { streams: [], revisions: [], hashes: [], positions: [] }
    let uncheckpointed = 0
    const settleBacklog = (facts: CheckpointPins): void => {
      for (const state of states.values()) state.pins = facts.pins.get(state.first.stream)
      for (let i = 0; i < backlog.positions.length; i++) {
        const stream = backlog.streams[i] ?? ""
        const revision = backlog.revisions[i] ?? 0
        const position = backlog.positions[i] ?? 0
        if (position > facts.coveredPosition && stream !== checkpointStream) uncheckpointed++
        pinIssue(facts.pins.get(stream)?.get(revision), stream, revision, backlog.hashes[i] ?? "", position)
      }
      backlog.streams.length = backlog.revisions.length = backlog.hashes.length = backlog.positions.length = 0
    }
    if (checkpoints !== undefined) settleBacklog(checkpoints)
    let events = 0
    let scanned = 0
    let after = task.after
    let reported = 0
    let lastStream: string | undefined
    let lastState: RangeStream | undefined
    for (;;) {
      const rows: Array<unknown> = page.all(after, task.upTo, PAGE)
      for (const row of rows) {
        if (!Array.isArray(row)) return { _tag: "Unusual", reason: "a row is not an array" }
        // Indexed reads: destructuring goes through the iterator protocol, measurably slower here.
        const position: unknown = row[0]
        const stream: unknown = row[1]
        const revision: unknown = row[2]
        const type: unknown = row[3]
        const dataValue: unknown = row[4]
        const metadataValue: unknown = row[5]
        const hash: unknown = row[6]
        if (typeof position !== "number") return { _tag: "Unusual", reason: "a global position is not a number" }
        after = position
        scanned++
        // verifyStore selects with substr(stream_id, 1, length(prefix)) = prefix: text values only.
        if (typeof stream !== "string" || !stream.startsWith(task.prefix)) continue
        if (scope !== null && !scope.has(stream)) continue
        if (typeof revision !== "number" || typeof type !== "string" || typeof hash !== "string") {
          return { _tag: "Unusual", reason: `event at position ${position} has a revision, type or hash that is not of its column's type` }
        }
        // A value stored as a blob or a number: LogVerifier puts it into text through the same string conversion.
        const data = typeof dataValue === "string" ? dataValue : String(dataValue)
        const metadata = typeof metadataValue === "string" ? metadataValue : String(metadataValue)
        events++
        const digest = digestOf(preimage(stream, revision, type, data, metadata))
        const hashOk = digestEquals(digest, hash)
        const order = position * 2
        if (!hashOk) issues.add({ order, kind: "hash_mismatch", stream, revision, detail: hashMismatchDetail(hash, toHex(digest)) })
        // Events of a stream mostly come in runs (one append's batch): the last stream's state is checked
        // first, a string comparison instead of hashing a fresh key for the map.
        let state = stream === lastStream ? lastState : states.get(stream)
        if (state === undefined) {
          const prevHash = hashOk ? readPrevHash(metadata) : undefined
          const first = { stream, firstPosition: position, firstRevision: revision, firstHashOk: hashOk, firstPrevHash: prevHash ?? null }
          state = { lastRevision: revision, lastHash: hash, first, pins: checkpoints === undefined ? null : checkpoints.pins.get(stream) }
          states.set(stream, state)
        } else {
          if (hashOk) {
            const found = linkIssue(stream, revision, readPrevHash(metadata), state, genesisOf)
            if (found !== undefined) issues.add({ order, kind: found.kind, stream, revision: found.revision, detail: found.detail })
          }
          state.lastRevision = Math.max(state.lastRevision, revision)
          if (state.lastRevision === revision) state.lastHash = hash
        }
        lastStream = stream
        lastState = state
        if (checkpoints === undefined) {
          backlog.streams.push(stream)
          backlog.revisions.push(revision)
          backlog.hashes.push(hash)
          backlog.positions.push(position)
        } else {
          // As LogVerifier counts: checkpoints cover other streams, not their own.
          if (position > checkpoints.coveredPosition && stream !== checkpointStream) uncheckpointed++
          pinIssue(state.pins?.get(revision), stream, revision, hash, position)
        }
      }
      if (scanned >= reported + PROGRESS_EVERY || rows.length < PAGE) {
        reported = scanned
        onPage?.(scanned)
        // Lets the thread's other work in (in the main thread: workers' progress messages).
        await new Promise((resolve) => setImmediate(resolve))
      }
      if (checkpoints === undefined) {
        checkpoints = pinsSource.poll()
        if (checkpoints !== undefined) settleBacklog(checkpoints)
      }
      if (rows.length < PAGE) break
    }
    if (checkpoints === undefined) settleBacklog(await pinsSource.wait())
    const streams: Array<StreamInRange> = []
    for (const state of states.values()) streams.push({ ...state.first, lastRevision: state.lastRevision, lastHash: state.lastHash })
    return { _tag: "Verified", scanned, events, uncheckpointed, issues: issues.first(), issueCount: issues.count, streams }
  } finally {
    db.close()
  }
}

/** The lowest and highest global position in the store (null when it holds no events). */
export const positionSpan = (path: string): { readonly first: number; readonly last: number } | null => {
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    const row: unknown = db.prepare("SELECT min(global_position), max(global_position) FROM events").raw().get()
    if (!Array.isArray(row)) return null
    const [first, last]: Array<unknown> = row
    return typeof first === "number" && typeof last === "number" ? { first, last } : null
  } finally {
    db.close()
  }
}
