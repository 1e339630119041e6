/**
 * EventStoreDB stand-in: a protocol stand-in for tests and trials, not the product; it says nothing about a
 * real cluster (its speed, durability, clustering, scavenging or security).
 *
 * No EventStoreDB / KurrentDB server can run on this machine, so this is a small in-process gRPC server
 * built with @grpc/grpc-js on the service definitions that @eventstore/db-client ships in its `generated/`
 * folder (the very classes its serializers check with `instanceof`). The real client talks to it over
 * loopback exactly as it would to a single insecure node (`esdb://127.0.0.1:PORT?tls=false`).
 *
 * What it implements, following the server's gRPC behaviour:
 * - Streams.Append: expected revision any / no_stream / stream_exists / exact; a mismatch answers with
 *   AppendResp.wrong_expected_version (expected and current revision set, as servers since 20.10 do);
 *   success answers with the stream's current revision and the commit/prepare position of the last event.
 *   Not implemented: idempotent re-appends of the same event ids, size limits, stream deletion.
 * - Streams.Read of a stream, forwards or backwards, from start / end / a revision, with a count; a missing
 *   stream answers `stream_not_found`.
 * - Streams.Read of `$all`, forwards or backwards, from start / end / a position, with a count, unfiltered or
 *   with a stream-name or event-type filter (prefixes or a regular expression). Forward reads include the
 *   event at the given position; backward reads start strictly before it, like the server's.
 * - Streams.Read subscriptions to `$all` (filtered or not): confirmation, catch-up strictly after the given
 *   position, `caught_up`, a checkpoint at the end of a filtered catch-up, then live events. No heartbeats.
 * - ServerFeatures.GetSupportedMethods: advertises Streams.Read and Streams.Append (never BatchAppend: the
 *   client would switch to it), Gossip.Read and itself.
 * - Gossip.Read: one live leader (so `esdb+discover://` connection strings work too).
 * Positions: commit = prepare = a byte-offset-like number that grows with each event's size, as on a
 * real node where both are the event's log position. Events keep their id, type, content type, data and
 * metadata bytes, stream revision, position and creation time.
 *
 * Controls for tests: `dropConnections()` force-closes every connection (the server comes back on the same
 * port, after `downForMs`), `denyAccess()` makes calls fail as a server's ACLs would, `reset()` forgets
 * everything. Run it on its own with `npm run esdb:standin -- --port 2113`.
 */
import * as grpc from "@grpc/grpc-js"
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import gossipGrpc from "@eventstore/db-client/generated/gossip_grpc_pb.js"
import gossipPb from "@eventstore/db-client/generated/gossip_pb.js"
import featuresGrpc from "@eventstore/db-client/generated/serverfeatures_grpc_pb.js"
import featuresPb from "@eventstore/db-client/generated/serverfeatures_pb.js"
import sharedPb from "@eventstore/db-client/generated/shared_pb.js"
import streamsGrpc from "@eventstore/db-client/generated/streams_grpc_pb.js"
import streamsPb from "@eventstore/db-client/generated/streams_pb.js"
import type { IStreamsServer } from "@eventstore/db-client/generated/streams_grpc_pb.js"
import type { IServerFeaturesServer } from "@eventstore/db-client/generated/serverfeatures_grpc_pb.js"
import type { IGossipServer } from "@eventstore/db-client/generated/gossip_grpc_pb.js"
import type { AppendReq, ReadReq, ReadResp } from "@eventstore/db-client/generated/streams_pb.js"
import type { UUID } from "@eventstore/db-client/generated/shared_pb.js"

/** One event as the stand-in keeps it. */
export interface StandInEvent {
  readonly stream: string
  readonly revision: number
  /** Commit and prepare position (equal, as for every event a gRPC client writes). */
  readonly position: number
  readonly id: string
  readonly type: string
  readonly contentType: string
  readonly data: Uint8Array
  readonly metadata: Uint8Array
  /** .NET ticks (100 ns) since the Unix epoch, as the server reports `created`. */
  readonly created: bigint
}

