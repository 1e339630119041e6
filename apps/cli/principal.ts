/** Who runs a command: $ASTRID_PRINCIPAL, else the OS user name. */
import { userInfo } from "node:os"

export const currentPrincipal = (): string => {
  const fromEnv = process.env["ASTRID_PRINCIPAL"]
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv
  return userInfo().username
}
