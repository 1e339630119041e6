/**
 * The log verifier. Two passes, both linear: first the checkpoint stream (signatures, Merkle roots,
 * the checkpoint chain, and the stream heads each checkpoint pins), then every event in global order
 * (hash, link, genesis, revision continuity, and the pinned heads). Trusts only the keys it is given.
 *
 * Each problem is reported once, at the stream and revision where it is found.
 */
import { Either, Schema } from "effect"
import { eventPreimage, genesisPreimage } from "../../domain/chain.js"
import { checkpointSigningText, merkleRoot } from "../../domain/checkpoint.js"
import type { RecordedEvent } from "../../domain/envelope.js"
import { CheckpointSigned } from "../../domain/events/auditEvents.js"
import { CHECKPOINT_STREAM } from "../../domain/streams.js"

export type IssueKind =
  | "hash_mismatch"
  | "broken_link"
  | "bad_genesis"
  | "revision_gap"
  | "bad_signature"
  | "untrusted_key"
  | "truncated_stream"
  | "missing_stream"
  | "checkpoint_mismatch"
  | "malformed_event"

export interface Issue {
  readonly kind: IssueKind
  readonly stream: string
  readonly revision: number | null
  readonly detail: string
}

export interface VerifyReport {
  readonly ok: boolean
  readonly streams: number
  readonly events: number
  readonly checkpoints: number
  readonly issues: ReadonlyArray<Issue>
  /** Issues found beyond the reporting cap. */
  readonly issuesOmitted: number
  /** Events not yet covered by any checkpoint (a tail that could still be cut without a trace). */
  readonly uncheckpointedEvents: number
  readonly lastCheckpoint: { readonly revision: number; readonly hash: string; readonly signedAt: string; readonly keyId: string } | null
}

export interface VerifierOptions {
  /** keyId -> hex public key. Only these keys are trusted; keys in the data never are. */
  readonly trustedKeys: ReadonlyMap<string, string>
  /** Restrict checks to these streams (the checkpoint stream is always checked). */
  readonly streams?: ReadonlySet<string>
  readonly blake3Hex: (text: string) => string
  readonly verifyText: (signatureHex: string, text: string, publicKeyHex: string) => boolean
  readonly maxIssues?: number
}

interface StreamState {
  lastRevision: number
  lastHash: string
  count: number
}

interface Pin {
  readonly hash: string
  readonly checkpointRevision: number
}

const decodeCheckpoint = Schema.decodeUnknownEither(Schema.Struct(CheckpointSigned.fields).pipe(Schema.omit("_tag")))

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

export class LogVerifier {
  private readonly issues: Array<Issue> = []
  private omitted = 0
  private readonly states = new Map<string, StreamState>()
  /** stream -> revision -> what a checkpoint says the hash there is. */
  private readonly pins = new Map<string, Map<number, Pin>>()
  private events = 0
  private checkpoints = 0
  private checkpointPass: { lastRevision: number; lastHash: string | null; lastPosition: number } = {
    lastRevision: -1,
    lastHash: null,
    lastPosition: 0
  }
  private lastCheckpoint: VerifyReport["lastCheckpoint"] = null
  private coveredPosition = 0
  private uncheckpointed = 0
  private readonly maxIssues: number

  constructor(private readonly options: VerifierOptions) {
    this.maxIssues = options.maxIssues ?? 10_000
  }

  private report(kind: IssueKind, stream: string, revision: number | null, detail: string): void {
    if (this.issues.length < this.maxIssues) this.issues.push({ kind, stream, revision, detail })
    else this.omitted++
  }

  private inScope(stream: string): boolean {
    return stream === CHECKPOINT_STREAM || this.options.streams === undefined || this.options.streams.has(stream)
  }

