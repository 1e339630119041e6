/**
 * For tests that call CLI command functions in this process: stdout captured per test, the environment
 * keys a test sets restored afterwards (on the same process.env object, which the CLI's config captured),
 * process.exitCode reset, and temporary homes removed at the end.
 */
import { rmSync } from "node:fs"
import { afterAll, afterEach, beforeEach, vi } from "vitest"

export interface CliCapture {
  /** What the command printed on stdout in this test so far. */
  readonly output: () => string
  /** Forgets what was printed so far (between two commands of one test). */
  readonly reset: () => void
  /** Homes to remove after the file's tests. */
  readonly homes: Array<string>
}

export const useCliCapture = (envKeys: ReadonlyArray<string> = ["ASTRID_HOME", "ASTRID_PRINCIPAL", "NO_COLOR"]): CliCapture => {
  const homes: Array<string> = []
  let output = ""
  const savedEnv = new Map(envKeys.map((k) => [k, process.env[k]]))
  beforeEach(() => {
    output = ""
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      output += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)
      return true
    })
  })
  afterEach(() => {
    vi.restoreAllMocks()
    process.exitCode = undefined
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
  afterAll(() => {
    for (const h of homes) rmSync(h, { recursive: true, force: true })
  })
  return { output: () => output, reset: () => void (output = ""), homes }
}
