import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startAgentServer, type AgentServer } from '../src/server/agent-server.ts';
import { up, type Up } from '../src/server/up.ts';
import { tempDir } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// A store whose disk fills up, for real: the stores of `slipway up` on a small tmpfs (mounting
// needs root, which CI has). Tried as a user did: the disk fills, requests answer 503 and change
// nothing; once there is room again everything goes on, and a restart finds what the API said.

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const root = process.getuid?.() === 0;
if (!root && process.env['CI'] !== undefined) throw new Error('test/store-faults.e2e.test.ts mounts tmpfs file systems: CI must run it as root');
const skip = root ? false : 'needs root (it mounts tmpfs file systems); CI runs it';

const RESOURCES = 'cpus:2;mem:2048;disk:1000;ports:[31500-31599]';
const mounts: string[] = [];
const dir = tempDir('store-faults');

function mountTmpfs(at: string, options: string): void {
  mkdirSync(at, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', at]);
  mounts.push(at);
}

/** Fills the file system of `at` to the last byte; answers a function that frees it again. */
function fill(at: string): () => void {
  const file = join(at, 'filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOSPC') throw e;
  }
  // What is left is smaller than a chunk: take it too.
  for (let size = 32 * 1024; size >= 512; size /= 2) {
    try {
      for (;;) writeSync(fd, chunk.subarray(0, size));
    } catch {
      // ENOSPC at this size: try a smaller one.
    }
  }
  closeSync(fd);
  return () => rmSync(file, { force: true });
}

after(() => {
  killProcessesUnder(dir);
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  rmSync(dir, { recursive: true, force: true });
});

describe('stores that refuse writes', { skip }, () => {
  it('refuses a read-only data dir at start, saying so', () => {
    const ro = join(dir, 'ro');
    mountTmpfs(ro, 'size=1m');
    mkdirSync(join(ro, 'data'));
    execFileSync('mount', ['-o', 'remount,ro', ro]);
    const r = spawnSync(process.execPath, [BIN, 'up', '--data-dir', join(ro, 'data'), '--port', '5998'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    // The data dir of `up` itself is checked first (it holds the secret key beside the parts' dirs).
    assert.match(r.stderr, /cannot use .*\/ro\/data as the single-machine Slipway's data dir: the file system is read-only/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'one line, no stack trace');
  });

  describe('a full disk under `slipway up`', () => {
    const data = join(dir, 'up');
    const stores = join(data, 'stores');
    let server: Up | undefined;
    let extra: AgentServer | undefined;
    const base = () => server!.master.url;
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(base() + path, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
      const text = await r.text();
      return { status: r.status, text, json: text.startsWith('{') || text.startsWith('[') ? (JSON.parse(text) as Record<string, unknown>) : undefined };
    };
    const start = async () => {
      server = await up({ host: '127.0.0.1', port: 0, dataDir: data, containerizers: ['process'], resources: RESOURCES });
    };

    before(async () => {
      // The stores (master, services, CI) on a 16 MiB tmpfs; the agent's sandboxes stay on the disk.
      mountTmpfs(stores, 'size=16m');
      for (const part of ['master', 'apps', 'ci']) {
        mkdirSync(join(stores, part));
        symlinkSync(join(stores, part), join(data, part));
      }
      await start();
    });
    after(async () => {
      await extra?.close();
      await server?.close();
    });

    it('answers 503 and changes nothing while the disk is full, goes on once it is not, and a restart finds what the API said', { timeout: 120_000 }, async () => {
      const keep = await call('POST', '/v2/apps', { id: '/keep', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 1 });
      assert.equal(keep.status, 201, keep.text);
      const task = await waitUntil(async () => {
        const tasks = ((await call('GET', '/v2/apps/keep/tasks')).json?.['tasks'] ?? []) as { id: string; state: string }[];
        return tasks.find((t) => t.state === 'TASK_RUNNING');
      }, 'the instance to run', 20_000);
      assert.equal((await call('PUT', '/ci/v1/jobs/before', { repo: '/srv/git/x.git', pipeline: 'steps:\n  - name: a\n    commands: [echo]\n' })).status, 201);

      const free = fill(stores);
      // Big enough that its write needs new room in the database's log, whatever SQLite kept free.
      const big = { id: '/big', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 1, labels: { PAYLOAD: 'x'.repeat(1_000_000) } };
      const refused = await call('POST', '/v2/apps', big);
      assert.equal(refused.status, 503, refused.text);
      assert.match(String(refused.json?.['message']), /apps store refused a write .*nothing of the change was written/);
      assert.equal((await call('GET', '/v2/apps/big')).status, 404, 'the refused app does not exist');
      assert.equal((await call('GET', '/v2/deployments')).text, '[]', 'nor a deployment of it');
      const bigJob = await call('PUT', '/ci/v1/jobs/big', { repo: '/srv/git/x.git', pipeline: 'steps:\n  - name: a\n    commands: [echo]\n', env: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`V${i}`, 'y'.repeat(50_000)])) });
      assert.equal(bigJob.status, 503, bigJob.text);
      assert.equal((await call('GET', '/ci/v1/jobs/big')).status, 404);
      // Small changes may still fit in what the database had free: whatever the answer, the API
      // must say what is kept (checked again after the restart).
      const scale = await call('PUT', '/v2/apps/keep', { instances: 2 });
      assert.ok(scale.status === 200 || scale.status === 503, scale.text);
      const scaled = scale.status === 200;
      assert.equal(((await call('GET', '/v2/apps/keep')).json?.['app'] as { instances: number }).instances, scaled ? 2 : 1);

      // A new agent: the master's journal cannot be written, so it stops offering and says so.
      extra = await startAgentServer({ masterUrl: base(), workDir: join(dir, 'agent-2'), containerizers: ['process'], resources: RESOURCES, host: '127.0.0.1' });
      const health = await waitUntil(async () => {
        const r = await fetch(`${base()}/health`);
        return r.status === 503 ? r.text() : undefined;
      }, 'the master to report its store', 20_000);
      assert.match(health, /^UNHEALTHY: the store refuses writes: /);

      free();
      await waitUntil(async () => (await fetch(`${base()}/health`)).status === 200, 'the master to be healthy again', 20_000);
      const later = await call('POST', '/v2/apps', big);
      assert.equal(later.status, 201, later.text);
      await waitUntil(async () => ((await call('GET', '/v2/apps/big')).json?.['app'] as { tasksRunning: number } | undefined)?.tasksRunning === 1, 'the big app to run', 30_000);

      await extra.close();
      extra = undefined;
      await server!.close();
      server = undefined;
      await start();
      const apps = ((await call('GET', '/v2/apps')).json?.['apps'] as { id: string; instances: number }[]).map((a) => [a.id, a.instances]);
      assert.deepEqual(apps, [['/big', 1], ['/keep', scaled ? 2 : 1]], 'after a restart: the apps the API showed');
      const jobs = ((await call('GET', '/ci/v1/jobs')).json?.['jobs'] as { name: string }[]).map((j) => j.name);
      assert.deepEqual(jobs, ['before']);
      // The instance that ran all along runs on: nothing was killed.
      const tasks = await waitUntil(async () => {
        const list = ((await call('GET', '/v2/apps/keep/tasks')).json?.['tasks'] ?? []) as { id: string; state: string }[];
        return list.some((t) => t.id === task.id && t.state === 'TASK_RUNNING') ? list : undefined;
      }, 'the first instance to be reconciled as running', 20_000);
      assert.ok(tasks.some((t) => t.id === task.id));
    });
  });
});
