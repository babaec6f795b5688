import type { Attribute, FrameworkInfo, Resource, TaskInfo, TaskStatus } from '../protocol/mesos.ts';
import type { TaskState } from '../core/task-state.ts';

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
