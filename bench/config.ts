import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from '../src/core/percentile.ts';
import { runAuthorization, unauthenticatedFetch } from '../src/sim/bench-token.ts';
import { processesUnder } from '../src/sim/sandbox-processes.ts';
import { killTaskProcesses, removeTaskCgroups } from './apps-cluster.ts';

/**
 * `slipway bench config`: the config center of a real `slipway up` (its own process), driven over
 * HTTP on 127.0.0.1 from this process.
 *
 * - Render + release: a service of `files` templates in a real git repository; each round changes
 *   one value and times `POST .../releases` (render every file at the ref's commit, store, audit
 *   commit), as the client sees it.
 * - Fan-out: `watchers` long polls (`GET /config/v1/watch`), then as many server-sent-event
 *   streams, each on its own connection, wait for the next release; from the moment the release
 *   call is sent to each watcher's receipt of it, p50/p99/max.
 * - etcd beside it, in the same run, when an `etcd` binary is installed (Debian's `etcd-server`):
 *   one member of its own (a temp data dir, free ports on 127.0.0.1), as many watchers, each a
 *   `POST /v3/watch` streaming on its own connection to etcd's JSON gateway, all created before
 *   the clock starts; then one `POST /v3/kv/put` of the key, timed the same way, from the moment
 *   the put is sent to each watcher's receipt of the event. The same client machinery as
 *   Slipway's watchers (one node:http Agent of the same settings, the writer's call by `fetch`),
 *   one round as each of Slipway's fan-outs is one release.
 * - Rollout (after all of the above, so that none of its tasks run during the fan-outs): a service
 *   of its own (one template, its own git repository) linked to the Marathon app `/bench/roll` of
 *   `rolloutInstances` instances (process containerizer, HTTP health checks, upgradeStrategy
 *   1/1), whose cmd serves HTTP only with the good config. Timed from the client, polling every
 *   100 ms: the deploy on release 1 to all healthy; a good release (a value changed) rolled out
 *   with `rollout: restart`, from the POST to its rollout `succeeded` (and to all instances on it
 *   and healthy, by GET .../instances); a bad one with `deadlineSeconds`, from the POST to its
 *   rollout `failed`, then from the failure to the automatic rollback's rollout (`rolledBackBy`)
 *   `succeeded`. Then the app is deleted and no task process is left.
 */

export interface ConfigBenchOptions {
  watchers: number;
  files: number;
  releases: number;
  /** Instances of the app of the rollout part; 0 skips it. */
  rolloutInstances?: number;
  /** The bad release's `deadlineSeconds`. */
  rolloutDeadlineSeconds?: number;
}

export const CONFIG_BENCH_DEFAULTS = { rolloutInstances: 10, rolloutDeadlineSeconds: 10 };

export interface ConfigBenchResult {
  watchers: number;
  files: number;
  releaseMsP50: number;
  releaseMsMax: number;
  longPoll: FanOut;
  sse: FanOut;
  /** The same fan-out through etcd's watch; null (and `etcdReason`) when it was not run. */
  etcd: EtcdFanOut | null;
  etcdReason?: string;
  /** The rollout part; null (and `rolloutReason`) when it was skipped or failed. */
  rollout: RolloutBench | null;
  rolloutReason?: string;
}

/** A rollout as the client saw it; times in ms from the moment named. */
interface RolloutTimes {
  release: number;
  rolloutId: string;
  /** The first poll that saw every instance on the release, TASK_RUNNING and healthy. */
  allHealthyMs: number | null;
  /** The first poll that saw the rollout end as it did. */
  endedMs: number;
  /** The rollout's own endedAt - startedAt (the config center's clock). */
  serverMs: number | null;
}

