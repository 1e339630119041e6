/**
 * Standing allowances (Allow Session / Allow Workspace): what they cover. An allowance records the kind
 * of action and a pattern: the exact command line for commands (matched with command patterns, so
 * `cargo *` covers `cargo build` while `cargo` covers only `cargo`, and nothing matches across shell
 * metacharacters), the resource URI (a glob) for everything else.
 */
import type { ClassifiedAction } from "./action.js"
import { runsOneProgramPlainly } from "./commandGrant.js"
import { commandPatternMatches, globMatch } from "./glob.js"

export interface Allowance {
  readonly actionKind: string
  readonly pattern: string
}

export const allowanceCovers = (allowance: Allowance, action: ClassifiedAction): boolean => {
  if (allowance.actionKind !== action.kind) return false
  if (action.request._tag === "command_exec") {
    const command = action.request.command
    // The recorded line itself, or (for a pattern with a star) a line that runs one program plainly: a
    // pattern never stretches over a second program (I9).
    return allowance.pattern === command || (commandPatternMatches(allowance.pattern, command) && runsOneProgramPlainly(command))
  }
  return allowance.pattern === action.resource || globMatch(allowance.pattern, action.resource)
}
