import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathSegment } from '../src/agent/path-segment.ts';
import { up, type Up } from '../src/server/up.ts';
import { tempDir } from './support/processes.ts';
import { killProcessesUnder, processesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

/**
 * Marathon's REST API v2 as a Marathon user drives it: `slipway up` in this process (master,
 * services framework, one agent with the process containerizer), and plain `fetch` on the
 * master's port. Every app here is small (`sleep`, `python3 -m http.server`, or the flag server
 * below); every wait has a deadline. The tests run in order on one cluster; those under "changes"
 * go on with the apps of the first ones (/crud/...), the others clean up after themselves.
 */

const dir = tempDir('apps-api');
let cluster: Up;
let base = '';
let frameworkId = '';
let portRange: [number, number] = [0, 0];

/**
 * A tiny HTTP server whose answers the test controls with files in `flags`: GET /ready answers
 * 200 once `flags/ready-<app name>` exists and 503 before; GET /health answers 500 while
 * `flags/sick-<task id>` exists; anything else 200.
 */
const FLAG_SERVER = `
import http.server, os, sys
port, flags = int(sys.argv[1]), sys.argv[2]
task, app = os.environ.get('MESOS_TASK_ID', ''), os.environ.get('MARATHON_APP_ID', '').strip('/').replace('/', '_')
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/ready':
            ok, bad = os.path.exists(os.path.join(flags, 'ready-' + app)), 503
        elif self.path == '/health':
            ok, bad = not os.path.exists(os.path.join(flags, 'sick-' + task)), 500
        else:
            ok, bad = True, 500
        body = b'ok' if ok else b'not yet'
        self.send_response(200 if ok else bad)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('', port), H).serve_forever()
`;
const flags = join(dir, 'flags');
const flagServer = join(dir, 'flag-server.py');
const flagCmd = `exec python3 ${flagServer} $PORT0 ${flags}`;

interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- Marathon's JSON, asserted field by field
}

