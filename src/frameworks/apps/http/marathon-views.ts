import { appToJSON } from '../app-definition.ts';
import type { AppsView } from '../apps-state.ts';
import type { VersionedApp } from '../deployment/deployment-run.ts';
import type { TaskState } from '../../../core/task-state.ts';
import { isHealthy, type Instance } from '../instance.ts';

// The JSON Marathon answers with, built from the framework's state. Field names and shapes follow
// Marathon's examples (examples/app_list.json, app_tasks.json, queue.json, group.json).

export type Embed = 'tasks' | 'counts' | 'deployments' | 'readiness' | 'lastTaskFailure' | 'taskStats';

/**
 * Marathon's `embed` values (`apps.tasks`, `app.counts`, ...) as a set; `failures` is the
 * deprecated shorthand for tasks, counts, deployments and lastTaskFailure. Unknown values are
 * ignored, as Marathon does.
 */
export function parseEmbed(values: readonly string[], fallback: readonly Embed[]): Set<Embed> {
  if (values.length === 0) return new Set(fallback);
  const out = new Set<Embed>();
  for (const v of values) {
    const name = v.replace(/^(apps?|group\.apps)\./, '');
    if (name === 'failures') for (const e of ['tasks', 'counts', 'deployments', 'lastTaskFailure'] as const) out.add(e);
    else if (name === 'count' || name === 'counts') out.add('counts');
    else if (['tasks', 'deployments', 'readiness', 'lastTaskFailure', 'taskStats'].includes(name)) out.add(name as Embed);
  }
  // apps.raml: embedding tasks also embeds deployments.
  if (out.has('tasks')) out.add('deployments');
  return out;
}

export function taskJson(i: Instance): Record<string, unknown> {
  return {
    id: i.taskId,
    appId: i.appId,
    host: i.host,
    ports: i.ports,
    servicePorts: i.servicePorts ?? [],
    ipAddresses: [{ ipAddress: i.host, protocol: 'IPv4' }],
    slaveId: i.agentId,
    stagedAt: new Date(i.stagedAt).toISOString(),
    ...(i.startedAt !== undefined ? { startedAt: new Date(i.startedAt).toISOString() } : {}),
    version: i.version,
    state: i.state,
    localVolumes: [],
    role: '*',
    // Slipway's own: the config center's release the task started with (Marathon clients ignore it).
    ...(i.configRelease !== undefined ? { configRelease: { ...i.configRelease } } : {}),
    ...(i.hasHealthCheck && i.healthy !== undefined
      ? { healthCheckResults: [{ alive: i.healthy, consecutiveFailures: i.healthy ? 0 : 1, firstSuccess: null, lastFailure: null, lastSuccess: null, lastFailureCause: null, instanceId: i.taskId }] }
      : {}),
  };
}

export function appCounts(view: AppsView, appId: string): Record<string, number> {
  let staged = 0;
  let running = 0;
  let healthy = 0;
  let unhealthy = 0;
  for (const i of view.instancesOf(appId)) {
    if (i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING') staged++;
    if (i.state === 'TASK_RUNNING') running++;
    if (i.hasHealthCheck && isHealthy(i)) healthy++;
    if (i.hasHealthCheck && i.healthy === false) unhealthy++;
  }
  return { tasksStaged: staged, tasksRunning: running, tasksHealthy: healthy, tasksUnhealthy: unhealthy };
}

export function appJson(view: AppsView, app: VersionedApp, embed: ReadonlySet<Embed>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...appToJSON(app.def, app.info) };
  if (embed.has('counts')) Object.assign(out, appCounts(view, app.def.id));
  if (embed.has('deployments')) {
    const run = view.runOf(app.def.id);
    out['deployments'] = run !== undefined ? [{ id: run.id }] : [];
  }
  if (embed.has('readiness')) out['readinessCheckResults'] = view.readinessResults(app.def.id);
  if (embed.has('tasks')) out['tasks'] = view.instancesOf(app.def.id).map(taskJson);
  if (embed.has('lastTaskFailure')) {
    const f = view.failures.get(app.def.id);
    if (f !== undefined) out['lastTaskFailure'] = f;
  }
  if (embed.has('taskStats')) out['taskStats'] = {};
  return out;
}

// ---------------------------------------------------------------------------------------------
// The list as text. GET /v2/apps?embed=apps.tasks at 1,000 apps x 10 instances is 4.5 MiB of
// JSON; building the objects and serializing them again on every request took ~65 ms (two Date
// formats per task, then JSON.stringify). Each task's and each app version's JSON text is kept
// and reused while what it shows is unchanged, and the list is joined as text (p50 ~45 ms).
// ---------------------------------------------------------------------------------------------

