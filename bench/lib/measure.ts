/**
 * What every benchmark shares: the JSON line it prints, percentiles, machine facts, and a temp folder.
 * A line always names the peer it was measured against in the same run, so a figure is read against
 * something this machine did at the same moment, not against a number from elsewhere.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync } from "node:fs"
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"

export interface Machine {
  readonly node: string
  readonly cores: number
  readonly cpu: string
  readonly platform: string
  /** One-minute load average when the line was printed: other work on the machine skews every figure. */
  readonly load1: number
  readonly date: string
}

let cpuModel: string | undefined

const lscpuModel = (): string => {
  try {
    const text = execFileSync("lscpu", { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
    const line = text.split("\n").find((l) => l.startsWith("Model name:"))
    if (line !== undefined) return line.slice("Model name:".length).trim()
  } catch {
    // lscpu is missing on some systems; the Node view of the CPU is the fallback.
  }
  return cpus()[0]?.model ?? "unknown"
}

export const machine = (): Machine => {
  cpuModel ??= lscpuModel()
  return {
    node: process.version,
    cores: availableParallelism(),
    cpu: cpuModel,
    platform: `${process.platform}-${process.arch}`,
    load1: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    date: new Date().toISOString()
  }
}

/** The q-quantile (0..1) of samples, nearest-rank. */
export const quantile = (samples: ReadonlyArray<number>, q: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] ?? Number.NaN
}

export const median = (samples: ReadonlyArray<number>): number => quantile(samples, 0.5)

/**
 * Median and "p99" of repeated measurements. For a time, p99 is the 99th percentile (slow tail); for a rate
 * (higher is better), it is the 1st percentile, the rate 99 % of the runs reached. Either way: the bad tail.
 */
export const summarize = (samples: ReadonlyArray<number>, higherIsBetter: boolean): { median: number; p99: number } => ({
  median: round(median(samples)),
  p99: round(quantile(samples, higherIsBetter ? 0.01 : 0.99))
})

export const round = (x: number): number => (Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 1000) / 1000)

export interface Peer {
  readonly name: string
  readonly median: number
  readonly p99?: number
  readonly unit: string
}

export interface BenchLine {
  readonly name: string
  readonly n: number
  readonly median: number
  readonly p99: number
  readonly unit: string
  readonly peer?: Peer
  /** median / peer.median, and what that means for this line. */
  readonly ratio?: number
  readonly ratioMeaning?: string
  readonly error?: string
  readonly [extra: string]: unknown
}

/** Prints one benchmark result as one JSON line. */
export const emit = (line: BenchLine): void => {
  process.stdout.write(`${JSON.stringify({ ...line, machine: machine() })}\n`)
}

/** A folder for benchmark files, kept between runs so expensive fixtures can be reused. */
export const benchDir = (): string => {
  const dir = join(tmpdir(), "astrid-bench")
  mkdirSync(dir, { recursive: true })
  return dir
}

export const seconds = (startMs: number): number => (performance.now() - startMs) / 1000
