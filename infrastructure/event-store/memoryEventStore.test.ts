import { eventStoreContract } from "../../test/eventStoreContract.js"
import { makeMemoryEventStore } from "./memoryEventStore.js"

eventStoreContract("memory", () => Promise.resolve({ store: makeMemoryEventStore(), close: () => Promise.resolve() }))
