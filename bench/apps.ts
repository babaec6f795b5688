import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from '../src/core/percentile.ts';
import { AppTracker, EventStream } from './apps-events.ts';
import { APPS_BENCH_TARGETS, type AppsBenchOptions, type AppsBenchPart } from './apps-options.ts';
import { freePort, killTaskProcesses, RealCluster, removeDir, removeTaskCgroups, waitFor } from './apps-cluster.ts';

/**
 * `slipway bench apps`: the services framework (Marathon's API) over a real cluster.
 *
 * Parts (each can be skipped):
 * - scale: a master with the services framework (one process, as `slipway up` wires them; or
 *   `slipway master` + `slipway apps` with `--topology separate`) and `agents` real agents
 *   (`slipway agent`, process containerizer), each a process of its own with room for every
 *   instance. POST /v2/apps of an app of `instances` instances of `sleep 100000`; scaleUpSeconds
 *   is the time from sending the POST to the last TASK_RUNNING on Marathon's event stream.
 * - failover: kill -9 of the agent that holds the number of instances closest to a third;
 *   failoverSeconds is the time from the kill to all instances RUNNING again, on the other agents
 *   (default master settings: 5 s for a dropped agent to come back). Then the agent is started
 *   again on its work dir, and the time until the master runs only the app's instances again
 *   (the framework kills the surplus it finds) is recorded.
 * - upgrade: an app of `upgradeInstances` small HTTP servers (busybox httpd; a COMMAND check
 *   where busybox is missing) with a health check every second, then a PUT that changes its
 *   environment (a rolling restart) with the given upgradeStrategy. upgradeSeconds: from the PUT
 *   to its deployment_success event; upgradeMinHealthy: the least number of healthy instances of
 *   the app after any event during it (from status and health events: an old instance counts as
 *   healthy until its TASK_KILLING arrives, so a kill shows a few milliseconds after the framework
 *   decided it); upgradeRequiredHealthy: ceil(n × minimumHealthCapacity).
 * - list: GET /v2/apps?embed=apps.tasks with `listApps` apps of `listInstances` instances each,
 *   on simulated agents (bench/apps-list-main.ts: a real master core and the services framework
 *   with its SQLite store; only the agents are simulated), `listRequests` requests one after the
 *   other from this process once every instance runs and no deployment is left; each is timed
 *   until the whole body is read.
 * - creates: POST /v2/apps of one app of no instances, `createsSamples` times one after the
 *   other, first with almost no apps declared (createsPerSecondAtStart), then with
 *   `createsBaseApps` more declared (createsPerSecondAt10k), on the simulated-agents server. A
 *   create must cost the same whatever the number of apps.
 *
 * Before anything is timed, an app of no instances is created and deleted: a fresh server spends
 * ~100 ms on its first POST (lazy compilation), which a server that has been up has paid. Every
 * process runs on this one machine, and other work on it shows in every figure: the load
 * averages at the start and the end are part of the result.
 */

export interface AppsBenchResult {
  instances: number;
  agents: number;
  topology: string;
  scaleUpSeconds: number | null;
  /** From the POST to its answer (the app and its deployment stored). */
  scaleUpPostMs: number | null;
  /** From the POST to the first TASK_RUNNING. */
  scaleUpFirstRunningSeconds: number | null;
  failoverSeconds: number | null;
  failoverKilledInstances: number | null;
  /** From the kill to the first TASK_UNREACHABLE (the master's grace for a dropped agent). */
  failoverDetectSeconds: number | null;
  /** From the agent's restart to the master running only the app's instances again; null if it did not within 60 s. */
  rejoinSurplusKilledSeconds: number | null;
  upgradeInstances: number;
  upgradeSeconds: number | null;
  upgradeMinHealthy: number | null;
  upgradeRequiredHealthy: number;
  upgradeMaxInstances: number | null;
  upgradeAllowedInstances: number;
  upgradeStrategy: { minimumHealthCapacity: number; maximumOverCapacity: number };
  upgradeHealthCheck: string;
  listApps: number;
  listInstances: number;
  listRequests: number;
  listAppsP50Ms: number | null;
  listAppsP99Ms: number | null;
  listAppsMaxMs: number | null;
  listResponseBytes: number | null;
  /** Creating the apps: one POST /v2/apps each, one after the other. */
  listCreateSeconds: number | null;
  /** From the first POST to every instance RUNNING and no deployment left. */
  listAllRunningSeconds: number | null;
  /** Apps that exist before the creates are timed (10,000 by default). */
  createsApps: number;
  createsSamples: number;
  /** POST /v2/apps of one app each, one after the other, with `createsApps` apps declared. */
  createsPerSecondAt10k: number | null;
  /** The same, with only the warm-up apps declared: the two should be alike. */
  createsPerSecondAtStart: number | null;
  /** Creating the `createsApps` apps first, by PUT /v2/apps of 1,000 at a time. */
  createsBaseSeconds: number | null;
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string; platform: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  targets: typeof APPS_BENCH_TARGETS;
}

