import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAppDefinition, type AppDefinition } from '../src/frameworks/apps/app-definition.ts';
import { up, type Up } from '../src/server/up.ts';

// Every app and group example of Marathon's API reference (../shared/reference/marathon/examples,
// copied unchanged into src/frameworks/apps/testdata so that a clone alone runs this)
// is POSTed to a running Slipway as a Marathon user would, then read back: what comes back must be
// what was sent (after Marathon's normalization: defaults, ports -> portDefinitions, uris ->
// fetch), or the example must be refused only for a field Slipway names as unsupported.
// The agent is given almost nothing, so no instance launches: this is about the API, not tasks.

const EXAMPLES = new URL('../src/frameworks/apps/testdata/', import.meta.url);
type Json = Record<string, unknown>;

function example(name: string): unknown {
  return JSON.parse(readFileSync(new URL(name, EXAMPLES), 'utf8'));
}

/** The definition without what the server assigns, normalized as Marathon does. */
function normalized(json: unknown, idPrefix?: string): unknown {
  const { version: _v, versionInfo: _vi, tasksStaged: _a, tasksRunning: _b, tasksHealthy: _c, tasksUnhealthy: _d, deployments: _e, tasks: _f, lastTaskFailure: _g, readinessCheckResults: _h, ...rest } = json as Json;
  return parseAppDefinition(rest, idPrefix !== undefined ? { idPrefix } : {});
}

/**
 * Checks that `back` (read from the server) is `sent` as Marathon gives it back: normalized, and
 * with a service port of Marathon's range (10000-19999, each once) where `sent` declared port 0.
 */
function assertReadBack(back: unknown, sent: unknown, idPrefix?: string): void {
  const got = normalized(back) as AppDefinition;
  const want = normalized(sent, idPrefix) as AppDefinition;
  const assigned: number[] = [];
  const unassigned = got.portDefinitions.map((p, i) => {
    if (want.portDefinitions[i]?.port !== 0) return p;
    assert.ok(p.port >= 10000 && p.port < 20000, `${got.id}: port ${i} declared 0 came back as ${p.port}, not a service port of 10000-19999`);
    assigned.push(p.port);
    return { ...p, port: 0 };
  });
  assert.equal(new Set(assigned).size, assigned.length, `${got.id}: service ports ${assigned.join(', ')} assigned twice`);
  assert.deepEqual({ ...got, portDefinitions: unassigned }, want);
}

