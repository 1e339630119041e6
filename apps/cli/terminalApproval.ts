/**
 * The ApprovalChannel of a person at a terminal: the action, its resource, its risk and why a human is
 * asked, then one key: [o] Allow Once, [s] Allow Session, [w] Allow Workspace, [a] Allow Always, [d] Deny.
 *
 * Fails closed: Escape or Ctrl-C at the prompt is a Deny with that reason (never an allow); a prompt left
 * unanswered until the interceptor's approval timeout is aborted, and the interceptor defers the action.
 * A stream that is not a terminal cannot be asked; the channel then reports itself unavailable, which
 * defers the action to the queue.
 *
 * Keys typed before the prompt was on screen never answer it: a person typing their next message while the
 * model works would otherwise approve an action with whatever letter came next. Everything already waiting
 * (in the kernel's line buffer, which raw mode releases, and in the stream's own buffer) and everything that
 * arrives in the first moments after the prompt is drawn is dropped, and so is every key of a burst of
 * typing that runs on into the prompt, until the keyboard has been quiet for a moment. Only Ctrl-C gets
 * through early: it denies, and a Deny is always safe.
 */
import { Effect } from "effect"
import { PassThrough } from "node:stream"
import type { ApprovalAnswer, ApprovalChannelApi, ApprovalPrompt, ApprovalReply } from "../../application/ports/approvalChannel.js"
import { ApprovalUnavailable } from "../../application/ports/approvalChannel.js"
import { printable } from "./printable.js"

export interface TerminalIo {
  readonly input: NodeJS.ReadableStream
  readonly output: NodeJS.WritableStream
}

type Key = "o" | "s" | "w" | "a" | "d"

const ANSWERS: Record<Exclude<Key, "d">, ApprovalAnswer> = {
  o: { _tag: "AllowOnce" },
  s: { _tag: "AllowSession" },
  w: { _tag: "AllowWorkspace" },
  a: { _tag: "AllowAlways" }
}

const RISK_COLOUR: Record<ApprovalPrompt["risk"], string> = { low: "32", medium: "33", high: "31", critical: "1;31" }

const isTerminal = (s: NodeJS.ReadableStream | NodeJS.WritableStream): boolean => (s as { isTTY?: boolean }).isTTY === true

const ALL_OPTIONS: ReadonlyArray<{ readonly value: Key; readonly scope: string | null; readonly label: string; readonly hint?: string }> = [
  { value: "o", scope: "once", label: "Allow Once" },
  { value: "s", scope: "session", label: "Allow Session", hint: "this action for the rest of the session" },
  { value: "w", scope: "workspace", label: "Allow Workspace", hint: "this action in this workspace, every session" },
  { value: "a", scope: "always", label: "Allow Always", hint: "a signed 1 h capability token" },
  { value: "d", scope: null, label: "Deny" }
]

// For a command, every standing grant is for the exact line shown, never for its program (I9).
const COMMAND_HINTS: Readonly<Partial<Record<Key, string>>> = {
  s: "this exact command line for the rest of the session",
  w: "this exact command line in this workspace, every session",
  a: "a signed 1 h capability token for this exact command line"
}

/** The keys this action may be answered with: the offered scopes (all four when the prompt does not say) and Deny. */
const optionsFor = (prompt: ApprovalPrompt): Array<{ value: Key; label: string; hint?: string }> =>
  ALL_OPTIONS.filter((o) => o.scope === null || prompt.offered === undefined || (prompt.offered as ReadonlyArray<string>).includes(o.scope)).map((o) => {
    const hint = (prompt.kind === "command_exec" ? COMMAND_HINTS[o.value] : undefined) ?? o.hint
    return hint === undefined ? { value: o.value, label: o.label } : { value: o.value, label: o.label, hint }
  })

/** After the prompt is drawn, keys are dropped for this long: no one reads a prompt and answers it faster. */
export const TYPE_AHEAD_SETTLE_MS = 100
/** A dropped key keeps the prompt deaf until the keyboard has been quiet this long (typing that runs on). */
export const TYPE_AHEAD_QUIET_MS = 300

const CTRL_C = 0x03

/** The input the prompt reads: the terminal's, with what was typed ahead of it left out. */
interface GuardedInput {
  readonly stream: PassThrough
  readonly close: () => void
}

/**
 * Reads `input` from now on and passes on only what arrives once the prompt has been up for
 * TYPE_AHEAD_SETTLE_MS and the keyboard was quiet for TYPE_AHEAD_QUIET_MS before it. On a terminal, raw mode
 * is set first, so a line typed but not yet entered is released from the kernel and dropped with the rest.
 */
