/**
 * The crypto primitives the application needs: BLAKE3 over text, and ed25519 verification.
 * Supplied by infrastructure so that domain and application stay free of crypto libraries.
 */
import { Context } from "effect"

export interface CryptoApi {
  /** Hex BLAKE3 digest of the UTF-8 bytes of `text`. */
  readonly blake3Hex: (text: string) => string
  /** Verifies a hex ed25519 signature over the UTF-8 bytes of `text`; false on any malformed input. */
  readonly verifyText: (signatureHex: string, text: string, publicKeyHex: string) => boolean
}

export class Crypto extends Context.Tag("astrid/Crypto")<Crypto, CryptoApi>() {}
