import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathSegment } from '../src/agent/path-segment.ts';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 12, "tasks run as the app's user": on `slipway up` started as root, a Marathon app's
// `user` is the user its tasks run as, an app without one runs as the agent's default user
// (nobody), an unknown user fails the task naming it, and CI executors run as the CI user
// (by default the agent's default user). Before, every task ran as root and `user` was refused.

const asRoot = process.getuid?.() === 0;
const NOBODY = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim()), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim()) };

describe('tasks on `slipway up` run as their user', { skip: asRoot ? false : 'tasks switch users only when the agent runs as root', timeout: 120_000 }, () => {
  let server: Up;
  let dir: string;
  let base: string;
  let frameworkId: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-users-'));
    // The tasks' users pass through the test's directory to their sandboxes (mkdtemp makes it 0700).
    chmodSync(dir, 0o711);
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:4096;disk:10000;ports:[34600-34699]' });
    base = server.master.url;
    frameworkId = server.apps.framework.id!;
  });

  after(async () => {
    delete process.env['GIT_CONFIG_GLOBAL'];
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, body: (text !== '' && (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text) as Record<string, unknown> };
  };
  const runningTask = (appId: string) =>
    waitUntil(
      async () => ((await api('GET', `/v2/apps${appId}/tasks`)).body['tasks'] as { id: string; state: string }[] | undefined)?.find((t) => t.state === 'TASK_RUNNING'),
      `a running task of ${appId}`,
      30_000,
    );
  /**
   * The task's stdout once it holds `lines` lines (the commands write them one at a time), through
   * the files API: the agent's files server still reads a sandbox of mode 0700 owned by the task's user.
   */
  const stdoutOf = (taskId: string, lines: number) =>
    waitUntil(
      async () => {
        const r = await fetch(`${base}/files/download?framework_id=${frameworkId}&task_id=${encodeURIComponent(taskId)}&path=stdout`);
        const text = r.status === 200 ? await r.text() : '';
        return text.endsWith('\n') && text.split('\n').length - 1 >= lines ? text : undefined;
      },
      `the stdout of ${taskId}`,
      20_000,
    );
  const sandboxOf = (taskId: string) => join(dir, 'data', 'agent', 'sandboxes', pathSegment(frameworkId), pathSegment(taskId));

  it("runs an app's tasks as its user: id -u and id -g are nobody's, in a sandbox owned by nobody, mode 0700", async () => {
    const created = await api('POST', '/v2/apps', { id: '/as-nobody', user: 'nobody', cmd: 'id -u; id -g; exec sleep 300', cpus: 0.1, mem: 32 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const t = await runningTask('/as-nobody');
    assert.equal(await stdoutOf(t.id, 2), `${NOBODY.uid}\n${NOBODY.gid}\n`);
    const st = statSync(sandboxOf(t.id));
    assert.deepEqual({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) }, { uid: NOBODY.uid, gid: NOBODY.gid, mode: '700' });
  });

  it('runs the tasks of an app without a user as the default user, nobody, never root', async () => {
    assert.equal((await api('POST', '/v2/apps', { id: '/no-user', cmd: 'id -un; id -u; exec sleep 300', cpus: 0.1, mem: 32 })).status, 201);
    const t = await runningTask('/no-user');
    assert.equal(await stdoutOf(t.id, 2), `nobody\n${NOBODY.uid}\n`);
  });

  it('fails the tasks of an app whose user does not exist, with TASK_ERROR naming the user', async () => {
    assert.equal((await api('POST', '/v2/apps', { id: '/ghost', user: 'slipway-no-such-user', cmd: 'exec sleep 300', cpus: 0.1, mem: 32 })).status, 201);
    const failure = await waitUntil(
      async () => ((await api('GET', '/v2/apps/ghost')).body['app'] as { lastTaskFailure?: { state: string; message: string } } | undefined)?.lastTaskFailure,
      'a task failure of /ghost',
      30_000,
    );
    assert.equal(failure.state, 'TASK_ERROR');
    assert.match(failure.message, /command\.user: no user "slipway-no-such-user" on this agent/);
  });

  it('runs CI executors, and so the build steps, as the default user when no CI user is given', async () => {
    const repo = createTestRepo(join(dir, 'repo'));
    repo.commit({ '.slipway.yml': 'steps:\n  - name: who\n    commands:\n      - id -un\n' });
    // git refuses a repository owned by another user than the one running it ("dubious
    // ownership"): the repository is the executor's user's, and CI itself (root, in this
    // process) is told to trust it in a global config of its own.
    execFileSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, repo.path]);
    const gitConfig = join(dir, 'gitconfig');
    writeFileSync(gitConfig, `[safe]\n\tdirectory = ${repo.path}\n\tdirectory = ${repo.path}/.git\n`);
    process.env['GIT_CONFIG_GLOBAL'] = gitConfig;
    assert.equal((await api('PUT', '/ci/v1/jobs/who', { repo: repo.path })).status, 201);
    assert.equal((await api('POST', '/ci/v1/jobs/who/builds')).status, 201);
    const build = await waitUntil(
      async () => {
        const b = (await api('GET', '/ci/v1/jobs/who/builds/1')).body as { status: string };
        return b.status !== 'queued' && b.status !== 'running' ? b : undefined;
      },
      'build #1 to end',
      60_000,
    );
    assert.equal(build.status, 'success', JSON.stringify(build));
    const log = (await api('GET', '/ci/v1/jobs/who/builds/1/log')).body as unknown as string;
    assert.match(log, /^nobody$/m);
    delete process.env['GIT_CONFIG_GLOBAL'];
  });
});
