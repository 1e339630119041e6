/**
 * The EventStoreDB / KurrentDB EventStore, through @eventstore/db-client 6.2.1 (gRPC). Several daemons can
 * share one cluster: ESDB's expected-revision check on append keeps every stream linear.
 *
 * How an Astrid event is stored in ESDB:
 * | Astrid (RecordedEvent) | EventStoreDB |
 * |---|---|
 * | stream, revision | the stream of the same name, its stream revision (both count from 0) |
 * | eventId, type | the event id (UUID), the event type |
 * | data | the event data: the UTF-8 bytes of the canonical JSON text, content type application/octet-stream |
 * | metadata, hash | the event's custom metadata: the UTF-8 bytes of `{"v":1,"h":"<hash>","m":"<metadata text>"}` |
 * | position | the event's `$all` commit position |
 * Data is stored as binary because the client re-serializes JSON events (`JSON.stringify` on append,
 * `JSON.parse` on read), which would not give back the hashed text byte for byte (JavaScript puts
 * integer-like keys first, JCS sorts them as strings). `m` holds the canonical metadata text as a JSON string,
 * so it comes back exactly. Reads take the stored bytes as they are whatever the content type says, so
 * verification hashes what is stored: a changed byte anywhere is caught.
 *
 * Positions: for every event a gRPC client writes, ESDB's commit and prepare positions are both the event's
 * log position, a byte offset that grows strictly in commit order; `position` is that number. One above
 * 2^53 - 1 (8 PiB of log), or one whose commit and prepare differ (only legacy TCP transactions write those),
 * fails with a typed error instead of being rounded. Reading `$all` "after p" asks ESDB for p and drops the
 * event at p (ESDB reads from a position inclusively).
 *
 * Appends: the port's rule that each event's revision continues the stream is checked before anything is
 * sent, and the batch goes with the expected revision its first event implies (revision 0: no_stream, r:
 * r - 1), so ESDB itself refuses it atomically when the stream moved; `any` therefore never means "don't
 * care" here. A refusal reports the stream's actual revision.
 *
 * Filters: `readAll` and `subscribeToAll` with a stream prefix use a server-side stream-name prefix filter;
 * without one, a server-side regex filter (`^[^$]`) leaves ESDB's own `$` system streams out.
 * `readAll` with a filter is not offered by this client version, so it is sent through the client's own
 * channel (a subclass uses its `GRPCStreamCreator`, so credentials, reconnection and disposal are the
 * client's); all reads go that way, which also gives the raw metadata bytes instead of parsed JSON. That
 * subclass relies on protected members of 6.2.1, which is why package.json pins the client exactly.
 *
 * Costs that SQLite does not have: ESDB cannot look an event up by id nor count a store, so `findEvent`,
 * `stats` and the store-wide event-id check share an in-memory index (id to position, stream names, counts;
 * about 150 bytes per event) built on first use by one scan of `$all` and brought up to date by reading only
 * the new tail before each use. With `eventIds: "batch"` appends skip the index (ids are then only checked
 * within a batch) and it is built only if `findEvent` or `stats` is called.
 *
 * The store-wide id check reads the index just before appending, so two writers appending the same new id
 * at the same moment can both pass it; ids are random UUIDv7s, so only a replay does that, and a replay of
 * stored events also fails the revision check. ESDB's own idempotent-append rule (an append that repeats the
 * ids of the events right after its expected revision succeeds without writing) cannot reach the stream
 * either: those ids are in the index, or, with `eventIds: "batch"`, the "success" describes events that are
 * there already.
 *
 * Subscriptions follow `$all` (catch-up, then live) and survive dropped connections: they resubscribe from
 * the last event delivered, with backoff, and drop anything at or before it, so no event is repeated or lost.
 * Bounded reads are retried twice after a dropped connection; appends are not (see `collect`).
 */
