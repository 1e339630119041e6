/** The Crypto port backed by hash-wasm BLAKE3 and @noble/ed25519. */
import { Effect, Layer } from "effect"
import { Crypto, type CryptoApi } from "../../application/ports/crypto.js"
import { loadBlake3 } from "./blake3.js"
import { verify } from "./ed25519.js"
import { fromHex } from "./hex.js"

const encoder = new TextEncoder()

export const makeCrypto = async (): Promise<CryptoApi> => {
  const blake3 = await loadBlake3()
  return {
    blake3Hex: blake3.hexOfText,
    verifyText: (signatureHex, text, publicKeyHex) => {
      const signature = fromHex(signatureHex)
      const publicKey = fromHex(publicKeyHex)
      if (signature?.length !== 64 || publicKey?.length !== 32) return false
      return verify(signature, encoder.encode(text), publicKey)
    }
  }
}

export const CryptoLive = Layer.effect(Crypto, Effect.promise(makeCrypto))