describe('Marathon API examples, POSTed and read back', () => {
  let server: Up;
  let dir: string;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-examples-'));
    server = await up({ host: '127.0.0.1', port: 0, dataDir: dir, containerizers: ['process'], resources: 'cpus:0.01;mem:1;disk:1;ports:[31000-31000]' });
    base = server.master.url;
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    assert.equal(r.status, 200, `GET ${path}: ${r.status}`);
    return (await r.json()) as Json;
  };

  it('refuses app.json only for unsupported fields and for cmd with args (Marathon refuses that too), and accepts it without them', async () => {
    const app = example('app.json') as Json;
    const r = await post('/v2/apps', app);
    assert.equal(r.status, 422);
    const details = ((await r.json()) as { details: { path: string; errors: string[] }[] }).details;
    for (const d of details) {
      const ok = d.errors.every((e) => e.startsWith('not supported by Slipway') || e === "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.");
      assert.ok(ok, `refused for another reason: ${JSON.stringify(d)}`);
    }
    assert.deepEqual(details.map((d) => d.path).sort(), [
      '/',
      '/container/docker/network',
      '/container/docker/parameters(0)/key',
      '/container/docker/portMappings',
      '/ipAddress',
      '/tty',
    ]);

    // The same app without what was named: accepted, and read back as sent. Its env PASSWORD
    // names a secret's source (/db/password) where Marathon wants one of its declared ids.
    const { ipAddress: _i, tty: _t, args: _a, ...rest } = app;
    const env = { ...(app['env'] as Json), PASSWORD: { secret: 'secret1' } };
    const container = app['container'] as { docker: Json; volumes: unknown; type: string };
    const { network: _n, portMappings: _m, parameters: _q, ...docker } = container.docker;
    const valid = { ...rest, env, container: { ...container, docker } };
    const created = await post('/v2/apps', valid);
    assert.equal(created.status, 201, await created.clone().text());
    const back = (await get(`/v2/apps${app['id'] as string}`))['app'];
    assertReadBack(back, valid);
  });

  it('accepts each app of apps_create.json and gives each back', async () => {
    for (const app of example('apps_create.json') as Json[]) {
      const r = await post('/v2/apps', app);
      assert.equal(r.status, 201, await r.clone().text());
      const back = (await get(`/v2/apps${app['id'] as string}`))['app'];
      assertReadBack(back, app);
    }
  });

  it('applies app_patch.json and apps_patch.json as partial updates', async () => {
    const patch = example('app_patch.json') as Json;
    const before = (await get(`/v2/apps${patch['id'] as string}`))['app'] as Json;
    const r = await fetch(`${base}/v2/apps${patch['id'] as string}`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(patch) });
    assert.equal(r.status, 200, await r.clone().text());
    const back = (await get(`/v2/apps${patch['id'] as string}`))['app'] as Json;
    assert.equal(back['instances'], patch['instances']);
    // Everything else is as app.json had it.
    assert.deepEqual(normalized({ ...back, instances: 1 }), normalized({ ...before, instances: 1 }));

    const bulk = example('apps_patch.json') as Json[];
    const force = await fetch(`${base}/v2/apps?force=true`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(bulk) });
    assert.equal(force.status, 200, await force.clone().text());
    for (const p of bulk) {
      const app = (await get(`/v2/apps${p['id'] as string}`))['app'] as Json;
      for (const [k, v] of Object.entries(p)) assert.deepEqual(app[k], v, `${p['id'] as string}.${k}`);
    }
  });

  it('refuses group.json only for the bridge networking of one app, and accepts the rest of the group as sent', async () => {
    // group.json is the root group (id /): Marathon's example for PUT /v2/groups (a POST of
    // the root is 409 in Marathon, as here, since the root always exists).
    const group = example('group.json') as Json;
    // force: the deployments of the apps above never finish (nothing launches on this agent).
    const put = (body: unknown) => fetch(`${base}/v2/groups?force=true`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const r = await put(group);
    assert.equal(r.status, 422);
    const details = ((await r.json()) as { details: { path: string; errors: string[] }[] }).details;
    assert.ok(details.length > 0);
    for (const d of details) {
      assert.match(d.path, /^\/groups\(0\)\/groups\(1\)\/apps\(0\)\/container\/docker\/(network|portMappings)$/);
      assert.ok(d.errors.every((e) => e.startsWith('not supported by Slipway')), JSON.stringify(d));
    }

    const withoutBridge = JSON.parse(JSON.stringify(group)) as Json;
    const tools = (withoutBridge['groups'] as Json[])[0]!;
    const docker = (tools['groups'] as Json[])[1]!;
    docker['apps'] = [];
    const created = await put(withoutBridge);
    assert.equal(created.status, 200, await created.clone().text());
    const apps = appsOfGroup(withoutBridge);
    assert.ok(apps.length >= 2);
    for (const { app, groupId } of apps) {
      const id = parseAppDefinition(app, { idPrefix: groupId }).id;
      const back = (await get(`/v2/apps${id}`))['app'];
      assertReadBack(back, app, groupId);
    }
    const tree = JSON.stringify(await get('/v2/groups/tools'));
    for (const { app, groupId } of apps) assert.ok(tree.includes(parseAppDefinition(app, { idPrefix: groupId }).id));
  });

  it('refuses app-check-http-example.json only for its Mesos-native check, at /check', async () => {
    const r = await post('/v2/apps', example('app-check-http-example.json'));
    assert.equal(r.status, 422);
    const body = (await r.json()) as { message: string; details: { path: string; errors: string[] }[] };
    assert.deepEqual(
      body.details.map((d) => d.path),
      ['/check'],
    );
    assert.match(body.details[0]!.errors[0]!, /not supported by Slipway/);
  });
});

function appsOfGroup(group: Json): { app: Json; groupId: string }[] {
  const own = ((group['apps'] as Json[] | undefined) ?? []).map((app) => ({ app, groupId: group['id'] as string }));
  return [...own, ...((group['groups'] as Json[] | undefined) ?? []).flatMap(appsOfGroup)];
}
