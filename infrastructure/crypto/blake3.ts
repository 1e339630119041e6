/**
 * BLAKE3, the one hashing module. hash-wasm (WebAssembly) does the work because it is about 17 times
 * faster than the pure-JS @noble/hashes here; known-answer tests hold both to the same digests.
 */
import { createBLAKE3, type IHasher } from "hash-wasm"

export interface Blake3 {
  /** Hex digest of the UTF-8 bytes of `text`. */
  readonly hexOfText: (text: string) => string
  /** Raw 32-byte digest of `bytes`. */
  readonly bytesOf: (bytes: Uint8Array) => Uint8Array
}

let instance: Promise<Blake3> | undefined

const wrap = (hasher: IHasher): Blake3 => ({
  hexOfText: (text) => {
    hasher.init()
    hasher.update(text)
    return hasher.digest("hex")
  },
  bytesOf: (bytes) => {
    hasher.init()
    hasher.update(bytes)
    return hasher.digest("binary")
  }
})

/** The process-wide hasher; initialised once (the WebAssembly module is compiled on first use). */
export const loadBlake3 = (): Promise<Blake3> => {
  instance ??= createBLAKE3().then(wrap)
  return instance
}