import {
  AccessDeniedError,
  binaryEvent,
  type ChannelCredentialOptions,
  EventStoreDBClient,
  NO_STREAM,
  WrongExpectedVersionError
} from "@eventstore/db-client"
import { parseConnectionString } from "@eventstore/db-client/dist/Client/parseConnectionString.js"
import sharedPb from "@eventstore/db-client/generated/shared_pb.js"
import streamsGrpc from "@eventstore/db-client/generated/streams_grpc_pb.js"
import streamsPb from "@eventstore/db-client/generated/streams_pb.js"
import type { ReadReq, ReadResp } from "@eventstore/db-client/generated/streams_pb.js"
import type { UUID } from "@eventstore/db-client/generated/shared_pb.js"
import { type ClientReadableStream, status as GrpcStatus } from "@grpc/grpc-js"
import { Duration, Effect, Either, Layer, Option, Ref, Schedule, Schema, Stream } from "effect"
import { readFileSync } from "node:fs"
import { isAbsolute, resolve } from "node:path"
import { HashHex, type RecordedEvent } from "../../domain/envelope.js"
import { STREAM_PREFIX } from "../../domain/streams.js"
import {
  type AppendResult,
  EventStore,
  type EventStoreApi,
  EventStoreError,
  type ExpectedRevision,
  expectationHolds,
  type StoreFailureKind,
  WrongExpectedRevision
} from "../../application/ports/eventStore.js"
import { messageOf } from "../../domain/errorMessage.js"

export interface EsdbStoreOptions {
  /**
   * "store" (the default) refuses an event id that is already anywhere in the store, as the other stores
   * do (through the id index, see the file header). "batch" refuses only ids repeated within one append.
   */
  readonly eventIds?: "store" | "batch"
  /** Deadline of one bounded read (a page of `$all`, a stream); default 60 s. */
  readonly readDeadlineMs?: number
  /** How a subscription resubscribes after a dropped connection. */
  readonly reconnect?: {
    /** Consecutive failed attempts before the subscription fails with "unavailable" (default 20). */
    readonly attempts?: number
    readonly initialDelayMs?: number
    readonly maxDelayMs?: number
  }
}

export interface EsdbEventStore {
  readonly api: EventStoreApi
  readonly close: () => Promise<void>
}

/** The custom metadata Astrid writes on every ESDB event. */
const Envelope = Schema.Struct({ v: Schema.Literal(1), h: HashHex, m: Schema.String })
const decodeEnvelope = Schema.decodeUnknownEither(Schema.parseJson(Envelope))

const PAGE = 1000
const NON_SYSTEM = "^[^$]"
const POSITION_END = 2n ** 64n - 1n
const MAX_POSITION = BigInt(Number.MAX_SAFE_INTEGER)

const utf8 = new TextEncoder()
const looseUtf8 = new TextDecoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/** An event as ESDB returned it, before it is read as an Astrid event. */
interface RawEvent {
  readonly stream: string
  readonly revision: number
  readonly position: number
  readonly id: string
  readonly type: string
  readonly data: Uint8Array
  readonly metadata: Uint8Array
}

type AllFilter = { readonly prefix: string } | "non_system"

/** The client, plus reads sent through its own channel (see the file header for why). */
class AstridEsdbClient extends EventStoreDBClient {
  openRead(request: ReadReq, deadlineMs: number | "none"): Promise<ClientReadableStream<ReadResp>> {
    const [metadata, options] = deadlineMs === "none" ? this.callArguments({}, { deadline: Infinity }) : this.callArguments({ deadline: deadlineMs })
    return this.GRPCStreamCreator(streamsGrpc.StreamsClient, "astrid.read", (client) => client.read(request, metadata, options))()
  }
}

const SCHEMES: Record<string, string> = {
  esdb: "esdb",
  "esdb+discover": "esdb+discover",
  kurrentdb: "esdb",
  "kurrentdb+discover": "esdb+discover"
}

/** The URL with any password hidden, for messages. */
export const redactUrl = (url: string): string => url.replace(/^([a-z+]+:\/\/[^:@/]+):[^@/]*@/i, "$1:***@")

/**
 * A read call as an async iterable whose `return` cancels the call first. The call's own iterator is an async
 * generator, whose `return` waits behind a pending `next`; on a quiet live subscription that `next` settles
 * only with the next event, so interrupting the subscription would hang until one came.
 */
const cancelledOnReturn = (call: ClientReadableStream<ReadResp>): AsyncIterable<unknown> => ({
  [Symbol.asyncIterator]: () => {
    const inner = call[Symbol.asyncIterator]()
    return {
      next: () => inner.next(),
      return: (value?: unknown) => {
        call.cancel()
        return inner.return === undefined ? Promise.resolve({ done: true as const, value }) : inner.return(value)
      }
    }
  }
})

