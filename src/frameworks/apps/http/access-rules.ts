import type { Check, GateRequest, RouteRule } from '../../../auth/http-gate.ts';
import type { Capability, ChangedObject } from '../../../auth/policy.ts';
import { secretName } from '../../../core/secret-name.ts';
import type { AppsView } from '../apps-state.ts';
import type { VersionedApp } from '../deployment/deployment-run.ts';
import { TooManyInRequest } from '../apps-errors.ts';
import type { StoredAppJson } from '../apps-store.ts';
import { checkGroupSize, MAX_APPS_PER_REQUEST, resolveGroupId } from '../group-definition.ts';

/**
 * What each route of Marathon's API asks of its caller (src/auth/http-gate.ts; docs/security.md).
 * Resources are apps by their canonical id (`..` resolved first, so `/team-a/../team-b/x` is
 * team-b's); a group is named by its id with a trailing slash, so that a rule `/team-a/*` covers
 * the group `/team-a` and all below it. Changes are checked against the whole definition sent:
 * each app's `user`, cpus, mem and instances (the policy's limits), apps inside groups included,
 * and `use` on every secret the app references (secretChecks).
 * `GET /v2/apps`, `/v2/groups`, `/v2/tasks`, `/v2/queue` and `/v2/deployments` answer what the
 * caller may read; the event stream needs read on every app (`*`).
 */

const ALL_APPS = { kind: 'apps', name: '*' } as const;
const on = (capability: Capability, name: string, object?: ChangedObject): Check => ({ capability, resource: { kind: 'apps', name }, ...(object !== undefined ? { object } : {}) });

/** The app id a wildcard path names, once its action suffix is taken off (`/a/b/restart` is `/a/b`). */
export function appIdOfPath(path: string): string {
  const m = /^(.*?)(\/restart|\/tasks(\/[^/]+)?|\/versions(\/[^/]+)?|\/delay)?$/.exec(path);
  return resolveGroupId(m?.[1] ?? path, '/');
}

const groupName = (id: string) => (id === '/' ? '/' : `${id}/`);

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * What the limits see of a change to an app: the app as it will be. Marathon's PUT is a partial
 * update, so a field the body leaves out keeps the stored app's value (a new `cmd` for an app an
 * admin set to run as root still runs as root); a rollback (`{"version": V}`) restores that
 * version's.
 */
function changedObject(app: Record<string, unknown>, stored: VersionedApp | undefined, versions: readonly StoredAppJson[]): ChangedObject {
  const restored = typeof app['version'] === 'string' ? versions.find((v) => v.version === app['version']) : undefined;
  const base: Record<string, unknown> = restored !== undefined ? { ...restored } : stored !== undefined ? { user: stored.def.user, cpus: stored.def.cpus, mem: stored.def.mem, instances: stored.def.instances } : {};
  return objectOf({ ...base, ...(restored !== undefined ? {} : app) });
}

/** What the policies' limits look at in an app definition (absent fields are not checked). */
function objectOf(app: Record<string, unknown>): ChangedObject {
  const o: ChangedObject = {};
  if (typeof app['user'] === 'string') o.taskUser = app['user'];
  if (typeof app['cpus'] === 'number') o.cpus = app['cpus'];
  if (typeof app['mem'] === 'number') o.mem = app['mem'];
  if (typeof app['instances'] === 'number') o.instances = app['instances'];
  return o;
}

/**
 * deploy on each app of a group definition, nested groups included, and use on their secrets.
 * Every app is checked: the body was bounded first (checkGroupSize, the parser's own limits),
 * so nothing is left out of the walk.
 */
function groupChecks(view: AppsView, groupId: string, body: unknown, out: Check[]): void {
  const g = record(body);
  if (g === undefined) return;
  for (const a of Array.isArray(g['apps']) ? g['apps'] : []) {
    const app = record(a);
    if (app !== undefined && typeof app['id'] === 'string') {
      const id = resolveGroupId(app['id'], groupId);
      out.push(on('deploy', id, objectOf(app)));
      secretChecks(app, view.app(id), view.versions(id), out);
    }
  }
  for (const child of Array.isArray(g['groups']) ? g['groups'] : []) {
    const c = record(child);
    if (c !== undefined && typeof c['id'] === 'string') {
      const id = resolveGroupId(c['id'], groupId);
      out.push(on('deploy', groupName(id)));
      groupChecks(view, id, c, out);
    }
  }
}

const wildcard = (req: GateRequest) => req.params['*'] ?? '';

/**
 * `use` on each secret an app definition names (its `secrets` sources): a caller who deploys an
 * app that references a secret can read it from inside the task. A change to an app that is
 * stored already (Marathon's PUT is a partial update) may rewrite the command of tasks that get
 * its secrets, so those count too, unless the change is a scale (`instances` alone).
 */
function secretChecks(app: Record<string, unknown>, stored: VersionedApp | undefined, versions: readonly StoredAppJson[], out: Check[]): void {
  const names = new Set<string>();
  const add = (secrets: unknown) => {
    for (const s of Object.values(record(secrets) ?? {})) {
      const source = record(s)?.['source'];
      if (typeof source === 'string') names.add(source);
    }
  };
  add(app['secrets']);
  const scaleOnly = Object.keys(app).every((k) => k === 'id' || k === 'instances');
  if (stored !== undefined && !scaleOnly) for (const source of Object.values(stored.def.secrets)) names.add(source);
  // A rollback (`{"version": V}`) restores that version's definition: its secrets count.
  if (typeof app['version'] === 'string') add(versions.find((v) => v.version === app['version'])?.secrets);
  for (const source of names) {
    const n = secretName(source);
    // A bad name is refused by the definition's validation, with its path.
    if ('name' in n) out.push({ capability: 'use', resource: { kind: 'secrets', name: n.name } });
  }
}

