import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathSegment } from '../src/agent/path-segment.ts';
import { SlipwayProcess, activeAgents, freePort, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder, processesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

/**
 * The services framework over real processes, driven through Marathon's REST API as its users
 * would: instances of a lost agent replaced on the others (and the surplus killed when it comes
 * back), the framework killed with -9 and restarted (at rest and in the middle of a rolling
 * restart), and the whole `slipway up` server killed with -9 and restarted. Every check looks at
 * three views: the framework's (/v2), the master's (/master/state) and the processes themselves
 * (/proc), so that a task nobody accounts for is seen.
 */

const root = tempDir('apps-cluster');
const spawned: SlipwayProcess[] = [];
let failed = false;

function run(name: string, args: string[]): SlipwayProcess {
  const p = new SlipwayProcess(name, args, join(root, `${name}.log`));
  p.start();
  spawned.push(p);
  return p;
}

after(async () => {
  for (const p of spawned) await p.kill9();
  // The tasks are in sessions of their own and outlive their agents: end them too.
  killProcessesUnder(root);
  await waitUntil(() => processesUnder(root).length === 0, 'the tasks to be gone', 5_000).catch(() => undefined);
  // SLIPWAY_KEEP_TEST_DIRS=1 keeps them after a run that passed too.
  if (failed || process.env['SLIPWAY_KEEP_TEST_DIRS'] !== undefined) process.stderr.write(`apps-cluster e2e: logs and work dirs kept in ${root}\n`);
  else rmSync(root, { recursive: true, force: true });
});

/**
 * Runs a test body; on failure prints the end of every process's log and keeps the temp dir
 * (not for a `todo` test, whose failure is known).
 */
function body<C>(fn: (t: C) => Promise<void>, o: { todo?: boolean } = {}): (t: C) => Promise<void> {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      if (o.todo === true) throw e;
      failed = true;
      for (const logFile of new Set(spawned.map((p) => p.logFile))) {
        let text: string;
        try {
          text = readFileSync(logFile, 'utf8');
        } catch {
          continue;
        }
        process.stderr.write(`----- ${basename(logFile)} (last 40 lines) -----\n${text.split('\n').slice(-41).join('\n')}\n`);
      }
      throw e;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Views: Marathon's, the master's, the processes'
// ---------------------------------------------------------------------------------------------

interface MarathonTask {
  id: string;
  appId: string;
  host: string;
  slaveId: string;
  state: string;
  version: string;
}

interface MasterTask {
  task_id: { value: string };
  framework_id: { value: string };
  agent_id: { value: string };
  state: string;
}

interface MasterState {
  frameworks: { framework_info: { id: { value: string }; name: string }; connected: boolean }[];
  tasks: MasterTask[];
  unreachable_tasks: MasterTask[];
  completed_tasks: MasterTask[];
}

class Marathon {
  constructor(readonly url: string) {}

  async request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const response = await fetch(this.url + path, {
      method,
      ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  async post(path: string, body: unknown, status = 201): Promise<Record<string, unknown>> {
    const r = await this.request('POST', path, body);
    assert.equal(r.status, status, `POST ${path}: ${JSON.stringify(r.json)}`);
    return r.json as Record<string, unknown>;
  }

  /** The app's tasks, or undefined when the server does not answer (it may be restarting). */
  async tasks(appId: string): Promise<MarathonTask[] | undefined> {
    try {
      const r = await this.request('GET', `/v2/apps${appId}/tasks`);
      return r.status === 200 ? (r.json as { tasks: MarathonTask[] }).tasks : undefined;
    } catch {
      return undefined;
    }
  }

  async app(appId: string): Promise<{ version: string; instances: number } | undefined> {
    try {
      const r = await this.request('GET', `/v2/apps${appId}`);
      return r.status === 200 ? (r.json as { app: { version: string; instances: number } }).app : undefined;
    } catch {
      return undefined;
    }
  }

  async deployments(): Promise<unknown[] | undefined> {
    try {
      const r = await this.request('GET', '/v2/deployments');
      return r.status === 200 ? (r.json as unknown[]) : undefined;
    } catch {
      return undefined;
    }
  }

  async frameworkId(): Promise<string | undefined> {
    try {
      const r = await this.request('GET', '/v2/info');
      return r.status === 200 ? ((r.json as { frameworkId: string | null }).frameworkId ?? undefined) : undefined;
    } catch {
      return undefined;
    }
  }
}

async function masterState(masterUrl: string): Promise<MasterState | undefined> {
  try {
    const response = await fetch(`${masterUrl}/master/state`);
    return response.ok ? ((await response.json()) as MasterState) : undefined;
  } catch {
    return undefined;
  }
}

/** Marathon's task id prefix of an app: `/a/b` -> `a_b.instance-`. */
const taskPrefix = (appId: string) => `${appId.slice(1).replaceAll('/', '_')}.instance-`;

/** The master's RUNNING tasks of an app (by task id) for a framework. */
function masterRunning(state: MasterState, frameworkId: string, appId: string): MasterTask[] {
  return state.tasks.filter((t) => t.framework_id.value === frameworkId && t.state === 'TASK_RUNNING' && t.task_id.value.startsWith(taskPrefix(appId)));
}

/** The sandboxes (their directory names) in which a `sleep` of the app runs, one entry per process. */
function runningSandboxes(dir: string, appId: string): string[] {
  return processesUnder(dir)
    .filter((p) => p.comm === 'sleep' && basename(p.cwd).startsWith(taskPrefix(appId)))
    .map((p) => basename(p.cwd))
    .sort();
}

const sandboxesOf = (taskIds: Iterable<string>) => [...taskIds].map(pathSegment).sort();
const sorted = (ids: Iterable<string>) => [...ids].sort();

function countBy<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

/**
 * The app runs exactly these tasks in all three views: the framework lists them RUNNING (and no
 * other), the master has them RUNNING (and no other of the app), one process each. Answers a
 * description of the difference, or undefined when all agree.
 */
async function mismatch(o: { marathon: Marathon; masterUrl: string; frameworkId: string; dir: string; appId: string; n: number; ids?: ReadonlySet<string> }): Promise<string | undefined> {
  const tasks = await o.marathon.tasks(o.appId);
  if (tasks === undefined) return 'Marathon does not answer';
  const running = tasks.filter((t) => t.state === 'TASK_RUNNING').map((t) => t.id);
  if (tasks.length !== o.n || running.length !== o.n) return `Marathon lists ${tasks.length} tasks, ${running.length} running: ${JSON.stringify(tasks.map((t) => [t.id, t.state, t.host]))}`;
  if (o.ids !== undefined && sorted(running).join() !== sorted(o.ids).join()) return `Marathon's tasks ${sorted(running).join()} are not ${sorted(o.ids).join()}`;
  const state = await masterState(o.masterUrl);
  if (state === undefined) return 'the master does not answer';
  const onMaster = masterRunning(state, o.frameworkId, o.appId).map((t) => t.task_id.value);
  if (sorted(onMaster).join() !== sorted(running).join()) return `the master runs ${sorted(onMaster).join()}, Marathon lists ${sorted(running).join()}`;
  const processes = runningSandboxes(o.dir, o.appId);
  if (processes.join() !== sandboxesOf(running).join()) return `processes run in ${processes.join()}, expected ${sandboxesOf(running).join()}`;
  return undefined;
}

async function agree(o: Parameters<typeof mismatch>[0], what: string, timeoutMs = 15_000): Promise<string[]> {
  let last: string | undefined;
  await waitUntil(
    async () => {
      last = await mismatch(o);
      return last === undefined;
    },
    what,
    timeoutMs,
  ).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}; last seen: ${last}`);
  });
  return (await o.marathon.tasks(o.appId))!.map((t) => t.id);
}

/** Checks for `ms` that the views keep agreeing: nothing launched twice, nothing lost, later. */
async function keepsAgreeing(o: Parameters<typeof mismatch>[0], ms = 2_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const m = await mismatch(o);
    assert.equal(m, undefined, m);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// A master, three agents and `slipway apps`, each its own process
// ---------------------------------------------------------------------------------------------

/** A master, `slipway apps` and three agents (process containerizer, hostnames a1, a2, a3). */
class Cluster {
  masterUrl = '';
  appsPort = 0;
  frameworkId = '';
  marathon!: Marathon;
  apps!: SlipwayProcess;
  readonly agents = new Map<number, SlipwayProcess>();
  agentIds = new Map<string, string>();

  constructor(
    readonly name: string,
    readonly dir: string,
  ) {}

  async start(): Promise<void> {
    const masterPort = await freePort();
    this.appsPort = await freePort();
    this.masterUrl = `http://127.0.0.1:${masterPort}`;
    run(`${this.name}-master`, ['master', '--port', String(masterPort), '--data-dir', join(this.dir, 'master')]);
    await waitForHttp(`${this.masterUrl}/health`);
    // The framework before the agents: an agent serves its files on any free port, which could
    // be the framework's; and the framework's first subscription then comes before any offer
    // (see the restart tests for what happens otherwise).
    this.startApps();
    this.marathon = new Marathon(`http://127.0.0.1:${this.appsPort}`);
    await waitForHttp(`${this.marathon.url}/ping`);
    this.frameworkId = await waitUntil(() => this.marathon.frameworkId(), 'the framework to subscribe');
    for (const i of [1, 2, 3]) this.startAgent(i);
    this.agentIds = await activeAgents(this.masterUrl, 3);
  }

  startApps(): void {
    this.apps = run(`${this.name}-apps`, ['apps', '--master', this.masterUrl, '--port', String(this.appsPort), '--data-dir', join(this.dir, 'apps')]);
  }

  /** Kills `slipway apps` with -9 and starts it again on its data dir; resolves once it subscribed. */
  async restartApps(): Promise<void> {
    await this.apps.kill9();
    assert.equal(await this.marathon.tasks('/'), undefined, 'the framework is down');
    this.startApps();
    await waitForHttp(`${this.marathon.url}/ping`);
    await waitUntil(async () => (await masterState(this.masterUrl))?.frameworks.some((f) => f.framework_info.id.value === this.frameworkId && f.connected), 'the framework to subscribe again');
    assert.equal(await this.marathon.frameworkId(), this.frameworkId, 'the same framework id');
  }

  startAgent(i: number): void {
    this.agents.set(
      i,
      run(`${this.name}-a${i}`, ['agent', '--master', this.masterUrl, '--work-dir', join(this.dir, `a${i}`), '--resources', `cpus:2;mem:1024;disk:1000;ports:[3${i}100-3${i}199]`, '--containerizers', 'process', '--hostname', `a${i}`]),
    );
  }

  view(appId: string, n: number, ids?: ReadonlySet<string>): Parameters<typeof mismatch>[0] {
    return { marathon: this.marathon, masterUrl: this.masterUrl, frameworkId: this.frameworkId, dir: this.dir, appId, n, ...(ids !== undefined ? { ids } : {}) };
  }

  /** Stops what it started, tasks included, so that the next suite has the machine to itself. */
  async stop(): Promise<void> {
    for (const p of spawned.filter((x) => x.name.startsWith(`${this.name}-`))) await p.kill9();
    killProcessesUnder(this.dir);
  }
}

const sleeper = (id: string, instances: number) => ({ id, cmd: 'sleep 100000', cpus: 0.05, mem: 16, instances, portDefinitions: [] });

/**
 * The framework's HTTP transport hands OFFERS that arrive with SUBSCRIBED to the framework before
 * `subscribe()` resolves, and AppsFramework.send() drops calls while it has no subscription: the
 * DECLINEs of those offers are lost, the master keeps the offers outstanding for good, and the
 * restarted framework gets no more offers from those agents (nothing launches).
 */
describe('the services framework on a master and three agents, each its own process', { timeout: 120_000 }, () => {
  const cluster = new Cluster('c', join(root, 'cluster'));
  before(body(() => cluster.start()));
  after(() => cluster.stop());

  it('replaces the instances of an agent killed with -9 on the other two within 8 s, and kills the surplus when it returns', { timeout: 60_000 }, body(async (t: TestContext) => {
    const { marathon, masterUrl, frameworkId, dir, agentIds } = cluster;
    const view = cluster.view('/heal', 6);
    await marathon.post('/v2/apps', sleeper('/heal', 6));
    await agree(view, '6 instances of /heal running');
    const before = (await marathon.tasks('/heal'))!;
    assert.deepEqual(countBy(before, (x) => x.host), { a1: 2, a2: 2, a3: 2 }, 'spread evenly');
    const lost = new Set(before.filter((x) => x.host === 'a2').map((x) => x.id));

    const killedAt = Date.now();
    await cluster.agents.get(2)!.kill9();
    // Replaced when all six run again off a2, in the framework's view and in the master's.
    const after = await waitUntil(
      async () => {
        const tasks = await marathon.tasks('/heal');
        const running = tasks?.filter((x) => x.state === 'TASK_RUNNING' && x.host !== 'a2') ?? [];
        if (running.length !== 6) return undefined;
        const state = await masterState(masterUrl);
        if (state === undefined || masterRunning(state, frameworkId, '/heal').filter((x) => x.agent_id.value !== agentIds.get('a2')).length !== 6) return undefined;
        return tasks!;
      },
      'six running instances of /heal on a1 and a3',
      15_000,
    );
    const failoverMs = Date.now() - killedAt;
    t.diagnostic(`failover: all 6 instances running again ${failoverMs} ms after the kill -9 of agent a2`);
    assert.ok(failoverMs <= 8_000, `replaced after ${failoverMs} ms`);
    const running = after.filter((x) => x.state === 'TASK_RUNNING');
    assert.deepEqual(countBy(running, (x) => x.host), { a1: 3, a3: 3 }, 'the replacements are spread over the two agents left');
    assert.ok(running.every((x) => !lost.has(x.id)));
    // The old instances still run behind the "partition" (only their agent is gone).
    assert.equal(runningSandboxes(join(dir, 'a2'), '/heal').length, 2, 'the lost agent\'s tasks outlive it');

    // The agent comes back with its tasks: the surplus is killed, 6 run.
    cluster.startAgent(2);
    await activeAgents(masterUrl, 3);
    const ids = await agree(view, 'exactly 6 instances of /heal after a2 returned');
    await keepsAgreeing(view);
    const state = (await masterState(masterUrl))!;
    for (const id of lost) {
      const onMaster = [...state.tasks, ...state.unreachable_tasks, ...state.completed_tasks].filter((x) => x.task_id.value === id).map((x) => x.state);
      assert.ok(onMaster.every((s) => s !== 'TASK_RUNNING' && s !== 'TASK_UNREACHABLE'), `${id} on the master: ${onMaster.join()}`);
    }
    assert.equal(ids.filter((id) => lost.has(id)).length, 0, 'the replacements stay, the returning instances go');
    assert.deepEqual(runningSandboxes(join(dir, 'a2'), '/heal'), [], 'no process of /heal is left on a2');
  }));

  it('keeps the same instances across a kill -9 and restart of `slipway apps`', { timeout: 30_000 }, body(async () => {
    const { marathon } = cluster;
    await marathon.post('/v2/apps', sleeper('/durable', 4));
    const ids = new Set(await agree(cluster.view('/durable', 4), '4 instances of /durable running'));
    const healIds = new Set((await marathon.tasks('/heal'))!.map((x) => x.id));

    await cluster.restartApps();
    await agree(cluster.view('/durable', 4, ids), 'the same 4 instances of /durable');
    await keepsAgreeing(cluster.view('/durable', 4, ids));
    await keepsAgreeing(cluster.view('/heal', 6, healIds), 200);
  }));

  it('launches an app posted after `slipway apps` restarted among registered agents', { timeout: 30_000 }, body(async () => {
    // The previous test restarted the framework with three agents registered: the offers that
    // come with SUBSCRIBED must be declined (or used), or they stay held for good.
    await cluster.marathon.post('/v2/apps', sleeper('/after-restart', 3));
    await agree(cluster.view('/after-restart', 3), '3 instances of /after-restart running', 10_000);
  }));

  it("reports the changes made through `slipway apps` to the master's audit log", { timeout: 30_000 }, body(async () => {
    // A change through `slipway apps`: its entry reaches the master's log within a batch (the
    // newest entries: the scheduler calls of the framework are audited too, many of them).
    await cluster.marathon.post('/v2/apps', sleeper('/audited', 0));
    const entry = await waitUntil(async () => {
      const r = await fetch(`${cluster.masterUrl}/auth/v1/audit?limit=1000`);
      assert.equal(r.status, 200);
      const list = ((await r.json()) as { entries: { method: string; path: string; status: number; via?: string; name: string }[] }).entries;
      return list.find((e) => e.method === 'POST' && e.path === '/v2/apps' && e.via !== undefined);
    }, 'the POST of /v2/apps in the master\'s audit log');
    assert.equal(entry.status, 201);
    assert.equal(entry.via, entry.name, 'reported by `slipway apps` with its token (the same run token here)');
  }));
});

describe('a rolling restart in flight when `slipway apps` is killed with -9', { timeout: 90_000 }, () => {
  const cluster = new Cluster('r', join(root, 'rolling'));
  before(body(() => cluster.start()));
  after(() => cluster.stop());

  it('completes after the restart, with exactly the instances of the new version', { timeout: 60_000 }, body(async () => {
    const { marathon } = cluster;
    const view = cluster.view('/rolling', 3);
    // Healthy about 2 s after it starts: each step of the rolling restart takes a few seconds.
    await marathon.post('/v2/apps', {
      ...sleeper('/rolling', 3),
      cmd: 'sleep 2; touch healthy; exec sleep 100000',
      healthChecks: [{ protocol: 'COMMAND', command: { value: 'test -f healthy' }, gracePeriodSeconds: 30, intervalSeconds: 1, timeoutSeconds: 2, maxConsecutiveFailures: 3, delaySeconds: 0 }],
      upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 0.34 },
    });
    await waitUntil(async () => (await marathon.deployments())?.length === 0, 'the first deployment of /rolling', 20_000);
    const old = new Set(await agree(view, '3 instances of /rolling running'));

    const restart = await marathon.post('/v2/apps/rolling/restart', {}, 200);
    assert.equal(typeof restart['deploymentId'], 'string');
    // Mid-flight: a new instance started, at least two old ones still there.
    await waitUntil(
      async () => {
        const tasks = await marathon.tasks('/rolling');
        return tasks !== undefined && tasks.some((x) => !old.has(x.id) && x.state === 'TASK_RUNNING') && tasks.filter((x) => old.has(x.id)).length >= 2;
      },
      'the rolling restart to have started a new instance',
      15_000,
    );
    await cluster.restartApps();

    await waitUntil(async () => (await marathon.deployments())?.length === 0, 'the rolling restart to complete', 30_000);
    const app = (await marathon.app('/rolling'))!;
    const ids = await agree(view, '3 instances of /rolling after the restart');
    const tasks = (await marathon.tasks('/rolling'))!;
    assert.deepEqual(tasks.map((x) => x.version), [app.version, app.version, app.version], 'all of the new version');
    assert.equal(ids.filter((id) => old.has(id)).length, 0, 'every old instance was replaced');
    await keepsAgreeing(view);
  }));
});

// ---------------------------------------------------------------------------------------------
// `slipway up`: master, services framework and agent in one process
// ---------------------------------------------------------------------------------------------

describe('`slipway up` killed with -9 and started again on its data dir', { timeout: 90_000 }, () => {
  const dir = join(root, 'up');
  after(async () => {
    for (const p of spawned.filter((x) => x.name === 'up')) await p.kill9();
    killProcessesUnder(dir);
  });

  it('keeps its apps and their instances, and an app posted just before the kill', body(async (t: TestContext) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const args = ['up', '--port', String(port), '--data-dir', dir, '--containerizers', 'process', '--resources', 'cpus:4;mem:2048;disk:1000;ports:[34100-34199]'];
    const server = run('up', args);
    await waitForHttp(`${url}/ping`);
    const marathon = new Marathon(url);
    const frameworkId = await waitUntil(() => marathon.frameworkId(), 'the framework to subscribe');
    const first = { marathon, masterUrl: url, frameworkId, dir, appId: '/first', n: 3 };
    const second = { ...first, appId: '/second', n: 2 };

    await marathon.post('/v2/apps', sleeper('/first', 3));
    const ids = new Set(await agree(first, '3 instances of /first running'));
    // Killed as soon as the 201 is in: the app is stored, its instances may or may not be launched.
    await marathon.post('/v2/apps', sleeper('/second', 2));
    await server.kill9();

    // The tasks are in their own sessions: the crash of the server leaves them running.
    assert.deepEqual(runningSandboxes(dir, '/first'), sandboxesOf(ids), 'the tasks of /first outlive the server');
    const secondAtKill = runningSandboxes(dir, '/second');
    t.diagnostic(`${secondAtKill.length} of 2 instances of /second had started when the server was killed`);

    run('up', args);
    await waitForHttp(`${url}/ping`);
    assert.equal(await waitUntil(() => marathon.frameworkId(), 'the framework to subscribe again'), frameworkId);
    await agree({ ...first, ids }, 'the same 3 instances of /first');
    const secondIds = await agree(second, '2 instances of /second');
    // Those that ran through the crash are kept, not launched again.
    for (const segment of secondAtKill) assert.ok(sandboxesOf(secondIds).includes(segment), `the instance in ${segment} survived the restart`);
    await waitUntil(async () => (await marathon.deployments())?.length === 0, 'no deployment left');
    await keepsAgreeing({ ...first, ids });
    await keepsAgreeing(second, 200);
    const state = (await masterState(url))!;
    assert.equal(state.tasks.filter((x) => x.state === 'TASK_RUNNING').length, 5, 'nothing else runs');
    assert.equal(processesUnder(dir).filter((p) => p.comm === 'sleep').length, 5, 'no other process runs');
  }));
});
