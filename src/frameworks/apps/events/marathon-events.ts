import type { TaskState } from '../../../core/task-state.ts';
import type { MarathonAppJson } from '../app-definition.ts';

// ---------------------------------------------------------------------------------------------
// Marathon's events, as `/v2/events` sends them: the one place that says what each event carries.
//
// Sources: Marathon's Events.scala and the event writers of its Formats.scala (1.8 and later),
// docs/docs/event-bus.md, and `../shared/reference/marathon/examples/events.txt`.
//
// Every event is a flat JSON object with `eventType` (its name) and `timestamp` (ISO 8601 with
// milliseconds, UTC: `2015-09-30T12:44:45.681Z`). Marathon writes the event's own fields first
// and `eventType`, `timestamp` last; the constructors below keep that order.
//
// Deployment events use Marathon's "light" plan format, the only one since Marathon 1.8
// (`api_heavy_events` removed): `plan` is `{id, steps, version}`, without the `original` and
// `target` root groups that older versions sent.
//
// Not sent by Slipway, although Marathon defines them:
//   pod_created_event, pod_updated_event, pod_deleted_event    no pods
//   subscribe_event, unsubscribe_event                          no HTTP callback subscribers
//   framework_message_event                                     no custom executors send any
//   unhealthy_task_kill_event                                   Marathon < 1.4; now unhealthy_instance_kill_event
// A client may still ask for them with `?event_type=`: Marathon does not check the names either.
// ---------------------------------------------------------------------------------------------

/** Marathon's fields of every event. */
interface EventBase<T extends string> {
  eventType: T;
  /** When the event happened: ISO 8601, milliseconds, UTC. */
  timestamp: string;
}

/** A health check as the app definition writes it (`healthChecks[i]` of the app's JSON). */
export type HealthCheckJson = NonNullable<MarathonAppJson['healthChecks']>[number];

/** Marathon's instance conditions (`Condition.scala`), by the names the events carry. */
export type InstanceCondition =
  | 'Created'
  | 'Reserved'
  | 'Provisioned'
  | 'Staging'
  | 'Starting'
  | 'Running'
  | 'Killing'
  | 'Killed'
  | 'Failed'
  | 'Finished'
  | 'Error'
  | 'Dropped'
  | 'Gone'
  | 'GoneByOperator'
  | 'Unknown'
  | 'Unreachable'
  | 'UnreachableInactive';

export type DeploymentActionName = 'StartApplication' | 'ScaleApplication' | 'RestartApplication' | 'StopApplication';

/** One action of a deployment step: `{"action": "ScaleApplication", "app": "/my-app"}`. */
export interface DeploymentActionJson {
  action: DeploymentActionName;
  /** Absolute app id. */
  app: string;
}

/** A deployment step: its actions run together. */
export interface DeploymentStepJson {
  actions: DeploymentActionJson[];
}

/** A deployment plan in Marathon's light format (RAML `DeploymentPlan`). */
export interface DeploymentPlanJson {
  /** The deployment's UUID (the id of `GET /v2/deployments`). */
  id: string;
  steps: DeploymentStepJson[];
  /** ISO 8601: when the deployment was created; the version it gives the apps it changes. */
  version: string;
}

// --- API -------------------------------------------------------------------------------------

/** An API request created, updated or deleted an app (`POST`/`PUT`/`PATCH`/`DELETE` on /v2/apps). */
export interface ApiPostEvent extends EventBase<'api_post_event'> {
  /** Address of the client that made the request. */
  clientIp: string;
  /** Path of the request, e.g. `/v2/apps/my-app`. */
  uri: string;
  /** The app definition the request produced, as `GET /v2/apps/{id}` answers it. */
  appDefinition: MarathonAppJson;
}

// --- The framework and the master --------------------------------------------------------------

/** The services framework subscribed to the master (scheduler API SUBSCRIBED). */
export interface SchedulerRegisteredEvent extends EventBase<'scheduler_registered_event'> {
  frameworkId: string;
  /** Where the master is, `host:port`. */
  master: string;
}

/** The services framework subscribed again after losing the master. */
export interface SchedulerReregisteredEvent extends EventBase<'scheduler_reregistered_event'> {
  master: string;
}

/** The services framework lost its connection to the master. No fields of its own. */
export type SchedulerDisconnectedEvent = EventBase<'scheduler_disconnected_event'>;

// --- The event stream itself ----------------------------------------------------------------------

/** A client attached to `/v2/events` (every client gets its own unless its filter excludes it). */
export interface EventStreamAttachedEvent extends EventBase<'event_stream_attached'> {
  /** The client's IP address, e.g. `127.0.0.1` or `0:0:0:0:0:0:0:1`. */
  remoteAddress: string;
}

/** A client of `/v2/events` went away, was dropped as too slow, or the server closed. */
export interface EventStreamDetachedEvent extends EventBase<'event_stream_detached'> {
  remoteAddress: string;
}

// --- Health checks ----------------------------------------------------------------------------------

