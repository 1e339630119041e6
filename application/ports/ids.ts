/** Fresh identifiers (event ids are UUIDv7, so they sort by creation time). */
import { Context } from "effect"

export interface IdsApi {
  readonly uuidv7: (nowMs: number) => string
}

export class Ids extends Context.Tag("astrid/Ids")<Ids, IdsApi>() {}
