/**
 * Whether a principal may continue a session: only its own (I7), and never a deleted one (its events stay
 * in the audit log, but nothing more is added to it). Also where it was started: a session continues in
 * its own workspace, under that workspace's settings and budget.
 */
import { Effect, Option, Schema } from "effect"
import { realpathSync } from "node:fs"
import { resolve } from "node:path"
import { EventStore } from "../../application/ports/eventStore.js"
import { decodeRecorded } from "../../application/streamState.js"
import { EventMetadata } from "../../domain/envelope.js"
import { sessionStream } from "../../domain/streams.js"
import { asCli, usageError } from "./cliError.js"

/** Whose session this is, and whether it can be resumed (I7: only its own principal may). */
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/

export const checkResumable = (sessionId: string, principal: string) =>
  Effect.gen(function* () {
    if (!SESSION_ID.test(sessionId)) {
      return yield* Effect.fail(usageError(`'${sessionId}' is not a session id: use letters, digits and . _ : @ - (at most 128 characters)`))
    }
    const store = yield* EventStore
    const events = yield* asCli(store.readStream(sessionStream(sessionId)))
    if (events.length === 0) return "new" as const
    const first = events[0]
    const owner = first === undefined ? undefined : Option.getOrUndefined(Schema.decodeUnknownOption(Schema.parseJson(EventMetadata))(first.metadata))?.principal
    if (owner !== principal) {
      return yield* Effect.fail(usageError(`session ${sessionId} belongs to another principal; you (${principal}) can only resume your own sessions ('astrid sessions list')`))
    }
    let workspace: string | null = null
    for (const r of events) {
      if (r.type !== "SessionEnded" && r.type !== "SessionStarted") continue
      const e = decodeRecorded(r)
      if (e?._tag === "SessionStarted" && workspace === null) workspace = e.workspace
      if (e?._tag === "SessionEnded" && e.reason === "deleted") {
        return yield* Effect.fail(usageError(`session ${sessionId} was deleted${e.detail === null ? "" : ` (${e.detail})`}; its events stay in the audit log but it cannot be resumed; start a new one`))
      }
    }
    const messages = events.filter((r) => r.type === "MessageRecorded").length
    return { messages, workspace } as const
  })


/**
 * The workspace a command works in for `sessionId`: the one asked for, else the session's own, else the
 * current folder, as its real path. A session continues only in the workspace it was started in, under that
 * workspace's settings and budget; any other is refused.
 */
export const sessionWorkspace = (
  sessionId: string,
  resumed: "new" | { readonly workspace: string | null },
  asked: string | undefined
) =>
  Effect.gen(function* () {
    const own = resumed === "new" ? null : resumed.workspace
    const wanted = asked ?? own ?? process.cwd()
    let root: string
    try {
      root = realpathSync(resolve(wanted))
    } catch (e) {
      return yield* Effect.fail(usageError(`the workspace ${wanted} cannot be opened (${e instanceof Error ? e.message : String(e)}); give an existing folder with --workspace`))
    }
    if (own !== null && root !== own) {
      return yield* Effect.fail(
        usageError(`session ${sessionId} belongs to the workspace ${own}, not ${root}; resume it there (leave out --workspace), or start a new session here`)
      )
    }
    return root
  })