interface RolloutBench {
  appId: string;
  instances: number;
  cpus: number;
  mem: number;
  healthCheck: { protocol: string; gracePeriodSeconds: number; intervalSeconds: number; timeoutSeconds: number; maxConsecutiveFailures: number };
  upgradeStrategy: { minimumHealthCapacity: number; maximumOverCapacity: number };
  pollMs: number;
  /** From the POST /v2/apps to all instances healthy on release 1. */
  deployMs: number;
  /** A good release (a value changed), `rollout: restart`: from the POST .../releases. */
  good: RolloutTimes;
  /** A bad release with `deadlineSeconds`: from the POST .../releases to the rollout `failed`. */
  bad: RolloutTimes & { deadlineSeconds: number; reason: string };
  /** The automatic rollback (`rolledBackBy`): from the poll that saw the bad rollout failed. */
  rollback: RolloutTimes & { rolledBackTo: number | null };
  /** From the bad release's POST to the rollback's rollout `succeeded`. */
  badTotalMs: number;
  /** The most instances (staging, starting, running) seen at once in the polls. */
  peakInstances: number;
  /** From the app's DELETE to no task process left under the agent's sandboxes (null: not within 30 s). */
  deleteMs: number | null;
  /** Task processes still there 30 s after the DELETE (then killed); 0 when all ended in time. */
  leftAfterDelete: number;
}

interface EtcdFanOut extends FanOut {
  version: string;
  /** Slipway's p99 over etcd's, per kind of watcher. */
  p99Ratio: { longPoll: number; sse: number };
}

