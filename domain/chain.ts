/**
 * The chain rule: what bytes each event's hash covers, and what the first link of a stream points at.
 * Pure text assembly; the BLAKE3 function itself is supplied by infrastructure (domain has no crypto).
 *
 *   hash     = BLAKE3(EVENT_HASH_TAG || JCS({data, metadata, revision, stream, type}))
 *   genesis  = BLAKE3("astrid/genesis/" || stream)
 *
 * `metadata` is the envelope without `hash`. Because `data` and `metadata` are stored as the canonical
 * text that was hashed, the preimage is assembled from the stored text without re-encoding it.
 */

export const EVENT_HASH_TAG = "astrid/event/v1\n"
export const GENESIS_TAG = "astrid/genesis/"

/** A hex-encoded 32-byte BLAKE3 digest. */
export type HashHex = string

export const HASH_HEX_PATTERN = /^[0-9a-f]{64}$/

/** The exact text whose UTF-8 bytes are hashed for an event (tag included). */
export const eventPreimage = (
  stream: string,
  revision: number,
  type: string,
  dataText: string,
  metadataText: string
): string =>
  // Keys in JCS order (data < metadata < revision < stream < type). Stream and type names are
  // restricted to characters that JSON.stringify and JCS encode alike.
  `${EVENT_HASH_TAG}{"data":${dataText},"metadata":${metadataText},"revision":${revision},"stream":${JSON.stringify(stream)},"type":${JSON.stringify(type)}}`

/** The text whose BLAKE3 digest is the `prevHash` of a stream's revision 0. */
export const genesisPreimage = (stream: string): string => `${GENESIS_TAG}${stream}`

/** An event's recorded parts before chaining: type, canonical data text, and the metadata fields. */
export interface UnchainedEvent {
  readonly eventId: string
  readonly type: string
  readonly dataText: string
  /** Metadata without `prevHash` (added here) and without `hash`. */
  readonly metadata: Readonly<Record<string, string | number>>
}

/**
 * Links events onto a stream whose head is `head` (undefined for a new stream): each event's `prevHash`
 * is the previous event's hash, the first one's the stream head's (or the genesis hash).
 * `canonical` must be the JCS encoder and `hash` BLAKE3 over text.
 */
export const linkEvents = (
  stream: string,
  head: { readonly revision: number; readonly hash: string } | undefined,
  events: ReadonlyArray<UnchainedEvent>,
  canonical: (value: unknown) => string,
  hash: (text: string) => string
): Array<{ eventId: string; revision: number; type: string; data: string; metadata: string; hash: string }> => {
  let prevHash = head === undefined ? hash(genesisPreimage(stream)) : head.hash
  let revision = head === undefined ? 0 : head.revision + 1
  return events.map((e) => {
    const metadata = canonical({ ...e.metadata, prevHash })
    const eventHash = hash(eventPreimage(stream, revision, e.type, e.dataText, metadata))
    const chained = { eventId: e.eventId, revision, type: e.type, data: e.dataText, metadata, hash: eventHash }
    prevHash = eventHash
    revision++
    return chained
  })
}