const LIST_MAIN = fileURLToPath(new URL('./apps-list-main.ts', import.meta.url));

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** 1, 5 and 15 minute load averages: other work on the machine shows in every figure. */
const loadAverage = () => os.loadavg().map((l) => round(l, 2));

async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json };
}

async function expectOk(base: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await api(base, method, path, body);
  if (r.status < 200 || r.status > 299) throw new Error(`bench: ${method} ${path} answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json as Record<string, unknown>;
}

function busyboxPath(): string | undefined {
  try {
    const path = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
    if (path === '') return undefined;
    execFileSync(path, ['httpd', '--help'], { stdio: 'ignore' });
    return path;
  } catch {
    // `busybox httpd --help` exits 1 on some builds but still proves the applet exists.
    try {
      const list = execFileSync('busybox', ['--list'], { encoding: 'utf8' });
      return list.split('\n').includes('httpd') ? 'busybox' : undefined;
    } catch {
      return undefined;
    }
  }
}

export async function runAppsBench(o: AppsBenchOptions, progress: (line: string) => void = () => undefined): Promise<AppsBenchResult> {
  const skip = new Set(o.skip);
  if (skip.has('scale')) skip.add('failover');
  const cpuList = os.cpus();
  const requiredHealthy = Math.ceil(o.upgradeInstances * o.minimumHealthCapacity - 1e-9);
  const allowedInstances = Math.floor(o.upgradeInstances * (1 + o.maximumOverCapacity) + 1e-9);
  const busybox = busyboxPath();
  const result: AppsBenchResult = {
    instances: o.instances,
    agents: o.agents,
    topology: o.topology,
    scaleUpSeconds: null,
    scaleUpPostMs: null,
    scaleUpFirstRunningSeconds: null,
    failoverSeconds: null,
    failoverKilledInstances: null,
    failoverDetectSeconds: null,
    rejoinSurplusKilledSeconds: null,
    upgradeInstances: o.upgradeInstances,
    upgradeSeconds: null,
    upgradeMinHealthy: null,
    upgradeRequiredHealthy: requiredHealthy,
    upgradeMaxInstances: null,
    // Marathon's extra instance when minHealthy = maxCapacity (see rolling-upgrade.ts).
    upgradeAllowedInstances: requiredHealthy >= allowedInstances ? allowedInstances + 1 : allowedInstances,
    upgradeStrategy: { minimumHealthCapacity: o.minimumHealthCapacity, maximumOverCapacity: o.maximumOverCapacity },
    upgradeHealthCheck: busybox !== undefined ? 'HTTP (busybox httpd)' : 'COMMAND (true)',
    listApps: o.listApps,
    listInstances: o.listInstances,
    listRequests: o.listRequests,
    listAppsP50Ms: null,
    listAppsP99Ms: null,
    listAppsMaxMs: null,
    listResponseBytes: null,
    listCreateSeconds: null,
    listAllRunningSeconds: null,
    createsApps: o.createsBaseApps,
    createsSamples: o.createsSamples,
    createsPerSecondAt10k: null,
    createsPerSecondAtStart: null,
    createsBaseSeconds: null,
    machine: { cpus: cpuList.length, cpuModel: cpuList[0]?.model.trim() ?? 'unknown', memoryGb: round(os.totalmem() / 2 ** 30, 1), node: process.version, platform: `${os.platform()} ${os.release()}`, loadAverageAtStart: loadAverage(), loadAverageAtEnd: [] },
    targets: APPS_BENCH_TARGETS,
  };

  const dir = mkdtempSync(join(os.tmpdir(), 'slipway-bench-apps-'));
  let cluster: RealCluster | undefined;
  let stream: EventStream | undefined;
  const simServers: ChildProcess[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      stream?.close();
      await cluster?.close().catch(() => undefined);
      for (const child of simServers) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await killTaskProcesses(dir);
      removeTaskCgroups(dir);
      removeDir(dir);
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    if (!skip.has('scale') || !skip.has('upgrade')) {
      const upgradeNeed = skip.has('upgrade') ? 0 : Math.max(allowedInstances + 1, o.upgradeInstances * 2);
      // Every agent can hold every instance: placement, not capacity, decides where they go.
      const perAgent = Math.max(skip.has('scale') ? 0 : o.instances, upgradeNeed);
      const agentResources = `cpus:${round(perAgent * o.instanceCpus + 1, 2)};mem:${Math.ceil(perAgent * Math.max(o.instanceMem, 16) + 1024)};disk:100000`;
      progress(`starting a master with the services framework (${o.topology}) and ${o.agents} agents (${agentResources} each)...`);
      cluster = await RealCluster.start({ dir, agents: o.agents, agentResources, topology: o.topology, log: progress });
      stream = await EventStream.open(cluster.appsUrl);
      await warmUp(cluster);
      if (!skip.has('scale')) await scaleAndFailover(cluster, stream, o, skip, result, progress);
      if (!skip.has('upgrade')) await upgrade(cluster, stream, o, busybox, result, progress);
      progress('stopping the cluster...');
      stream.close();
      await cluster.close();
      cluster = undefined;
    }
    if (!skip.has('list')) {
      await list(dir, o, result, progress, (child) => simServers.push(child));
    }
    if (!skip.has('creates')) {
      await creates(dir, o, result, progress, (child) => simServers.push(child));
    }
    result.machine.loadAverageAtEnd = loadAverage();
    return result;
  } catch (e) {
    // The temp dir and its logs are about to go: keep the ends of the logs in the error.
    const logs = cluster !== undefined ? [...cluster.servers, ...cluster.agents].map((p) => `--- ${p.name} (end of its log) ---\n${p.logTail(10)}`).join('\n') : '';
    if (e instanceof Error && logs !== '') e.message += `\n${logs}`;
    throw e;
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/**
 * The first request of each kind costs a fresh server ~100 ms of lazy compilation (schema
 * validation, route code); a server that has been up a while has paid it. One app of no
 * instances, created and deleted, before anything is timed.
 */
async function warmUp(cluster: RealCluster): Promise<void> {
  const app = { id: '/bench/warm-up', cmd: 'sleep 100000', cpus: 0.01, mem: 8, disk: 0, instances: 0 };
  await expectOk(cluster.appsUrl, 'POST', '/v2/apps', app);
  await waitFor(async () => (((await expectOk(cluster.appsUrl, 'GET', '/v2/deployments')) as unknown as unknown[]).length === 0 ? true : undefined), 'the warm-up deployment', 60_000);
  await expectOk(cluster.appsUrl, 'GET', '/v2/apps/bench/warm-up');
  await expectOk(cluster.appsUrl, 'DELETE', '/v2/apps/bench/warm-up');
  await waitFor(async () => (((await expectOk(cluster.appsUrl, 'GET', '/v2/deployments')) as unknown as unknown[]).length === 0 ? true : undefined), 'the warm-up deployment', 60_000);
}

async function scaleAndFailover(cluster: RealCluster, stream: EventStream, o: AppsBenchOptions, skip: Set<AppsBenchPart>, result: AppsBenchResult, progress: (line: string) => void): Promise<void> {
  const appId = '/bench/scale';
  const tracker = new AppTracker(stream, appId, false);
  const n = o.instances;
  progress(`scale: POST ${appId} with ${n} instances...`);
  let firstRunning: number | undefined;
  const offFirst = tracker.watch((at) => {
    if (firstRunning === undefined && tracker.running() > 0) firstRunning = at;
  });
  const t0 = performance.now();
  await expectOk(cluster.appsUrl, 'POST', '/v2/apps', { id: appId, cmd: 'sleep 100000', cpus: o.instanceCpus, mem: o.instanceMem, disk: 0, instances: n });
  const posted = performance.now();
  const report = (line: string) => progress(line);
  const t1 = await tracker.until(() => tracker.running() >= n, `${n} instances RUNNING`, 120_000, () => `${tracker.running()}/${n} running`, report);
  offFirst();
  result.scaleUpSeconds = round((t1 - t0) / 1000);
  result.scaleUpPostMs = round(posted - t0, 1);
  result.scaleUpFirstRunningSeconds = firstRunning !== undefined ? round((firstRunning - t0) / 1000) : null;
  progress(`  ${n} running in ${result.scaleUpSeconds} s`);

  if (!skip.has('failover')) {
    const hostnames = await cluster.activeAgents();
    const byAgent = tracker.runningByAgent();
    let victim: { index: number; agentId: string; count: number } | undefined;
    for (const [hostname, agentId] of hostnames) {
      const index = Number(hostname.replace(/^agent-/, ''));
      const count = byAgent.get(agentId) ?? 0;
      if (victim === undefined || Math.abs(count - n / 3) < Math.abs(victim.count - n / 3)) victim = { index, agentId, count };
    }
    if (victim === undefined) throw new Error('bench: no agent to kill');
    const spread = [...hostnames].map(([h, id]) => `${h} ${byAgent.get(id) ?? 0}`).join(', ');
    progress(`failover: kill -9 agent-${victim.index} (${victim.count} instances; spread ${spread})...`);
    const dead = victim.agentId;
    const healthyElsewhere = () => {
      let k = 0;
      for (const i of tracker.instances.values()) if (i.state === 'TASK_RUNNING' && i.agentId !== dead) k++;
      return k;
    };
    let detected: number | undefined;
    const offDetect = tracker.watch((at) => {
      if (detected !== undefined) return;
      for (const i of tracker.instances.values()) {
        if (i.agentId === dead && i.state !== 'TASK_RUNNING') {
          detected = at;
          return;
        }
      }
      // An expunged instance of the dead agent is gone from the map: count what is left there.
      let there = 0;
      for (const i of tracker.instances.values()) if (i.agentId === dead) there++;
      if (there < victim.count) detected = at;
    });
    const agent = cluster.agents[victim.index]!;
    const k0 = performance.now();
    await agent.kill9();
    const k1 = await tracker.until(() => healthyElsewhere() >= n, `${n} instances RUNNING on the other agents`, 120_000, () => `${healthyElsewhere()}/${n} running elsewhere`, report);
    offDetect();
    result.failoverSeconds = round((k1 - k0) / 1000);
    result.failoverKilledInstances = victim.count;
    result.failoverDetectSeconds = detected !== undefined ? round((detected - k0) / 1000) : null;
    progress(`  all ${n} running again ${result.failoverSeconds} s after the kill (lost agent reported after ${result.failoverDetectSeconds ?? '?'} s)`);

    progress(`failover: agent-${victim.index} back on its work dir; waiting for the surplus to be killed...`);
    const r0 = performance.now();
    agent.start();
    await cluster.waitForAgents(o.agents);
    try {
      await waitFor(async () => ((await cluster.masterTasks()) === n ? true : undefined), 'the surplus instances to be killed', 60_000);
      result.rejoinSurplusKilledSeconds = round((performance.now() - r0) / 1000);
      progress(`  the master runs ${n} tasks again ${result.rejoinSurplusKilledSeconds} s after the restart`);
    } catch {
      progress(`  the master still runs ${await cluster.masterTasks().catch(() => '?')} tasks 60 s after the restart (want ${n})`);
    }
  }

  progress(`scale: DELETE ${appId}...`);
  await expectOk(cluster.appsUrl, 'DELETE', `/v2/apps${appId}`);
  await waitFor(async () => ((await cluster.masterTasks()) === 0 ? true : undefined), 'the instances to stop', 120_000);
  tracker.close();
}

async function upgrade(cluster: RealCluster, stream: EventStream, o: AppsBenchOptions, busybox: string | undefined, result: AppsBenchResult, progress: (line: string) => void): Promise<void> {
  const appId = '/bench/upgrade';
  const n = o.upgradeInstances;
  const tracker = new AppTracker(stream, appId, true);
  const check =
    busybox !== undefined
      ? { protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 15, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 3 }
      : { protocol: 'COMMAND', command: { value: 'true' }, gracePeriodSeconds: 15, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 3, delaySeconds: 0 };
  const cmd = busybox !== undefined ? `echo ok > index.html && exec ${busybox} httpd -f -p $PORT0 -h .` : 'sleep 100000';
  const def = {
    id: appId,
    cmd,
    cpus: o.instanceCpus,
    mem: Math.max(o.instanceMem, 16),
    disk: 0,
    instances: n,
    healthChecks: [check],
    upgradeStrategy: { minimumHealthCapacity: o.minimumHealthCapacity, maximumOverCapacity: o.maximumOverCapacity },
    env: { BENCH_VERSION: '1' },
  };
  progress(`upgrade: POST ${appId} with ${n} instances (${result.upgradeHealthCheck} health check every second)...`);
  await expectOk(cluster.appsUrl, 'POST', '/v2/apps', def);
  const report = (line: string) => progress(line);
  await tracker.until(() => tracker.healthy() >= n, `${n} healthy instances`, 180_000, () => `${tracker.healthy()}/${n} healthy`, report);
  // The first deployment must be over, or the PUT is refused (409).
  await waitFor(async () => (((await expectOk(cluster.appsUrl, 'GET', '/v2/deployments')) as unknown as unknown[]).length === 0 ? true : undefined), 'the first deployment to end', 60_000);

  let minHealthy = tracker.healthy();
  let maxInstances = tracker.instances.size;
  const offWatch = tracker.watch(() => {
    minHealthy = Math.min(minHealthy, tracker.healthy());
    maxInstances = Math.max(maxInstances, tracker.instances.size);
  });
  // deployment_success / deployment_failed of each deployment, by id (the PUT answers with ours).
  const outcomes = new Map<string, { at: number; ok: boolean }>();
  let outcomeSeen: (() => void) | undefined;
  const offDeployment = stream.on((e) => {
    if (e.eventType !== 'deployment_success' && e.eventType !== 'deployment_failed') return;
    outcomes.set(e.data['id'] as string, { at: e.at, ok: e.eventType === 'deployment_success' });
    outcomeSeen?.();
  });
  progress(`upgrade: PUT ${appId} (new environment: a rolling restart, minimumHealthCapacity ${o.minimumHealthCapacity}, maximumOverCapacity ${o.maximumOverCapacity})...`);
  const t0 = performance.now();
  const answer = await expectOk(cluster.appsUrl, 'PUT', `/v2/apps${appId}`, { ...def, env: { BENCH_VERSION: '2' } });
  const deploymentId = answer['deploymentId'] as string;
  const version = answer['version'] as string;
  const state = () => `${tracker.healthy(version)}/${n} of the new version healthy, ${tracker.healthy()} healthy in all`;
  const succeededAt = await new Promise<number>((resolve, reject) => {
    const check = () => {
      const outcome = outcomes.get(deploymentId);
      const failure = stream.failure;
      if (outcome === undefined && failure === undefined && performance.now() - t0 < 300_000) return false;
      clearInterval(ticker);
      outcomeSeen = undefined;
      if (outcome?.ok === true) resolve(outcome.at);
      else reject(new Error(`bench: the upgrade's deployment ${deploymentId} ${outcome !== undefined ? 'failed' : (failure ?? 'did not end within 300 s')} (${state()})`));
      return true;
    };
    const ticker = setInterval(() => {
      if (!check()) progress(`  ${state()} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }, 1000);
    outcomeSeen = () => void check();
    check();
  });
  offWatch();
  offDeployment();
  result.upgradeSeconds = round((succeededAt - t0) / 1000);
  result.upgradeMinHealthy = minHealthy;
  result.upgradeMaxInstances = maxInstances;
  const newHealthy = tracker.healthy(version);
  progress(`  upgraded in ${result.upgradeSeconds} s; least healthy ${minHealthy} (required ${result.upgradeRequiredHealthy}); most instances ${maxInstances} (allowed ${result.upgradeAllowedInstances}); ${newHealthy}/${n} of the new version healthy`);
  await expectOk(cluster.appsUrl, 'DELETE', `/v2/apps${appId}`);
  await waitFor(async () => ((await cluster.masterTasks()) === 0 ? true : undefined), 'the instances to stop', 120_000).catch(() => undefined);
  tracker.close();
}

/** `started` hands the server process to the caller at once, so that it is stopped whatever happens. */
async function list(dir: string, o: AppsBenchOptions, result: AppsBenchResult, progress: (line: string) => void, started: (child: ChildProcess) => void): Promise<void> {
  const total = o.listApps * o.listInstances;
  const perAgent = Math.ceil(total / o.listAgents);
  const agentResources = `cpus:${round(perAgent * o.instanceCpus + 1, 2)};mem:${perAgent * o.instanceMem + 1024};disk:100000;ports:[31000-${31000 + Math.max(1000, perAgent * 2)}]`;
  progress(`list: ${o.listAgents} simulated agents, ${o.listApps} apps of ${o.listInstances} instances...`);
  const base = await startSimServer(join(dir, 'list-apps'), o.listAgents, agentResources, started);
  const c0 = performance.now();
  for (let i = 0; i < o.listApps; i++) {
    await expectOk(base, 'POST', '/v2/apps', { id: `/list/app-${String(i).padStart(5, '0')}`, cmd: 'sleep 100000', cpus: o.instanceCpus, mem: o.instanceMem, disk: 0, instances: o.listInstances });
    if ((i + 1) % 100 === 0) progress(`  ${i + 1}/${o.listApps} apps created (${((performance.now() - c0) / 1000).toFixed(1)} s)`);
  }
  result.listCreateSeconds = round((performance.now() - c0) / 1000);
  let last = 0;
  await waitFor(
    async () => {
      const apps = ((await expectOk(base, 'GET', '/v2/apps?embed=apps.counts')) as { apps: { tasksRunning: number }[] }).apps;
      const running = apps.reduce((s, a) => s + a.tasksRunning, 0);
      const deployments = (await expectOk(base, 'GET', '/v2/deployments')) as unknown as unknown[];
      if (performance.now() - last > 2000) {
        last = performance.now();
        progress(`  ${running}/${total} instances running, ${deployments.length} deployments (${((performance.now() - c0) / 1000).toFixed(1)} s)`);
      }
      return running === total && deployments.length === 0 ? true : undefined;
    },
    `${total} instances running`,
    600_000,
    undefined,
    // Each look lists every app: looking often would load the server it waits for.
    500,
  );
  result.listAllRunningSeconds = round((performance.now() - c0) / 1000);
  progress(`list: ${total} instances running; ${o.listRequests} × GET /v2/apps?embed=apps.tasks...`);
  const get = async () => {
    const t = performance.now();
    const r = await fetch(`${base}/v2/apps?embed=apps.tasks`);
    const body = await r.arrayBuffer();
    const ms = performance.now() - t;
    if (r.status !== 200) throw new Error(`bench: GET /v2/apps answered ${r.status}`);
    return { ms, body };
  };
  // Check the answer once, then warm up (JIT) before timing.
  const first = await get();
  const parsed = JSON.parse(Buffer.from(first.body).toString('utf8')) as { apps: { tasks: unknown[] }[] };
  const tasks = parsed.apps.reduce((s, a) => s + a.tasks.length, 0);
  if (parsed.apps.length !== o.listApps || tasks !== total) throw new Error(`bench: GET /v2/apps?embed=apps.tasks gave ${parsed.apps.length} apps and ${tasks} tasks, want ${o.listApps} and ${total}`);
  result.listResponseBytes = first.body.byteLength;
  for (let i = 0; i < 5; i++) await get();
  const times: number[] = [];
  for (let i = 0; i < o.listRequests; i++) times.push((await get()).ms);
  times.sort((a, b) => a - b);
  result.listAppsP50Ms = round(percentile(times, 50), 2);
  result.listAppsP99Ms = round(percentile(times, 99), 2);
  result.listAppsMaxMs = round(times[times.length - 1] ?? 0, 2);
  progress(`  p50 ${result.listAppsP50Ms} ms, p99 ${result.listAppsP99Ms} ms (${(first.body.byteLength / 2 ** 20).toFixed(1)} MiB each)`);
}

/**
 * Starts bench/apps-list-main.ts (a real master core, simulated agents, the services framework
 * with its SQLite store, Marathon's API over HTTP) and answers its URL.
 */
async function startSimServer(dataDir: string, agents: number, agentResources: string, started: (child: ChildProcess) => void): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', LIST_MAIN, JSON.stringify({ port, dataDir, agents, agentResources })], { stdio: ['ignore', 'pipe', 'pipe'] });
  started(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\S+)\n/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`bench: the bench server exited (${code}): ${stderr}`)));
    setTimeout(() => reject(new Error(`bench: the bench server did not start within 60 s: ${stderr}`)), 60_000).unref();
  });
}

/**
 * The creates part: `createsBaseApps` apps (of no instances, PUT /v2/apps in bulks of 1,000)
 * on the simulated-agents server, then `createsSamples` POST /v2/apps of one app each, one after
 * the other, timed from the first POST to the last answer. What a create costs when many apps
 * exist: issue 11 found it growing with the number of apps (122/s up to 3.7k apps, 51/s at 5.2k).
 */
async function creates(dir: string, o: AppsBenchOptions, result: AppsBenchResult, progress: (line: string) => void, started: (child: ChildProcess) => void): Promise<void> {
  progress(`creates: ${o.createsBaseApps} apps, then ${o.createsSamples} × POST /v2/apps...`);
  const base = await startSimServer(join(dir, 'creates-apps'), 1, 'cpus:1;mem:1024;disk:1000', started);
  const noDeployments = () => waitFor(async () => (((await expectOk(base, 'GET', '/v2/deployments')) as unknown as unknown[]).length === 0 ? true : undefined), 'no deployment left', 600_000, undefined, 200);
  // No ports: 10,000 apps with a port each would take every service port of 10000-19999.
  const app = (id: string) => ({ id, cmd: 'sleep 100000', cpus: 0.01, mem: 8, disk: 0, instances: 0, portDefinitions: [] });
  // Warm up (JIT, schema compilation), then the same creates with (almost) no apps declared: a
  // create must cost the same at 10,000 apps.
  for (let i = 0; i < 20; i++) await expectOk(base, 'POST', '/v2/apps', app(`/warm/a${i}`));
  await noDeployments();
  const timeCreates = async (prefix: string): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < o.createsSamples; i++) await expectOk(base, 'POST', '/v2/apps', app(`${prefix}/a${String(i).padStart(5, '0')}`));
    const rate = round(o.createsSamples / ((performance.now() - t0) / 1000), 1);
    await noDeployments();
    return rate;
  };
  result.createsPerSecondAtStart = await timeCreates('/first');
  progress(`  ${result.createsPerSecondAtStart} creates/s at ${20 + o.createsSamples} apps`);
  const b0 = performance.now();
  for (let k = 0; k < o.createsBaseApps; k += 1000) {
    const ids = Array.from({ length: Math.min(1000, o.createsBaseApps - k) }, (_, i) => `/base/g${String(Math.floor((k + i) / 100)).padStart(4, '0')}/a${String(k + i).padStart(5, '0')}`);
    await expectOk(base, 'PUT', '/v2/apps', ids.map(app));
    await noDeployments();
  }
  result.createsBaseSeconds = round((performance.now() - b0) / 1000);
  result.createsPerSecondAt10k = await timeCreates('/new');
  progress(`  ${result.createsPerSecondAt10k} creates/s at ${o.createsBaseApps} apps`);
}

const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');

export function formatAppsBench(r: AppsBenchResult): string {
  const t = r.targets;
  const lines = [
    `apps benchmark: ${r.agents} real agents (process containerizer), services framework ${r.topology === 'embedded' ? 'in the master process' : 'in its own process'}`,
    `  machine             ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGb} GiB, Node ${r.machine.node}; load average ${r.machine.loadAverageAtStart.join(' ')} at the start, ${r.machine.loadAverageAtEnd.join(' ')} at the end`,
  ];
  if (r.scaleUpSeconds !== null) {
    lines.push(`  scale up            ${r.instances} instances RUNNING ${r.scaleUpSeconds} s after the POST (target ${t.scaleUpSeconds} s: ${mark(r.scaleUpSeconds <= t.scaleUpSeconds)}); POST answered in ${r.scaleUpPostMs} ms, first RUNNING at ${r.scaleUpFirstRunningSeconds} s`);
  }
  if (r.failoverSeconds !== null) {
    lines.push(
      `  failover            ${r.failoverKilledInstances} instances of a kill -9'd agent replaced, all RUNNING ${r.failoverSeconds} s after the kill (target ${t.failoverSeconds} s: ${mark(r.failoverSeconds <= t.failoverSeconds)}); lost agent reported after ${r.failoverDetectSeconds} s`,
      `  agent back          surplus killed ${r.rejoinSurplusKilledSeconds === null ? 'NOT within 60 s' : `${r.rejoinSurplusKilledSeconds} s after the restart`}`,
    );
  }
  if (r.upgradeSeconds !== null && r.upgradeMinHealthy !== null) {
    lines.push(
      `  rolling upgrade     ${r.upgradeInstances} instances (${r.upgradeHealthCheck} check) in ${r.upgradeSeconds} s; least healthy ${r.upgradeMinHealthy}, required ${r.upgradeRequiredHealthy} (${mark(r.upgradeMinHealthy >= r.upgradeRequiredHealthy)}); most instances ${r.upgradeMaxInstances}, allowed ${r.upgradeAllowedInstances}`,
    );
  }
  if (r.listAppsP50Ms !== null) {
    lines.push(
      `  GET /v2/apps?embed=apps.tasks  ${r.listApps} apps × ${r.listInstances} instances (simulated agents): p50 ${r.listAppsP50Ms} ms (target ${t.listAppsP50Ms} ms: ${mark(r.listAppsP50Ms <= t.listAppsP50Ms)}), p99 ${r.listAppsP99Ms} ms, max ${r.listAppsMaxMs} ms, ${((r.listResponseBytes ?? 0) / 2 ** 20).toFixed(1)} MiB`,
      `  list setup          ${r.listApps} POSTs in ${r.listCreateSeconds} s; all ${r.listApps * r.listInstances} RUNNING after ${r.listAllRunningSeconds} s`,
    );
  }
  if (r.createsPerSecondAt10k !== null) {
    lines.push(
      `  POST /v2/apps       ${r.createsPerSecondAt10k} creates/s with ${r.createsApps} apps declared, ${r.createsSamples} one after the other (target ${t.createsPerSecondAt10k}/s: ${mark(r.createsPerSecondAt10k >= t.createsPerSecondAt10k)}); ${r.createsPerSecondAtStart}/s with ~${r.createsSamples} apps; the ${r.createsApps} apps took ${r.createsBaseSeconds} s in bulks of 1,000`,
    );
  }
  return lines.join('\n');
}
