/** The message of anything thrown or failed with: an Error's or a tagged error's `message`, else its text. */
export const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" ? e.message : String(e)
