/**
 * The runtime key on disk, under $ASTRID_HOME/keys/:
 *   runtime.key            JSON {algorithm, keyId, publicKey, secretKey, createdAt}, mode 0600
 *   runtime.pub            the public key, hex, one line
 *   retired/<keyId>.pub    public keys rotated out by `keys generate --force`; still trusted locally,
 *                          so checkpoints they signed keep verifying
 */
import { Data, Effect, Either, Schema } from "effect"
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { keyIdFromDigest } from "../../domain/checkpoint.js"
import { KeyId, PublicKeyHex } from "../../domain/events/auditEvents.js"
import type { KeyRingApi } from "../../application/ports/keyRing.js"
import { loadBlake3 } from "../crypto/blake3.js"
import { generateSecretKey, publicKeyOf, sign } from "../crypto/ed25519.js"
import { fromHex, toHex } from "../crypto/hex.js"
import { messageOf } from "../../domain/errorMessage.js"

export class KeyFileError extends Data.TaggedError("KeyFileError")<{
  readonly kind: "missing" | "exists" | "unreadable" | "malformed" | "io"
  readonly message: string
}> {}

const KeyFile = Schema.Struct({
  algorithm: Schema.Literal("ed25519"),
  keyId: KeyId,
  publicKey: PublicKeyHex,
  secretKey: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
  createdAt: Schema.String
})
type KeyFile = typeof KeyFile.Type
const decodeKeyFile = Schema.decodeUnknownEither(Schema.parseJson(KeyFile))

export const keysDir = (home: string): string => join(home, "keys")
export const secretKeyPath = (home: string): string => join(keysDir(home), "runtime.key")
const publicKeyPath = (home: string): string => join(keysDir(home), "runtime.pub")
const retiredDir = (home: string): string => join(keysDir(home), "retired")

/** "ed25519:" + the first 16 hex digits of BLAKE3 over the 32 public key bytes. */
export const keyIdOf = async (publicKey: Uint8Array): Promise<string> => {
  const blake3 = await loadBlake3()
  return keyIdFromDigest(toHex(blake3.bytesOf(publicKey)))
}

export interface PublicKeyInfo {
  readonly keyId: string
  readonly publicKey: string
}

export interface GeneratedKey extends PublicKeyInfo {
  readonly path: string
  readonly replaced: string | null
}


const readKeyFile = (home: string): Effect.Effect<KeyFile, KeyFileError> =>
  Effect.gen(function* () {
    const path = secretKeyPath(home)
    if (!existsSync(path)) {
      return yield* Effect.fail(new KeyFileError({ kind: "missing", message: `no runtime key at ${path}; run 'astrid keys generate'` }))
    }
    const text = yield* Effect.try({
      try: () => readFileSync(path, "utf8"),
      catch: (e) => new KeyFileError({ kind: "unreadable", message: `cannot read the runtime key ${path} (${messageOf(e)}); check its owner and permissions` })
    })
    const decoded = decodeKeyFile(text)
    if (Either.isLeft(decoded)) {
      return yield* Effect.fail(
        new KeyFileError({ kind: "malformed", message: `the runtime key ${path} is malformed; restore it from a backup or run 'astrid keys generate --force'` })
      )
    }
    const file = decoded.right
    const secret = fromHex(file.secretKey)
    const derived = secret === undefined ? undefined : toHex(publicKeyOf(secret))
    if (derived !== file.publicKey || (yield* Effect.promise(() => keyIdOf(fromHex(file.publicKey) ?? new Uint8Array()))) !== file.keyId) {
      return yield* Effect.fail(
        new KeyFileError({ kind: "malformed", message: `the runtime key ${path} does not match its public key or key id; restore it from a backup` })
      )
    }
    return file
  })

/** The public half of the runtime key. */
export const loadPublicKey = (home: string): Effect.Effect<PublicKeyInfo, KeyFileError> =>
  readKeyFile(home).pipe(Effect.map((f) => ({ keyId: f.keyId, publicKey: f.publicKey })))