/** Maps kurrentdb:// to esdb:// (this client's name for the same protocol). */
export const normalizeEsdbUrl = (url: string): Either.Either<string, EventStoreError> => {
  const match = /^([A-Za-z+]+):\/\//.exec(url.trim())
  const scheme = match?.[1] === undefined ? undefined : SCHEMES[match[1].toLowerCase()]
  if (match === null || scheme === undefined) {
    return Either.left(
      new EventStoreError({
        kind: "invalid",
        message: `'${redactUrl(url)}' is not an EventStoreDB URL; use esdb://host:2113?tls=false, esdb+discover://host:2113 or kurrentdb://host:2113`
      })
    )
  }
  return Either.right(`${scheme}://${url.trim().slice(match[0].length)}`)
}

const readFileFrom = (path: string): Buffer => readFileSync(isAbsolute(path) ? path : resolve(process.cwd(), path))

/** Builds the client the way `EventStoreDBClient.connectionString` does, as the subclass. */
const clientFor = (url: string): AstridEsdbClient => {
  const o = parseConnectionString(url)
  const credentials: ChannelCredentialOptions = { insecure: o.tls === false }
  if (o.tls !== false && o.tlsCAFile !== undefined) credentials.rootCertificate = readFileFrom(o.tlsCAFile)
  if (o.userCertFile !== undefined || o.userKeyFile !== undefined) {
    if (o.userCertFile === undefined || o.userKeyFile === undefined) throw new Error("userCertFile must be given with userKeyFile")
    credentials.userCertFile = readFileFrom(o.userCertFile)
    credentials.userKeyFile = readFileFrom(o.userKeyFile)
  }
  const common = {
    ...(o.keepAliveInterval === undefined ? {} : { keepAliveInterval: o.keepAliveInterval }),
    ...(o.keepAliveTimeout === undefined ? {} : { keepAliveTimeout: o.keepAliveTimeout }),
    ...(o.defaultDeadline === undefined ? {} : { defaultDeadline: o.defaultDeadline }),
    ...(o.connectionName === undefined ? {} : { connectionName: o.connectionName }),
    // WrongExpectedVersion must be an error, whatever the URL says.
    throwOnAppendFailure: true
  }
  const discovery = {
    ...(o.nodePreference === undefined ? {} : { nodePreference: o.nodePreference }),
    ...(o.discoveryInterval === undefined ? {} : { discoveryInterval: o.discoveryInterval }),
    ...(o.gossipTimeout === undefined ? {} : { gossipTimeout: o.gossipTimeout }),
    ...(o.maxDiscoverAttempts === undefined ? {} : { maxDiscoverAttempts: o.maxDiscoverAttempts })
  }
  const [first, ...others] = o.hosts
  if (first === undefined) throw new Error("no host in the URL")
  if (o.dnsDiscover) return new AstridEsdbClient({ discover: first, ...discovery, ...common }, credentials, o.defaultCredentials)
  if (others.length > 0) return new AstridEsdbClient({ endpoints: o.hosts, ...discovery, ...common }, credentials, o.defaultCredentials)
  return new AstridEsdbClient({ endpoint: first, ...common }, credentials, o.defaultCredentials)
}

const grpcCode = (e: unknown): number | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "number" ? e.code : undefined


const TRANSIENT_CODES: ReadonlySet<number> = new Set([GrpcStatus.UNAVAILABLE, GrpcStatus.CANCELLED, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.ABORTED])

/** Maps a client or gRPC failure to a typed error that says what to do. */
export const describeEsdbFailure = (location: string, e: unknown, doing: string): EventStoreError => {
  if (e instanceof EventStoreError) return e
  const code = grpcCode(e)
  const fail = (kind: StoreFailureKind, message: string) => new EventStoreError({ kind, message })
  if (e instanceof AccessDeniedError || code === GrpcStatus.PERMISSION_DENIED || code === GrpcStatus.UNAUTHENTICATED) {
    return fail(
      "access_denied",
      `the event store at ${location} denied access while ${doing}; give the user Astrid connects as read and write rights on the astrid- streams and read rights on $all, or put that user's credentials in the URL (esdb://user:password@host:2113)`
    )
  }
  if ((code !== undefined && TRANSIENT_CODES.has(code)) || /failed to discover|no connection established|ECONNREFUSED/i.test(messageOf(e))) {
    return fail(
      "unavailable",
      `cannot reach the event store at ${location} while ${doing} (${messageOf(e)}); check that EventStoreDB/KurrentDB is running there and that the URL's host, port and tls setting are right, then try again`
    )
  }
  if (code === GrpcStatus.INVALID_ARGUMENT) return fail("invalid", `the event store at ${location} refused a request while ${doing}: ${messageOf(e)}`)
  return fail("io", `the event store at ${location} failed while ${doing}: ${messageOf(e)}`)
}

