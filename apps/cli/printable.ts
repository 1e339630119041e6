/**
 * Text from a model, a tool or a file, made safe to print on a terminal: control characters (escape
 * sequences that move the cursor, erase lines, set the clipboard or the title) and bidirectional overrides
 * (which reorder what is shown) are printed as visible `\uXXXX` escapes. Newlines and tabs stay.
 */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export const printable = (text: string): string => text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

/**
 * `value` as indented JSON that is safe on a terminal and means the same: JSON.stringify escapes C0 controls
 * but leaves DEL, C1 controls (`\u009b` is a CSI on some terminals) and bidirectional overrides raw; they can
 * only occur inside strings, where `\uXXXX` is the same character to any JSON reader.
 */
export const printableJson = (value: unknown): string => printable(JSON.stringify(value, null, 2))
