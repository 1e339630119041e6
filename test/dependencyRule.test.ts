/**
 * The dependency rule of the layers (ARCHITECTURE.md), checked on every source file so that a wrong arrow
 * fails the build instead of waiting for a review:
 *
 *   domain/          imports only `effect` and other domain files (no node:*, no clock, no I/O)
 *   application/     imports domain/, application/ and `effect`
 *   infrastructure/, projections/, capsules/   may import application/ and domain/, never apps/
 *   apps/            imported by nobody outside apps/
 *
 * Tests are left out: they wire real parts together on purpose.
 */
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const LAYERS = ["domain", "application", "infrastructure", "projections", "capsules", "apps"] as const
type Layer = (typeof LAYERS)[number]

const sourcesOf = (dir: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) out.push(full)
    }
  }
  try {
    walk(join(ROOT, dir))
  } catch {
    // A layer with no folder yet has nothing to check.
  }
  return out
}

/** Every module a file imports or re-exports, statically or dynamically. */
const importsOf = (source: string): ReadonlyArray<string> =>
  [...source.matchAll(/(?:^|\s)(?:import|export)\s[^'"`;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s+["']([^"']+)["']/gm)].map(
    (m) => m[1] ?? m[2] ?? m[3] ?? ""
  )

/** The layer a relative import lands in, or the package name of a bare one. */
const isLayer = (name: string): name is Layer => LAYERS.some((l) => l === name)

const targetOf = (file: string, specifier: string): { readonly layer: Layer | "other" } | { readonly pkg: string } => {
  if (!specifier.startsWith(".")) return { pkg: specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : (specifier.split("/")[0] ?? specifier) }
  const top = relative(ROOT, resolve(dirname(file), specifier)).split("/")[0] ?? ""
  return { layer: isLayer(top) ? top : "other" }
}

const ALLOWED_LAYERS: Readonly<Record<Layer, ReadonlyArray<Layer>>> = {
  domain: ["domain"],
  application: ["domain", "application"],
  infrastructure: ["domain", "application", "infrastructure"],
  projections: ["domain", "application", "infrastructure", "projections"],
  capsules: ["domain", "application", "infrastructure", "capsules"],
  apps: ["domain", "application", "infrastructure", "projections", "capsules", "apps"]
}

const violations = (layer: Layer): ReadonlyArray<string> =>
  sourcesOf(layer).flatMap((file) =>
    importsOf(readFileSync(file, "utf8")).flatMap((specifier) => {
      const target = targetOf(file, specifier)
      const where = `${relative(ROOT, file)} imports ${specifier}`
      if ("pkg" in target) {
        if (layer === "domain" && target.pkg !== "effect") return [`${where}: domain imports only effect`]
        if (layer === "application" && target.pkg !== "effect") return [`${where}: application imports only effect and the layers below it`]
        return []
      }
      if (target.layer === "other") return [`${where}: outside the layers`]
      return ALLOWED_LAYERS[layer].includes(target.layer) ? [] : [`${where}: ${layer} may not import ${target.layer}`]
    })
  )

describe("the dependency rule", () => {
  it("finds the imports it checks (the checker itself works)", () => {
    expect(importsOf(`import { A } from "./a.js"\nexport * from "../b.js"\nconst c = await import("node:fs")\nimport "./side.js"`)).toEqual(["./a.js", "../b.js", "node:fs", "./side.js"])
    expect(sourcesOf("domain").length).toBeGreaterThan(10)
  })

  it.each(LAYERS)("%s imports only what the rule allows", (layer) => {
    expect(violations(layer)).toEqual([])
  })
})
