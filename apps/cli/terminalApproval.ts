/**
 * The ApprovalChannel of a person at a terminal: the action, its resource, its risk and why a human is
 * asked, then one key: [o] Allow Once, [s] Allow Session, [w] Allow Workspace, [a] Allow Always, [d] Deny.
 *
 * Fails closed: Escape or Ctrl-C at the prompt is a Deny with that reason (never an allow); a prompt left
 * unanswered until the interceptor's approval timeout is aborted, and the interceptor defers the action.
 * A stream that is not a terminal cannot be asked; the channel then reports itself unavailable, which
 * defers the action to the queue.
 */
import { Effect } from "effect"
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

/** The keys this action may be answered with: the offered scopes (all four when the prompt does not say) and Deny. */
const optionsFor = (prompt: ApprovalPrompt): Array<{ value: Key; label: string; hint?: string }> =>
  ALL_OPTIONS.filter((o) => o.scope === null || prompt.offered === undefined || (prompt.offered as ReadonlyArray<string>).includes(o.scope)).map((o) =>
    o.hint === undefined ? { value: o.value, label: o.label } : { value: o.value, label: o.label, hint: o.hint }
  )

/** Reads and discards what is already waiting on a terminal's input (typed ahead), for a short moment. */
const drainTypeAhead = (input: NodeJS.ReadableStream): Promise<void> =>
  new Promise((resolve) => {
    const tty = input as NodeJS.ReadStream
    if (tty.isTTY !== true || typeof tty.setRawMode !== "function") return resolve()
    const wasRaw = tty.isRaw
    tty.setRawMode(true)
    const discard = () => undefined
    tty.on("data", discard)
    tty.resume()
    setTimeout(() => {
      tty.off("data", discard)
      tty.pause()
      tty.setRawMode(wasRaw)
      resolve()
    }, 30)
  })

/** The text shown above the keys; exported so the tests and the docs show the same thing. */
export const describePrompt = (prompt: ApprovalPrompt, colour: boolean): string => {
  const risk = colour ? `\u001b[${RISK_COLOUR[prompt.risk]}m${prompt.risk}\u001b[0m` : prompt.risk
  // Every field may carry text the model chose (a path, a command): printed so that it cannot move the
  // cursor or rewrite the lines above to make one action look like another.
  return [
    `Approve ${printable(prompt.kind)}? ${printable(prompt.summary)}`,
    `  resource: ${printable(prompt.resource)}`,
    `  risk:     ${risk}`,
    `  why:      ${printable(prompt.reason)}`
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
        // Keys typed while the model was still writing must not answer this prompt: drop them first.
        yield* Effect.promise(() => drainTypeAhead(io.input))
        const colour = isTerminal(io.output) && process.env["NO_COLOR"] === undefined
        const key = yield* Effect.tryPromise({
          try: (signal) =>
            clack.selectKey<Key>({
              message: describePrompt(prompt, colour),
              options: optionsFor(prompt),
              input: io.input as never,
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
      })
  }
}