export type AccessRule = "allow" | "deny-all" | "deny-writes" | "deny-reads"

export interface StandInOptions {
  /** Interface to listen on; 127.0.0.1 unless told otherwise. */
  readonly host?: string
  /** 0 (the default) picks a free port. */
  readonly port?: number
  /** Writes a few `$`-prefixed system events at start and after reset, as a real node has (default true). */
  readonly systemEvents?: boolean
}

export interface EsdbStandIn {
  readonly host: string
  readonly port: number
  /** `esdb://host:port?tls=false` */
  readonly url: string
  /** Every event in `$all` order, system events included. */
  readonly events: () => ReadonlyArray<StandInEvent>
  /** How many subscription calls have been opened since start (a resubscription counts again). */
  readonly subscriptionsOpened: () => number
  /** Force-closes every connection and open call; listens again on the same port after `downForMs`. */
  readonly dropConnections: (options?: { readonly downForMs?: number }) => Promise<void>
  /** Makes reads, writes or both fail with PERMISSION_DENIED ("access-denied"), as a server's ACLs would. */
  readonly denyAccess: (rule: AccessRule) => void
  /** Forgets every event (and ends live subscriptions); positions start again from the beginning. */
  readonly reset: () => void
  readonly close: () => Promise<void>
}

const FIRST_POSITION = 4096
const END = Number.MAX_SAFE_INTEGER
const TICKS_PER_MS = 10_000n
const SERVER_VERSION = "0.0.0-astrid-standin"

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

type Filter = (e: StandInEvent) => boolean

type Listener = (batch: ReadonlyArray<StandInEvent>) => void

class StandInLog {
  all: Array<StandInEvent> = []
  streams = new Map<string, Array<StandInEvent>>()
  nextPosition = FIRST_POSITION
  readonly listeners = new Set<Listener>()

  constructor(private readonly withSystemEvents: boolean) {
    this.seed()
  }

  reset(): void {
    this.all = []
    this.streams = new Map()
    this.nextPosition = FIRST_POSITION
    this.listeners.clear()
    this.seed()
  }

  /** A fresh node is never empty: it holds a few system events that `$all` readers must be ready for. */
  private seed(): void {
    if (!this.withSystemEvents) return
    const json = (value: unknown) => utf8.encode(JSON.stringify(value))
    this.write("$settings", [{ id: randomUUID(), type: "$settings", contentType: "application/json", data: json({ $userStreamAcl: {} }), metadata: new Uint8Array() }])
    this.write("$scavenges", [{ id: randomUUID(), type: "$scavengeIndexInitialized", contentType: "application/json", data: json({}), metadata: new Uint8Array() }])
  }

  lastRevision(stream: string): number {
    const list = this.streams.get(stream)
    return list === undefined ? -1 : list.length - 1
  }

  write(stream: string, proposed: ReadonlyArray<Omit<StandInEvent, "stream" | "revision" | "position" | "created">>): ReadonlyArray<StandInEvent> {
    const list = this.streams.get(stream) ?? []
    const created = BigInt(Date.now()) * TICKS_PER_MS
    const written = proposed.map((p, i) => {
      const position = this.nextPosition
      // Like a log position: the next event starts after this one's bytes.
      this.nextPosition += 128 + utf8.encode(stream).length + utf8.encode(p.type).length + p.data.length + p.metadata.length
      return { ...p, stream, revision: list.length + i, position, created }
    })
    if (written.length === 0) return written
    list.push(...written)
    this.all.push(...written)
    this.streams.set(stream, list)
    for (const listener of [...this.listeners]) listener(written)
    return written
  }

  /** Index of the first event at or after `position`. */
  indexAtOrAfter(position: number): number {
    let lo = 0
    let hi = this.all.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.all[mid]?.position ?? END) < position) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

