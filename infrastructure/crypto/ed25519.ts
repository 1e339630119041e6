/** ed25519 signing and verification for checkpoints and capability tokens (@noble/ed25519). */
import * as ed from "@noble/ed25519"
import { sha512 } from "@noble/hashes/sha2.js"

ed.hashes.sha512 = sha512

export const generateSecretKey = (): Uint8Array => ed.utils.randomSecretKey()
export const publicKeyOf = (secretKey: Uint8Array): Uint8Array => ed.getPublicKey(secretKey)
export const sign = (message: Uint8Array, secretKey: Uint8Array): Uint8Array => ed.sign(message, secretKey)

/** False for a wrong signature and for malformed input alike; never throws. */
export const verify = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean => {
  try {
    return ed.verify(signature, message, publicKey)
  } catch {
    return false
  }
}