  /** Pass 1: one checkpoint event, in revision order. */
  addCheckpoint(e: RecordedEvent): void {
    this.checkpoints++
    const where = (detail: string): string => `checkpoint ${CHECKPOINT_STREAM}@${e.revision}: ${detail}`
    const pass = this.checkpointPass
    // The checkpoint chain follows stored hashes, so the next checkpoint's link is checked even when this body is unreadable.
    this.checkpointPass = { lastRevision: e.revision, lastHash: e.hash, lastPosition: pass.lastPosition }
    let raw: unknown
    try {
      raw = JSON.parse(e.data)
    } catch {
      this.report("checkpoint_mismatch", CHECKPOINT_STREAM, e.revision, where("data is not JSON"))
      return
    }
    const decoded = decodeCheckpoint(raw)
    if (e.type !== "CheckpointSigned" || Either.isLeft(decoded) || !isRecord(raw)) {
      this.report("checkpoint_mismatch", CHECKPOINT_STREAM, e.revision, where(`not a well-formed CheckpointSigned event (type ${e.type})`))
      return
    }
    const body = decoded.right
    const { signature: _signature, ...signed } = raw
    let signingText: string
    let root: string
    try {
      signingText = checkpointSigningText(signed)
      root = merkleRoot(body.heads, this.options.blake3Hex)
    } catch {
      this.report("checkpoint_mismatch", CHECKPOINT_STREAM, e.revision, where("body has no canonical JSON form (e.g. a lone surrogate)"))
      return
    }
    const publicKey = this.options.trustedKeys.get(body.keyId)
    let signatureHolds = false
    if (publicKey === undefined) {
      this.report("untrusted_key", CHECKPOINT_STREAM, e.revision, where(`signed by ${body.keyId}, which is not a trusted key`))
    } else if (!this.options.verifyText(body.signature, signingText, publicKey)) {
      this.report("bad_signature", CHECKPOINT_STREAM, e.revision, where(`signature does not verify under ${body.keyId}`))
    } else {
      signatureHolds = true
    }
    if (root !== body.merkleRoot) {
      this.report("checkpoint_mismatch", CHECKPOINT_STREAM, e.revision, where(`Merkle root ${body.merkleRoot.slice(0, 12)}… does not match its heads (${root.slice(0, 12)}…)`))
    }
    if (e.revision === pass.lastRevision + 1 && body.prevCheckpointHash !== pass.lastHash) {
      this.report(
        "checkpoint_mismatch",
        CHECKPOINT_STREAM,
        e.revision,
        where(`names ${String(body.prevCheckpointHash)} as the previous checkpoint, but that is ${String(pass.lastHash)}`)
      )
    }
    if (body.globalPosition < pass.lastPosition) {
      this.report("checkpoint_mismatch", CHECKPOINT_STREAM, e.revision, where(`covers position ${body.globalPosition}, behind its predecessor's ${pass.lastPosition}`))
    }
    this.lastCheckpoint = { revision: e.revision, hash: e.hash, signedAt: body.signedAt, keyId: body.keyId }
    // What a checkpoint says about other streams counts only under a trusted signature: anyone who can write the
    // store can write a body, and an unsigned claim must not be reported against streams that are intact.
    if (!signatureHolds) return
    this.checkpointPass = { lastRevision: e.revision, lastHash: e.hash, lastPosition: Math.max(pass.lastPosition, body.globalPosition) }
    // globalPosition is in the signing store's numbering; in a copied history the checkpoint's own position
    // (see checkpointer.ts) is the bound that holds here.
    this.coveredPosition = Math.max(this.coveredPosition, Math.min(body.globalPosition, e.position))
    for (const head of body.heads) {
      if (!this.inScope(head.stream)) continue
      let byRevision = this.pins.get(head.stream)
      if (byRevision === undefined) this.pins.set(head.stream, (byRevision = new Map()))
      byRevision.set(head.revision, { hash: head.hash, checkpointRevision: e.revision })
    }
  }