/** An app version with a health check started being checked. */
export interface AddHealthCheckEvent extends EventBase<'add_health_check_event'> {
  appId: string;
  /** The app version the check belongs to (ISO 8601). */
  version: string;
  healthCheck: HealthCheckJson;
}

/** The health checks of an app were removed (app deleted or changed). */
export interface RemoveHealthCheckEvent extends EventBase<'remove_health_check_event'> {
  appId: string;
}

/** One run of a health check failed for one instance. */
export interface FailedHealthCheckEvent extends EventBase<'failed_health_check_event'> {
  appId: string;
  instanceId: string;
  healthCheck: HealthCheckJson;
}

/** An instance's health, by one health check, changed. */
export interface HealthStatusChangedEvent extends EventBase<'health_status_changed_event'> {
  appId: string;
  instanceId: string;
  /** The app version of the instance (ISO 8601). */
  version: string;
  alive: boolean;
}

/** An instance was killed because it failed `maxConsecutiveFailures` health checks in a row. */
export interface UnhealthyInstanceKillEvent extends EventBase<'unhealthy_instance_kill_event'> {
  appId: string;
  taskId: string;
  instanceId: string;
  version: string;
  /** Why the last check failed, e.g. `500 Internal Server Error`. */
  reason: string;
  host: string;
  /** Absent when the agent is not known. */
  slaveId?: string;
}

// --- Groups and deployments -------------------------------------------------------------------------

/** A change of a group (and the apps in it) was accepted and deployed. */
export interface GroupChangeSuccessEvent extends EventBase<'group_change_success'> {
  groupId: string;
  version: string;
}

/** A change of a group could not be deployed. */
export interface GroupChangeFailedEvent extends EventBase<'group_change_failed'> {
  groupId: string;
  version: string;
  reason: string;
}

/** A deployment started a step (sent once per step, the first time when the deployment starts). */
export interface DeploymentInfoEvent extends EventBase<'deployment_info'> {
  plan: DeploymentPlanJson;
  currentStep: DeploymentStepJson;
}

/** A deployment finished: every step succeeded. */
export interface DeploymentSuccessEvent extends EventBase<'deployment_success'> {
  /** The deployment's id (= `plan.id`). */
  id: string;
  plan: DeploymentPlanJson;
}

/** A deployment failed or was cancelled (by a newer deployment, or `DELETE /v2/deployments/{id}`). */
export interface DeploymentFailedEvent extends EventBase<'deployment_failed'> {
  id: string;
  plan: DeploymentPlanJson;
  /** Why, where known (Marathon 1.6.352 and later). */
  reason?: string;
}

/** A step of a deployment succeeded. */
export interface DeploymentStepSuccessEvent extends EventBase<'deployment_step_success'> {
  plan: DeploymentPlanJson;
  currentStep: DeploymentStepJson;
}

/** A step of a deployment failed; the deployment fails with it. */
export interface DeploymentStepFailureEvent extends EventBase<'deployment_step_failure'> {
  plan: DeploymentPlanJson;
  currentStep: DeploymentStepJson;
}

// --- Apps, tasks and instances ----------------------------------------------------------------------

/** The last instance of a removed app is gone. */
export interface AppTerminatedEvent extends EventBase<'app_terminated_event'> {
  appId: string;
}

/** A task changed state (a Mesos status update the framework received). */
export interface StatusUpdateEvent extends EventBase<'status_update_event'> {
  /** The agent's id. */
  slaveId: string;
  taskId: string;
  taskStatus: TaskState;
  /** The status update's message; `""` when it has none. */
  message: string;
  appId: string;
  host: string;
  ipAddresses: { ipAddress: string; protocol: 'IPv4' | 'IPv6' }[];
  /** Host ports of the task, in port-definition order. */
  ports: number[];
  /** The app version the task runs (ISO 8601). */
  version: string;
}

/** A known instance changed condition. */
export interface InstanceChangedEvent extends EventBase<'instance_changed_event'> {
  instanceId: string;
  condition: InstanceCondition;
  runSpecId: string;
  /** `null` while the instance is not placed on an agent. */
  agentId: string | null;
  host: string;
  runSpecVersion: string;
}

/** A status update for an instance the framework does not know said it is terminal. */
export interface UnknownInstanceTerminatedEvent extends EventBase<'unknown_instance_terminated_event'> {
  instanceId: string;
  runSpecId: string;
  condition: InstanceCondition;
}

/** An instance's overall health changed. */
export interface InstanceHealthChangedEvent extends EventBase<'instance_health_changed_event'> {
  instanceId: string;
  runSpecId: string;
  /** `null` when the instance has health checks but none has a result yet. */
  healthy: boolean | null;
  runSpecVersion: string;
}