interface FanOut {
  received: number;
  /** The first watcher's receipt: what the write took before any watcher was told, and one answer. */
  firstMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export const CONFIG_BENCH_TARGETS = { fanOutP99Ms: 100, releaseMs: 200, etcdP99Ratio: 1.5 };
/** After the watchers are connected (Slipway's) or created (etcd's), before the clock starts: the same for both. */
const SETTLE_MS = 1500;
const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
/** The rollout part's instances: python3's http.server is about 19 MB resident, over 16 MB. */
const ROLL_CPUS = 0.05;
const ROLL_MEM = 32;
const POLL_MS = 100;
const ALIVE = new Set(['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING']);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${base}${path}`, { method, headers: { authorization: runAuthorization(), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return { status: r.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function git(cwd: string, ...args: string[]): void {
  execFileSync('git', args, { cwd, stdio: 'ignore', env: { ...process.env, GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'b@b', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'b@b' } });
}

function stats(latencies: number[]): FanOut {
  const round = (x: number) => Math.round(x * 10) / 10;
  return { received: latencies.length, firstMs: round(Math.min(...latencies)), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), maxMs: round(Math.max(...latencies)) };
}

/**
 * The client side of every watcher, Slipway's and etcd's alike: a socket each (none reused),
 * HTTP/1.1 written by hand, and the receipt taken when the answer's bytes arrive. A client
 * library parsing 1,000 answers in this one event loop (a response object, headers, a body, the
 * close of each) measured its own throughput: about 0.1 ms an answer, 100 ms of a 1,000 fan-out,
 * whatever the server (a bare node:http server behind it had a long-poll p99 of 141-164 ms).
 * `seen` looks at what came so far: true once the watcher has what it waits for, an Error when
 * it got something else.
 */
function rawWatcher(port: number, head: string, seen: (text: string) => boolean | Error, on: { connected?: () => void; data?: (text: string) => void } = {}): { received: Promise<number>; destroy: () => void } {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const received = new Promise<number>((resolve, reject) => {
    let text = '';
    socket.once('connect', () => {
      on.connected?.();
      socket.write(head);
    });
    socket.on('data', (d: Buffer) => {
      const at = performance.now();
      text += d.toString('latin1');
      on.data?.(text);
      const r = seen(text);
      if (r instanceof Error) reject(r);
      else if (r) {
        resolve(at);
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`the connection closed first: ${text.slice(0, 200)}`)));
  });
  // Its failure is read where the receipts are awaited; until then it must not count as unhandled.
  received.catch(() => undefined);
  return { received, destroy: () => socket.destroy() };
}

/** Opens `n` watchers of the next release (long polls or SSE); resolves with their receipt times once the release is made by `release` (which calls `start` as it sends the release call). */
async function fanOut(port: number, n: number, since: number, kind: 'poll' | 'sse', release: (start: () => void) => Promise<void>): Promise<FanOut> {
  let connected = 0;
  let t0 = 0;
  const head = `GET /config/v1/watch?service=bench&env=dev&since=${since}&wait=60 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${runAuthorization()}\r\n${kind === 'sse' ? 'Accept: text/event-stream\r\n' : ''}Connection: close\r\n\r\n`;
  const seen = (text: string): boolean | Error => {
    if (kind === 'sse') return text.includes('event: release\n');
    if (!text.includes('\r\n\r\n')) return false;
    if (!text.startsWith('HTTP/1.1 200')) return new Error(`a watcher got ${text.slice(0, 200)}`);
    return text.includes('"release"');
  };
  const watchers = Array.from({ length: n }, () => rawWatcher(port, head, seen, { connected: () => connected++ }));
  try {
    const deadline = Date.now() + 30_000;
    while (connected < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Connected is not yet waiting on the server: give the server time to take every request in.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await release(() => (t0 = performance.now()));
    return stats((await Promise.all(watchers.map((w) => w.received))).map((at) => at - t0));
  } finally {
    for (const w of watchers) w.destroy();
  }
}

/** The `etcd` binary: on PATH, else Debian's /usr/bin/etcd; undefined when there is none. */
function findEtcd(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), '/usr/bin'];
  for (const d of dirs) {
    try {
      accessSync(join(d, 'etcd'), constants.X_OK);
      return join(d, 'etcd');
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Resolves when `child` has exited (or could not be started). */
function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
}

/**
 * `n` watchers of one key through etcd's JSON gateway, each `POST /v3/watch` streaming on its own
 * connection; resolves with their receipt times of the event once `put` (which calls `start` as it
 * sends the put) is done. The clock starts only when every watcher has answered its creation.
 */
async function etcdFanOut(port: number, n: number, key: string, put: (start: () => void) => Promise<void>): Promise<FanOut> {
  const body = JSON.stringify({ create_request: { key: Buffer.from(key).toString('base64') } });
  const head = `POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  let created = 0;
  let t0 = 0;
  let timing = false;
  let failed: Error | undefined;
  const watchers = Array.from({ length: n }, (_, i) => {
    let isCreated = false;
    const w = rawWatcher(
      port,
      head,
      (text) => {
        if (!text.includes('"events":')) return false;
        return timing ? true : new Error(`etcd watcher ${i}: an event before the put: ${text.slice(0, 200)}`);
      },
      {
        data: (text) => {
          if (!isCreated && text.includes('"created":true')) {
            isCreated = true;
            created++;
          }
        },
      },
    );
    w.received.catch((e: Error) => (failed ??= e));
    return w;
  });
  try {
    const deadline = Date.now() + 30_000;
    while (created < n && failed === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (failed !== undefined) throw failed;
    if (created < n) throw new Error(`only ${created} of ${n} etcd watchers were created within 30 s`);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    timing = true;
    await put(() => (t0 = performance.now()));
    return stats((await Promise.all(watchers.map((w) => w.received))).map((at) => at - t0));
  } finally {
    for (const w of watchers) w.destroy();
  }
}

/** One etcd member of its own on free ports, the fan-out through it, then etcd killed and its dir removed (also on failure). */
async function runEtcd(bin: string, n: number): Promise<{ version: string; fanOut: FanOut }> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const etcd = spawn(bin, ['--name', 'bench', '--data-dir', join(dir, 'data'), '--listen-client-urls', base, '--advertise-client-urls', base, '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `bench=${peerUrl}`, '--initial-cluster-state', 'new', '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let startError: Error | undefined;
  etcd.on('error', (e) => (startError = e));
  etcd.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-2000)));
  const gone = exited(etcd);
  try {
    let version = '';
    for (let i = 0; ; i++) {
      if (startError !== undefined) throw new Error(`etcd could not be started: ${startError.message}`);
      if (etcd.exitCode !== null || etcd.signalCode !== null) throw new Error(`etcd exited during start-up (${etcd.exitCode ?? etcd.signalCode}): ${log.trim().slice(-500)}`);
      try {
        const health = (await (await unauthenticatedFetch(`${base}/health`)).json()) as { health?: string };
        if (health.health === 'true') {
          version = ((await (await unauthenticatedFetch(`${base}/version`)).json()) as { etcdserver?: string }).etcdserver ?? '?';
          break;
        }
      } catch {
        // Not up yet.
      }
      if (i > 200) throw new Error(`etcd did not answer within 20 s: ${log.trim().slice(-500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // etcd takes no token: `fetch` as Node has it (the bench's fetch adds Slipway's to loopback).
    const key = 'slipway-bench/config';
    const put = async (start: () => void) => {
      start();
      const r = await unauthenticatedFetch(`${base}/v3/kv/put`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from('round: 1000\n').toString('base64') }) });
      const text = await r.text();
      if (!r.ok) throw new Error(`etcd put: ${r.status} ${text}`);
    };
    return { version, fanOut: await etcdFanOut(client, n, key, put) };
  } finally {
    etcd.kill('SIGKILL');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

type RollInstances = { instances: { taskId: string; release?: number; state: string; healthy?: boolean }[] };
type RollRollout = { id: string; state: 'running' | 'succeeded' | 'failed'; reason?: string; rolledBackBy?: string; startedAt: number; endedAt?: number };

/** Every `POLL_MS` (from the start of one poll to the next) until `fn` answers; `what` names it in the timeout's error. */
async function pollUntil<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const t = performance.now();
    const r = await fn();
    if (r !== undefined) return r;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, POLL_MS - (performance.now() - t))));
  }
}

/**
 * The rollout part: the service `roll` linked to `/bench/roll` in `dev`, its deploy, a good release
 * and a bad one with its automatic rollback, timed from this side; then the app deleted.
 */
async function runRollout(base: string, dir: string, n: number, deadlineSeconds: number, progress?: (line: string) => void): Promise<RolloutBench> {
  const appId = '/bench/roll';
  const repo = join(dir, 'roll-templates');
  mkdirSync(join(repo, 'roll'), { recursive: true });
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'roll', 'mode.txt'), 'mode: {{ mode }}\nround: {{ round }}\n');
  git(repo, 'add', '-A');
  git(repo, 'commit', '-qm', 'templates');
  const scope = '/config/v1/services/roll/environments/dev';
  await call(base, 'PUT', '/config/v1/services/roll', { repo, files: [{ name: 'mode.txt', template: 'roll/mode.txt', destination: '/etc/roll/mode.txt' }], apps: { dev: appId }, rollout: 'restart' });
  await call(base, 'PUT', `${scope}/values`, { mode: 'good', round: 1 });
  await call(base, 'POST', `${scope}/releases`, {});
  const healthCheck = { protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 2, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 };
  const upgradeStrategy = { minimumHealthCapacity: 1, maximumOverCapacity: 1 };
  let peak = 0;
  const instances = async () => {
    const r = (await call(base, 'GET', `${scope}/instances`)).json as unknown as RollInstances;
    peak = Math.max(peak, r.instances.filter((i) => ALIVE.has(i.state)).length);
    return r.instances;
  };
  const healthyOn = (list: RollInstances['instances'], v: number) => list.filter((i) => i.release === v && i.state === 'TASK_RUNNING' && i.healthy === true).length;
  const rolloutOf = async (id: string) => (await call(base, 'GET', `${scope}/rollouts/${encodeURIComponent(id)}`)).json as unknown as RollRollout;
  /** Polls the rollout `id` and the instances from `t0` until the rollout is no longer running. */
  const follow = async (id: string, release: number, t0: number, timeoutMs: number): Promise<{ times: RolloutTimes; rollout: RollRollout }> => {
    let allHealthyMs: number | null = null;
    const rollout = await pollUntil(`the rollout ${id} to end`, timeoutMs, async () => {
      const [r, list] = await Promise.all([rolloutOf(id), instances()]);
      if (allHealthyMs === null && healthyOn(list, release) >= n) allHealthyMs = performance.now() - t0;
      return r.state !== 'running' ? r : undefined;
    });
    const endedMs = performance.now() - t0;
    return { rollout, times: { release, rolloutId: id, allHealthyMs: allHealthyMs === null ? null : Math.round(allHealthyMs), endedMs: Math.round(endedMs), serverMs: rollout.endedAt !== undefined ? rollout.endedAt - rollout.startedAt : null } };
  };
  const release = async (set: Record<string, unknown>, body: Record<string, unknown>) => {
    await call(base, 'PATCH', `${scope}/values`, { set });
    const t0 = performance.now();
    const r = (await call(base, 'POST', `${scope}/releases`, body)).json['release'] as { version: number; rollout?: { id: string; state: string } };
    if (r.rollout === undefined) throw new Error(`release ${r.version} was not rolled out`);
    return { t0, version: r.version, rolloutId: r.rollout.id };
  };

  try {
    progress?.(`rollout: POST ${appId} with ${n} instances (HTTP checks every ${healthCheck.intervalSeconds} s, grace ${healthCheck.gracePeriodSeconds} s)...`);
    const tDeploy = performance.now();
    await call(base, 'POST', '/v2/apps', {
      id: appId,
      // Serves HTTP (healthy) only with the good config.
      cmd: 'if grep -q "mode: good" "$SLIPWAY_CONFIG_DIR/etc/roll/mode.txt"; then exec python3 -m http.server $PORT0; else exec sleep 600; fi',
      cpus: ROLL_CPUS,
      mem: ROLL_MEM,
      disk: 0,
      instances: n,
      labels: { SLIPWAY_CONFIG_SERVICE: 'roll', SLIPWAY_CONFIG_ENV: 'dev' },
      healthChecks: [healthCheck],
      upgradeStrategy,
    });
    await pollUntil(`${n} instances healthy on release 1`, 180_000, async () => (healthyOn(await instances(), 1) >= n ? true : undefined));
    const deployMs = Math.round(performance.now() - tDeploy);
    progress?.(`rollout: deploy on release 1, all ${n} healthy after ${(deployMs / 1000).toFixed(1)} s`);

    const g = await release({ round: 2 }, { rollout: 'restart' });
    const good = await follow(g.rolloutId, g.version, g.t0, 180_000);
    if (good.rollout.state !== 'succeeded') throw new Error(`the good release's rollout ${g.rolloutId} ${good.rollout.state}: ${good.rollout.reason ?? ''}`);
    progress?.(`rollout: good release ${g.version}, succeeded ${(good.times.endedMs / 1000).toFixed(1)} s after the POST`);

    const b = await release({ mode: 'bad' }, { rollout: 'restart', deadlineSeconds });
    const bad = await follow(b.rolloutId, b.version, b.t0, deadlineSeconds * 1000 + 120_000);
    if (bad.rollout.state !== 'failed') throw new Error(`the bad release's rollout ${b.rolloutId} ${bad.rollout.state}`);
    const backId = bad.rollout.rolledBackBy;
    if (backId === undefined) throw new Error(`the bad release's rollout failed without a way back: ${bad.rollout.reason ?? ''}`);
    progress?.(`rollout: bad release ${b.version} failed ${(bad.times.endedMs / 1000).toFixed(1)} s after the POST; back by ${backId}...`);
    const tFailed = b.t0 + bad.times.endedMs;
    const backVersion = Number(backId.split('.').pop());
    const back = await follow(backId, backVersion, tFailed, deadlineSeconds * 1000 + 120_000);
    if (back.rollout.state !== 'succeeded') throw new Error(`the rollback's rollout ${backId} ${back.rollout.state}: ${back.rollout.reason ?? ''}`);
    const badTotalMs = Math.round(performance.now() - b.t0);
    const backRelease = (await call(base, 'GET', `${scope}/releases/${backVersion}`)).json as { rolledBackTo?: number };
    progress?.(`rollout: rollback ${backId} succeeded ${(back.times.endedMs / 1000).toFixed(1)} s after the failure`);
    return {
      appId,
      instances: n,
      cpus: ROLL_CPUS,
      mem: ROLL_MEM,
      healthCheck: { protocol: healthCheck.protocol, gracePeriodSeconds: healthCheck.gracePeriodSeconds, intervalSeconds: healthCheck.intervalSeconds, timeoutSeconds: healthCheck.timeoutSeconds, maxConsecutiveFailures: healthCheck.maxConsecutiveFailures },
      upgradeStrategy,
      pollMs: POLL_MS,
      deployMs,
      good: good.times,
      bad: { ...bad.times, deadlineSeconds, reason: bad.rollout.reason ?? '' },
      rollback: { ...back.times, rolledBackTo: backRelease.rolledBackTo ?? null },
      badTotalMs,
      peakInstances: peak,
      ...(await deleteApp(base, appId, join(dir, 'data', 'agent'))),
    };
  } catch (e) {
    await deleteApp(base, appId, join(dir, 'data', 'agent')).catch(() => undefined);
    throw e;
  }
}

/** DELETE of the app (force), then up to 30 s for its task processes to end; kills and counts those left. */
async function deleteApp(base: string, appId: string, sandboxes: string): Promise<{ deleteMs: number | null; leftAfterDelete: number }> {
  const t0 = performance.now();
  await call(base, 'DELETE', `/v2/apps${appId}?force=true`);
  const deadline = t0 + 30_000;
  while (processesUnder(sandboxes).length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const left = processesUnder(sandboxes).length;
  if (left > 0) await killTaskProcesses(sandboxes);
  return { deleteMs: left === 0 ? Math.round(performance.now() - t0) : null, leftAfterDelete: left };
}

export async function runConfigBench(o: ConfigBenchOptions, progress?: (line: string) => void): Promise<ConfigBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-config-'));
  // Tasks run as nobody (the agent is root): their sandboxes must be reachable by path.
  chmodSync(dir, 0o711);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const rolloutInstances = o.rolloutInstances ?? CONFIG_BENCH_DEFAULTS.rolloutInstances;
  const deadlineSeconds = o.rolloutDeadlineSeconds ?? CONFIG_BENCH_DEFAULTS.rolloutDeadlineSeconds;
  // Room for the rollout part: its instances three times over (the old, the new, and during the
  // forced way back the stuck ones besides), beyond what the other parts had.
  const room = 3 * rolloutInstances;
  const resources = `cpus:${Math.round((1 + room * ROLL_CPUS) * 100) / 100};mem:${256 + room * ROLL_MEM};ports:[31000-${31010 + room}]`;
  const up = spawn(process.execPath, [BIN, 'up', '--port', String(port), '--data-dir', join(dir, 'data'), '--containerizers', 'process', '--resources', resources], { stdio: ['ignore', 'ignore', 'pipe'] });
  const upGone = exited(up);
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch {
        // Not up yet.
      }
      if (i > 200) throw new Error('slipway up did not answer within 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const repo = join(dir, 'templates');
    mkdirSync(join(repo, 'bench'), { recursive: true });
    git(repo, 'init', '-q', '-b', 'main');
    const files = [];
    for (let i = 0; i < o.files; i++) {
      writeFileSync(join(repo, 'bench', `f${i}.yaml`), `file: ${i}\nround: {{ round }}\nhosts:\n{% for h in hosts %}  - {{ h }}\n{% endfor %}db:\n  url: {{ db.url }}\n`);
      files.push({ name: `f${i}.yaml`, template: `bench/f${i}.yaml`, destination: `/etc/bench/f${i}.yaml` });
    }
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'templates');
    await call(base, 'PUT', '/config/v1/environments/dev', {});
    await call(base, 'PUT', '/config/v1/services/bench', { repo, files, rollout: 'none' });
    const scope = '/config/v1/services/bench/environments/dev';
    const releaseTimes: number[] = [];
    let version = 0;
    const releaseOnce = async (round: number, start?: () => void) => {
      await call(base, 'PATCH', `${scope}/values`, { set: { round, hosts: ['a', 'b', 'c'], 'db.url': 'postgres://db/bench' } });
      start?.();
      const t = performance.now();
      const r = await call(base, 'POST', `${scope}/releases`, {});
      releaseTimes.push(performance.now() - t);
      version = (r.json['release'] as { version: number }).version;
    };
    for (let i = 0; i < o.releases; i++) await releaseOnce(i);
    progress?.(`render + release of ${o.files} files: ${releaseTimes.map((x) => x.toFixed(0)).join(', ')} ms`);
    const longPoll = await fanOut(port, o.watchers, version, 'poll', (start) => releaseOnce(1000, start));
    progress?.(`long poll, ${o.watchers} watchers: p50 ${longPoll.p50Ms} ms, p99 ${longPoll.p99Ms} ms`);
    const sse = await fanOut(port, o.watchers, version, 'sse', (start) => releaseOnce(2000, start));
    progress?.(`server-sent events, ${o.watchers} watchers: p50 ${sse.p50Ms} ms, p99 ${sse.p99Ms} ms`);
    const warm = releaseTimes.slice(1);
    const slipway = { watchers: o.watchers, files: o.files, releaseMsP50: Math.round(percentile(warm.length > 0 ? warm : releaseTimes, 50)), releaseMsMax: Math.round(Math.max(...releaseTimes)), longPoll, sse };
    const etcdPart = await (async (): Promise<Pick<ConfigBenchResult, 'etcd' | 'etcdReason'>> => {
      const bin = findEtcd();
      if (bin === undefined) return { etcd: null, etcdReason: 'no etcd binary on PATH or at /usr/bin/etcd (Debian: apt-get install etcd-server)' };
      let etcd: Awaited<ReturnType<typeof runEtcd>>;
      try {
        etcd = await runEtcd(bin, o.watchers);
      } catch (e) {
        return { etcd: null, etcdReason: `${bin} failed: ${e instanceof Error ? e.message : String(e)}` };
      }
      const ratio = (x: number) => Math.round((x / Math.max(etcd.fanOut.p99Ms, 0.1)) * 100) / 100;
      progress?.(`etcd ${etcd.version} watch, ${o.watchers} watchers: p50 ${etcd.fanOut.p50Ms} ms, p99 ${etcd.fanOut.p99Ms} ms`);
      return { etcd: { version: etcd.version, ...etcd.fanOut, p99Ratio: { longPoll: ratio(longPoll.p99Ms), sse: ratio(sse.p99Ms) } } };
    })();
    // Last, so that none of its tasks (nor their health checks) run during the fan-outs above.
    let rolloutPart: Pick<ConfigBenchResult, 'rollout' | 'rolloutReason'>;
    if (rolloutInstances === 0) rolloutPart = { rollout: null, rolloutReason: 'skipped: --rollout-instances 0' };
    else {
      try {
        rolloutPart = { rollout: await runRollout(base, dir, rolloutInstances, deadlineSeconds, progress) };
      } catch (e) {
        rolloutPart = { rollout: null, rolloutReason: `failed: ${e instanceof Error ? e.message : String(e)}` };
      }
    }
    return { ...slipway, ...etcdPart, ...rolloutPart };
  } finally {
    up.kill('SIGKILL');
    await Promise.race([upGone, new Promise((r) => setTimeout(r, 5000))]);
    // Tasks outlive `slipway up` by design (and its git children may be mid-run): none outlive the bench.
    await killTaskProcesses(dir);
    removeTaskCgroups(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

export function formatConfigBench(r: ConfigBenchResult): string {
  const t = CONFIG_BENCH_TARGETS;
  const ok = (v: number, target: number) => (v <= target ? 'met' : 'NOT met');
  const e = r.etcd;
  return [
    `config bench: slipway up in its own process, over HTTP on 127.0.0.1`,
    `  render + release of ${r.files} files: p50 ${r.releaseMsP50} ms, max ${r.releaseMsMax} ms (target <= ${t.releaseMs} ms: ${ok(r.releaseMsP50, t.releaseMs)})`,
    `  a release reaching ${r.watchers} long-poll watchers: first ${r.longPoll.firstMs} ms, p50 ${r.longPoll.p50Ms} ms, p99 ${r.longPoll.p99Ms} ms, max ${r.longPoll.maxMs} ms (target p99 <= ${t.fanOutP99Ms} ms: ${ok(r.longPoll.p99Ms, t.fanOutP99Ms)})`,
    `  a release reaching ${r.watchers} SSE watchers:       first ${r.sse.firstMs} ms, p50 ${r.sse.p50Ms} ms, p99 ${r.sse.p99Ms} ms, max ${r.sse.maxMs} ms (target p99 <= ${t.fanOutP99Ms} ms: ${ok(r.sse.p99Ms, t.fanOutP99Ms)})`,
    ...(e === null
      ? [`  the same fan-out through etcd's watch: not run (${r.etcdReason ?? 'no reason given'})`]
      : [
          `  a put reaching ${r.watchers} etcd ${e.version} watchers (POST /v3/watch, each its own connection): first ${e.firstMs} ms, p50 ${e.p50Ms} ms, p99 ${e.p99Ms} ms, max ${e.maxMs} ms`,
          `  side by side, p99 (ms)     Slipway   etcd    ratio (target <= ${t.etcdP99Ratio}x)`,
          `    long poll             ${String(r.longPoll.p99Ms).padStart(8)} ${String(e.p99Ms).padStart(6)}    ${e.p99Ratio.longPoll}x: ${ok(e.p99Ratio.longPoll, t.etcdP99Ratio)}`,
          `    server-sent events    ${String(r.sse.p99Ms).padStart(8)} ${String(e.p99Ms).padStart(6)}    ${e.p99Ratio.sse}x: ${ok(e.p99Ratio.sse, t.etcdP99Ratio)}`,
        ]),
    ...formatRollout(r),
  ].join('\n');
}

function formatRollout(r: ConfigBenchResult): string[] {
  const x = r.rollout;
  if (x === null) return [`  rollout of a linked app: not run (${r.rolloutReason ?? 'no reason given'})`];
  const s = (ms: number | null) => (ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`);
  const h = x.healthCheck;
  return [
    `  rollout of ${x.appId}, ${x.instances} instances (${h.protocol} check every ${h.intervalSeconds} s, grace ${h.gracePeriodSeconds} s, ${h.maxConsecutiveFailures} failures; upgradeStrategy ${x.upgradeStrategy.minimumHealthCapacity}/${x.upgradeStrategy.maximumOverCapacity}; polled every ${x.pollMs} ms):`,
    `    deploy on release 1: all ${x.instances} healthy ${s(x.deployMs)} after the POST /v2/apps`,
    `    good release ${x.good.release} (rollout: restart), from the POST: all ${x.instances} on it and healthy ${s(x.good.allHealthyMs)}, rollout succeeded ${s(x.good.endedMs)} (the center's own: ${s(x.good.serverMs)})`,
    `    bad release ${x.bad.release} (deadlineSeconds ${x.bad.deadlineSeconds}), from the POST: rollout failed ${s(x.bad.endedMs)} (the center's own: ${s(x.bad.serverMs)}): ${x.bad.reason}`,
    `    automatic rollback, release ${x.rollback.release} (back to ${x.rollback.rolledBackTo ?? '?'}, ${x.rollback.rolloutId}), from the failure: all ${x.instances} on it and healthy ${s(x.rollback.allHealthyMs)}, rollout succeeded ${s(x.rollback.endedMs)} (the center's own, from its start: ${s(x.rollback.serverMs)})`,
    `    bad release to healthy again, total: ${s(x.badTotalMs)}; peak ${x.peakInstances} instances at once`,
    `    the app's DELETE: ${x.deleteMs !== null ? `no task process left after ${s(x.deleteMs)}` : `${x.leftAfterDelete} task process(es) still there after 30 s, killed`}`,
  ];
}