const uuidText = (id: UUID | undefined): string => {
  if (id === undefined) return ""
  if (id.hasString()) return id.getString().toLowerCase()
  const structured = id.getStructured()
  if (structured === undefined) return ""
  const bytes = Buffer.alloc(16)
  bytes.writeBigInt64BE(BigInt.asIntN(64, BigInt(structured.getMostSignificantBits())), 0)
  bytes.writeBigInt64BE(BigInt.asIntN(64, BigInt(structured.getLeastSignificantBits())), 8)
  const h = bytes.toString("hex")
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

const makeApi = (client: AstridEsdbClient, location: string, options: EsdbStoreOptions, lock: Effect.Semaphore) => {
  const readDeadlineMs = options.readDeadlineMs ?? 60_000
  const reconnectAttempts = options.reconnect?.attempts ?? 20
  const initialDelayMs = options.reconnect?.initialDelayMs ?? 100
  const maxDelayMs = options.reconnect?.maxDelayMs ?? 2_000
  const checkIdsStoreWide = (options.eventIds ?? "store") === "store"
  let closed = false

  const fail = (kind: StoreFailureKind, message: string) => new EventStoreError({ kind, message })
  const closedError = () => fail("unavailable", `the connection to the event store at ${location} was closed; open the store again`)
  const describe = (e: unknown, doing: string) => (closed ? closedError() : describeEsdbFailure(location, e, doing))

  /** The $all position of an ESDB event as a number, or why it cannot be one. */
  const positionOf = (commitText: string, prepareText: string, where: string): number => {
    const commit = BigInt(commitText)
    const prepare = BigInt(prepareText)
    if (commit === POSITION_END) {
      throw fail(
        "io",
        `the event store at ${location} did not report the $all position of ${where}; Astrid needs a server that reports positions on stream reads (a current EventStoreDB or KurrentDB)`
      )
    }
    if (commit !== prepare) {
      throw fail("io", `${where} in ${location} has commit position ${commit} but prepare position ${prepare}; Astrid reads only events written one append at a time (not legacy transactions)`)
    }
    if (commit < 0n || commit > MAX_POSITION) throw fail("io", `${where} in ${location} has position ${commit}, beyond what Astrid can count exactly (2^53 - 1)`)
    return Number(commit)
  }

  const rawOf = (read: ReadResp.ReadEvent): RawEvent | undefined => {
    const e = read.getEvent()
    if (e === undefined) return undefined
    const stream = looseUtf8.decode(e.getStreamIdentifier()?.getStreamName_asU8() ?? new Uint8Array())
    const revision = Number(e.getStreamRevision())
    const id = uuidText(e.getId())
    return {
      stream,
      revision,
      id,
      position: positionOf(e.getCommitPosition(), e.getPreparePosition(), `event ${id} (stream ${stream}, revision ${revision})`),
      type: e.getMetadataMap().get("type") ?? "",
      data: e.getData_asU8(),
      metadata: e.getCustomMetadata_asU8()
    }
  }

  /** Sends one bounded read and collects every event of the answer. */
  const collect = (request: ReadReq, doing: string): Effect.Effect<{ events: Array<RawEvent>; notFound: boolean }, EventStoreError> =>
    Effect.tryPromise({
      try: async (signal) => {
        if (closed) throw closedError()
        const call = await client.openRead(request, readDeadlineMs)
        const cancel = () => call.cancel()
        signal.addEventListener("abort", cancel)
        try {
          const events: Array<RawEvent> = []
          let notFound = false
          for await (const resp of call) {
            if (!(resp instanceof streamsPb.ReadResp)) continue
            if (resp.hasStreamNotFound()) notFound = true
            const read = resp.getEvent()
            const raw = read === undefined ? undefined : rawOf(read)
            if (raw !== undefined) events.push(raw)
          }
          return { events, notFound }
        } finally {
          signal.removeEventListener("abort", cancel)
          call.cancel()
        }
      },
      catch: (e) => describe(e, doing)
    }).pipe(
      // Reads are safe to repeat, and the first call after a dropped connection often fails while the
      // client opens a new channel. Appends are never repeated here: the caller decides what an unknown
      // outcome means.
      Effect.retry({ while: (e) => e.kind === "unavailable" && !closed, times: 2, schedule: Schedule.exponential("100 millis") })
    )

  const baseOptions = (): ReadReq.Options => {
    const o = new streamsPb.ReadReq.Options()
    o.setResolveLinks(false)
    o.setUuidOption(new streamsPb.ReadReq.Options.UUIDOption().setString(new sharedPb.Empty()))
    return o
  }

  const filterOptions = (filter: AllFilter): ReadReq.Options.FilterOptions => {
    const expression = new streamsPb.ReadReq.Options.FilterOptions.Expression()
    if (filter === "non_system") expression.setRegex(NON_SYSTEM)
    else expression.setPrefixList([filter.prefix])
    return new streamsPb.ReadReq.Options.FilterOptions().setStreamIdentifier(expression).setCount(new sharedPb.Empty()).setCheckpointintervalmultiplier(1)
  }

  const allOptions = (after: number): ReadReq.Options.AllOptions => {
    const all = new streamsPb.ReadReq.Options.AllOptions()
    if (after <= 0) return all.setStart(new sharedPb.Empty())
    return all.setPosition(new streamsPb.ReadReq.Options.Position().setCommitPosition(String(after)).setPreparePosition(String(after)))
  }

  const filterFor = (prefix: string | undefined): AllFilter => (prefix === undefined || prefix === "" ? "non_system" : { prefix })

  /**
   * Raw events of `$all` from `from` (0: the start) on, the event at `from` included, filtered on the server.
   * `from` must be the position of an event (ESDB refuses or misreads a position inside a record).
   */
  const readAllFrom = (from: number, count: number, filter: AllFilter, doing: string) => {
    const options = baseOptions()
      .setAll(allOptions(from))
      .setReadDirection(streamsPb.ReadReq.Options.ReadDirection.FORWARDS)
      .setCount(String(count))
      .setFilter(filterOptions(filter))
    return collect(new streamsPb.ReadReq().setOptions(options), doing).pipe(Effect.map(({ events }) => events))
  }

  /** Raw events of `$all` strictly after `after`, at most `maxCount`. */
  const readAllRaw = (after: number, maxCount: number, filter: AllFilter, doing: string) =>
    // The read includes the event at `after` itself, when it passes the filter; it is dropped here.
    readAllFrom(after, after > 0 ? maxCount + 1 : maxCount, filter, doing).pipe(
      Effect.map((events) => events.filter((e) => after <= 0 || e.position > after).slice(0, maxCount))
    )

  const readStreamRaw = (stream: string, direction: "forward" | "backward", fromRevision: number | undefined, maxCount: number | undefined) => {
    const streamOptions = new streamsPb.ReadReq.Options.StreamOptions().setStreamIdentifier(new sharedPb.StreamIdentifier().setStreamName(utf8.encode(stream)))
    if (fromRevision !== undefined) streamOptions.setRevision(String(fromRevision))
    else if (direction === "backward") streamOptions.setEnd(new sharedPb.Empty())
    else streamOptions.setStart(new sharedPb.Empty())
    const options = baseOptions()
      .setStream(streamOptions)
      .setReadDirection(direction === "backward" ? streamsPb.ReadReq.Options.ReadDirection.BACKWARDS : streamsPb.ReadReq.Options.ReadDirection.FORWARDS)
      .setCount(String(maxCount ?? Number.MAX_SAFE_INTEGER))
      .setNoFilter(new sharedPb.Empty())
    return collect(new streamsPb.ReadReq().setOptions(options), `reading stream ${stream}`).pipe(Effect.map(({ events }) => events))
  }

  /** Reads a raw event as an Astrid event: exact texts, the hash from the envelope. */
  const toRecorded = (raw: RawEvent): Either.Either<RecordedEvent, EventStoreError> => {
    const where = `event ${raw.id} (stream ${raw.stream}, revision ${raw.revision}) in ${location}`
    const broken = (why: string) =>
      Either.left(
        raw.stream.startsWith(STREAM_PREFIX)
          ? fail("corrupt", `${where} ${why}; the event was altered or not written by Astrid; run 'astrid audit verify' and restore the stream from a copy`)
          : fail("not_astrid", `${where} ${why}; it was not written by Astrid; read with the astrid- stream prefix`)
      )
    let data: string
    let metadataText: string
    try {
      data = strictUtf8.decode(raw.data)
      metadataText = strictUtf8.decode(raw.metadata)
    } catch {
      return broken("is not valid UTF-8")
    }
    const envelope = decodeEnvelope(metadataText)
    if (Either.isLeft(envelope)) return broken("has no Astrid envelope in its metadata")
    return Either.right({
      stream: raw.stream,
      revision: raw.revision,
      position: raw.position,
      eventId: raw.id,
      type: raw.type,
      data,
      metadata: envelope.right.m,
      hash: envelope.right.h
    })
  }

  const decodeAll = (raws: ReadonlyArray<RawEvent>): Effect.Effect<Array<RecordedEvent>, EventStoreError> =>
    Effect.forEach(raws, (raw) => toRecorded(raw))

  const headOf = (stream: string) =>
    readStreamRaw(stream, "backward", undefined, 1).pipe(
      Effect.flatMap((events) => (events[0] === undefined ? Effect.succeed(Option.none()) : Effect.map(toRecorded(events[0]), Option.some)))
    )

  // The id index (see the file header): one scan, then only the new tail before each use.
  const index = { after: 0, ids: new Map<string, number>(), streams: new Set<string>(), events: 0, bytes: 0, lastPosition: 0 }
  const catchUpIndex: Effect.Effect<void, EventStoreError> = lock.withPermits(1)(
    Effect.gen(function* () {
      for (;;) {
        const page = yield* readAllRaw(index.after, PAGE, "non_system", "indexing event ids")
        for (const e of page) {
          index.ids.set(e.id, e.position)
          index.streams.add(e.stream)
          index.events++
          index.bytes += e.data.length + e.metadata.length
          index.lastPosition = e.position
          index.after = e.position
        }
        if (page.length < PAGE) return
      }
    })
  )

  const wrongRevision = (stream: string, expected: ExpectedRevision) =>
    headOf(stream).pipe(
      Effect.flatMap((head) =>
        Effect.fail(new WrongExpectedRevision({ stream, expected, actual: Option.match(head, { onNone: () => "no_stream" as const, onSome: (h) => h.revision }) }))
      )
    )

  const actualOf = (v: bigint | "no_stream"): number | "no_stream" => (typeof v === "bigint" && v >= 0n ? Number(v) : "no_stream")

  const append: EventStoreApi["append"] = (stream, expected, events) =>
    Effect.gen(function* () {
      if (closed) return yield* Effect.fail(closedError())
      const first = events[0]
      if (first === undefined) {
        const head = yield* headOf(stream)
        const current = Option.getOrUndefined(head)
        if (!expectationHolds(expected, current?.revision)) return yield* wrongRevision(stream, expected)
        return { lastRevision: current?.revision ?? -1, lastPosition: current?.position ?? 0 }
      }
      const start = first.revision
      const expectedStart = expected === "any" ? start : expected === "no_stream" ? 0 : expected + 1
      const continues = Number.isSafeInteger(start) && start >= 0 && start === expectedStart && events.every((e, i) => e.revision === start + i)
      if (!continues) return yield* wrongRevision(stream, expected)

      const seen = new Set<string>()
      for (const e of events) {
        if (seen.has(e.eventId)) {
          return yield* Effect.fail(fail("invalid", `event ${e.eventId} appears twice in the batch; an event id can be appended only once`))
        }
        seen.add(e.eventId)
      }
      if (checkIdsStoreWide) {
        yield* catchUpIndex
        const taken = events.find((e) => index.ids.has(e.eventId))
        if (taken !== undefined) {
          return yield* Effect.fail(fail("invalid", `event ${taken.eventId} is already in the event store ${location}; an event id can be appended only once`))
        }
      }

      const proposed = events.map((e) =>
        binaryEvent({
          id: e.eventId,
          type: e.type,
          data: utf8.encode(e.data),
          metadata: utf8.encode(JSON.stringify({ v: 1, h: e.hash, m: e.metadata }))
        })
      )
      const result = yield* Effect.tryPromise({
        try: () => client.appendToStream(stream, proposed, { expectedRevision: start === 0 ? NO_STREAM : BigInt(start - 1) }),
        catch: (e) =>
          e instanceof WrongExpectedVersionError
            ? new WrongExpectedRevision({ stream, expected, actual: actualOf(e.actualVersion) })
            : describe(e, `appending to ${stream}`)
      })
      const lastRevision = start + events.length - 1
      if (!result.success) return yield* Effect.fail(new WrongExpectedRevision({ stream, expected, actual: actualOf(result.nextExpectedRevision) }))
      if (result.nextExpectedRevision !== BigInt(lastRevision)) {
        return yield* Effect.fail(
          fail("io", `the event store at ${location} reports stream ${stream} at revision ${result.nextExpectedRevision} after an append that should have ended at ${lastRevision}; check the stream with 'astrid audit verify'`)
        )
      }
      if (result.position !== undefined) {
        const position = result.position
        const lastPosition = yield* Effect.try({
          try: () => positionOf(String(position.commit), String(position.prepare), `the append to ${stream}`),
          catch: (e) => describe(e, `appending to ${stream}`)
        })
        return { lastRevision, lastPosition } satisfies AppendResult
      }
      // Servers that do not report the position: read it back.
      const written = yield* readStreamRaw(stream, "forward", lastRevision, 1)
      return { lastRevision, lastPosition: written[0]?.position ?? 0 } satisfies AppendResult
    })

  /** One subscription call: catch-up then live events strictly after `after`, as raw events. */
  const subscribeOnce = (after: number, filter: AllFilter, confirmed: Effect.Effect<void>): Stream.Stream<RawEvent, EventStoreError> => {
    const options = baseOptions().setAll(allOptions(after)).setSubscription(new streamsPb.ReadReq.Options.SubscriptionOptions()).setFilter(filterOptions(filter))
    const request = new streamsPb.ReadReq().setOptions(options)
    return Stream.acquireRelease(
      Effect.tryPromise({
        try: () => (closed ? Promise.reject(closedError()) : client.openRead(request, "none")),
        catch: (e) => describe(e, "subscribing to $all")
      }),
      (call) => Effect.sync(() => call.cancel())
    ).pipe(
      Stream.flatMap((call) => Stream.fromAsyncIterable<unknown, EventStoreError>(cancelledOnReturn(call), (e) => describe(e, "following $all"))),
      Stream.mapEffect((resp) =>
        Effect.gen(function* () {
          if (!(resp instanceof streamsPb.ReadResp)) return Option.none<RawEvent>()
          if (resp.hasConfirmation()) yield* confirmed
          const read = resp.getEvent()
          if (read === undefined) return Option.none<RawEvent>()
          return Option.fromNullable(yield* Effect.try({ try: () => rawOf(read), catch: (e) => describe(e, "following $all") }))
        })
      ),
      Stream.filterMap((raw) => raw)
    )
  }

  const subscribeToAll: EventStoreApi["subscribeToAll"] = ({ after, streamPrefix }) =>
    Stream.unwrap(
      Effect.gen(function* () {
        const filter = filterFor(streamPrefix)
        const delivered = yield* Ref.make(after)
        const failures = yield* Ref.make(0)
        const lastFailure = yield* Ref.make<EventStoreError | undefined>(undefined)

        const attempt = Stream.unwrap(
          Effect.map(Ref.get(delivered), (from) =>
            subscribeOnce(from, filter, Ref.set(failures, 0)).pipe(
              Stream.mapEffect(toRecorded),
              // A resubscription may repeat what was already delivered; positions only grow.
              Stream.filterEffect((e) => Effect.map(Ref.get(delivered), (last) => last <= 0 || e.position > last)),
              Stream.tap((e) => Ref.set(delivered, e.position))
            )
          )
        )
        const pause = Effect.gen(function* () {
          const n = yield* Ref.updateAndGet(failures, (k) => k + 1)
          if (closed) return yield* Effect.fail(closedError())
          if (n > reconnectAttempts) {
            const last = yield* Ref.get(lastFailure)
            return yield* Effect.fail(last ?? fail("unavailable", `the subscription to ${location} kept ending; check the server's health and try again`))
          }
          yield* Effect.sleep(Duration.millis(Math.min(maxDelayMs, initialDelayMs * 2 ** (n - 1))))
        })
        const follow = (): Stream.Stream<RecordedEvent, EventStoreError> =>
          attempt.pipe(
            Stream.catchAll((e) => (e.kind === "unavailable" && !closed ? Stream.execute(Ref.set(lastFailure, e)) : Stream.fail(e))),
            Stream.concat(Stream.execute(pause)),
            Stream.concat(Stream.suspend(follow))
          )
        return follow()
      })
    )

  const api: EventStoreApi = {
    location,
    append,
    readStream: (stream, opts = {}) => {
      if (opts.maxCount !== undefined && opts.maxCount <= 0) return Effect.succeed([])
      return readStreamRaw(stream, opts.direction ?? "forward", opts.fromRevision, opts.maxCount).pipe(Effect.flatMap(decodeAll))
    },
    readAll: ({ after, maxCount, streamPrefix }) =>
      maxCount <= 0
        ? Effect.succeed([])
        : readAllRaw(after, maxCount, filterFor(streamPrefix), "reading $all").pipe(Effect.flatMap(decodeAll)),
    subscribeToAll,
    streamHead: (stream) => headOf(stream).pipe(Effect.map(Option.map((e) => ({ revision: e.revision, hash: e.hash })))),
    findEvent: (eventId) =>
      Effect.gen(function* () {
        yield* catchUpIndex
        const position = index.ids.get(eventId)
        if (position === undefined) return Option.none()
        const [raw] = yield* readAllFrom(position, 1, "non_system", `reading event ${eventId}`)
        if (raw === undefined || raw.id !== eventId) return Option.none()
        return Option.some(yield* toRecorded(raw))
      }),
    stats: Effect.gen(function* () {
      yield* catchUpIndex
      return { events: index.events, streams: index.streams.size, lastPosition: index.lastPosition, bytes: index.bytes }
    })
  }
  return {
    api,
    close: async () => {
      closed = true
      await client.dispose()
    }
  }
}

/**
 * Connects to EventStoreDB / KurrentDB at `url` (esdb://, esdb+discover://, kurrentdb://) and checks that it
 * answers and lets this user read `$all`, so a wrong URL or missing rights fail here with a typed error.
 */
export const connectEsdbEventStore = (url: string, options: EsdbStoreOptions = {}): Effect.Effect<EsdbEventStore, EventStoreError> =>
  Effect.gen(function* () {
    const normalized = yield* normalizeEsdbUrl(url)
    const location = redactUrl(url.trim())
    const client = yield* Effect.try({
      try: () => clientFor(normalized),
      catch: (e) => new EventStoreError({ kind: "invalid", message: `cannot use the event store URL ${location}: ${messageOf(e).replaceAll(normalized, redactUrl(normalized))}` })
    })
    const store = makeApi(client, location, options, yield* Effect.makeSemaphore(1))
    const probe = new streamsPb.ReadReq().setOptions(
      new streamsPb.ReadReq.Options()
        .setAll(new streamsPb.ReadReq.Options.AllOptions().setEnd(new sharedPb.Empty()))
        .setReadDirection(streamsPb.ReadReq.Options.ReadDirection.BACKWARDS)
        .setCount("1")
        .setResolveLinks(false)
        .setNoFilter(new sharedPb.Empty())
        .setUuidOption(new streamsPb.ReadReq.Options.UUIDOption().setString(new sharedPb.Empty()))
    )
    yield* Effect.tryPromise({
      try: async () => {
        const call = await client.openRead(probe, options.readDeadlineMs ?? 10_000)
        for await (const _ of call) break
        call.cancel()
      },
      catch: (e) => describeEsdbFailure(location, e, "connecting")
    }).pipe(Effect.tapError(() => Effect.promise(() => store.close())))
    return store
  })

/** A scoped layer: the connection is closed when the scope ends. */
export const EsdbEventStoreLive = (url: string, options: EsdbStoreOptions = {}): Layer.Layer<EventStore, EventStoreError> =>
  Layer.scoped(
    EventStore,
    Effect.acquireRelease(connectEsdbEventStore(url, options), (s) => Effect.promise(() => s.close())).pipe(Effect.map((s) => s.api))
  )