/** Every event Slipway publishes on the Marathon event bus. */
export type MarathonEvent =
  | ApiPostEvent
  | SchedulerRegisteredEvent
  | SchedulerReregisteredEvent
  | SchedulerDisconnectedEvent
  | EventStreamAttachedEvent
  | EventStreamDetachedEvent
  | AddHealthCheckEvent
  | RemoveHealthCheckEvent
  | FailedHealthCheckEvent
  | HealthStatusChangedEvent
  | UnhealthyInstanceKillEvent
  | GroupChangeSuccessEvent
  | GroupChangeFailedEvent
  | DeploymentInfoEvent
  | DeploymentSuccessEvent
  | DeploymentFailedEvent
  | DeploymentStepSuccessEvent
  | DeploymentStepFailureEvent
  | AppTerminatedEvent
  | StatusUpdateEvent
  | InstanceChangedEvent
  | UnknownInstanceTerminatedEvent
  | InstanceHealthChangedEvent;

export type MarathonEventType = MarathonEvent['eventType'];

/** The event of a given type. */
export type MarathonEventOf<T extends MarathonEventType> = Extract<MarathonEvent, { eventType: T }>;

/** What a constructor takes: the event's own fields. */
export type MarathonEventFields<T extends MarathonEventType> = Omit<MarathonEventOf<T>, 'eventType' | 'timestamp'>;

/** The names of all events above, in the order of this file. */
export const MARATHON_EVENT_TYPES = [
  'api_post_event',
  'scheduler_registered_event',
  'scheduler_reregistered_event',
  'scheduler_disconnected_event',
  'event_stream_attached',
  'event_stream_detached',
  'add_health_check_event',
  'remove_health_check_event',
  'failed_health_check_event',
  'health_status_changed_event',
  'unhealthy_instance_kill_event',
  'group_change_success',
  'group_change_failed',
  'deployment_info',
  'deployment_success',
  'deployment_failed',
  'deployment_step_success',
  'deployment_step_failure',
  'app_terminated_event',
  'status_update_event',
  'instance_changed_event',
  'unknown_instance_terminated_event',
  'instance_health_changed_event',
] as const satisfies readonly MarathonEventType[];

// The list names every event type (the `satisfies` above checks the other direction).
type Missing = Exclude<MarathonEventType, (typeof MARATHON_EVENT_TYPES)[number]>;
const _everyTypeListed: [Missing] extends [never] ? true : Missing = true;
void _everyTypeListed;

// ---------------------------------------------------------------------------------------------
// Constructors: one per event, named after it (`deployment_info` -> `deploymentInfo`). Each
// takes the event's own fields and, optionally, when it happened (default: now).
// ---------------------------------------------------------------------------------------------

/** When an event happened: a Date, epoch milliseconds, or an ISO 8601 string (kept as is). */
export type EventTime = Date | number | string;

export function isoTimestamp(at: EventTime = Date.now()): string {
  if (typeof at === 'string') return at;
  return (typeof at === 'number' ? new Date(at) : at).toISOString();
}

function build<T extends MarathonEventType>(eventType: T) {
  return (fields: MarathonEventFields<T>, at?: EventTime): MarathonEventOf<T> =>
    // The spread is exactly the event's own fields (checked by the parameter type); TypeScript
    // cannot see that adding eventType and timestamp to it gives MarathonEventOf<T>.
    ({ ...fields, eventType, timestamp: isoTimestamp(at) }) as unknown as MarathonEventOf<T>;
}

export const apiPostEvent = build('api_post_event');
export const schedulerRegisteredEvent = build('scheduler_registered_event');
export const schedulerReregisteredEvent = build('scheduler_reregistered_event');
export const schedulerDisconnectedEvent = build('scheduler_disconnected_event');
export const eventStreamAttached = build('event_stream_attached');
export const eventStreamDetached = build('event_stream_detached');
export const addHealthCheckEvent = build('add_health_check_event');
export const removeHealthCheckEvent = build('remove_health_check_event');
export const failedHealthCheckEvent = build('failed_health_check_event');
export const healthStatusChangedEvent = build('health_status_changed_event');
export const unhealthyInstanceKillEvent = build('unhealthy_instance_kill_event');
export const groupChangeSuccess = build('group_change_success');
export const groupChangeFailed = build('group_change_failed');
export const deploymentInfo = build('deployment_info');
export const deploymentSuccess = build('deployment_success');
export const deploymentFailed = build('deployment_failed');
export const deploymentStepSuccess = build('deployment_step_success');
export const deploymentStepFailure = build('deployment_step_failure');
export const appTerminatedEvent = build('app_terminated_event');
export const statusUpdateEvent = build('status_update_event');
export const instanceChangedEvent = build('instance_changed_event');
export const unknownInstanceTerminatedEvent = build('unknown_instance_terminated_event');
export const instanceHealthChangedEvent = build('instance_health_changed_event');

/**
 * The light plan of a deployment, from anything shaped like one (the deployment planner's
 * `DeploymentPlan` is): only `id`, `steps` and `version` are read, and copied.
 */
export function deploymentPlanJson(plan: {
  readonly id: string;
  readonly version: string;
  readonly steps: readonly { readonly actions: readonly DeploymentActionJson[] }[];
}): DeploymentPlanJson {
  return {
    id: plan.id,
    steps: plan.steps.map((s) => ({ actions: s.actions.map((a) => ({ action: a.action, app: a.app })) })),
    version: plan.version,
  };
}
