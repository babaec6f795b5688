import { Type } from '@sinclair/typebox';
import { InvalidStoredDocument } from '../core/document-reader.ts';
import { TASK_STATES, type TaskState } from '../core/task-state.ts';
import { Attribute, FrameworkInfo, Resource, TaskInfo, TaskStatus } from '../protocol/mesos.ts';
import { readBySchema } from '../protocol/read-by-schema.ts';

/**
 * What the master persists, and the narrow port a store implements for it (`src/store` does, over
 * SQLite in the embedded default). The master core stays synchronous: it appends changes to a
 * journal as it goes, the server drains the journal after each turn of the event loop and writes
 * the batch in one transaction (`write`). On start the server `load`s the last state and hands it
 * to `Master.recover` before any connection is accepted.
 *
 * Guarantees a store gives: `write` applies a batch atomically and in order (a later change of the
 * same row wins); `load` returns what the last completed `write` left. Rows are keyed by id
 * (frameworks, agents, roles) and by (framework id, task id) for tasks.
 */

export interface StoredFramework {
  id: string;
  info: FrameworkInfo;
  registeredAt: number;
}

export interface StoredAgent {
  id: string;
  hostname: string;
  /** Where the agent serves its sandbox files, e.g. http://127.0.0.1:5051. */
  url?: string;
  resources: Resource[];
  attributes: Attribute[];
  registeredAt: number;
  /** Set while the agent is unreachable: after a restart it comes back as from a partition. */
  unreachableAt?: number;
  /** Set while the operator has the agent deactivated or draining; absent for the others. */
  maintenance?: AgentMaintenance;
  /** The credential (a token id) its id is bound to; absent for agents registered without one. */
  credential?: string;
}

/** What the operator set on an agent: it survives a restart of the master (and of the agent). */
export interface AgentMaintenance {
  /** DEACTIVATE_AGENT or DRAIN_AGENT: no offers until REACTIVATE_AGENT. */
  deactivated: boolean;
  /** DRAIN_AGENT: its progress and options (Mesos's DrainInfo and DrainConfig). */
  drain?: { state: 'DRAINING' | 'DRAINED'; maxGracePeriodMs?: number; markGone: boolean };
}

export interface StoredTask {
  frameworkId: string;
  taskId: string;
  agentId: string;
  info: TaskInfo;
  state: TaskState;
  status?: TaskStatus;
  /** The role its resources were allocated to (multi-role frameworks). */
  role?: string;
}

export type MasterChange =
  | { type: 'FRAMEWORK_SAVED'; framework: StoredFramework }
  /** Torn down or timed out: its id is retired for good. */
  | { type: 'FRAMEWORK_REMOVED'; id: string; removedAt: number }
  | { type: 'AGENT_SAVED'; agent: StoredAgent }
  /** Removed by the operator: its id is refused for good. */
  | { type: 'AGENT_REMOVED'; id: string; removedAt: number }
  | { type: 'TASK_SAVED'; task: StoredTask }
  | { type: 'TASK_REMOVED'; frameworkId: string; taskId: string }
  | { type: 'WEIGHT_SET'; role: string; weight: number }
  /** An empty `limits` removes the role's quota. */
  | { type: 'QUOTA_SET'; role: string; limits: Record<string, number> };

export interface StoredState {
  frameworks: StoredFramework[];
  removedFrameworks: string[];
  agents: StoredAgent[];
  removedAgents: string[];
  tasks: StoredTask[];
  weights: Record<string, number>;
  quotas: Record<string, Record<string, number>>;
}

export interface MasterStore {
  load(): Promise<StoredState>;
  write(changes: readonly MasterChange[]): Promise<void>;
  close(): Promise<void>;
}

// Reading the master's documents back ------------------------------------------------------------
//
// A store keeps these as the master wrote them (JSON of the Mesos messages) and reads them back
// with these readers, never with a cast: each checks its document against the same TypeBox schema
// that gives its type (`readBySchema`), and throws `InvalidStoredDocument` naming the document and
// the first field that does not match. Unknown fields pass, as Mesos's JSON parser lets them. The documents carry no `docVersion`: they are
// Mesos's shapes, and a change of the master's tables is a migration.

const ResourceList = Type.Array(Resource);
const AttributeList = Type.Array(Attribute);
const QuotaLimits = Type.Record(Type.String(), Type.Number());
const AgentMaintenanceSchema = Type.Object({
  deactivated: Type.Boolean(),
  drain: Type.Optional(
    Type.Object({ state: Type.Union([Type.Literal('DRAINING'), Type.Literal('DRAINED')]), maxGracePeriodMs: Type.Optional(Type.Number({ minimum: 0 })), markGone: Type.Boolean() }),
  ),
});

/** The stored `FrameworkInfo` of framework `frameworkId`. */
export function readFrameworkInfo(doc: unknown, frameworkId: string): FrameworkInfo {
  return readBySchema(FrameworkInfo, doc, () => `FrameworkInfo of framework ${frameworkId}`);
}

/** The stored resources (`Resource[]`) of agent `agentId`. */
export function readAgentResources(doc: unknown, agentId: string): Resource[] {
  return readBySchema(ResourceList, doc, () => `resources of agent ${agentId}`);
}

/** The stored attributes (`Attribute[]`) of agent `agentId`. */
export function readAgentAttributes(doc: unknown, agentId: string): Attribute[] {
  return readBySchema(AttributeList, doc, () => `attributes of agent ${agentId}`);
}

/** The stored maintenance (deactivation, drain) of agent `agentId`. */
export function readAgentMaintenance(doc: unknown, agentId: string): AgentMaintenance {
  return readBySchema(AgentMaintenanceSchema, doc, () => `maintenance of agent ${agentId}`);
}

/** The stored `TaskInfo` of task `taskId` of framework `frameworkId`. */
export function readTaskInfo(doc: unknown, frameworkId: string, taskId: string): TaskInfo {
  return readBySchema(TaskInfo, doc, () => `TaskInfo of task ${taskId} of framework ${frameworkId}`);
}

/** The stored latest `TaskStatus` of task `taskId` of framework `frameworkId`. */
export function readTaskStatus(doc: unknown, frameworkId: string, taskId: string): TaskStatus {
  return readBySchema(TaskStatus, doc, () => `TaskStatus of task ${taskId} of framework ${frameworkId}`);
}

/** The stored state of task `taskId` of framework `frameworkId` (a `TaskState` name). */
export function readTaskState(value: unknown, frameworkId: string, taskId: string): TaskState {
  if (typeof value === 'string' && TASK_STATE_NAMES.has(value)) return value as TaskState;
  throw new InvalidStoredDocument(`task ${taskId} of framework ${frameworkId}`, 'state', `must be one of the Mesos task states, not ${JSON.stringify(value) ?? 'missing'}`);
}

const TASK_STATE_NAMES: ReadonlySet<string> = new Set(TASK_STATES);

/** The stored quota of `role`: limits by resource name. */
export function readQuotaLimits(doc: unknown, role: string): Record<string, number> {
  return readBySchema(QuotaLimits, doc, () => `quota of role ${role}`);
}