  /** Pass 2: every event, in global order. */
  push(e: RecordedEvent): void {
    const stream = e.stream
    if (!this.inScope(stream)) return
    this.events++
    // Checkpoints cover other streams; the checkpoint stream's own tail is what exported bundles pin.
    if (e.position > this.coveredPosition && stream !== CHECKPOINT_STREAM) this.uncheckpointed++
    const computed = this.options.blake3Hex(eventPreimage(stream, e.revision, e.type, e.data, e.metadata))
    let state = this.states.get(stream)
    const expectedRevision = state === undefined ? 0 : state.lastRevision + 1
    if (computed !== e.hash) {
      this.report("hash_mismatch", stream, e.revision, `stored hash ${e.hash.slice(0, 12)}… but the event hashes to ${computed.slice(0, 12)}…`)
    } else if (e.revision !== expectedRevision) {
      this.report(
        "revision_gap",
        stream,
        e.revision > expectedRevision ? expectedRevision : e.revision,
        e.revision > expectedRevision
          ? `revisions ${expectedRevision}..${e.revision - 1} are missing (next present: ${e.revision})`
          : `revision ${e.revision} appears again after revision ${expectedRevision - 1}`
      )
    } else {
      const prevHash = readPrevHash(e.metadata)
      if (prevHash === undefined) {
        this.report("malformed_event", stream, e.revision, "metadata has no prevHash")
      } else if (e.revision === 0) {
        const genesis = this.options.blake3Hex(genesisPreimage(stream))
        if (prevHash !== genesis) this.report("bad_genesis", stream, 0, `prevHash of revision 0 is not the genesis hash of ${stream}`)
      } else if (state !== undefined && prevHash !== state.lastHash) {
        this.report("broken_link", stream, e.revision, `prevHash ${prevHash.slice(0, 12)}… does not match revision ${state.lastRevision} (${state.lastHash.slice(0, 12)}…)`)
      }
    }
    const pin = this.pins.get(stream)?.get(e.revision)
    if (pin !== undefined && pin.hash !== e.hash) {
      this.report(
        "checkpoint_mismatch",
        stream,
        e.revision,
        `checkpoint ${CHECKPOINT_STREAM}@${pin.checkpointRevision} recorded hash ${pin.hash.slice(0, 12)}… here, the store has ${e.hash.slice(0, 12)}…`
      )
    }
    if (state === undefined) {
      state = { lastRevision: e.revision, lastHash: e.hash, count: 1 }
      this.states.set(stream, state)
    } else {
      state.lastRevision = Math.max(state.lastRevision, e.revision)
      if (state.lastRevision === e.revision) state.lastHash = e.hash
      state.count++
    }
  }

  finish(): VerifyReport {
    for (const [stream, byRevision] of this.pins) {
      const state = this.states.get(stream)
      let highest: [number, Pin] | undefined
      for (const entry of byRevision) if (highest === undefined || entry[0] > highest[0]) highest = entry
      if (highest === undefined) continue
      const [revision, pin] = highest
      if (state === undefined) {
        this.report("missing_stream", stream, null, `checkpoint ${CHECKPOINT_STREAM}@${pin.checkpointRevision} recorded this stream at revision ${revision}, but it is not in the store`)
      } else if (state.lastRevision < revision) {
        this.report(
          "truncated_stream",
          stream,
          state.lastRevision + 1,
          `checkpoint ${CHECKPOINT_STREAM}@${pin.checkpointRevision} recorded revision ${revision}, but the stream ends at ${state.lastRevision}`
        )
      }
    }
    return {
      ok: this.issues.length === 0 && this.omitted === 0,
      streams: this.states.size,
      events: this.events,
      checkpoints: this.checkpoints,
      issues: this.issues,
      issuesOmitted: this.omitted,
      uncheckpointedEvents: this.uncheckpointed,
      lastCheckpoint: this.lastCheckpoint
    }
  }
}

/** The `prevHash` of canonical metadata text, or undefined when it is not there or not a string. */
const readPrevHash = (metadata: string): string | undefined => {
  try {
    const parsed: unknown = JSON.parse(metadata)
    if (!isRecord(parsed)) return undefined
    const value = parsed["prevHash"]
    return typeof value === "string" ? value : undefined
  } catch {
    return undefined
  }
}
