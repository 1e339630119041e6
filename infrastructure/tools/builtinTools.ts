/** The built-in tools as one list, in the order they are offered to the model. */
import { type AnyTool, eraseTool } from "../../application/tools/tool.js"
import { type BashOptions, makeBashTool } from "./bash.js"
import { editFileToolErased } from "./editFile.js"
import { makeGlobTool } from "./glob.js"
import { makeGrepTool } from "./grep.js"
import { listDirectoryToolErased } from "./listDirectory.js"
import { defaultProtectedRoots } from "./protectedRoots.js"
import { readFileToolErased } from "./readFile.js"
import { writeFileToolErased } from "./writeFile.js"

/** Where the built-in tools are set up: `bash`'s environment rules and containment, and the runtime's own state. */
export interface BuiltinToolOptions extends BashOptions {
  /**
   * The `$ASTRID_HOME` folders (`SecurityPolicy.protectedState.roots` of the session's settings): `grep`
   * reads nothing below them, `glob` lists nothing below them and `bash`'s namespace hides them. Required, so no session is set up without.
   */
  readonly protectedRoots: ReadonlyArray<string>
}

/** The built-in tools, `bash` with the environment rules of where they are set up (`[security] pass_env`, the provider key variables). */
export const makeBuiltinTools = (options: BuiltinToolOptions): ReadonlyArray<AnyTool> => [
  readFileToolErased,
  writeFileToolErased,
  editFileToolErased,
  eraseTool(makeGlobTool({ protectedRoots: options.protectedRoots })),
  eraseTool(makeGrepTool({ protectedRoots: options.protectedRoots })),
  listDirectoryToolErased,
  eraseTool(makeBashTool(options))
]

/**
 * The built-in tools with the default rules: every credential-looking variable and `ASTRID_*` kept from
 * `bash`, and the default home's `$ASTRID_HOME` (`~/.astrid` unless the variable says otherwise) protected.
 */
export const builtinTools: ReadonlyArray<AnyTool> = makeBuiltinTools({ protectedRoots: defaultProtectedRoots })
