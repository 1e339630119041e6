/**
 * Markdown for the terminal, as the model streams it. Text is cut into blocks (paragraphs, lists, fenced
 * code) and each block is rendered once it is complete, so headings, emphasis and highlighted code
 * appear while the model is still writing the rest. Off a terminal (pipes, --print into a file) the text
 * is passed through untouched and immediately.
 */
import { Marked, type Tokens } from "marked"
import { markedTerminal } from "marked-terminal"

let shared: Marked | undefined

/** A Marked instance rendering to ANSI; list items get their inline markup rendered too (a marked-terminal gap). */
const terminalMarked = (width: number): Marked => {
  if (shared !== undefined) return shared
  const m = new Marked()
  m.use(markedTerminal({ reflowText: false, width, tab: 2 }) as never)
  m.use({
    renderer: {
      text(token: Tokens.Text | Tokens.Escape) {
        return "tokens" in token && token.tokens !== undefined ? this.parser.parseInline(token.tokens) : false
      }
    }
  })
  shared = m
  return m
}

/** Renders one complete markdown text for the terminal. */
export const renderMarkdown = (text: string, width = 100): string => {
  const out = terminalMarked(width).parse(text, { async: false })
  return typeof out === "string" ? out.replace(/\n+$/, "\n") : text
}

const FENCE = /^\s{0,3}(```|~~~)/

export interface MarkdownStream {
  /** Feeds a piece of the text; returns what can be printed now. */
  readonly push: (delta: string) => string
  /** The rest, at the end of a model step. */
  readonly flush: () => string
}

/**
 * `rich`: render blocks as they complete; otherwise pass text through as it comes. A block ends at a blank
 * line outside a code fence, or where a fence closes.
 */
export const makeMarkdownStream = (rich: boolean, width = 100): MarkdownStream => {
  if (!rich) return { push: (d) => d, flush: () => "" }
  let pending = ""
  let block: Array<string> = []
  let inFence = false
  const emit = (): string => {
    const text = block.join("\n")
    block = []
    return text.trim() === "" ? "" : `${renderMarkdown(text, width)}\n`
  }
  return {
    push: (delta) => {
      pending += delta
      let out = ""
      for (;;) {
        const nl = pending.indexOf("\n")
        if (nl < 0) break
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (FENCE.test(line)) {
          block.push(line)
          if (inFence) {
            inFence = false
            out += emit()
          } else {
            inFence = true
          }
          continue
        }
        if (!inFence && line.trim() === "") {
          out += emit()
          continue
        }
        block.push(line)
      }
      return out
    },
    flush: () => {
      if (pending !== "") block.push(pending)
      pending = ""
      inFence = false
      return emit()
    }
  }
}
