import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { pathSegment } from '../src/agent/path-segment.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { unauthenticatedFetch } from './support/auth-preload.ts';
import { freePort, SlipwayProcess, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 12 §4, the secret store over real processes: `slipway up` on a new data dir; secrets
// written through /auth/v1/secrets (write-only), referenced by Marathon apps (env and files, in
// a process task and a Docker task), handed to the tasks and to no API answer.

const dir = tempDir('secret-store');
const dataDir = join(dir, 'data');
const VALUE = 'pw-7f3a9c-correct-horse';
const KEY_VALUE = '-----BEGIN KEY-----\nk3y-b0dy-91\n-----END KEY-----\n';
let url = '';
let up: SlipwayProcess;
let admin = '';
let dockerImage: string | undefined;
let dockerSkip: string | undefined;

async function call(method: string, path: string, o: { token?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? admin}` };
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const r = await unauthenticatedFetch(`${url}${path}`, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}) });
  return { status: r.status, text: await r.text() };
}

async function token(name: string, policies: string[]): Promise<string> {
  const r = await call('POST', '/auth/v1/tokens', { body: { name, policies } });
  assert.equal(r.status, 201, r.text);
  return (JSON.parse(r.text) as { token: string }).token;
}

/** The app's one running task: its id, once it runs. */
async function runningTask(appId: string): Promise<string> {
  return waitUntil(async () => {
    const r = await call('GET', `/v2/apps${appId}/tasks`);
    const tasks = (JSON.parse(r.text) as { tasks: { id: string; state: string }[] }).tasks;
    return tasks.find((t) => t.state === 'TASK_RUNNING')?.id;
  }, `a running task of ${appId}`, 60_000);
}

function sandboxOf(taskId: string): string {
  const root = join(dataDir, 'agent', 'sandboxes');
  for (const fw of readdirSync(root)) if (existsSync(join(root, fw, pathSegment(taskId)))) return join(root, fw, pathSegment(taskId));
  throw new Error(`no sandbox of ${taskId}`);
}

async function fileOf(sandbox: string, name: string): Promise<string> {
  return waitUntil(() => (existsSync(join(sandbox, name)) ? readFileSync(join(sandbox, name), 'utf8') : undefined), `${name} in the sandbox`, 30_000);
}

describe('the secret store (issue 12 §4): write-only, referenced by apps, handed to tasks alone', { timeout: 180_000 }, () => {
  before(async () => {
    const docker = new Docker();
    try {
      await docker.ping();
      dockerImage = await ensureBusyboxImage(docker);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine for these tests: ${(e as Error).message}`, { cause: e });
      dockerSkip = `no Docker engine: ${(e as Error).message}`;
    }
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const env = { ...process.env };
    delete env['SLIPWAY_BOOTSTRAP_TOKEN'];
    delete env['SLIPWAY_TOKEN'];
    up = new SlipwayProcess(
      'up',
      ['up', '--port', String(port), '--data-dir', dataDir, '--containerizers', dockerImage !== undefined ? 'process,docker' : 'process', '--resources', 'cpus:4;mem:2048;ports:[36300-36399]'],
      join(dir, 'up.log'),
      env,
    );
    up.start();
    await waitForHttp(`${url}/health`);
    admin = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    await waitUntil(async () => {
      const r = await call('POST', '/api/v1', { body: { type: 'GET_AGENTS' } });
      return (JSON.parse(r.text) as { get_agents: { agents: unknown[] } }).get_agents.agents.length === 1;
    }, 'the agent of up');
  });

  after(async () => {
    for (const id of ['/team-a/web', '/team-a/box', '/team-a/missing']) await call('DELETE', `/v2/apps${id}?force=true`).catch(() => undefined);
    await up?.interrupt();
    killProcessesUnder(dir);
    if (dockerImage !== undefined) {
      const docker = new Docker();
      for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.sandbox`] } })) {
        if (Object.values(c.Labels).some((v) => v.startsWith(dir))) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('takes secrets write-only: answers never hold the value, and the store keeps it sealed', async () => {
    const put = await call('PUT', '/auth/v1/secrets/team-a/db-password', { body: { value: VALUE } });
    assert.equal(put.status, 201, put.text);
    const view = JSON.parse(put.text) as Record<string, unknown>;
    assert.equal(view['name'], 'team-a/db-password');
    assert.equal(view['version'], 1);
    assert.equal(view['updatedBy'], 'admin');
    assert.equal((await call('PUT', '/auth/v1/secrets/team-a/tls-key', { body: { value: KEY_VALUE } })).status, 201);
    const again = await call('PUT', '/auth/v1/secrets/team-a/db-password', { body: { value: VALUE } });
    assert.equal(again.status, 200);
    assert.equal((JSON.parse(again.text) as { version: number }).version, 2);
    for (const path of ['/auth/v1/secrets', '/auth/v1/secrets/team-a/db-password', '/auth/v1/audit']) {
      const r = await call('GET', path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.ok(!r.text.includes(VALUE) && !r.text.includes('k3y-b0dy'), `${path} shows no value: ${r.text}`);
    }
    assert.deepEqual((JSON.parse((await call('GET', '/auth/v1/secrets')).text) as { secrets: { name: string }[] }).secrets.map((s) => s.name), ['team-a/db-password', 'team-a/tls-key']);
    // Bad input: a clear 4xx.
    assert.equal((await call('PUT', '/auth/v1/secrets/team-a/x', { body: { value: 42 } })).status, 400);
    assert.equal((await call('PUT', '/auth/v1/secrets/team-a/x', { body: { value: 'v', extra: 1 } })).status, 400);
    assert.equal((await call('PUT', '/auth/v1/secrets/a%20b', { body: { value: 'v' } })).status, 400);
    assert.equal((await call('GET', '/auth/v1/secrets/team-a/none')).status, 404);
    // At rest: auth.db (and its WAL) never holds the value in clear.
    const master = join(dataDir, 'master');
    for (const f of readdirSync(master).filter((n) => n.startsWith('auth.db'))) {
      assert.ok(!readFileSync(join(master, f)).includes(Buffer.from(VALUE)), `${f} holds the secret in clear`);
    }
  });

  it('refuses, with 403, a token without `use` on a secret that an app references, and one without `configure` that writes it', async () => {
    const viewer = await token('secret-viewer', ['viewer']);
    assert.equal((await call('GET', '/auth/v1/secrets', { token: viewer })).status, 200);
    const w = await call('PUT', '/auth/v1/secrets/team-a/db-password', { token: viewer, body: { value: 'overwritten' } });
    assert.equal(w.status, 403, w.text);
    const policy = await call('PUT', '/auth/v1/policies/team-a-apps-only', { body: { description: 'team-a apps, no secrets', rules: [{ kind: 'apps', match: '/team-a/*', capabilities: ['read', 'deploy'] }] } });
    assert.equal(policy.status, 201, policy.text);
    const deployer = await token('apps-only', ['team-a-apps-only']);
    const r = await call('POST', '/v2/apps', {
      token: deployer,
      body: { id: '/team-a/steal', cmd: 'echo "$P" > /tmp/stolen', secrets: { s: { source: 'team-a/db-password' } }, env: { P: { secret: 's' } }, cpus: 0.1, mem: 16 },
    });
    assert.equal(r.status, 403, r.text);
    assert.match(r.text, /use on secrets 'team-a\/db-password'/);
    // Nor deep in a group: every app of a group is checked, at any depth.
    let nested: Record<string, unknown> = { id: 'deep', apps: [{ id: 'steal', cmd: 'env', cpus: 0.1, mem: 16, instances: 0, secrets: { s: { source: 'team-a/db-password' } }, env: { P: { secret: 's' } } }] };
    for (let i = 0; i < 20; i++) nested = { id: `g${i}`, groups: [nested] };
    const deep = await call('PUT', '/v2/groups/team-a', { token: deployer, body: { id: '/team-a', groups: [nested] } });
    assert.equal(deep.status, 403, deep.text);
    assert.match(deep.text, /use on secrets 'team-a\/db-password'/);
    // Nor by rolling an app back to a version that referenced a secret, nor by a partial update
    // of an app someone else set to run as root.
    const v1 = await call('POST', '/v2/apps', { body: { id: '/team-a/versioned', cmd: 'sleep 1', cpus: 0.1, mem: 16, instances: 0, secrets: { s: { source: 'team-a/db-password' } }, env: { P: { secret: 's' } } } });
    assert.equal(v1.status, 201, v1.text);
    const version1 = (JSON.parse(v1.text) as { version: string }).version;
    assert.equal((await call('PUT', '/v2/apps/team-a/versioned?force=true', { body: { id: '/team-a/versioned', cmd: 'sleep 2', cpus: 0.1, mem: 16, instances: 0, secrets: {}, env: {} } })).status, 200);
    const back = await call('PUT', '/v2/apps/team-a/versioned?force=true', { token: deployer, body: { version: version1 } });
    assert.equal(back.status, 403, back.text);
    assert.match(back.text, /use on secrets 'team-a\/db-password'/);
    assert.equal((await call('POST', '/v2/apps', { body: { id: '/team-a/as-root', cmd: 'sleep 1', user: 'root', cpus: 0.1, mem: 16, instances: 0 } })).status, 201);
    const asRoot = await call('PUT', '/v2/apps/team-a/as-root?force=true', { token: deployer, body: { cmd: 'id > /tmp/owned' } });
    assert.equal(asRoot.status, 403, asRoot.text);
    assert.match(asRoot.text, /may not run tasks as user 'root'/);
    for (const id of ['/team-a/versioned', '/team-a/as-root']) assert.equal((await call('DELETE', `/v2/apps${id}?force=true`)).status, 200);
    // CI alike: a job's credentials need `use` on each.
    const ciPolicy = await call('PUT', '/auth/v1/policies/ci-only', { body: { description: 'CI jobs, no secrets', rules: [{ kind: 'ci', match: '*', capabilities: ['read', 'configure'] }] } });
    assert.equal(ciPolicy.status, 201, ciPolicy.text);
    const ci = await token('ci-only', ['ci-only']);
    const job = await call('PUT', '/ci/v1/jobs/steal', { token: ci, body: { repo: '/tmp', pipeline: 'steps:\n  - name: s\n    commands: [env]\n', credentials: { P: 'team-a/db-password' } } });
    assert.equal(job.status, 403, job.text);
    assert.match(job.text, /use on secrets 'team-a\/db-password'/);
    // The password secrets of its artifact stores and registries too: its builds upload and push with them.
    const store = await call('PUT', '/ci/v1/jobs/steal', { token: ci, body: { repo: '/tmp', artifactStores: { cdn: { url: 'http://127.0.0.1:9/', username: 'u', passwordSecret: 'team-a/db-password' } } } });
    assert.equal(store.status, 403, store.text);
    assert.match(store.text, /use on secrets 'team-a\/db-password'/);
    const registry = await call('PUT', '/ci/v1/jobs/steal', { token: ci, body: { repo: '/tmp', registries: { r: { address: '127.0.0.1:5000', username: 'u', passwordSecret: '/team-a/db-password' } } } });
    assert.equal(registry.status, 403, registry.text);
    assert.match(registry.text, /use on secrets 'team-a\/db-password'/);
  });

  it('hands a process task its secret in the environment and as a 0600 file of its user; the files API does not serve the file', async () => {
    const app = {
      id: '/team-a/web',
      cmd: 'printf %s "$DB_PASSWORD" > "$MESOS_SANDBOX/from-env"; cat "$MESOS_SANDBOX/conf/tls.key" > "$MESOS_SANDBOX/from-file"; stat -c "%a %U" "$MESOS_SANDBOX/conf/tls.key" > "$MESOS_SANDBOX/file-mode"; exec sleep 300',
      cpus: 0.1,
      mem: 32,
      secrets: { db: { source: '/team-a/db-password' }, tls: { source: 'team-a/tls-key' } },
      env: { DB_PASSWORD: { secret: 'db' }, PLAIN: 'shown' },
      container: { type: 'MESOS', volumes: [{ containerPath: 'conf/tls.key', secret: 'tls' }] },
    };
    const created = await call('POST', '/v2/apps', { body: app });
    assert.equal(created.status, 201, created.text);
    const taskId = await runningTask('/team-a/web');
    const sandbox = sandboxOf(taskId);
    assert.equal(await fileOf(sandbox, 'from-env'), VALUE);
    assert.equal(await fileOf(sandbox, 'from-file'), KEY_VALUE);
    assert.equal((await fileOf(sandbox, 'file-mode')).trim(), '600 nobody');

    // The definition, the tasks and the master's state show references, never values.
    for (const path of ['/v2/apps/team-a/web', '/v2/apps/team-a/web/tasks', '/v2/tasks', '/master/state', '/v2/queue', '/v2/deployments']) {
      const r = await call('GET', path);
      assert.equal(r.status, 200, path);
      assert.ok(!r.text.includes(VALUE) && !r.text.includes('k3y-b0dy'), `${path} holds a secret value`);
    }
    const shown = JSON.parse((await call('GET', '/v2/apps/team-a/web')).text) as { app: { env: Record<string, unknown>; secrets: unknown } };
    assert.deepEqual(shown.app.env, { DB_PASSWORD: { secret: 'db' }, PLAIN: 'shown' });
    assert.deepEqual(shown.app.secrets, app.secrets);
    // The task's framework, as the master knows it (the services framework's, not CI's).
    const tasks = JSON.parse((await call('POST', '/api/v1', { body: { type: 'GET_TASKS' } })).text) as { get_tasks: { tasks: { task_id: { value: string }; framework_id: { value: string } }[] } };
    const fwId = tasks.get_tasks.tasks.find((x) => x.task_id.value === taskId)!.framework_id.value;
    const refused = await call('GET', `/files/read?framework_id=${encodeURIComponent(fwId)}&task_id=${encodeURIComponent(taskId)}&path=conf/tls.key&offset=0`);
    assert.equal(refused.status, 403, refused.text);
    assert.match(refused.text, /holds a secret of the task/);
    const log = await call('GET', `/files/read?framework_id=${encodeURIComponent(fwId)}&task_id=${encodeURIComponent(taskId)}&path=file-mode&offset=0`);
    assert.equal(log.status, 200, log.text);

    // Killed: its secret file goes (the sandbox stays, for its logs).
    assert.equal((await call('DELETE', '/v2/apps/team-a/web?force=true')).status, 200);
    await waitUntil(() => !existsSync(join(sandbox, 'conf', 'tls.key')), 'the secret file removed once the task ended', 30_000);
    assert.ok(existsSync(join(sandbox, 'from-env')), 'the sandbox itself stays');
  });

  it('mounts a secret file read-only at an absolute path in a Docker task, owned by its user', async (t) => {
    if (dockerImage === undefined) return t.skip(dockerSkip);
    const created = await call('POST', '/v2/apps', {
      body: {
        id: '/team-a/box',
        cmd: 'cat /run/secrets/db > /mnt/mesos/sandbox/from-docker; stat -c "%a %u" /run/secrets/db > /mnt/mesos/sandbox/mode; (echo x > /run/secrets/db) 2>/dev/null && echo writable > /mnt/mesos/sandbox/ro; exec sleep 300',
        cpus: 0.1,
        mem: 32,
        secrets: { db: { source: 'team-a/db-password' } },
        container: { type: 'DOCKER', docker: { image: dockerImage }, volumes: [{ containerPath: '/run/secrets/db', secret: 'db' }] },
      },
    });
    assert.equal(created.status, 201, created.text);
    const sandbox = sandboxOf(await runningTask('/team-a/box'));
    assert.equal(await fileOf(sandbox, 'from-docker'), VALUE);
    const [mode, uid] = (await fileOf(sandbox, 'mode')).trim().split(' ');
    assert.equal(mode, '600');
    assert.notEqual(uid, '0', 'owned by the task user, not root');
    assert.ok(!existsSync(join(sandbox, 'ro')), 'the secret file is mounted read-only');
    assert.equal((await call('DELETE', '/v2/apps/team-a/box?force=true')).status, 200);
  });

  it('fails the launch of a task whose secret is not in the store, saying which', async () => {
    const created = await call('POST', '/v2/apps', {
      body: { id: '/team-a/missing', cmd: 'sleep 300', cpus: 0.1, mem: 16, secrets: { s: { source: 'team-a/not-there' } }, env: { S: { secret: 's' } } },
    });
    assert.equal(created.status, 201, created.text);
    const message = await waitUntil(async () => {
      const r = await call('GET', '/v2/apps/team-a/missing?embed=apps.lastTaskFailure');
      return (JSON.parse(r.text) as { app: { lastTaskFailure?: { message: string } } }).app.lastTaskFailure?.message;
    }, 'the failure of the launch', 30_000);
    assert.match(message, /references secret 'team-a\/not-there', which is not in the secret store/);
    assert.equal((await call('DELETE', '/v2/apps/team-a/missing?force=true')).status, 200);
  });

  it('deletes a secret (204), after which it is gone from the list', async () => {
    assert.equal((await call('DELETE', '/auth/v1/secrets/team-a/tls-key')).status, 204);
    assert.equal((await call('DELETE', '/auth/v1/secrets/team-a/tls-key')).status, 404);
    assert.deepEqual((JSON.parse((await call('GET', '/auth/v1/secrets')).text) as { secrets: { name: string }[] }).secrets.map((s) => s.name), ['team-a/db-password']);
  });
});
