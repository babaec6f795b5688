import { isTerminal, type TaskState } from '../../core/task-state.ts';

/**
 * One instance of an app: one Mesos task the framework launched (Marathon's instance with one
 * task). Instances are persisted before their LAUNCH is sent, so a restart of the framework knows
 * every task it may have started.
 *
 * Lifecycle, as the framework sees it:
 *
 *   (persisted) ─LAUNCH─► STAGING ─► STARTING ─► RUNNING (healthy? ready?) ─► terminal: removed
 *                             │                     │  ▲
 *                             │                     ▼  │ agent back
 *                             └──────────────► UNREACHABLE ── inactive after unreachableStrategy:
 *                                                           killed (when it returns) and replaced
 *   `killing` is set once the framework sent KILL; it never counts towards the app's instances.
 */
export interface Instance {
  taskId: string;
  appId: string;
  /** The app version (ISO 8601) the instance was launched with. */
  version: string;
  /**
   * The app's `lastConfigChangeAt` when launched: an instance whose config version differs from
   * the app's is old and replaced by a rolling upgrade (a scale-only change keeps it).
   */
  configVersion: string;
  agentId: string;
  host: string;
  ports: number[];
  /** The app version's service ports (portDefinitions[].port), for /v2/tasks; absent in instances stored before they were kept. */
  servicePorts?: number[];
  state: TaskState;
  /** Milliseconds since the epoch. */
  stagedAt: number;
  startedAt?: number;
  /** Whether the instance was launched with a health check (its app version had one). */
  hasHealthCheck: boolean;
  /** From the agent's health checks; undefined until the first result (or without checks). */
  healthy?: boolean;
  /** Readiness checks passed; set true at launch for an app version without readiness checks. */
  ready: boolean;
  /** The framework sent KILL (scale down, upgrade, replaced while unreachable, DELETE). */
  killing: boolean;
  /** Set while the task is TASK_UNREACHABLE. */
  unreachableSince?: number;
  /** The last status message, for /v2/tasks and failures. */
  message?: string;
}

/** Whether the instance runs, is reachable and passes its health check (RUNNING suffices without one). */
export function isHealthy(i: Instance): boolean {
  if (i.state !== 'TASK_RUNNING' || i.unreachableSince !== undefined) return false;
  return i.hasHealthCheck ? i.healthy === true : true;
}

export function isAlive(i: Instance): boolean {
  return !isTerminal(i.state);
}

/** Marathon's task id shape (examples/app_tasks.json): the app id's path with `_` for `/`, then `.instance-` and a UUID. */
export function newTaskId(appId: string, uuid: string): string {
  return `${appId.slice(1).replaceAll('/', '_')}.instance-${uuid}`;
}

/** An instance as the store gave it back. (Placeholder: the checking reader comes with the store work.) */
export function readInstance(doc: unknown): Instance {
  return doc as Instance;
}
