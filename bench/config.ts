import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from '../src/core/percentile.ts';
import { runAuthorization } from '../src/sim/bench-token.ts';

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
 */

export interface ConfigBenchOptions {
  watchers: number;
  files: number;
  releases: number;
}

export interface ConfigBenchResult {
  watchers: number;
  files: number;
  releaseMsP50: number;
  releaseMsMax: number;
  longPoll: FanOut;
  sse: FanOut;
}

interface FanOut {
  received: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export const CONFIG_BENCH_TARGETS = { fanOutP99Ms: 100, releaseMs: 200 };
const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

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
  return { received: latencies.length, p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), maxMs: round(Math.max(...latencies)) };
}

/** Opens `n` watchers of the next release (long polls or SSE); resolves with their receipt times once the release is made by `release` (which calls `start` as it sends the release call). */
async function fanOut(port: number, n: number, since: number, kind: 'poll' | 'sse', release: (start: () => void) => Promise<void>): Promise<FanOut> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  let connected = 0;
  let t0 = 0;
  const received: Promise<number>[] = [];
  const requests: ReturnType<typeof request>[] = [];
  for (let i = 0; i < n; i++) {
    received.push(
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, agent, path: `/config/v1/watch?service=bench&env=dev&since=${since}&wait=60`, headers: { authorization: runAuthorization(), ...(kind === 'sse' ? { accept: 'text/event-stream' } : {}) } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => {
            text += d.toString();
            if (kind === 'poll' ? false : /event: release\n/.test(text)) {
              resolve(performance.now() - t0);
              req.destroy();
            }
          });
          res.on('end', () => (kind === 'poll' && res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`watcher ${i}: ${res.statusCode} ${text.slice(0, 200)}`))));
        });
        req.on('socket', (s) => s.once('connect', () => connected++));
        req.on('error', (e) => reject(e));
        req.end();
        requests.push(req);
      }),
    );
  }
  const deadline = Date.now() + 30_000;
  while (connected < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  // Connected is not yet waiting on the server: give the server time to take every request in.
  await new Promise((r) => setTimeout(r, 1500));
  await release(() => (t0 = performance.now()));
  const times = await Promise.all(received);
  for (const r of requests) r.destroy();
  agent.destroy();
  return stats(times);
}

export async function runConfigBench(o: ConfigBenchOptions, progress?: (line: string) => void): Promise<ConfigBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-config-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const up = spawn(process.execPath, [BIN, 'up', '--port', String(port), '--data-dir', join(dir, 'data'), '--containerizers', 'process', '--resources', 'cpus:1;mem:256;ports:[31000-31010]'], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    return { watchers: o.watchers, files: o.files, releaseMsP50: Math.round(percentile(warm.length > 0 ? warm : releaseTimes, 50)), releaseMsMax: Math.round(Math.max(...releaseTimes)), longPoll, sse };
  } finally {
    up.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

export function formatConfigBench(r: ConfigBenchResult): string {
  const t = CONFIG_BENCH_TARGETS;
  const ok = (v: number, target: number) => (v <= target ? 'met' : 'NOT met');
  return [
    `config bench: slipway up in its own process, over HTTP on 127.0.0.1`,
    `  render + release of ${r.files} files: p50 ${r.releaseMsP50} ms, max ${r.releaseMsMax} ms (target <= ${t.releaseMs} ms: ${ok(r.releaseMsP50, t.releaseMs)})`,
    `  a release reaching ${r.watchers} long-poll watchers: p50 ${r.longPoll.p50Ms} ms, p99 ${r.longPoll.p99Ms} ms, max ${r.longPoll.maxMs} ms (target p99 <= ${t.fanOutP99Ms} ms: ${ok(r.longPoll.p99Ms, t.fanOutP99Ms)})`,
    `  a release reaching ${r.watchers} SSE watchers:       p50 ${r.sse.p50Ms} ms, p99 ${r.sse.p99Ms} ms, max ${r.sse.maxMs} ms (target p99 <= ${t.fanOutP99Ms} ms: ${ok(r.sse.p99Ms, t.fanOutP99Ms)})`,
    `  etcd's watch side by side: not run (no etcd binary installed here yet)`,
  ].join('\n');
}