const guardInput = (input: NodeJS.ReadableStream, now: () => number): GuardedInput => {
  const tty = input as Partial<NodeJS.ReadStream>
  const setRaw = tty.isTTY === true && typeof tty.setRawMode === "function" ? (mode: boolean) => tty.setRawMode?.(mode) : null
  const wasRaw = tty.isRaw === true
  setRaw?.(true)
  const gate = new PassThrough()
  // The prompt sets raw mode on what it reads: that must reach the terminal.
  Object.assign(gate, {
    isTTY: setRaw !== null,
    setRawMode: (mode: boolean) => {
      setRaw?.(mode)
      return gate
    }
  })
  let opensAt = now() + TYPE_AHEAD_SETTLE_MS
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk
    const at = now()
    if (at >= opensAt) {
      gate.write(bytes)
      return
    }
    opensAt = Math.max(opensAt, at + TYPE_AHEAD_QUIET_MS)
    if (bytes.includes(CTRL_C)) gate.write(Buffer.from([CTRL_C]))
  }
  input.on("data", onData)
  input.resume()
  return {
    stream: gate,
    close: () => {
      input.off("data", onData)
      input.pause()
      setRaw?.(wasRaw)
      gate.end()
    }
  }
}

/** The text shown above the keys; exported so the tests and the docs show the same thing. */
export const describePrompt = (prompt: ApprovalPrompt, colour: boolean): string => {
  const risk = colour ? `\u001b[${RISK_COLOUR[prompt.risk]}m${prompt.risk}\u001b[0m` : prompt.risk
  // Every field may carry text the model chose (a path, a command): printed so that it cannot move the
  // cursor or rewrite the lines above to make one action look like another.
  return [
    `Approve ${printable(prompt.kind)}? ${printable(prompt.summary)}`,
    `  resource: ${printable(prompt.resource)}`,
    `  risk:     ${risk}`,
    `  why:      ${printable(prompt.reason)}`,
    "  (keys typed before this prompt appeared are ignored)"
  ].join("\n")
}

/**
 * `requireTerminal` (default true) refuses to ask over streams that are not terminals; tests that drive
 * the prompt through in-memory streams turn it off.
 */
export const makeTerminalApprovalChannel = (io: TerminalIo, options: { readonly requireTerminal?: boolean; readonly approver?: string } = {}): ApprovalChannelApi => {
  const requireTerminal = options.requireTerminal ?? true
  const approver = options.approver ?? "terminal"
  return {
    name: "terminal",
    ask: (prompt) =>
      Effect.gen(function* () {
        if (requireTerminal && !(isTerminal(io.input) && isTerminal(io.output))) {
          return yield* Effect.fail(new ApprovalUnavailable({ message: "no terminal to ask (stdin or stdout is not a TTY)" }))
        }
        const clack = yield* Effect.promise(() => import("@clack/prompts"))
        const colour = isTerminal(io.output) && process.env["NO_COLOR"] === undefined
        // Guarded from just before the prompt is drawn (selectKey draws it at once) until it is gone.
        const input = yield* Effect.acquireRelease(
          Effect.sync(() => guardInput(io.input, () => performance.now())),
          (guarded) => Effect.sync(guarded.close)
        )
        const key = yield* Effect.tryPromise({
          try: (signal) =>
            clack.selectKey<Key>({
              message: describePrompt(prompt, colour),
              options: optionsFor(prompt),
              input: input.stream as never,
              output: io.output as never,
              signal
            }),
          catch: (e) => new ApprovalUnavailable({ message: `the approval prompt failed: ${e instanceof Error ? e.message : String(e)}` })
        })
        if (clack.isCancel(key)) {
          return { answer: { _tag: "Deny", reason: "cancelled at the approval prompt" }, approver } satisfies ApprovalReply
        }
        // Only an offered answer counts; anything else (it cannot be typed, but fail closed) is a Deny.
        if (key !== "d" && !optionsFor(prompt).some((o) => o.value === key)) {
          return { answer: { _tag: "Deny", reason: `the answer '${key}' was not offered for this action` }, approver } satisfies ApprovalReply
        }
        if (key === "d") return { answer: { _tag: "Deny", reason: "denied at the terminal" }, approver } satisfies ApprovalReply
        return { answer: ANSWERS[key], approver } satisfies ApprovalReply
      }).pipe(Effect.scoped)
  }
}