/**
 * After launch, only `state`, `healthy` and `startedAt` of an Instance change (what `taskJson`
 * shows); a VersionedApp is replaced on every change, never mutated. The caches rely on both.
 */
const taskText = new WeakMap<Instance, { state: TaskState; healthy: boolean | undefined; startedAt: number | undefined; json: string }>();
const appText = new WeakMap<VersionedApp, string>();

export function taskJsonText(i: Instance): string {
  const c = taskText.get(i);
  if (c !== undefined && c.state === i.state && c.healthy === i.healthy && c.startedAt === i.startedAt) return c.json;
  const json = JSON.stringify(taskJson(i));
  taskText.set(i, { state: i.state, healthy: i.healthy, startedAt: i.startedAt, json });
  return json;
}

/** The same JSON as `appJson`, as text. */
export function appJsonText(view: AppsView, app: VersionedApp, embed: ReadonlySet<Embed>): string {
  let base = appText.get(app);
  if (base === undefined) {
    base = JSON.stringify(appToJSON(app.def, app.info)).slice(0, -1);
    appText.set(app, base);
  }
  const parts = [base];
  const id = app.def.id;
  if (embed.has('counts')) {
    const c = appCounts(view, id);
    parts.push(`,"tasksStaged":${c['tasksStaged']},"tasksRunning":${c['tasksRunning']},"tasksHealthy":${c['tasksHealthy']},"tasksUnhealthy":${c['tasksUnhealthy']}`);
  }
  if (embed.has('deployments')) {
    const run = view.runOf(id);
    parts.push(`,"deployments":${run !== undefined ? JSON.stringify([{ id: run.id }]) : '[]'}`);
  }
  if (embed.has('readiness')) parts.push(`,"readinessCheckResults":${JSON.stringify(view.readinessResults(id))}`);
  if (embed.has('tasks')) parts.push(`,"tasks":[${view.instancesOf(id).map(taskJsonText).join(',')}]`);
  if (embed.has('lastTaskFailure')) {
    const f = view.failures.get(id);
    if (f !== undefined) parts.push(`,"lastTaskFailure":${JSON.stringify(f)}`);
  }
  if (embed.has('taskStats')) parts.push(',"taskStats":{}');
  parts.push('}');
  return parts.join('');
}

/** GET /v2/queue: apps waiting for instances, with their launch delay. */
export function queueJson(view: AppsView, now: number, readable?: (appId: string) => boolean): Record<string, unknown> {
  return {
    queue: view.queue(now).filter((q) => readable === undefined || readable(q.app.def.id)).map((q) => {
      const left = Math.max(0, Math.ceil((q.delayUntil - now) / 1000));
      const failure = view.failures.get(q.app.def.id);
      return {
        app: { ...appToJSON(q.app.def, q.app.info), ...(failure !== undefined ? { lastTaskFailure: failure } : {}) },
        count: q.count,
        role: '*',
        delay: { timeLeftSeconds: left, overdue: left === 0 },
        since: new Date(q.since).toISOString(),
        processedOffersSummary: { processedOffersCount: q.processedOffers, unusedOffersCount: q.unusedOffers },
        lastUnusedOffers: [],
      };
    }),
  };
}

/**
 * A group and its subgroups, derived from the app ids (`/a/b/c` lives in `/a/b`). With
 * `readable`, only the apps it allows, and the groups that hold one (a caller sees its part of
 * the tree; a group it cannot see any app of is not found).
 */
export function groupJson(view: AppsView, groupId: string, embed: ReadonlySet<Embed>, readable?: (appId: string) => boolean): Record<string, unknown> | undefined {
  const apps = readable === undefined ? view.apps() : view.apps().filter((a) => readable(a.def.id));
  const prefix = groupId === '/' ? '/' : `${groupId}/`;
  const inside = apps.filter((a) => a.def.id.startsWith(prefix));
  if (groupId !== '/' && inside.length === 0) return undefined;
  const childGroups = new Set<string>();
  const direct: VersionedApp[] = [];
  for (const a of inside) {
    const rest = a.def.id.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) direct.push(a);
    else childGroups.add(prefix + rest.slice(0, slash));
  }
  const versions = inside.map((a) => a.info.version).sort();
  return {
    id: groupId,
    apps: direct.map((a) => appJson(view, a, embed)),
    groups: [...childGroups].sort().map((g) => groupJson(view, g, embed, readable)),
    pods: [],
    dependencies: [],
    version: versions[versions.length - 1] ?? new Date(0).toISOString(),
  };
}
