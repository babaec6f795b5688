import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 12, section 4: data dirs 0700, databases, checkpoints, keys and tokens 0600, whatever the
// umask. `slipway up` runs here under umask 0, so that anything made with a default mode would be
// world-readable and writable: a service task runs, a CI build with a secret and an artifact runs,
// and every file and dir under the data dir is checked. The dirs on the way to the sandboxes are
// traverse-only (0711: a task running as another user reaches its own sandbox); each sandbox is
// 0700, and what the task writes in it is the task's (not checked).

const RESOURCES = 'cpus:4;mem:8192;disk:20000;ports:[34300-34399]';

interface Entry {
  path: string;
  mode: number;
  dir: boolean;
}

/** Every entry under `root` (itself included), not looking inside task sandboxes. */
function entries(root: string): Entry[] {
  const out: Entry[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    const rel = relative(root, p);
    out.push({ path: rel === '' ? '.' : rel, mode: st.mode & 0o777, dir: st.isDirectory() });
    // agent/sandboxes/<framework>/<task>: the sandbox itself is checked, not what is in it.
    if (!st.isDirectory() || /^agent\/sandboxes\/[^/]+\/[^/]+$/.test(rel)) return;
    for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(root);
  return out;
}

const TRAVERSE_ONLY = [/^\.$/, /^agent$/, /^agent\/sandboxes$/, /^agent\/sandboxes\/[^/]+$/];

function assertPrivate(root: string): Entry[] {
  const all = entries(root);
  const wrong = all.filter((e) => {
    const expected = e.dir ? (TRAVERSE_ONLY.some((r) => r.test(e.path)) ? 0o711 : 0o700) : 0o600;
    return e.mode !== expected;
  });
  assert.deepEqual(wrong.map((e) => `${e.mode.toString(8).padStart(4, '0')} ${e.dir ? 'dir ' : 'file'} ${e.path}`), [], 'every dir 0700 (0711 on the way to sandboxes), every file 0600');
  return all;
}

describe('file modes of the data dir of `slipway up`', { timeout: 180_000 }, () => {
  let dir: string;
  let data: string;
  let server: Up | undefined;
  let umask: number;

  before(() => {
    umask = process.umask(0o000);
    dir = mkdtempSync(join(tmpdir(), 'slipway-modes-'));
    data = join(dir, 'data');
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
    process.umask(umask);
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${server!.master.url}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };

  it('keeps every file 0600 and every dir 0700 under umask 0, with a service task and a CI build that ran', async () => {
    const repo = createTestRepo(join(dir, 'repo'));
    repo.commit({ '.slipway.yml': ['steps:', '  - name: make', '    commands:', '      - echo "$TOKEN" | wc -c > out.txt', 'artifacts:', '  - out.txt', ''].join('\n') });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: data, containerizers: ['process'], resources: RESOURCES, ciUser: 'root' });
    assert.equal((await api('POST', '/v2/apps', { id: '/web', cmd: 'sleep 600', cpus: 0.1, mem: 32, instances: 1 })).status, 201);
    assert.equal((await api('PUT', '/ci/v1/jobs/make', { repo: repo.path, secrets: { TOKEN: 'tok-81f0c3d2' } })).status, 201);
    const build = (await api('POST', '/ci/v1/jobs/make/builds')).json()['number'] as number;
    await waitUntil(async () => (await api('GET', `/ci/v1/jobs/make/builds/${build}`)).json()['status'] === 'success', 'the build to succeed', 60_000);
    await waitUntil(async () => ((await api('GET', '/v2/apps/web')).json()['app'] as { tasksRunning: number }).tasksRunning === 1, 'the task to run', 30_000);

    const all = assertPrivate(data);
    // What the check covered: each part's database and its WAL, the key, checkpoints, status
    // updates, the agent's id and lock, the build's log and artifact, and two sandboxes.
    const files = all.filter((e) => !e.dir).map((e) => e.path.replace(/[0-9a-f]{8}-[0-9a-f-]{27,}[^/]*/g, 'ID'));
    for (const f of [
      'secret.key',
      'master/slipway.db',
      'master/slipway.db-wal',
      'apps/apps.db',
      'ci/ci.db',
      'ci/ci.db-wal',
      'ci/logs/make/1/build.log',
      'ci/logs/make/1/step-make.log',
      'ci/artifacts/make/1/out.txt',
      'agent/agent_id',
      'agent/agent.lock',
      'agent/meta/tasks/ID/ID/task.json',
      'agent/meta/updates/ID/ID/updates.jsonl',
    ]) {
      assert.ok(files.some((p) => p === f || p.replace(/\/[^/]*ID[^/]*/g, '/ID') === f), `${f} among ${JSON.stringify(files)}`);
    }
    assert.equal(all.filter((e) => /^agent\/sandboxes\/[^/]+\/[^/]+$/.test(e.path)).length, 2, 'the service task\'s and the executor\'s sandboxes');
  });

  it('tightens what an older version left loose when it starts again, and refuses a secret key others can read', async () => {
    await server!.close();
    server = undefined;
    const loosen: [string, number][] = [
      ['.', 0o755],
      ['master', 0o755],
      ['master/slipway.db', 0o644],
      ['ci', 0o777],
      ['apps/apps.db', 0o666],
      ['agent/agent_id', 0o644],
      ['agent/sandboxes', 0o755],
      ['agent/meta', 0o755],
    ];
    const task = entries(data).find((e) => e.path.endsWith('/task.json'))!;
    loosen.push([task.path, 0o644]);
    for (const [p, mode] of loosen) chmodSync(join(data, p), mode);

    chmodSync(join(data, 'secret.key'), 0o644);
    await assert.rejects(up({ host: '127.0.0.1', port: 0, dataDir: data, containerizers: ['process'], resources: RESOURCES }), /secret key file .*secret\.key is readable or writable by others \(mode 0644\): `chmod 600/);
    chmodSync(join(data, 'secret.key'), 0o600);

    server = await up({ host: '127.0.0.1', port: 0, dataDir: data, containerizers: ['process'], resources: RESOURCES, ciUser: 'root' });
    await waitUntil(async () => ((await api('GET', '/v2/apps/web')).json()['app'] as { tasksRunning: number }).tasksRunning === 1, 'the task recovered', 30_000);
    assertPrivate(data);
    // The job's secret came back with the same key.
    assert.equal(server.ci.framework.view.jobs.get('make')?.secrets['TOKEN'], 'tok-81f0c3d2');
  });
});