/** The runtime key as a signer. */
export const loadKeyRing = (home: string): Effect.Effect<KeyRingApi, KeyFileError> =>
  readKeyFile(home).pipe(
    Effect.map((f) => {
      const secret = fromHex(f.secretKey) ?? new Uint8Array(32)
      const encoder = new TextEncoder()
      return { keyId: f.keyId, publicKeyHex: f.publicKey, signText: (text: string) => toHex(sign(encoder.encode(text), secret)) }
    })
  )

/** Writes a new runtime key; refuses to replace one unless `force`, and then keeps the old public key. */
export const generateKey = (home: string, force: boolean, nowMs: number): Effect.Effect<GeneratedKey, KeyFileError> =>
  Effect.gen(function* () {
    const path = secretKeyPath(home)
    let replaced: string | null = null
    if (existsSync(path)) {
      if (!force) {
        return yield* Effect.fail(
          new KeyFileError({ kind: "exists", message: `a runtime key already exists at ${path}; pass --force to replace it (its public key stays trusted for old checkpoints)` })
        )
      }
      const old = yield* Effect.either(loadPublicKey(home))
      if (Either.isRight(old)) replaced = old.right.keyId
      yield* Effect.try({
        try: () => {
          if (Either.isRight(old)) {
            mkdirSync(retiredDir(home), { recursive: true, mode: 0o700 })
            writeFileSync(join(retiredDir(home), `${old.right.keyId.replace(":", "-")}.pub`), `${old.right.publicKey}\n`)
          }
        },
        catch: (e) => new KeyFileError({ kind: "io", message: `cannot retire the old key: ${messageOf(e)}` })
      })
    }
    const secret = generateSecretKey()
    const publicKey = publicKeyOf(secret)
    const keyId = yield* Effect.promise(() => keyIdOf(publicKey))
    const file: KeyFile = {
      algorithm: "ed25519",
      keyId,
      publicKey: toHex(publicKey),
      secretKey: toHex(secret),
      createdAt: new Date(nowMs).toISOString()
    }
    yield* Effect.try({
      try: () => {
        mkdirSync(keysDir(home), { recursive: true, mode: 0o700 })
        // Written beside, then renamed: a crash never leaves a half-written key in place.
        const temp = `${path}.tmp-${process.pid}`
        writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
        chmodSync(temp, 0o600)
        renameSync(temp, path)
        writeFileSync(publicKeyPath(home), `${file.publicKey}\n`, { mode: 0o644 })
      },
      catch: (e) => new KeyFileError({ kind: "io", message: `cannot write the runtime key under ${keysDir(home)}: ${messageOf(e)}` })
    })
    return { keyId, publicKey: file.publicKey, path, replaced }
  })

/** keyId -> public key for a hex public key; undefined when the text is not a 32-byte hex key. */
export const trustedKeyEntry = async (publicKeyHex: string): Promise<[string, string] | undefined> => {
  const hex = publicKeyHex.trim().toLowerCase()
  const bytes = fromHex(hex)
  if (bytes?.length !== 32) return undefined
  return [await keyIdOf(bytes), hex]
}

/** The keys trusted by default: the current runtime key and every retired one. */
export const localTrustedKeys = (home: string): Effect.Effect<Map<string, string>, KeyFileError> =>
  Effect.gen(function* () {
    const trusted = new Map<string, string>()
    const current = yield* Effect.either(loadPublicKey(home))
    if (Either.isRight(current)) trusted.set(current.right.keyId, current.right.publicKey)
    else if (current.left.kind !== "missing") return yield* Effect.fail(current.left)
    const dir = retiredDir(home)
    if (existsSync(dir) && statSync(dir).isDirectory()) {
      for (const name of readdirSync(dir)) {
        if (!name.endsWith(".pub")) continue
        const text = readFileSync(join(dir, name), "utf8")
        const entry = yield* Effect.promise(() => trustedKeyEntry(text))
        if (entry !== undefined) trusted.set(entry[0], entry[1])
      }
    }
    return trusted
  })
