import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "dist/**", "scratch/**"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    // The JSON report is what .ci/run counts; the default reporter is what people read.
    reporters: ["default", "json"],
    outputFile: { json: ".test-results/vitest.json" }
  }
})
