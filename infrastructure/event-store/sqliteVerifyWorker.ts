/**
 * Worker-thread entry of the parallel SQLite verifier: verifies the range it is given (workerData), takes
 * the checkpoint pins from its port when pass 1 sends them, and posts progress, then its outcome.
 * Bundled as its own file (dist/sqliteVerifyWorker.mjs) beside the CLI.
 */
import { MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads"
import { type CheckpointPins, type PinnedHash, type PinsSource, type RangeTask, verifyRange } from "./sqliteRangeVerify.js"

/** What a worker posts to the thread that started it. */
export type WorkerMessage =
  | { readonly _tag: "Progress"; readonly scanned: number }
  | { readonly _tag: "Done"; readonly outcome: Awaited<ReturnType<typeof verifyRange>> }
  | { readonly _tag: "Failed"; readonly code: string; readonly message: string }

/** What a worker is started with: its range, the checkpoint stream's name, and the port the pins come through. */
export interface WorkerInput {
  readonly task: RangeTask
  readonly checkpointStream: string
  readonly pinsPort: MessagePort
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null

const isPins = (v: unknown): v is ReadonlyMap<string, ReadonlyMap<number, PinnedHash>> =>
  v instanceof Map &&
  [...v.entries()].every(
    ([stream, byRevision]) =>
      typeof stream === "string" &&
      byRevision instanceof Map &&
      [...byRevision.entries()].every(
        ([revision, pin]) => typeof revision === "number" && isObject(pin) && typeof pin["hash"] === "string" && typeof pin["checkpointRevision"] === "number"
      )
  )

/** Checks what arrived as workerData: it crossed a thread boundary as a structured clone. */
export const isWorkerInput = (v: unknown): v is WorkerInput => {
  if (!isObject(v) || typeof v["checkpointStream"] !== "string" || !(v["pinsPort"] instanceof MessagePort) || !isObject(v["task"])) return false
  const t = v["task"]
  return (
    typeof t["path"] === "string" &&
    typeof t["after"] === "number" &&
    typeof t["upTo"] === "number" &&
    typeof t["prefix"] === "string" &&
    (t["streams"] === null || (Array.isArray(t["streams"]) && t["streams"].every((s) => typeof s === "string"))) &&
    typeof t["maxIssues"] === "number"
  )
}

const toCheckpointPins = (m: unknown): CheckpointPins => {
  if (isObject(m) && isPins(m["pins"]) && typeof m["coveredPosition"] === "number") return { pins: m["pins"], coveredPosition: m["coveredPosition"] }
  throw new Error("the verification worker received malformed checkpoint pins")
}

/** Pins from the port: polled between pages without blocking, awaited only at the end of the range. */
const pinsFrom = (port: MessagePort): PinsSource => ({
  poll: () => {
    const received = receiveMessageOnPort(port)
    return received === undefined ? undefined : toCheckpointPins(received.message)
  },
  wait: () =>
    new Promise((resolve, reject) => {
      port.once("message", (m: unknown) => {
        try {
          resolve(toCheckpointPins(m))
        } catch (e) {
          reject(e)
        }
      })
    })
})

const post = (message: WorkerMessage): void => parentPort?.postMessage(message)

const codeOf = (e: unknown): string => (isObject(e) && typeof e["code"] === "string" ? e["code"] : "")

if (parentPort !== null) {
  const input: unknown = workerData
  if (!isWorkerInput(input)) {
    post({ _tag: "Failed", code: "", message: "the verification worker was started without a valid range" })
  } else {
    // Progress is posted per page; the main thread sums the ranges.
    verifyRange(input.task, input.checkpointStream, pinsFrom(input.pinsPort), (scanned) => post({ _tag: "Progress", scanned }))
      .then(
        (outcome) => post({ _tag: "Done", outcome }),
        (e: unknown) => post({ _tag: "Failed", code: codeOf(e), message: e instanceof Error ? e.message : String(e) })
      )
      .finally(() => input.pinsPort.close())
  }
}
