/**
 * What an agent, an MCP server or a capsule can propose, before any decision. Each request is decoded
 * with `ActionRequest` at the boundary and then classified (classify.ts) into a resource URI, the
 * permission it needs and a risk level shown to the approver.
 */
import { Schema } from "effect"

export const FileRead = Schema.TaggedStruct("file_read", { path: Schema.String })
export const FileWrite = Schema.TaggedStruct("file_write", { path: Schema.String, bytes: Schema.optional(Schema.NonNegativeInt) })
export const FileDelete = Schema.TaggedStruct("file_delete", { path: Schema.String })
export const CommandExec = Schema.TaggedStruct("command_exec", { command: Schema.String, cwd: Schema.optional(Schema.String) })
export const NetworkRequest = Schema.TaggedStruct("network_request", { url: Schema.String, method: Schema.String })
export const DataTransmission = Schema.TaggedStruct("data_transmission", { destination: Schema.String, bytes: Schema.NonNegativeInt })
export const McpToolCall = Schema.TaggedStruct("mcp_tool_call", { server: Schema.String, tool: Schema.String, arguments: Schema.Unknown })
export const CapsuleHttp = Schema.TaggedStruct("capsule_http", { capsule: Schema.String, url: Schema.String, method: Schema.String })
export const CapsuleFile = Schema.TaggedStruct("capsule_file", { capsule: Schema.String, path: Schema.String, write: Schema.Boolean })
export const CapsuleProcess = Schema.TaggedStruct("capsule_process", { capsule: Schema.String, command: Schema.String })
export const FinancialTransaction = Schema.TaggedStruct("financial_transaction", {
  amountMicros: Schema.NonNegativeInt,
  currency: Schema.String,
  counterparty: Schema.String
})
export const AccessControlChange = Schema.TaggedStruct("access_control_change", { target: Schema.String, change: Schema.String })
export const CapabilityGrant = Schema.TaggedStruct("capability_grant", { resource: Schema.String, permissions: Schema.Array(Schema.String) })
/**
 * A sub-agent (the `task` tool). `task` is its short description; the other fields are what the child would
 * get, shown to the approver. They are optional only so that requests recorded before they existed (with a
 * one-line `task` alone) still decode.
 */
export const SubAgentSpawn = Schema.TaggedStruct("subagent_spawn", {
  task: Schema.String,
  /** What the child will be told (its task text). */
  prompt: Schema.optional(Schema.String),
  tools: Schema.optional(Schema.Array(Schema.String)),
  paths: Schema.optional(Schema.Array(Schema.String)),
  /** Absent: the default share of the parent's remaining budget. */
  budgetMicros: Schema.optional(Schema.NonNegativeInt),
  timeoutSeconds: Schema.optional(Schema.NonNegativeInt)
})
/** The agent's own identity (the `spark` tool): a read without `changes`, an evolution with them. */
export const AgentIdentity = Schema.TaggedStruct("agent_identity", {
  principal: Schema.String,
  changes: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

export const ActionRequest = Schema.Union(
  FileRead,
  FileWrite,
  FileDelete,
  CommandExec,
  NetworkRequest,
  DataTransmission,
  McpToolCall,
  CapsuleHttp,
  CapsuleFile,
  CapsuleProcess,
  FinancialTransaction,
  AccessControlChange,
  CapabilityGrant,
  SubAgentSpawn,
  AgentIdentity
)
export type ActionRequest = typeof ActionRequest.Type
export type ActionKind = ActionRequest["_tag"]

export type Risk = "low" | "medium" | "high" | "critical"

/** What a capability token must grant for an action. */
export type Permission = "read" | "write" | "delete" | "execute" | "connect" | "transmit" | "invoke" | "transact" | "admin" | "grant" | "spawn"

/**
 * A request after classification. Paths are already canonical (realpath'd by the caller: domain does
 * no I/O), so `insideWorkspace` can be trusted.
 */
export interface ClassifiedAction {
  readonly request: ActionRequest
  readonly kind: ActionKind
  /** file:///abs/path, exec://program, net://host[:port]/path, mcp://server:tool, capsule://id:capability, ... */
  readonly resource: string
  readonly permission: Permission
  readonly risk: Risk
  /** One line for the approver, e.g. "write /home/me/x.txt (12 bytes)". */
  readonly summary: string
  /** For file actions: is the canonical path inside the workspace root? */
  readonly insideWorkspace: boolean | null
  /** Kinds that always need a human (financial, access control, capability grant, identity evolution). */
  readonly alwaysAsk: boolean
  /**
   * An approval covers this one action only: no standing allowance or capability token ever covers it, the
   * approver is offered Allow Once or Deny, and a wider answer is narrowed to once. True for the kinds
   * that always ask and for those whose resource cannot say what was approved (a sub-agent's tools, paths,
   * budget and task; the content of an identity change).
   */
  readonly onceOnly: boolean
  /**
   * For file kinds (file_read/write/delete, capsule_file): the canonical absolute path the policy checks
   * against denied and allowed paths. Absent for other kinds.
   */
  readonly path?: string
  /**
   * For network kinds (network_request, capsule_http, data_transmission): the lower-case host the policy
   * checks against denied and allowed hosts. Absent when the target has no recognisable host, which the
   * policy refuses.
   */
  readonly host?: string
}
