/**
 * Task states, sources and reasons of Mesos v1 (`mesos.v1.TaskState`, `TaskStatus.Source`,
 * `TaskStatus.Reason`), by their JSON names.
 *
 * Lifecycle (non-terminal states on the left; every arrow may also end in LOST/UNREACHABLE when
 * the agent is lost, and UNREACHABLE may come back to the state it had):
 *
 *   STAGING ──► STARTING ──► RUNNING ──► KILLING ──► KILLED
 *      │            │           │ ╲
 *      │            │           │  ╲──► FINISHED | FAILED
 *      ▼            ▼           ▼
 *    DROPPED | ERROR (never launched)      LOST | UNREACHABLE | GONE | GONE_BY_OPERATOR | UNKNOWN
 */
export const TASK_STATES = [
  'TASK_STAGING',
  'TASK_STARTING',
  'TASK_RUNNING',
  'TASK_KILLING',
  'TASK_FINISHED',
  'TASK_FAILED',
  'TASK_KILLED',
  'TASK_ERROR',
  'TASK_LOST',
  'TASK_DROPPED',
  'TASK_UNREACHABLE',
  'TASK_GONE',
  'TASK_GONE_BY_OPERATOR',
  'TASK_UNKNOWN',
] as const;

export type TaskState = (typeof TASK_STATES)[number];

const TERMINAL: ReadonlySet<TaskState> = new Set<TaskState>([
  'TASK_FINISHED',
  'TASK_FAILED',
  'TASK_KILLED',
  'TASK_ERROR',
  'TASK_LOST',
  'TASK_DROPPED',
  'TASK_GONE',
  'TASK_GONE_BY_OPERATOR',
]);

/**
 * Terminal states end a task: its resources are free and no further update follows. UNREACHABLE
 * and UNKNOWN are not terminal (the task may still run behind a partition), as in Mesos.
 */
export function isTerminal(state: TaskState): boolean {
  return TERMINAL.has(state);
}

export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value);
}

export type TaskStatusSource = 'SOURCE_MASTER' | 'SOURCE_AGENT' | 'SOURCE_EXECUTOR';

/** The reasons Slipway sends (a subset of `TaskStatus.Reason`). */
export type TaskStatusReason =
  | 'REASON_COMMAND_EXECUTOR_FAILED'
  | 'REASON_CONTAINER_LAUNCH_FAILED'
  | 'REASON_CONTAINER_LIMITATION_MEMORY'
  | 'REASON_EXECUTOR_TERMINATED'
  | 'REASON_FRAMEWORK_REMOVED'
  | 'REASON_INVALID_OFFERS'
  | 'REASON_RECONCILIATION'
  | 'REASON_AGENT_DISCONNECTED'
  | 'REASON_AGENT_DRAINING'
  | 'REASON_AGENT_REMOVED'
  | 'REASON_AGENT_REMOVED_BY_OPERATOR'
  | 'REASON_AGENT_REREGISTERED'
  | 'REASON_AGENT_RESTARTED'
  | 'REASON_AGENT_UNKNOWN'
  | 'REASON_TASK_CHECK_STATUS_UPDATED'
  | 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED'
  | 'REASON_TASK_INVALID'
  | 'REASON_TASK_KILLED_DURING_LAUNCH'
  | 'REASON_TASK_UNKNOWN';
