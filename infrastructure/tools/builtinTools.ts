/** The built-in tools as one list, in the order they are offered to the model. */
import type { AnyTool } from "../../application/tools/tool.js"
import { bashToolErased } from "./bash.js"
import { editFileToolErased } from "./editFile.js"
import { globToolErased } from "./glob.js"
import { grepToolErased } from "./grep.js"
import { listDirectoryToolErased } from "./listDirectory.js"
import { readFileToolErased } from "./readFile.js"
import { writeFileToolErased } from "./writeFile.js"

export const builtinTools: ReadonlyArray<AnyTool> = [
  readFileToolErased,
  writeFileToolErased,
  editFileToolErased,
  globToolErased,
  grepToolErased,
  listDirectoryToolErased,
  bashToolErased
]