const statusError = (code: grpc.status, details: string, trailers: Record<string, string> = {}): grpc.ServiceError => {
  const metadata = new grpc.Metadata()
  for (const [k, v] of Object.entries(trailers)) metadata.set(k, v)
  return Object.assign(new Error(details), { code, details, metadata })
}

const accessDenied = (): grpc.ServiceError => statusError(grpc.status.PERMISSION_DENIED, "Access Denied", { exception: "access-denied" })

const uuidText = (id: UUID | undefined): string | undefined => {
  if (id === undefined) return undefined
  if (id.hasString()) return id.getString().toLowerCase()
  const structured = id.getStructured()
  if (structured === undefined) return undefined
  const bytes = Buffer.alloc(16)
  bytes.writeBigInt64BE(BigInt(structured.getMostSignificantBits()), 0)
  bytes.writeBigInt64BE(BigInt(structured.getLeastSignificantBits()), 8)
  const h = bytes.toString("hex")
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

const uuidMessage = (id: string, structured: boolean): UUID => {
  const uuid = new sharedPb.UUID()
  if (!structured) return uuid.setString(id)
  const bytes = Buffer.from(id.replaceAll("-", ""), "hex")
  const parts = new sharedPb.UUID.Structured()
  parts.setMostSignificantBits(bytes.readBigInt64BE(0).toString())
  parts.setLeastSignificantBits(bytes.readBigInt64BE(8).toString())
  return uuid.setStructured(parts)
}

const streamNameOf = (identifier: { getStreamName_asU8(): Uint8Array } | undefined): string =>
  identifier === undefined ? "" : fromUtf8.decode(identifier.getStreamName_asU8())

const toReadResp = (e: StandInEvent, structuredIds: boolean, fromAll: boolean): ReadResp => {
  const recorded = new streamsPb.ReadResp.ReadEvent.RecordedEvent()
  recorded.setId(uuidMessage(e.id, structuredIds))
  recorded.setStreamIdentifier(new sharedPb.StreamIdentifier().setStreamName(utf8.encode(e.stream)))
  recorded.setStreamRevision(String(e.revision))
  recorded.setCommitPosition(String(e.position))
  recorded.setPreparePosition(String(e.position))
  recorded.getMetadataMap().set("type", e.type)
  recorded.getMetadataMap().set("content-type", e.contentType)
  recorded.getMetadataMap().set("created", e.created.toString())
  recorded.setData(e.data)
  recorded.setCustomMetadata(e.metadata)
  const read = new streamsPb.ReadResp.ReadEvent().setEvent(recorded)
  if (fromAll) read.setCommitPosition(String(e.position))
  else read.setNoPosition(new sharedPb.Empty())
  return new streamsPb.ReadResp().setEvent(read)
}

/** The filter of a `$all` read, or an error status for one the server would refuse. */
const filterOf = (options: ReadReq.Options): Filter | grpc.ServiceError => {
  if (!options.hasFilter()) return () => true
  const filter = options.getFilter()
  const byStream = filter?.hasStreamIdentifier() ?? false
  const expression = byStream ? filter?.getStreamIdentifier() : filter?.getEventType()
  if (expression === undefined) return statusError(grpc.status.INVALID_ARGUMENT, "a filter needs a stream identifier or event type expression")
  const field = (e: StandInEvent) => (byStream ? e.stream : e.type)
  const regex = expression.getRegex()
  if (regex !== "") {
    try {
      const pattern = new RegExp(regex)
      return (e) => pattern.test(field(e))
    } catch {
      return statusError(grpc.status.INVALID_ARGUMENT, `invalid filter regex ${regex}`)
    }
  }
  const prefixes = expression.getPrefixList()
  return (e) => prefixes.some((p) => field(e).startsWith(p))
}

const countOf = (options: ReadReq.Options): number => {
  const n = Number(options.getCount())
  return Number.isFinite(n) && n >= 0 ? Math.min(n, Number.MAX_SAFE_INTEGER) : Number.MAX_SAFE_INTEGER
}

/** The position an `$all` read or subscription starts from: "start", "end" or a number. */
const allStart = (options: ReadReq.Options): "start" | "end" | number => {
  const all = options.getAll()
  if (all === undefined || all.hasStart()) return "start"
  if (all.hasEnd()) return "end"
  const position = all.getPosition()
  return position === undefined ? "start" : Number(position.getCommitPosition())
}

export const startEsdbStandIn = async (options: StandInOptions = {}): Promise<EsdbStandIn> => {
  const host = options.host ?? "127.0.0.1"
  const log = new StandInLog(options.systemEvents ?? true)
  let access: AccessRule = "allow"
  const denied = (kind: "read" | "write") =>
    access === "deny-all" || (kind === "write" && access === "deny-writes") || (kind === "read" && access === "deny-reads")

  /** Calls in flight, so that a drop can end the subscriptions that a closed socket does not. */
  const liveCalls = new Set<grpc.ServerWritableStream<ReadReq, ReadResp>>()
  let subscriptionsOpened = 0

  const read: IStreamsServer["read"] = (call) => {
    const options = call.request.getOptions()
    if (options === undefined) return call.emit("error", statusError(grpc.status.INVALID_ARGUMENT, "'options' is a required argument"))
    if (denied("read")) return call.emit("error", accessDenied())
    const structuredIds = options.getUuidOption()?.hasStructured() ?? false
    const backwards = options.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.BACKWARDS
    const send = (e: StandInEvent, fromAll: boolean) => call.write(toReadResp(e, structuredIds, fromAll))

    if (options.hasStream()) {
      const streamOptions = options.getStream()
      const stream = streamNameOf(streamOptions?.getStreamIdentifier())
      if (options.hasSubscription()) {
        return call.emit("error", statusError(grpc.status.UNIMPLEMENTED, "the stand-in implements subscriptions to $all only"))
      }
      const list = log.streams.get(stream)
      if (list === undefined) {
        const notFound = new streamsPb.ReadResp.StreamNotFound().setStreamIdentifier(new sharedPb.StreamIdentifier().setStreamName(utf8.encode(stream)))
        call.write(new streamsPb.ReadResp().setStreamNotFound(notFound))
        return call.end()
      }
      const count = countOf(options)
      const from = streamOptions?.hasRevision() ? Number(streamOptions.getRevision()) : streamOptions?.hasEnd() ? END : backwards ? END : 0
      const selected = backwards
        ? list.slice(0, Math.min(from, list.length - 1) + 1).reverse().slice(0, count)
        : streamOptions?.hasEnd() ? [] : list.slice(from, from + count)
      for (const e of selected) send(e, false)
      return call.end()
    }

    const filter = filterOf(options)
    if (typeof filter !== "function") return call.emit("error", filter)
    const start = allStart(options)

    if (!options.hasSubscription()) {
      const count = countOf(options)
      let sent = 0
      if (backwards) {
        const before = start === "start" ? 0 : start === "end" ? log.all.length : log.indexAtOrAfter(start)
        for (let i = before - 1; i >= 0 && sent < count; i--) {
          const e = log.all[i]
          if (e !== undefined && filter(e)) {
            send(e, true)
            sent++
          }
        }
      } else {
        const from = start === "start" ? 0 : start === "end" ? log.all.length : log.indexAtOrAfter(start)
        for (let i = from; i < log.all.length && sent < count; i++) {
          const e = log.all[i]
          if (e !== undefined && filter(e)) {
            send(e, true)
            sent++
          }
        }
      }
      return call.end()
    }

    // A catch-up subscription: confirmation, everything strictly after the start, caught-up, then live.
    // All of it happens in one turn of the event loop, and appends notify listeners synchronously, so no
    // event can fall between the catch-up and the live part.
    subscriptionsOpened++
    call.write(new streamsPb.ReadResp().setConfirmation(new streamsPb.ReadResp.SubscriptionConfirmation().setSubscriptionId(randomUUID())))
    const from = start === "start" ? 0 : start === "end" ? log.all.length : log.indexAtOrAfter(start + 1)
    let considered: StandInEvent | undefined
    for (let i = from; i < log.all.length; i++) {
      const e = log.all[i]
      if (e === undefined) continue
      considered = e
      if (filter(e)) send(e, true)
    }
    if (options.hasFilter() && considered !== undefined) {
      const checkpoint = new streamsPb.ReadResp.Checkpoint().setCommitPosition(String(considered.position)).setPreparePosition(String(considered.position))
      call.write(new streamsPb.ReadResp().setCheckpoint(checkpoint))
    }
    call.write(new streamsPb.ReadResp().setCaughtUp(new streamsPb.ReadResp.CaughtUp()))
    const listener: Listener = (batch) => {
      for (const e of batch) if (filter(e)) send(e, true)
    }
    log.listeners.add(listener)
    liveCalls.add(call)
    const stop = () => {
      log.listeners.delete(listener)
      liveCalls.delete(call)
    }
    call.on("cancelled", stop)
    call.on("close", stop)
    call.on("error", stop)
    return undefined
  }

  const append: IStreamsServer["append"] = (call, callback) => {
    const messages: Array<AppendReq> = []
    call.on("data", (m: AppendReq) => messages.push(m))
    call.on("error", () => undefined)
    call.on("end", () => {
      const [first, ...rest] = messages
      const options = first?.getOptions()
      if (options === undefined) return callback(statusError(grpc.status.INVALID_ARGUMENT, "the first append message must carry the options"))
      if (denied("write")) return callback(accessDenied())
      const stream = streamNameOf(options.getStreamIdentifier())
      if (stream === "") return callback(statusError(grpc.status.INVALID_ARGUMENT, "a stream name is required"))
      const proposed: Array<Omit<StandInEvent, "stream" | "revision" | "position" | "created">> = []
      for (const m of rest) {
        const p = m.getProposedMessage()
        const id = uuidText(p?.getId())
        const type = p?.getMetadataMap().get("type")
        const contentType = p?.getMetadataMap().get("content-type")
        if (p === undefined || id === undefined) return callback(statusError(grpc.status.INVALID_ARGUMENT, "each proposed message needs an id"))
        if (type === undefined || contentType === undefined) {
          return callback(
            statusError(grpc.status.INVALID_ARGUMENT, "Required Metadata Property 'type' is missing", {
              exception: "missing-required-metadata-property",
              "required-metadata-properties": "type,content-type"
            })
          )
        }
        proposed.push({ id, type, contentType, data: p.getData_asU8(), metadata: p.getCustomMetadata_asU8() })
      }

      const current = log.lastRevision(stream)
      const holds = options.hasAny()
        ? true
        : options.hasNoStream()
          ? current === -1
          : options.hasStreamExists()
            ? current >= 0
            : current === Number(options.getRevision())
      if (!holds) {
        const wrong = new streamsPb.AppendResp.WrongExpectedVersion()
        if (options.hasAny()) wrong.setExpectedAny(new sharedPb.Empty())
        else if (options.hasNoStream()) wrong.setExpectedNoStream(new sharedPb.Empty())
        else if (options.hasStreamExists()) wrong.setExpectedStreamExists(new sharedPb.Empty())
        else wrong.setExpectedRevision(options.getRevision())
        if (current === -1) wrong.setCurrentNoStream(new sharedPb.Empty())
        else wrong.setCurrentRevision(String(current))
        return callback(null, new streamsPb.AppendResp().setWrongExpectedVersion(wrong))
      }

      const written = log.write(stream, proposed)
      const success = new streamsPb.AppendResp.Success()
      const revision = log.lastRevision(stream)
      if (revision === -1) success.setNoStream(new sharedPb.Empty())
      else success.setCurrentRevision(String(revision))
      const last = written[written.length - 1]
      if (last === undefined) success.setNoPosition(new sharedPb.Empty())
      else success.setPosition(new streamsPb.AppendResp.Position().setCommitPosition(String(last.position)).setPreparePosition(String(last.position)))
      return callback(null, new streamsPb.AppendResp().setSuccess(success))
    })
  }

  const unimplemented = (what: string): grpc.ServiceError => statusError(grpc.status.UNIMPLEMENTED, `the stand-in does not implement ${what}`)

  const streamsImpl: IStreamsServer = {
    read,
    append,
    delete: (_call, callback) => callback(unimplemented("Streams.Delete")),
    tombstone: (_call, callback) => callback(unimplemented("Streams.Tombstone")),
    batchAppend: (call) => call.emit("error", unimplemented("Streams.BatchAppend"))
  }

  let port = options.port ?? 0

  const features = (): InstanceType<typeof featuresPb.SupportedMethods> => {
    const method = (service: string, name: string) => new featuresPb.SupportedMethod().setServiceName(service).setMethodName(name)
    return new featuresPb.SupportedMethods()
      .setEventStoreServerVersion(SERVER_VERSION)
      .setMethodsList([
        method("event_store.client.streams.streams", "read"),
        method("event_store.client.streams.streams", "append"),
        method("event_store.client.gossip.gossip", "read"),
        method("event_store.client.server_features.serverfeatures", "getsupportedmethods")
      ])
  }

  const instanceId = randomUUID()
  const gossip = (): InstanceType<typeof gossipPb.ClusterInfo> => {
    const member = new gossipPb.MemberInfo()
      .setInstanceId(uuidMessage(instanceId, false))
      .setTimeStamp((BigInt(Date.now()) * TICKS_PER_MS).toString())
      .setState(gossipPb.MemberInfo.VNodeState.LEADER)
      .setIsAlive(true)
      .setHttpEndPoint(new gossipPb.EndPoint().setAddress(host).setPort(port))
    return new gossipPb.ClusterInfo().setMembersList([member])
  }

  const listen = (): Promise<grpc.Server> =>
    new Promise((resolve, reject) => {
      const server = new grpc.Server()
      server.addService(streamsGrpc.StreamsService, streamsImpl)
      const featuresImpl: IServerFeaturesServer = { getSupportedMethods: (_call, callback) => callback(null, features()) }
      const gossipImpl: IGossipServer = { read: (_call, callback) => callback(null, gossip()) }
      server.addService(featuresGrpc.ServerFeaturesService, featuresImpl)
      server.addService(gossipGrpc.GossipService, gossipImpl)
      server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
        if (error !== null) {
          server.forceShutdown()
          reject(error)
        } else {
          port = bound
          resolve(server)
        }
      })
    })

  const endLiveCalls = () => {
    for (const call of [...liveCalls]) call.emit("error", statusError(grpc.status.UNAVAILABLE, "the stand-in dropped the connection"))
    liveCalls.clear()
  }

  let server = await listen()
  const url = `esdb://${host}:${port}?tls=false`

  return {
    host,
    get port() {
      return port
    },
    url,
    events: () => [...log.all],
    subscriptionsOpened: () => subscriptionsOpened,
    dropConnections: async ({ downForMs = 0 } = {}) => {
      endLiveCalls()
      server.forceShutdown()
      if (downForMs > 0) await new Promise((resolve) => setTimeout(resolve, downForMs))
      server = await listen()
    },
    denyAccess: (rule) => {
      access = rule
    },
    reset: () => {
      endLiveCalls()
      log.reset()
    },
    close: async () => {
      endLiveCalls()
      // Clients keep their connections open, so a graceful shutdown would wait for them for ever.
      server.forceShutdown()
    }
  }
}

/** The stand-in as a scoped resource: closed when the scope ends. */
export const esdbStandInScoped = (options: StandInOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startEsdbStandIn(options)),
    (standIn) => Effect.promise(() => standIn.close())
  )
