/** The built-in tools as one list, in the order they are offered to the model. */
import { type AnyTool, eraseTool } from "../../application/tools/tool.js"
import { type BashOptions, makeBashTool } from "./bash.js"
import { editFileToolErased } from "./editFile.js"
import { globToolErased } from "./glob.js"
import { grepToolErased } from "./grep.js"
import { listDirectoryToolErased } from "./listDirectory.js"
import { readFileToolErased } from "./readFile.js"
import { writeFileToolErased } from "./writeFile.js"

/** The built-in tools, `bash` with the environment rules of where they are set up (`[security] pass_env`, the provider key variables). */
export const makeBuiltinTools = (bash: BashOptions): ReadonlyArray<AnyTool> => [
  readFileToolErased,
  writeFileToolErased,
  editFileToolErased,
  globToolErased,
  grepToolErased,
  listDirectoryToolErased,
  eraseTool(makeBashTool(bash))
]

/** The built-in tools with the default rules: every credential-looking variable and `ASTRID_*` kept from `bash`. */
export const builtinTools: ReadonlyArray<AnyTool> = makeBuiltinTools({})
