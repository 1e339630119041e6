/**
 * Ctrl-C and termination for the whole CLI. SIGINT goes to the innermost handler that asked for it (a chat
 * turn cancels just that turn); with none, it interrupts the running command, whose finalizers then
 * record what they must (a cancelled turn, a released reservation) before the process exits with 130.
 * SIGTERM always interrupts the command. A second signal while the command is stopping exits at once.
 */
type Handler = () => void

const handlers: Array<Handler> = []

/** Makes `handler` receive SIGINT until the returned function is called. */
export const pushInterruptHandler = (handler: Handler): (() => void) => {
  handlers.push(handler)
  return () => {
    const at = handlers.lastIndexOf(handler)
    if (at >= 0) handlers.splice(at, 1)
  }
}

/** Installs the process listeners; returns a function that removes them. */
export const installSignalHandling = (interruptCommand: () => void): (() => void) => {
  let stopping = false
  const stop = () => {
    if (stopping) process.exit(130)
    stopping = true
    interruptCommand()
  }
  const onInt = () => {
    const top = handlers.at(-1)
    if (top !== undefined) top()
    else stop()
  }
  process.on("SIGINT", onInt)
  process.on("SIGTERM", stop)
  return () => {
    process.off("SIGINT", onInt)
    process.off("SIGTERM", stop)
  }
}
