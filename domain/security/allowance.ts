/**
 * Standing allowances (Allow Session / Allow Workspace): what they cover. An allowance records the kind
 * of action and a pattern: the exact command line for commands (matched with command patterns, so
 * `cargo *` covers `cargo build` while `cargo` covers only `cargo`, and nothing matches across shell
 * metacharacters), the resource URI (a glob) for everything else.
 */
import type { ClassifiedAction } from "./action.js"
import { commandPatternMatches, globMatch } from "./glob.js"

export interface Allowance {
  readonly actionKind: string
  readonly pattern: string
}

export const allowanceCovers = (allowance: Allowance, action: ClassifiedAction): boolean => {
  if (allowance.actionKind !== action.kind) return false
  if (action.request._tag === "command_exec") return commandPatternMatches(allowance.pattern, action.request.command)
  return allowance.pattern === action.resource || globMatch(allowance.pattern, action.resource)
}
