import { DocumentReader } from '../../core/document-reader.ts';
import { TASK_STATES, isTerminal, type TaskState } from '../../core/task-state.ts';

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
  /** The config center's release the instance started with (its app is linked to a config service). */
  configRelease?: { service: string; env: string; version: number };
}

/** The newest `docVersion` of a stored instance this code reads (absent in a document: 1). */
export const INSTANCE_DOC_VERSION = 1;

const TASK_STATE_SET: ReadonlySet<TaskState> = new Set(TASK_STATES);

/**
 * Reads a stored instance (the document of INSTANCE_SAVED) back: checks every field of `Instance`
 * and the document's `docVersion`, and returns the document itself, typed. Throws
 * `InvalidStoredDocument` naming the instance and the field that does not match.
 */
export function readInstance(doc: unknown): Instance {
  const r = new DocumentReader('instance', doc, instanceName);
  const o = r.rootObject();
  r.version(o, INSTANCE_DOC_VERSION);
  r.string(o, 'taskId');
  r.string(o, 'appId');
  r.string(o, 'version');
  r.string(o, 'configVersion');
  r.string(o, 'agentId');
  r.string(o, 'host');
  r.numbers(o, 'ports');
  r.optNumbers(o, 'servicePorts');
  r.oneOf(o, 'state', TASK_STATE_SET);
  r.number(o, 'stagedAt');
  r.optNumber(o, 'startedAt');
  r.boolean(o, 'hasHealthCheck');
  r.optBoolean(o, 'healthy');
  r.boolean(o, 'ready');
  r.boolean(o, 'killing');
  r.optNumber(o, 'unreachableSince');
  r.optString(o, 'message');
  const c = r.optObject(o, 'configRelease');
  if (c !== undefined) {
    r.string(c, 'service');
    r.string(c, 'env');
    r.number(c, 'version');
  }
  return o as unknown as Instance;
}

function instanceName(doc: unknown): string | undefined {
  const { taskId, appId } = doc as { taskId?: unknown; appId?: unknown };
  if (typeof taskId !== 'string') return undefined;
  return typeof appId === 'string' ? `${taskId} of app ${appId}` : taskId;
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