function appChecks(view: AppsView, req: GateRequest, fallbackId?: string): Check[] {
  const items = Array.isArray(req.body) ? req.body : [req.body];
  // Every app is checked: a bulk beyond what the route takes is refused here already.
  if (items.length > MAX_APPS_PER_REQUEST) throw new TooManyInRequest(`${items.length} apps in one request: at most ${MAX_APPS_PER_REQUEST} apps per ${req.method} /v2/apps (send them in several requests)`);
  return items.flatMap((item) => {
    const app = record(item) ?? {};
    const id = fallbackId ?? (typeof app['id'] === 'string' ? resolveGroupId(app['id'], '/') : '*');
    const stored = id === '*' ? undefined : view.app(id);
    const versions = id === '*' ? [] : view.versions(id);
    const checks = [on('deploy', id, changedObject(app, stored, versions))];
    secretChecks(app, stored, versions, checks);
    return checks;
  });
}

export function marathonAccessRules(view: AppsView, o: { rootMetrics: boolean }): RouteRule[] {
  const read = () => [{ capability: 'read' as const, resource: ALL_APPS }];
  return [
    { method: 'GET', url: '/ping', access: 'public' },
    { method: 'GET', url: '/v2/leader', access: () => [] },
    { method: 'GET', url: '/v2/info', access: () => [] },
    { method: 'GET', url: '/v2/metrics', access: () => [{ capability: 'read', resource: { kind: 'cluster', name: 'metrics' } }] },
    ...(o.rootMetrics ? [{ method: 'GET', url: '/metrics', access: () => [{ capability: 'read' as const, resource: { kind: 'cluster' as const, name: 'metrics' } }] }] : []),
    { method: 'GET', url: '/v2/events', access: read },
    // Any caller: the list holds only the apps it may read (marathon-routes filters it).
    { method: 'GET', url: '/v2/apps', access: () => [] },
    { method: 'POST', url: '/v2/apps', access: (req) => appChecks(view, req) },
    { method: ['PUT', 'PATCH'], url: '/v2/apps', access: (req) => appChecks(view, req) },
    { method: 'GET', url: '/v2/apps/*', access: (req) => [on('read', appIdOfPath(wildcard(req)))] },
    { method: ['PUT', 'PATCH'], url: '/v2/apps/*', access: (req) => appChecks(view, req, appIdOfPath(wildcard(req))) },
    { method: 'POST', url: '/v2/apps/*', access: (req) => [on('restart', appIdOfPath(wildcard(req)))] },
    {
      method: 'DELETE',
      url: '/v2/apps/*',
      access: (req) => {
        const path = wildcard(req);
        return [on(/\/tasks(\/[^/]+)?$/.test(path) ? 'kill' : 'delete', appIdOfPath(path))];
      },
    },
    // Any caller: these lists hold only the apps it may read (marathon-routes filters them).
    { method: 'GET', url: '/v2/groups', access: () => [] },
    { method: 'GET', url: '/v2/groups/*', access: () => [] },
    ...(['POST', 'PUT'] as const).flatMap((method): RouteRule[] => [
      { method, url: '/v2/groups', access: (req) => groupBodyChecks(view, '/', req.body) },
      { method, url: '/v2/groups/*', access: (req) => groupBodyChecks(view, resolveGroupId(wildcard(req), '/'), req.body) },
    ]),
    // A dry run of a deploy: what POST /v2/apps (an app) or PUT /v2/groups (a group) would ask.
    { method: 'POST', url: '/v2/plan', access: (req) => (isGroupBody(req.body) ? groupBodyChecks(view, '/', req.body) : appChecks(view, req)) },
    { method: 'DELETE', url: '/v2/groups', access: () => [on('delete', '/')] },
    { method: 'DELETE', url: '/v2/groups/*', access: (req) => [on('delete', groupName(resolveGroupId(wildcard(req), '/')))] },
    { method: 'GET', url: '/v2/deployments', access: () => [] },
    { method: 'DELETE', url: '/v2/deployments/:id', access: () => [{ capability: 'deploy', resource: ALL_APPS }] },
    { method: 'GET', url: '/v2/tasks', access: () => [] },
    {
      method: 'POST',
      url: '/v2/tasks/delete',
      access: (req) => {
        const ids = record(req.body)?.['ids'];
        if (!Array.isArray(ids)) return [];
        // Tasks that are gone are ignored by the route (as Marathon does): nothing to check.
        return ids.slice(0, 10_000).flatMap((id) => {
          const appId = typeof id === 'string' ? view.instance(id)?.appId : undefined;
          return appId !== undefined ? [on('kill', appId)] : [];
        });
      },
    },
    { method: 'GET', url: '/v2/queue', access: () => [] },
    { method: 'DELETE', url: '/v2/queue/*', access: (req) => [on('deploy', appIdOfPath(wildcard(req)))] },
  ];
}

/** A body of POST /v2/plan is a group when it has `apps` or `groups` (as the route reads it). */
function isGroupBody(body: unknown): boolean {
  const g = record(body);
  return g !== undefined && (g['apps'] !== undefined || g['groups'] !== undefined);
}

function groupBodyChecks(view: AppsView, groupId: string, body: unknown): Check[] {
  checkGroupSize(body);
  const out: Check[] = [];
  const g = record(body);
  const id = g !== undefined && typeof g['id'] === 'string' ? resolveGroupId(g['id'], groupId) : groupId;
  out.push(on('deploy', groupName(id)));
  groupChecks(view, id, body, out);
  return out;
}
