/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one text form of a JSON value that Astrid hashes
 * and signs, so that any outside verifier can recompute the same bytes from the same value.
 */

/** A value that JCS can encode: JSON's own data model, with finite numbers only. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | ReadonlyArray<JsonValue>
  | { readonly [key: string]: JsonValue }

/** Raised for values outside JSON's data model (NaN, Infinity, undefined, lone surrogates, cycles...). */
export class CanonicalJsonError extends Error {
  readonly _tag = "CanonicalJsonError"
  constructor(readonly path: string, readonly reason: string) {
    super(`cannot canonicalize the value at ${path}: ${reason}`)
  }
}

const ANY_SURROGATE = /[\uD800-\uDFFF]/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const encodeString = (value: string, path: () => string): string => {
  // The cheap test first: most strings hold no surrogate at all.
  if (ANY_SURROGATE.test(value) && LONE_SURROGATE.test(value)) throw new CanonicalJsonError(path(), "string holds a lone UTF-16 surrogate")
  // JSON.stringify escapes exactly what JCS requires (", \, and U+0000..U+001F, with the short forms
  // \b \t \n \f \r) and leaves every other character as it is.
  return JSON.stringify(value)
}

const encodeNumber = (value: number, path: () => string): string => {
  if (!Number.isFinite(value)) throw new CanonicalJsonError(path(), `number ${String(value)} is not finite`)
  // ECMAScript Number::toString is the number form JCS prescribes; -0 serializes as 0.
  return JSON.stringify(value)
}

// Deeper than this is treated as a cycle: cheaper than tracking every object on the path, and no
// event Astrid writes comes near it.
const MAX_DEPTH = 512

const encode = (value: unknown, path: () => string, depth: number): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false"
    case "number":
      return encodeNumber(value, path)
    case "string":
      return encodeString(value, path)
    case "object": {
      if (depth > MAX_DEPTH) throw new CanonicalJsonError(path(), `value is nested deeper than ${MAX_DEPTH} levels (or cyclic)`)
      if (Array.isArray(value)) {
        let out = "["
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ","
          out += encode(value[i], () => `${path()}[${i}]`, depth + 1)
        }
        return `${out}]`
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError(path(), "only plain objects and arrays can be encoded")
      }
      const record = value as Record<string, unknown>
      // Keys sorted by UTF-16 code units, which is what the default string comparison does.
      const keys = Object.keys(record).sort()
      let out = "{"
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i] as string
        const member = record[key]
        if (member === undefined) throw new CanonicalJsonError(`${path()}.${key}`, "value is undefined")
        if (i > 0) out += ","
        out += `${encodeString(key, path)}:${encode(member, () => `${path()}.${key}`, depth + 1)}`
      }
      return `${out}}`
    }
    default:
      throw new CanonicalJsonError(path(), `a ${typeof value} is not JSON`)
  }
}

/** The canonical (RFC 8785) text of a JSON value. Throws CanonicalJsonError for non-JSON input. */
export const canonicalize = (value: unknown): string => encode(value, () => "$", 0)

/** True when `text` is already the canonical form of the JSON it holds. */
export const isCanonical = (text: string): boolean => {
  try {
    return canonicalize(JSON.parse(text)) === text
  } catch {
    return false
  }
}
