/** The events benchmarks write: a deterministic mix of messages, proposals and tool results. */
import type { EventDraft } from "../../application/eventLog.js"

/** A small deterministic generator, so every build of the fixture has the same shape and size. */
export const lcg = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

const WORDS = ["read", "file", "the", "budget", "approve", "session", "token", "workspace", "shell", "result", "ok", "deny", "policy"]

const text = (random: () => number, length: number): string => {
  const parts: Array<string> = []
  let size = 0
  while (size < length) {
    const word = WORDS[Math.floor(random() * WORDS.length)] ?? "x"
    parts.push(word)
    size += word.length + 1
  }
  return parts.join(" ").slice(0, length)
}

/** The i-th event of the fixture: a mix of messages, proposals and tool results, 100 to 700 bytes of data. */
export const draft = (random: () => number, session: string, i: number): EventDraft => {
  const kind = i % 3
  const event =
    kind === 0
      ? { _tag: "MessageRecorded" as const, messageId: `m-${i}`, role: "assistant" as const, content: text(random, 40 + Math.floor(random() * 400)), inputClassification: "trusted" as const }
      : kind === 1
        ? {
            _tag: "ActionProposed" as const,
            actionId: `a-${i}`,
            kind: "fs.read",
            resource: `/work/project/src/${text(random, 12).replace(/ /g, "/")}.ts`,
            risk: "low" as const,
            summary: text(random, 60),
            arguments: { path: `src/${i}.ts`, limit: Math.floor(random() * 10_000) },
            estimatedCostMicros: Math.floor(random() * 1000)
          }
        : {
            _tag: "ToolResultRecorded" as const,
            actionId: `a-${i - 1}`,
            tool: "read_file",
            ok: true,
            output: text(random, 60 + Math.floor(random() * 500)),
            truncated: false,
            durationMs: Math.floor(random() * 50)
          }
  return { event, principal: "bench", sessionId: session }
}
