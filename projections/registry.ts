/** The projections this build maintains, by the names `astrid projections` takes. */
import { budgetsView } from "./budgetsView.js"
import { pendingApprovalsView } from "./pendingApprovalsView.js"
import type { Projection } from "./projection.js"
import { sessionsView } from "./sessionsView.js"
import { tokensView } from "./tokensView.js"

export const PROJECTIONS: ReadonlyArray<Projection> = [budgetsView, tokensView, pendingApprovalsView, sessionsView]

export const projectionNamed = (name: string): Projection | undefined => PROJECTIONS.find((p) => p.name === name)
