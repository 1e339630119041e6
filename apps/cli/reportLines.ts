/** A verification report as text, for the commands that verify (audit verify, store copy). */
import type { VerifyReport } from "../../application/audit/verifier.js"
import { CHECKPOINT_STREAM } from "../../domain/streams.js"
import { dim, green, red, table } from "./output.js"

/** `labels` open the first line ("log intact" / "log NOT intact"); then each issue and the last checkpoint. */
export const reportLines = (labels: { readonly ok: string; readonly bad: string }, report: VerifyReport): Array<string> => {
  const summary = `${report.events} events in ${report.streams} streams, ${report.checkpoints} checkpoints`
  const lines: Array<string> = []
  if (report.ok) {
    lines.push(green(`${labels.ok}: ${summary}`))
  } else {
    lines.push(red(`${labels.bad}: ${report.issues.length + report.issuesOmitted} issue(s) in ${summary}`))
    lines.push(
      ...table(
        ["KIND", "WHERE", "DETAIL"],
        report.issues.map((i) => [i.kind, i.revision === null ? i.stream : `${i.stream}@${i.revision}`, i.detail])
      )
    )
    if (report.issuesOmitted > 0) lines.push(`... and ${report.issuesOmitted} more (use --json for the first ${report.issues.length})`)
  }
  if (report.lastCheckpoint !== null) {
    const lc = report.lastCheckpoint
    lines.push(dim(`last checkpoint: ${CHECKPOINT_STREAM}@${lc.revision} signed ${lc.signedAt} by ${lc.keyId}, hash ${lc.hash}`))
  }
  return lines
}
