/** The runtime's signing key: the only thing in the process that can sign checkpoints and tokens. */
import { Context } from "effect"

export interface KeyRingApi {
  readonly keyId: string
  readonly publicKeyHex: string
  /** Hex ed25519 signature over the UTF-8 bytes of `text`. */
  readonly signText: (text: string) => string
}

export class KeyRing extends Context.Tag("astrid/KeyRing")<KeyRing, KeyRingApi>() {}