async function api(method: string, path: string, body?: unknown, raw?: string): Promise<Answer> {
  const response = await fetch(base + path, {
    method,
    ...(body !== undefined || raw !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: raw ?? JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  let parsed: unknown = text;
  if ((response.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text);
  return { status: response.status, headers: response.headers, body: parsed };
}

/** `api`, asserting the status. */
async function ok(method: string, path: string, body?: unknown, status?: number): Promise<Answer['body']> {
  const a = await api(method, path, body);
  if (status !== undefined) assert.equal(a.status, status, `${method} ${path}: ${JSON.stringify(a.body)}`);
  else assert.ok(a.status >= 200 && a.status < 300, `${method} ${path} answered ${a.status}: ${JSON.stringify(a.body)}`);
  return a.body;
}

interface TaskJson {
  id: string;
  appId: string;
  host: string;
  ports: number[];
  state: string;
  version: string;
  stagedAt: string;
  startedAt?: string;
  healthCheckResults?: { alive: boolean }[];
}

async function tasksOf(appId: string): Promise<TaskJson[]> {
  return ((await ok('GET', `/v2/apps${appId}/tasks`)) as { tasks: TaskJson[] }).tasks;
}

const isRunning = (t: TaskJson) => t.state === 'TASK_RUNNING';
const isHealthyTask = (t: TaskJson) => isRunning(t) && t.healthCheckResults?.[0]?.alive === true;

/** Waits until the app has exactly `n` tasks, all passing `pass` (RUNNING by default); returns them. */
async function waitForTasks(appId: string, n: number, what = 'running', pass: (t: TaskJson) => boolean = isRunning, timeoutMs = 20_000): Promise<TaskJson[]> {
  return waitUntil(
    async () => {
      const tasks = await tasksOf(appId);
      return tasks.length === n && tasks.every(pass) ? tasks : undefined;
    },
    `${n} ${what} tasks of ${appId}`,
    timeoutMs,
  );
}

/** The live processes of a task, found by its sandbox (what really runs, beyond what the API says). */
function processesOf(taskId: string): string[] {
  return processesUnder(join(dir, 'data', 'agent', 'sandboxes', pathSegment(frameworkId), pathSegment(taskId))).map((p) => p.comm);
}

async function waitForNoProcesses(taskIds: readonly string[]): Promise<void> {
  await waitUntil(() => taskIds.every((t) => processesOf(t).length === 0), `the processes of ${taskIds.join(', ')} to end`);
}

async function deploymentIds(): Promise<string[]> {
  return ((await ok('GET', '/v2/deployments')) as { id: string }[]).map((d) => d.id);
}

async function waitForDeploymentGone(id: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(async () => !(await deploymentIds()).includes(id), `deployment ${id} to finish`, timeoutMs);
}

/** POSTs an app and waits until its deployment is done (n running, healthy where it has checks). */
async function deployApp(app: Record<string, unknown>, timeoutMs = 20_000): Promise<TaskJson[]> {
  const created = await ok('POST', '/v2/apps', app, 201);
  await waitForDeploymentGone(created.deployments[0].id, timeoutMs);
  return tasksOf(created.id);
}

/** DELETE the apps (force) and wait until none of their tasks is left. */
async function removeApps(...ids: string[]): Promise<void> {
  for (const id of ids) {
    const a = await api('DELETE', `/v2/apps${id}?force=true`);
    assert.ok(a.status === 200 || a.status === 404, `DELETE ${id}: ${a.status} ${JSON.stringify(a.body)}`);
  }
  await waitUntil(
    async () => {
      const all = ((await ok('GET', '/v2/tasks')) as { tasks: TaskJson[] }).tasks;
      return all.every((t) => !ids.includes(t.appId));
    },
    `the tasks of ${ids.join(', ')} to end`,
  );
}

const small = { cpus: 0.05, mem: 32 };

/**
 * A block of `size` ports that nothing listens on now, at a random place below Linux's ephemeral
 * range: other test runs on this machine (and their tasks) use the usual 31000-31999.
 */
async function freePortBlock(size: number): Promise<[number, number]> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = 20_000 + Math.floor(Math.random() * ((30_000 - 20_000) / size)) * size;
    let all = true;
    for (let p = first; p < first + size && all; p++) all = await free(p);
    if (all) return [first, first + size - 1];
  }
  throw new Error(`no free block of ${size} ports between 20000 and 30000`);
}

describe('Marathon\u2019s REST API on `slipway up`', { timeout: 180_000 }, () => {
  before(async () => {
    writeFileSync(flagServer, FLAG_SERVER);
    mkdirSync(flags, { recursive: true });
    const [firstPort, lastPort] = await freePortBlock(100);
    cluster = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: `cpus:8;mem:8192;disk:10000;ports:[${firstPort}-${lastPort}]` });
    portRange = [firstPort, lastPort];
    base = cluster.master.url;
    const info = await waitUntil(async () => {
      const i = await ok('GET', '/v2/info');
      return typeof i.frameworkId === 'string' ? i : undefined;
    }, 'the services framework to subscribe');
    frameworkId = info.frameworkId;
    // The one agent registered with the master.
    await waitUntil(async () => {
      const r = await fetch(`${base}/api/v1`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'GET_AGENTS' }) });
      const j = (await r.json()) as { get_agents: { agents: { active: boolean }[] } };
      return j.get_agents.agents.some((a) => a.active);
    }, 'the agent to register');
  });

  after(async () => {
    if (cluster === undefined) return;
    // The agent leaves its tasks running when it stops: stop them first.
    try {
      const apps = ((await ok('GET', '/v2/apps')) as { apps: { id: string }[] }).apps.map((a) => a.id);
      if (apps.length > 0) await removeApps(...apps);
    } finally {
      await cluster.close();
      // Whatever a failed test left running (the agent leaves its tasks when it stops).
      killProcessesUnder(join(dir, 'data'));
    }
  });

  // --- definitions and errors ------------------------------------------------------------------

  it('creates an app with 201, a Location and its deployment, and shows it with tasks, counts and deployments', async () => {
    const r = await api('POST', '/v2/apps', { id: '/crud/sleeper', cmd: 'sleep 1000', ...small, instances: 2, labels: { tier: 'back', team: 'a' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.headers.get('location'), '/v2/apps/crud/sleeper');
    assert.equal(r.body.id, '/crud/sleeper');
    assert.equal(r.body.instances, 2);
    assert.equal(typeof r.body.version, 'string');
    assert.equal(r.body.deployments.length, 1);
    const deploymentId = r.body.deployments[0].id as string;
    assert.equal(r.headers.get('marathon-deployment-id'), deploymentId);

    const during = await ok('GET', '/v2/apps/crud/sleeper');
    assert.equal(during.app.id, '/crud/sleeper');
    assert.ok(Array.isArray(during.app.tasks), 'GET /v2/apps/{id} embeds tasks');
    for (const field of ['tasksStaged', 'tasksRunning', 'tasksHealthy', 'tasksUnhealthy']) assert.equal(typeof during.app[field], 'number', field);
    assert.ok(Array.isArray(during.app.deployments));

    await waitForDeploymentGone(deploymentId);
    const done = (await ok('GET', '/v2/apps/crud/sleeper')).app;
    assert.equal(done.tasksRunning, 2);
    assert.equal(done.tasks.length, 2);
    assert.deepEqual(done.deployments, []);
    for (const t of done.tasks as TaskJson[]) {
      assert.equal(t.appId, '/crud/sleeper');
      assert.equal(t.state, 'TASK_RUNNING');
      assert.match(t.id, /^crud_sleeper\.instance-/);
      assert.equal(t.ports.length, 1);
      assert.ok(t.ports[0]! >= portRange[0] && t.ports[0]! <= portRange[1], `port ${t.ports[0]} from the agent's range`);
    }
  });

  it('lists apps filtered by id, cmd and label, with embedded tasks', async () => {
    await deployApp({ id: '/crud/other', cmd: 'sleep 999', ...small, labels: { tier: 'front' } });
    const ids = async (query: string) => ((await ok('GET', `/v2/apps${query}`)).apps as { id: string }[]).map((a) => a.id);
    assert.deepEqual(await ids('?id=crud'), ['/crud/other', '/crud/sleeper']);
    assert.deepEqual(await ids('?id=SLEEP'), ['/crud/sleeper']);
    assert.deepEqual(await ids('?cmd=SLEEP%20999'), ['/crud/other']);
    assert.deepEqual(await ids('?label=tier==front'), ['/crud/other']);
    assert.deepEqual(await ids('?label=tier'), ['/crud/other', '/crud/sleeper']);
    assert.deepEqual(await ids('?label=team'), ['/crud/sleeper']);
    assert.deepEqual(await ids('?label=tier%20in%20(back,middle)'), ['/crud/sleeper']);
    const plain = (await ok('GET', '/v2/apps?id=/crud/sleeper')).apps[0];
    assert.equal(plain.tasks, undefined, 'no tasks unless embedded');
    assert.equal(plain.tasksRunning, 2, 'counts are always embedded in the list');
    assert.deepEqual(plain.deployments, []);
    const embedded = (await ok('GET', '/v2/apps?id=/crud/sleeper&embed=apps.tasks')).apps[0];
    assert.equal(embedded.tasks.length, 2);
    assert.equal(embedded.tasks[0].appId, '/crud/sleeper');
    assert.equal(embedded.tasksRunning, 2);
    // One app always comes with its tasks, counts and deployments, whatever else is embedded.
    const one = (await ok('GET', '/v2/apps/crud/sleeper?embed=apps.lastTaskFailure')).app;
    assert.equal(one.tasks.length, 2);
    assert.equal(one.tasksRunning, 2);
    assert.deepEqual(one.deployments, []);
  });

  it('answers 409 to a POST of an existing app', async () => {
    const r = await api('POST', '/v2/apps', { id: '/crud/sleeper', cmd: 'sleep 1', ...small });
    assert.equal(r.status, 409);
    assert.match(r.body.message, /already exists/);
  });

  it('creates an app with PUT /v2/apps/{id} when there is none (201 with a Location)', async () => {
    const r = await api('PUT', '/v2/apps/crud/put', { cmd: 'sleep 996', ...small });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.headers.get('location'), '/v2/apps/crud/put');
    assert.equal(typeof r.body.deploymentId, 'string');
    await waitForDeploymentGone(r.body.deploymentId);
    assert.equal((await ok('GET', '/v2/apps/crud/put')).app.tasksRunning, 1);
    await removeApps('/crud/put');
  });

  it('answers 400 with a JSON message to malformed JSON', async () => {
    const r = await api('POST', '/v2/apps', undefined, '{"id": "/broken", "cmd": ');
    assert.equal(r.status, 400);
    assert.match(r.headers.get('content-type') ?? '', /json/);
    assert.equal(typeof r.body.message, 'string');
    assert.ok(r.body.message.length > 0);
  });

  it('answers 422 in Marathon\u2019s shape to an invalid app, naming each path', async () => {
    const r = await api('POST', '/v2/apps', { id: '/invalid', cmd: 'sleep 1', cpus: -1, instances: 'two' });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.equal(typeof r.body.message, 'string');
    assert.ok(Array.isArray(r.body.details));
    const paths = (r.body.details as { path: string; errors: string[] }[]).map((d) => d.path);
    assert.ok(paths.includes('/cpus'), `details name /cpus: ${JSON.stringify(r.body.details)}`);
    assert.ok(paths.includes('/instances'), `details name /instances: ${JSON.stringify(r.body.details)}`);
    for (const d of r.body.details) assert.ok(Array.isArray(d.errors) && d.errors.length > 0 && d.errors.every((e: unknown) => typeof e === 'string'));
    assert.equal((await api('GET', '/v2/apps/invalid')).status, 404, 'nothing was created');
  });

  it('refuses an unsupported field with 422 naming it', async () => {
    const r = await api('POST', '/v2/apps', { id: '/persistent', cmd: 'sleep 1', ...small, residency: { taskLostBehavior: 'WAIT_FOREVER' } });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    const detail = (r.body.details as { path: string; errors: string[] }[]).find((d) => d.path.startsWith('/residency'));
    assert.ok(detail !== undefined, `a detail names /residency: ${JSON.stringify(r.body.details)}`);
    assert.match(detail.errors.join(' '), /not supported/i);
  });

  it('answers 404 with a JSON message for an unknown app', async () => {
    for (const [method, path] of [
      ['GET', '/v2/apps/nope'],
      ['GET', '/v2/apps/nope/tasks'],
      ['GET', '/v2/apps/nope/versions'],
      ['DELETE', '/v2/apps/nope'],
      ['POST', '/v2/apps/nope/restart'],
    ] as const) {
      const r = await api(method, path);
      assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.message, /\/nope/, `${method} ${path}`);
    }
  });

  // --- the typical app -------------------------------------------------------------------------

  it('runs the issue\u2019s python http.server app: 3 healthy tasks serving HTTP, the deployment gone', async () => {
    const created = await ok(
      'POST',
      '/v2/apps',
      {
        id: '/http',
        cmd: 'python3 -m http.server $PORT0',
        cpus: 0.1,
        mem: 64,
        instances: 3,
        healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 2, maxConsecutiveFailures: 2 }],
      },
      201,
    );
    const tasks = await waitForTasks('/http', 3, 'healthy', isHealthyTask);
    await waitForDeploymentGone(created.deployments[0].id);
    const app = (await ok('GET', '/v2/apps/http')).app;
    assert.equal(app.tasksHealthy, 3);
    assert.equal(app.tasksRunning, 3);
    assert.equal(new Set(tasks.map((t) => t.ports[0])).size, 3, 'each task has its own port');
    for (const t of tasks) {
      const page = await fetch(`http://${t.host}:${t.ports[0]}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /Directory listing/);
      assert.ok(processesOf(t.id).includes('python3'), `task ${t.id} runs python3 in its sandbox`);
    }
    await removeApps('/http');
  });

  it('gives a task Marathon\u2019s environment', async () => {
    const [task] = await deployApp({ id: '/env/printer', cmd: 'env > env.txt; exec sleep 1000', ...small, portDefinitions: [{ port: 0, name: 'web' }, { port: 0 }], labels: { 'owner.team': 'core' } });
    assert.ok(task !== undefined);
    const env = await waitUntil(async () => {
      const r = await fetch(`${base}/files/read?framework_id=${frameworkId}&task_id=${encodeURIComponent(task.id)}&path=env.txt`);
      if (r.status !== 200) return undefined;
      const data = ((await r.json()) as { data: string }).data;
      return data.includes('MESOS_TASK_ID') ? new Map(data.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const)) : undefined;
    }, 'env.txt in the sandbox');
    const version = (await ok('GET', '/v2/apps/env/printer')).app.version;
    assert.equal(env.get('PORT0'), String(task.ports[0]));
    assert.equal(env.get('PORT1'), String(task.ports[1]));
    assert.equal(env.get('PORTS'), task.ports.join(','));
    assert.equal(env.get('PORT_WEB'), String(task.ports[0]));
    assert.equal(env.get('HOST'), task.host);
    assert.equal(env.get('MARATHON_APP_ID'), '/env/printer');
    assert.equal(env.get('MARATHON_APP_VERSION'), version);
    assert.equal(env.get('MARATHON_APP_LABELS'), 'OWNER_TEAM');
    assert.equal(env.get('MARATHON_APP_LABEL_OWNER_TEAM'), 'core');
    assert.equal(env.get('MESOS_TASK_ID'), task.id);
    // Marathon's PORT_<service port> for each port, the service ports being assigned at the POST.
    const servicePorts = ((await ok('GET', '/v2/apps/env/printer')).app.portDefinitions as { port: number }[]).map((p) => p.port);
    assert.equal(env.get(`PORT_${servicePorts[0]}`), String(task.ports[0]));
    assert.equal(env.get(`PORT_${servicePorts[1]}`), String(task.ports[1]));
    await removeApps('/env/printer');
  });

  it('assigns each port declared 0 a service port of 10000-19999 that stays with the app', async () => {
    const app = { id: '/ports/a', cmd: 'exec sleep 1000', ...small, portDefinitions: [{ port: 0, name: 'http' }, { port: 0 }, { port: 17777 }] };
    const [task] = await deployApp(app);
    const portsOf = async (id: string) => ((await ok('GET', `/v2/apps${id}`)).app.portDefinitions as { port: number }[]).map((p) => p.port);
    const assigned = await portsOf('/ports/a');
    assert.equal(assigned[2], 17777, 'a port the user names is kept');
    for (const p of assigned.slice(0, 2)) assert.ok(p >= 10000 && p < 20000, `service port ${p}`);
    assert.notEqual(assigned[0], assigned[1]);
    // The tasks show them as servicePorts (marathon-lb reads these).
    assert.deepEqual((task as TaskJson & { servicePorts: number[] }).servicePorts, assigned);

    // Another app gets other ports.
    await deployApp({ id: '/ports/b', cmd: 'exec sleep 1000', ...small, portDefinitions: [{ port: 0 }, { port: 0 }] });
    const other = await portsOf('/ports/b');
    assert.equal(other.filter((p) => assigned.includes(p)).length, 0, `ports of /ports/b ${other} vs /ports/a ${assigned}`);

    // PUT of the definition as first sent (its 0s): the same ports, so no change and no restart.
    const put = await ok('PUT', '/v2/apps/ports/a', app);
    await waitForDeploymentGone(put.deploymentId);
    assert.deepEqual(await portsOf('/ports/a'), assigned);
    assert.deepEqual((await tasksOf('/ports/a')).map((t) => t.id), [task!.id]);

    // A change that drops a port keeps the others where they were.
    const fewer = await ok('PUT', '/v2/apps/ports/a', { ...app, portDefinitions: [{ port: 0, name: 'http' }] });
    await waitForDeploymentGone(fewer.deploymentId);
    assert.deepEqual(await portsOf('/ports/a'), [assigned[0]]);
    await removeApps('/ports/a', '/ports/b');
  });

  // --- changes ---------------------------------------------------------------------------------

  it('scales up and down with PUT {instances}, keeping the tasks it does not need to touch', async () => {
    const before = await tasksOf('/crud/sleeper');
    const versionBefore = (await ok('GET', '/v2/apps/crud/sleeper')).app.versionInfo.lastConfigChangeAt;
    const up4 = await ok('PUT', '/v2/apps/crud/sleeper', { instances: 4 }, 200);
    assert.equal(typeof up4.deploymentId, 'string');
    assert.equal(typeof up4.version, 'string');
    await waitForDeploymentGone(up4.deploymentId);
    const four = await waitForTasks('/crud/sleeper', 4);
    for (const t of before) assert.ok(four.some((x) => x.id === t.id), `task ${t.id} kept by the scale-up`);
    const app = (await ok('GET', '/v2/apps/crud/sleeper')).app;
    assert.equal(app.instances, 4);
    assert.equal(app.versionInfo.lastConfigChangeAt, versionBefore, 'a scale is not a config change');
    assert.equal(app.versionInfo.lastScalingAt, up4.version);

    const down = await ok('PUT', '/v2/apps/crud/sleeper', { instances: 1 }, 200);
    await waitForDeploymentGone(down.deploymentId);
    const one = await waitForTasks('/crud/sleeper', 1);
    assert.ok(four.some((t) => t.id === one[0]!.id), 'the remaining task is one of the four');
    await waitForNoProcesses(four.filter((t) => t.id !== one[0]!.id).map((t) => t.id));
    assert.ok(processesOf(one[0]!.id).includes('sleep'));
  });

  it('replaces the whole definition with partialUpdate=false, and merges with PATCH', async () => {
    const replaced = await ok('PUT', '/v2/apps/crud/other?partialUpdate=false', { cmd: 'sleep 998', cpus: 0.05, mem: 16 }, 200);
    await waitForDeploymentGone(replaced.deploymentId);
    let app = (await ok('GET', '/v2/apps/crud/other')).app;
    assert.equal(app.cmd, 'sleep 998');
    assert.equal(app.mem, 16);
    assert.deepEqual(app.labels, {}, 'labels left out of a full replacement are gone');
    assert.equal(app.instances, 1);

    const patched = await ok('PATCH', '/v2/apps/crud/other', { labels: { patched: 'yes' }, instances: 2 }, 200);
    await waitForDeploymentGone(patched.deploymentId);
    app = (await ok('GET', '/v2/apps/crud/other')).app;
    assert.equal(app.cmd, 'sleep 998', 'PATCH keeps what it does not name');
    assert.deepEqual(app.labels, { patched: 'yes' });
    assert.equal(app.instances, 2);
    await waitForTasks('/crud/other', 2);
  });

  it('changes several apps with one bulk PUT /v2/apps', async () => {
    const r = await ok('PUT', '/v2/apps', [{ id: '/crud/sleeper', instances: 2 }, { id: '/crud/other', instances: 1 }, { id: '/crud/third', cmd: 'sleep 997', ...small }], 200);
    assert.equal(typeof r.deploymentId, 'string');
    await waitForDeploymentGone(r.deploymentId);
    await waitForTasks('/crud/sleeper', 2);
    await waitForTasks('/crud/other', 1);
    await waitForTasks('/crud/third', 1);
    const bad = await api('PUT', '/v2/apps', [{ id: '/crud/sleeper', instances: -1 }]);
    assert.equal(bad.status, 422);
    assert.ok((bad.body.details as { path: string }[]).some((d) => d.path === '(0)/instances'), JSON.stringify(bad.body));
  });

  it('makes a rolling restart: new task ids and a new version', async () => {
    const before = await tasksOf('/crud/sleeper');
    const versionBefore = (await ok('GET', '/v2/apps/crud/sleeper')).app.version;
    const r = await ok('POST', '/v2/apps/crud/sleeper/restart', undefined, 200);
    assert.equal(typeof r.deploymentId, 'string');
    await waitForDeploymentGone(r.deploymentId);
    const after = await waitForTasks('/crud/sleeper', 2);
    for (const t of after) {
      assert.ok(!before.some((b) => b.id === t.id), `task ${t.id} is new`);
      assert.equal(t.version, r.version);
    }
    const app = (await ok('GET', '/v2/apps/crud/sleeper')).app;
    assert.notEqual(app.version, versionBefore);
    assert.equal(app.version, r.version);
    assert.equal(app.versionInfo.lastConfigChangeAt, r.version);
  });

  it('kills the tasks of a deleted app', async () => {
    const tasks = await tasksOf('/crud/third');
    assert.equal(tasks.length, 1);
    assert.ok(processesOf(tasks[0]!.id).includes('sleep'));
    const r = await ok('DELETE', '/v2/apps/crud/third', undefined, 200);
    assert.equal(typeof r.deploymentId, 'string');
    await waitForDeploymentGone(r.deploymentId);
    assert.equal((await api('GET', '/v2/apps/crud/third')).status, 404);
    const all = ((await ok('GET', '/v2/tasks')) as { tasks: TaskJson[] }).tasks;
    assert.ok(!all.some((t) => t.id === tasks[0]!.id), 'its task is gone from /v2/tasks');
    await waitForNoProcesses([tasks[0]!.id]);
  });

  it('keeps enough healthy instances and never too many during a rolling upgrade', async () => {
    const app = {
      id: '/rolling',
      cmd: flagCmd,
      ...small,
      instances: 4,
      upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 },
      healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 10, intervalSeconds: 1, timeoutSeconds: 5, maxConsecutiveFailures: 3 }],
    };
    const first = await ok('POST', '/v2/apps', app, 201);
    await waitForDeploymentGone(first.deployments[0].id);
    const old = await waitForTasks('/rolling', 4, 'healthy', isHealthyTask);

    const r = await ok('PUT', '/v2/apps/rolling', { env: { GENERATION: '2' } }, 200);
    let minHealthy = Infinity;
    let maxTotal = 0;
    let polls = 0;
    await waitUntil(async () => {
      const [tasks, deployments] = await Promise.all([tasksOf('/rolling'), deploymentIds()]);
      polls++;
      minHealthy = Math.min(minHealthy, tasks.filter(isHealthyTask).length);
      maxTotal = Math.max(maxTotal, tasks.length);
      return !deployments.includes(r.deploymentId) && tasks.length === 4 && tasks.every((t) => isHealthyTask(t) && t.version === r.version);
    }, 'the rolling upgrade to finish', 40_000);
    assert.ok(polls > 5, `the upgrade was watched (${polls} polls)`);
    assert.ok(minHealthy >= 2, `healthy instances never below ceil(4 x 0.5) = 2 (saw ${minHealthy})`);
    assert.ok(maxTotal <= 4, `never more than 4 x (1 + 0) = 4 instances (saw ${maxTotal})`);
    const now = await tasksOf('/rolling');
    for (const t of now) assert.ok(!old.some((o) => o.id === t.id), 'every instance was replaced');
    await removeApps('/rolling');
  });

  // --- deployments -----------------------------------------------------------------------------

  it('refuses a change while a deployment holds the app (409 naming it), and takes it with force=true', async () => {
    await deployApp({ id: '/locked', cmd: flagCmd, ...small });
    // A readiness check that never passes holds the upgrade open.
    const stuck = await ok('PUT', '/v2/apps/locked', { readinessChecks: [{ name: 'ready', protocol: 'HTTP', path: '/ready', portName: 'default', intervalSeconds: 2, timeoutSeconds: 1 }] }, 200);
    assert.ok((await deploymentIds()).includes(stuck.deploymentId));

    const refused = await api('PUT', '/v2/apps/locked', { instances: 2 });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.message, /locked/i);
    assert.deepEqual(refused.body.deployments, [{ id: stuck.deploymentId }]);
    assert.equal((await ok('GET', '/v2/apps/locked')).app.instances, 1, 'the refused change changed nothing');
    // Killing a task with scale=true is a change of the app too: refused, and nothing killed.
    const both = await waitForTasks('/locked', 2);
    const held = both.find((t) => t.version !== stuck.version)!;
    const fresh = both.find((t) => t.version === stuck.version)!;
    const scaleKill = await api('DELETE', `/v2/apps/locked/tasks/${held.id}?scale=true`);
    assert.equal(scaleKill.status, 409, JSON.stringify(scaleKill.body));
    assert.deepEqual(scaleKill.body.deployments, [{ id: stuck.deploymentId }]);
    // A kill without scale is no change of the app: allowed while locked. Once its process is
    // gone, a kill sent before it would have ended the other task too.
    await ok('DELETE', `/v2/apps/locked/tasks/${fresh.id}`, undefined, 200);
    await waitForNoProcesses([fresh.id]);
    assert.ok(processesOf(held.id).length > 0, 'the task of the refused scale=true kill still runs');
    assert.ok((await tasksOf('/locked')).some((t) => t.id === held.id && isRunning(t)));

    const forced = await ok('PUT', '/v2/apps/locked?force=true', { instances: 2 }, 200);
    const ids = await deploymentIds();
    assert.ok(!ids.includes(stuck.deploymentId), 'the forced deployment replaced the one that held the app');
    assert.ok(ids.includes(forced.deploymentId));
    assert.equal((await ok('GET', '/v2/apps/locked')).app.instances, 2);

    // force=true on the deployment: it stops, the app keeps its new definition.
    const stopped = await api('DELETE', `/v2/deployments/${forced.deploymentId}?force=true`);
    assert.equal(stopped.status, 202, JSON.stringify(stopped.body));
    assert.ok(!(await deploymentIds()).includes(forced.deploymentId));
    const app = (await ok('GET', '/v2/apps/locked')).app;
    assert.equal(app.instances, 2);
    assert.equal(app.readinessChecks.length, 1);
    await removeApps('/locked');
  });

  it('rolls a deployment back when it is deleted', async () => {
    const first = await deployApp({ id: '/rollback', cmd: flagCmd, ...small, labels: { generation: 'one' } });
    const v1 = (await ok('GET', '/v2/apps/rollback')).app;
    const stuck = await ok(
      'PUT',
      '/v2/apps/rollback',
      { labels: { generation: 'two' }, readinessChecks: [{ name: 'ready', protocol: 'HTTP', path: '/ready', portName: 'default', intervalSeconds: 2, timeoutSeconds: 1 }] },
      200,
    );
    // The new instance starts but never gets ready; the old one stays.
    const both = await waitForTasks('/rollback', 2);
    const half = both.find((t) => t.id !== first[0]!.id)!;
    assert.equal(half.version, stuck.version);
    assert.equal((await ok('GET', '/v2/apps/rollback')).app.labels.generation, 'two');

    const r = await ok('DELETE', `/v2/deployments/${stuck.deploymentId}`, undefined, 200);
    assert.equal(typeof r.deploymentId, 'string', 'the rollback is a deployment');
    assert.notEqual(r.deploymentId, stuck.deploymentId);
    assert.ok(!(await deploymentIds()).includes(stuck.deploymentId));
    await waitForDeploymentGone(r.deploymentId);
    const app = (await ok('GET', '/v2/apps/rollback')).app;
    // As in Marathon, the rollback is a new version of the app with the first definition.
    const definition = (a: Record<string, unknown>) => ({ ...a, version: undefined, versionInfo: undefined, tasks: undefined, deployments: undefined });
    assert.deepEqual(definition(app), definition(v1), 'back to the first definition');
    assert.equal(app.version, r.version);
    const tasks = await waitForTasks('/rollback', 1);
    assert.ok(tasks[0]!.id !== half.id, 'the instance of the cancelled version is gone');
    await removeApps('/rollback');
  });

  // --- health and readiness --------------------------------------------------------------------

  it('kills an instance whose health check keeps failing and replaces it', async () => {
    const [sick, well] = await deployApp({
      id: '/unhealthy',
      cmd: flagCmd,
      ...small,
      instances: 2,
      healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 1, timeoutSeconds: 5, maxConsecutiveFailures: 2 }],
    });
    assert.ok(sick !== undefined && well !== undefined);
    writeFileSync(join(flags, `sick-${sick.id}`), '');
    const replaced = await waitUntil(async () => {
      const tasks = await tasksOf('/unhealthy');
      return tasks.length === 2 && !tasks.some((t) => t.id === sick.id) && tasks.every(isHealthyTask) ? tasks : undefined;
    }, 'the sick instance to be replaced by a healthy one');
    assert.ok(replaced.some((t) => t.id === well.id), 'the healthy instance was left alone');
    await waitForNoProcesses([sick.id]);
    const failure = (await ok('GET', '/v2/apps/unhealthy?embed=apps.lastTaskFailure')).app.lastTaskFailure;
    assert.equal(failure?.taskId, sick.id);
    await removeApps('/unhealthy');
  });

  it('keeps a deployment open, with readiness results, until the readiness check passes', async () => {
    const created = await ok(
      'POST',
      '/v2/apps',
      { id: '/readiness', cmd: flagCmd, ...small, readinessChecks: [{ name: 'warmup', protocol: 'HTTP', path: '/ready', portName: 'default', intervalSeconds: 2, timeoutSeconds: 1, preserveLastResponse: true }] },
      201,
    );
    const id = created.deployments[0].id as string;
    const results = await waitUntil(async () => {
      const d = ((await ok('GET', '/v2/deployments')) as { id: string; currentActions: { app: string; readinessCheckResults: { taskId: string; ready: boolean; name: string; lastResponse?: { status: number } }[] }[] }[]).find((x) => x.id === id);
      const r = d?.currentActions.find((a) => a.app === '/readiness')?.readinessCheckResults ?? [];
      return r.length > 0 && r[0]!.lastResponse !== undefined ? r : undefined;
    }, 'readiness results in the deployment');
    assert.equal(results[0]!.name, 'warmup');
    assert.equal(results[0]!.ready, false);
    assert.equal(results[0]!.lastResponse!.status, 503);
    const [task] = await waitForTasks('/readiness', 1);
    assert.equal(results[0]!.taskId, task!.id);
    // Running but not ready: still deploying, after a few more checks.
    const checksSeen = Date.now();
    await waitUntil(() => Date.now() - checksSeen > 2500, 'a few more readiness checks');
    assert.ok((await deploymentIds()).includes(id), 'the deployment waits for readiness');

    writeFileSync(join(flags, 'ready-readiness'), '');
    await waitForDeploymentGone(id, 10_000);
    await removeApps('/readiness');
  });

  // --- backoff ---------------------------------------------------------------------------------

  it('backs a failing app off, shows it in the queue with its last failure, and resets the delay', async () => {
    await ok('POST', '/v2/apps', { id: '/failing', cmd: 'echo doomed; exit 1', ...small, backoffSeconds: 2, backoffFactor: 3, maxLaunchDelaySeconds: 60 }, 201);
    type Entry = { app: { id: string; lastTaskFailure?: { taskId: string; state: string; appId: string } }; count: number; delay: { timeLeftSeconds: number; overdue: boolean } };
    const entryOf = async () => ((await ok('GET', '/v2/queue')).queue as Entry[]).find((q) => q.app.id === '/failing');
    // The first failure waits 2 s, the second 2 x 3 = 6 s.
    const entry = await waitUntil(async () => {
      const e = await entryOf();
      return e !== undefined && e.delay.timeLeftSeconds >= 5 ? e : undefined;
    }, 'a launch delay of 6 s in /v2/queue', 15_000);
    const delayedAt = Date.now();
    assert.ok(entry.delay.timeLeftSeconds <= 6, `the second delay is 6 s (${entry.delay.timeLeftSeconds} s left)`);
    assert.equal(entry.count, 1);
    assert.equal(entry.delay.overdue, false);
    assert.equal(entry.app.lastTaskFailure?.state, 'TASK_FAILED');
    assert.equal(entry.app.lastTaskFailure?.appId, '/failing');
    const failure = (await ok('GET', '/v2/apps/failing?embed=apps.lastTaskFailure')).app.lastTaskFailure;
    assert.equal(failure.state, 'TASK_FAILED');
    assert.equal(failure.taskId, entry.app.lastTaskFailure?.taskId);
    assert.equal(typeof failure.timestamp, 'string');
    assert.equal((await ok('GET', '/v2/apps/failing')).app.tasksRunning, 0);

    const reset = await api('DELETE', '/v2/queue/failing/delay');
    assert.equal(reset.status, 204);
    // Launched again at once: a new failure well before the 6 s delay would have let it, and the
    // backoff starts over (2 s).
    await waitUntil(async () => {
      const f = (await ok('GET', '/v2/apps/failing?embed=apps.lastTaskFailure')).app.lastTaskFailure;
      return f.taskId !== failure.taskId;
    }, 'a launch right after the reset', 3000);
    assert.ok(Date.now() - delayedAt < (entry.delay.timeLeftSeconds - 1) * 1000, 'relaunched before the old delay ended');
    const after = await waitUntil(entryOf, '/failing back in the queue');
    assert.ok(after.delay.timeLeftSeconds <= 2, `the delay started over (${after.delay.timeLeftSeconds} s left)`);
    assert.equal((await api('DELETE', '/v2/queue/nope/delay')).status, 404);
    await removeApps('/failing');
  });

  // --- tasks and versions ----------------------------------------------------------------------

  it('lists, kills and replaces tasks, and scales down by killing with scale=true', async () => {
    const tasks = await deployApp({ id: '/tasks/app', cmd: 'sleep 1000', ...small, instances: 3 });
    assert.equal(tasks.length, 3);
    const all = ((await ok('GET', '/v2/tasks')) as { tasks: TaskJson[] }).tasks;
    for (const t of tasks) assert.ok(all.some((x) => x.id === t.id), `/v2/tasks lists ${t.id}`);
    const running = ((await ok('GET', '/v2/tasks?status=running')) as { tasks: TaskJson[] }).tasks;
    assert.ok(running.every(isRunning));

    // One task killed: it is replaced.
    const killed = await ok('DELETE', `/v2/apps/tasks/app/tasks/${tasks[0]!.id}`, undefined, 200);
    assert.equal(killed.task.id, tasks[0]!.id);
    let now = await waitUntil(async () => {
      const t = await tasksOf('/tasks/app');
      return t.length === 3 && t.every(isRunning) && !t.some((x) => x.id === tasks[0]!.id) ? t : undefined;
    }, 'the killed task to be replaced');
    assert.equal((await ok('GET', '/v2/apps/tasks/app')).app.instances, 3);

    // scale=true: the instance count drops.
    const scaled = await ok('DELETE', `/v2/apps/tasks/app/tasks/${now[0]!.id}?scale=true`, undefined, 200);
    assert.equal(typeof scaled.deploymentId, 'string');
    await waitForDeploymentGone(scaled.deploymentId);
    assert.equal((await ok('GET', '/v2/apps/tasks/app')).app.instances, 2);
    now = await waitForTasks('/tasks/app', 2);
    assert.ok(!now.some((t) => t.id === tasks[0]!.id));

    // POST /v2/tasks/delete, with scale=true too.
    const bulk = await ok('POST', '/v2/tasks/delete?scale=true', { ids: [now[0]!.id] }, 200);
    await waitForDeploymentGone(bulk.deploymentId);
    assert.equal((await ok('GET', '/v2/apps/tasks/app')).app.instances, 1);
    const last = await waitForTasks('/tasks/app', 1);
    assert.equal(last[0]!.id, now[1]!.id, 'the task not named survived');

    // And without scale: replaced.
    await ok('POST', '/v2/tasks/delete', { ids: [last[0]!.id] }, 200);
    await waitUntil(async () => {
      const t = await tasksOf('/tasks/app');
      return t.length === 1 && isRunning(t[0]!) && t[0]!.id !== last[0]!.id;
    }, 'a replacement after /v2/tasks/delete');
    assert.equal((await api('DELETE', '/v2/apps/tasks/app/tasks/no-such-task')).status, 404);

    // Every task of a host, with scale=true: none left, none replaced.
    const [lastOne] = await waitForTasks('/tasks/app', 1);
    const byHost = await ok('DELETE', `/v2/apps/tasks/app/tasks?host=${encodeURIComponent(lastOne!.host)}&scale=true`, undefined, 200);
    await waitForDeploymentGone(byHost.deploymentId);
    assert.equal((await ok('GET', '/v2/apps/tasks/app')).app.instances, 0);
    await waitForTasks('/tasks/app', 0);
    await waitForNoProcesses([lastOne!.id]);
  });

  it('lists the versions of an app and shows one', async () => {
    const versions = ((await ok('GET', '/v2/apps/tasks/app/versions')).versions as string[]);
    // Created, then three scale-downs.
    assert.equal(versions.length, 4);
    const sorted = [...versions].sort().reverse();
    assert.deepEqual(versions, sorted, 'newest first');
    const app = (await ok('GET', '/v2/apps/tasks/app')).app;
    assert.equal(versions[0], app.version);
    const oldest = await ok('GET', `/v2/apps/tasks/app/versions/${versions[versions.length - 1]}`);
    assert.equal(oldest.id, '/tasks/app');
    assert.equal(oldest.instances, 3);
    assert.equal(oldest.version, versions[versions.length - 1]);
    assert.equal((await api('GET', '/v2/apps/tasks/app/versions/2000-01-01T00:00:00.000Z')).status, 404);

    // PUT with a stored version rolls the app back to it (Marathon's "revert"), as a new version.
    const mixed = await api('PUT', '/v2/apps/tasks/app', { version: versions[versions.length - 1], cmd: 'sleep 5' });
    assert.equal(mixed.status, 422, JSON.stringify(mixed.body));
    assert.match(JSON.stringify(mixed.body.details), /may only be combined with the 'id' field/);
    assert.equal((await api('PUT', '/v2/apps/tasks/app', { version: '2000-01-01T00:00:00.000Z' })).status, 404);
    const reverted = await ok('PUT', '/v2/apps/tasks/app', { id: '/tasks/app', version: versions[versions.length - 1] }, 200);
    await waitForDeploymentGone(reverted.deploymentId);
    const back = (await ok('GET', '/v2/apps/tasks/app')).app;
    assert.equal(back.instances, 3);
    assert.equal(back.version, reverted.version);
    await waitForTasks('/tasks/app', 3);
    await removeApps('/tasks/app');
  });

  // --- groups ----------------------------------------------------------------------------------

  it('deploys a group in dependency order: the dependent starts once its dependency is healthy', async () => {
    const created = await api(
      'POST',
      '/v2/groups',
      {
        id: '/shop',
        apps: [
          { id: 'web', cmd: 'sleep 1000', ...small, dependencies: ['/shop/db'] },
          {
            id: 'db',
            cmd: 'sleep 1000',
            ...small,
            // Healthy only once the test says so; never killed while waiting (within the grace period).
            healthChecks: [{ protocol: 'COMMAND', command: { value: `test -f ${flags}/db-up` }, gracePeriodSeconds: 300, intervalSeconds: 1, delaySeconds: 0, timeoutSeconds: 5, maxConsecutiveFailures: 3 }],
          },
        ],
      },
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.headers.get('location'), '/v2/groups/shop');
    const r = created.body;
    assert.equal(typeof r.deploymentId, 'string');
    const deployment = ((await ok('GET', '/v2/deployments')) as { id: string; steps: { actions: { action: string; app: string }[] }[] }[]).find((d) => d.id === r.deploymentId);
    assert.ok(deployment !== undefined);
    const stepOf = (action: string, app: string) => deployment.steps.findIndex((s) => s.actions.some((a) => a.action === action && a.app === app));
    assert.ok(stepOf('ScaleApplication', '/shop/db') < stepOf('ScaleApplication', '/shop/web'), JSON.stringify(deployment.steps));

    await waitForTasks('/shop/db', 1);
    // db runs but is not healthy: web must not start. Watch for a while (several health checks).
    const watchedFrom = Date.now();
    await waitUntil(async () => {
      assert.deepEqual(await tasksOf('/shop/web'), [], 'web waits for db to be healthy');
      return Date.now() - watchedFrom > 2500;
    }, 'a while with db unhealthy');
    const healthyFrom = Date.now();
    writeFileSync(join(flags, 'db-up'), '');
    await waitForDeploymentGone(r.deploymentId);
    const [web] = await waitForTasks('/shop/web', 1);
    assert.ok(Date.parse(web!.stagedAt) >= healthyFrom, `web staged at ${web!.stagedAt}, after db became healthy (not before ${new Date(healthyFrom).toISOString()})`);
    assert.ok(isHealthyTask((await tasksOf('/shop/db'))[0]!));
  });

  it('shows groups, and deletes a group with its apps', async () => {
    const root = await ok('GET', '/v2/groups');
    assert.equal(root.id, '/');
    assert.ok((root.groups as { id: string }[]).some((g) => g.id === '/shop'), JSON.stringify(root.groups.map((g: { id: string }) => g.id)));
    const shop = await ok('GET', '/v2/groups/shop');
    assert.equal(shop.id, '/shop');
    assert.deepEqual((shop.apps as { id: string }[]).map((a) => a.id).sort(), ['/shop/db', '/shop/web']);
    assert.equal((await api('GET', '/v2/groups/nope')).status, 404);

    const dbTask = (await tasksOf('/shop/db'))[0]!;
    const r = await ok('DELETE', '/v2/groups/shop', undefined, 200);
    await waitForDeploymentGone(r.deploymentId);
    assert.equal((await api('GET', '/v2/groups/shop')).status, 404);
    assert.equal((await api('GET', '/v2/apps/shop/db')).status, 404);
    await waitUntil(async () => !((await ok('GET', '/v2/tasks')) as { tasks: TaskJson[] }).tasks.some((t) => t.id === dbTask.id), 'the group\u2019s tasks to end');
  });

  // --- constraints -----------------------------------------------------------------------------

  it('runs one instance of a UNIQUE hostname app per agent and queues the rest', async () => {
    const created = await ok('POST', '/v2/apps', { id: '/unique', cmd: 'sleep 1000', ...small, instances: 2, constraints: [['hostname', 'UNIQUE']] }, 201);
    await waitForTasks('/unique', 1);
    const entry = await waitUntil(async () => ((await ok('GET', '/v2/queue')).queue as { app: { id: string }; count: number }[]).find((q) => q.app.id === '/unique'), '/unique in the queue');
    assert.equal(entry.count, 1);
    assert.ok((await deploymentIds()).includes(created.deployments[0].id), 'the deployment cannot finish');
    assert.equal((await tasksOf('/unique')).length, 1, 'still one task');
    await removeApps('/unique');
  });

  // --- bad input found in review ------------------------------------------------------------

  it('refuses a group scaleBy that would give an app an impossible instance count (422), and keeps serving', async () => {
    await ok('PUT', '/v2/groups/odd', { apps: [{ id: 'a', cmd: 'sleep 1000', cpus: 0.01, mem: 8, instances: 0 }] }, 200);
    const a = await api('PUT', '/v2/groups/odd', { scaleBy: 1e308 });
    // 0 x 1e308 is 0: make it 1 first, so the factor overflows.
    assert.equal(a.status, 200);
    await ok('PUT', '/v2/apps/odd/a?force=true', { instances: 1 });
    const b = await api('PUT', '/v2/groups/odd?force=true', { scaleBy: 1e308 });
    assert.equal(b.status, 422, JSON.stringify(b.body));
    assert.ok(b.body.details.some((d: { path: string }) => d.path === '/instances'), JSON.stringify(b.body));
    assert.equal((await ok('GET', '/v2/apps/odd/a')).app.instances, 1);
    await ok('DELETE', '/v2/groups/odd?force=true');
  });

  it('puts the apps of PUT /v2/groups/{id} without an id in that group', async () => {
    const r = await api('PUT', '/v2/groups/noid', { apps: [{ id: 'x', cmd: 'sleep 1000', cpus: 0.01, mem: 8, instances: 0 }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await ok('GET', '/v2/apps/noid/x')).app.id, '/noid/x');
    await ok('DELETE', '/v2/groups/noid?force=true');
  });

  it('answers 404, not 500, for an app path with an escaped percent sign', async () => {
    assert.equal((await api('GET', '/v2/apps/100%25')).status, 404);
    assert.equal((await api('DELETE', '/v2/apps/100%25/tasks/x%25y')).status, 404);
  });

  it('refuses an app under another app (an app is no group)', async () => {
    await ok('POST', '/v2/apps', { id: '/leaf', cmd: 'sleep 1000', cpus: 0.01, mem: 8, instances: 0 }, 201);
    const r = await api('POST', '/v2/apps', { id: '/leaf/child', cmd: 'sleep 1000', cpus: 0.01, mem: 8, instances: 0 });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.match(JSON.stringify(r.body), /\/leaf is an app/);
    await ok('DELETE', '/v2/apps/leaf?force=true');
  });

  it('scales down once per task when /v2/tasks/delete lists a task twice', async () => {
    const tasks = await deployApp({ id: '/twice', cmd: 'sleep 1000', cpus: 0.01, mem: 8, instances: 3 });
    const d = await ok('POST', '/v2/tasks/delete?scale=true', { ids: [tasks[0]!.id, tasks[0]!.id] });
    await waitForDeploymentGone(d.deploymentId);
    assert.equal((await ok('GET', '/v2/apps/twice')).app.instances, 2);
    await waitForTasks('/twice', 2);
    await ok('DELETE', '/v2/apps/twice?force=true');
  });

  // --- server --------------------------------------------------------------------------------

  it('answers /ping, /v2/info, /v2/leader and /v2/metrics', async () => {
    const ping = await fetch(`${base}/ping`);
    assert.equal(ping.status, 200);
    assert.equal(await ping.text(), 'pong');
    const hostPort = base.replace('http://', '');
    assert.deepEqual(await ok('GET', '/v2/leader'), { leader: hostPort });
    const info = await ok('GET', '/v2/info');
    assert.equal(info.name, 'marathon');
    assert.equal(info.leader, hostPort);
    assert.equal(info.frameworkId, frameworkId);
    assert.equal(info.elected, true);
    assert.equal(info.http_config.http_port, Number(hostPort.split(':')[1]));
    const apps = ((await ok('GET', '/v2/apps')).apps as unknown[]).length;
    const metrics = await ok('GET', '/v2/metrics');
    assert.equal(metrics.gauges['marathon.apps.active.gauge'].value, apps);
    assert.equal(typeof metrics.gauges['marathon.instances.running.gauge'].value, 'number');
  });
});

// Keep the temp dir of a failed run for debugging; remove it otherwise.
process.on('exit', (code) => {
  if (code === 0 && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
});
