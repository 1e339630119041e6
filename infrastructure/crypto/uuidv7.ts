/** UUIDv7 (RFC 9562): 48-bit millisecond time, version 7, 74 random bits. */
import { Layer } from "effect"
import { randomBytes } from "node:crypto"
import { Ids } from "../../application/ports/ids.js"

// Random bytes come from a pool refilled 256 ids at a time: one getrandom call per id was a measurable
// share of an intercept.
let pool = Buffer.alloc(0)
let offset = 0
const random16 = (): Buffer => {
  if (offset + 16 > pool.length) {
    pool = randomBytes(16 * 256)
    offset = 0
  }
  const out = Buffer.from(pool.subarray(offset, offset + 16))
  offset += 16
  return out
}

export const uuidv7 = (nowMs: number): string => {
  const b = random16()
  const t = BigInt(nowMs)
  for (let i = 0; i < 6; i++) b[i] = Number((t >> BigInt(8 * (5 - i))) & 0xffn)
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x70
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80
  const h = b.toString("hex")
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

export const IdsLive = Layer.succeed(Ids, { uuidv7 })
