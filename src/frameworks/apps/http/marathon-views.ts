import { appToJSON } from '../app-definition.ts';
import type { AppsFramework } from '../apps-framework.ts';
import type { VersionedApp } from '../deployment/deployment-run.ts';
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
    servicePorts: [],
    ipAddresses: [{ ipAddress: i.host, protocol: 'IPv4' }],
    slaveId: i.agentId,
    stagedAt: new Date(i.stagedAt).toISOString(),
    ...(i.startedAt !== undefined ? { startedAt: new Date(i.startedAt).toISOString() } : {}),
    version: i.version,
    state: i.state,
    localVolumes: [],
    role: '*',
    ...(i.hasHealthCheck && i.healthy !== undefined
      ? { healthCheckResults: [{ alive: i.healthy, consecutiveFailures: i.healthy ? 0 : 1, firstSuccess: null, lastFailure: null, lastSuccess: null, lastFailureCause: null, instanceId: i.taskId }] }
      : {}),
  };
}

export function appCounts(framework: AppsFramework, appId: string): Record<string, number> {
  let staged = 0;
  let running = 0;
  let healthy = 0;
  let unhealthy = 0;
  for (const i of framework.instancesOf(appId)) {
    if (i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING') staged++;
    if (i.state === 'TASK_RUNNING') running++;
    if (i.hasHealthCheck && isHealthy(i)) healthy++;
    if (i.hasHealthCheck && i.healthy === false) unhealthy++;
  }
  return { tasksStaged: staged, tasksRunning: running, tasksHealthy: healthy, tasksUnhealthy: unhealthy };
}

export function appJson(framework: AppsFramework, app: VersionedApp, embed: ReadonlySet<Embed>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...appToJSON(app.def, app.info) };
  if (embed.has('counts')) Object.assign(out, appCounts(framework, app.def.id));
  if (embed.has('deployments')) {
    const run = framework.deploymentOf(app.def.id);
    out['deployments'] = run !== undefined ? [{ id: run.id }] : [];
  }
  if (embed.has('readiness')) out['readinessCheckResults'] = framework.readinessResults(app.def.id);
  if (embed.has('tasks')) out['tasks'] = framework.instancesOf(app.def.id).map(taskJson);
  if (embed.has('lastTaskFailure')) {
    const f = framework.lastTaskFailure(app.def.id);
    if (f !== undefined) out['lastTaskFailure'] = f;
  }
  if (embed.has('taskStats')) out['taskStats'] = {};
  return out;
}

/** GET /v2/queue: apps waiting for instances, with their launch delay. */
export function queueJson(framework: AppsFramework, now: number): Record<string, unknown> {
  return {
    queue: framework.queue().map((q) => {
      const left = Math.max(0, Math.ceil((q.delayUntil - now) / 1000));
      const failure = framework.lastTaskFailure(q.app.def.id);
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

/** A group and its subgroups, derived from the app ids (`/a/b/c` lives in `/a/b`). */
export function groupJson(framework: AppsFramework, groupId: string, embed: ReadonlySet<Embed>): Record<string, unknown> | undefined {
  const apps = framework.listApps();
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
    apps: direct.map((a) => appJson(framework, a, embed)),
    groups: [...childGroups].sort().map((g) => groupJson(framework, g, embed)),
    pods: [],
    dependencies: [],
    version: versions[versions.length - 1] ?? new Date(0).toISOString(),
  };
}
