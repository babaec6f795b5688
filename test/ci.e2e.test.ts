import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// CI as its users use it, on `slipway up`: a git repository with a pipeline, a job, a trigger,
// a build on an executor started from an offer, its steps and its log.

describe('CI on `slipway up`: a git repo, a job, a build, its log', { timeout: 120_000 }, () => {
  let server: Up;
  let dir: string;
  let repo: string;
  let base: string;
  let head: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-'));
    repo = join(dir, 'repo');
    head = createTestRepo(repo).commit({
      '.slipway.yml': [
        'steps:',
        '  - name: build',
        '    commands:',
        // Quoted: in YAML, " #" starts a comment.
        `      - 'echo "building $CI_JOB_NAME #$CI_BUILD_NUMBER at $CI_COMMIT_SHA"'`,
        '      - mkdir -p out && echo artifact-content > out/result.txt',
        '  - name: test',
        '    commands:',
        '      - test -f out/result.txt && echo tests passed',
        'artifacts:',
        '  - out/result.txt',
        '',
      ].join('\n'),
    });
    // CI executors as root, explicitly: they clone the test's repositories, which are root's (git
    // refuses another user's repository: "dubious ownership"); other tasks run as nobody.
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:8192;disk:20000;ports:[34000-34099]', ciUser: 'root' });
    base = server.master.url;
  });

  after(async () => {
    await server.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, body: (text !== '' && (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text) as Record<string, unknown> };
  };

  it('runs a manual build of a job on an executor started from an offer, with its steps, log and artifact', async () => {
    const put = await api('PUT', '/ci/v1/jobs/hello', { repo });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const started = Date.now();
    const trig = await api('POST', '/ci/v1/jobs/hello/builds');
    assert.equal(trig.status, 201, JSON.stringify(trig.body));
    assert.equal(trig.body['number'], 1);
    const build = await waitUntil(
      async () => {
        const b = (await api('GET', '/ci/v1/jobs/hello/builds/1')).body as { status: string };
        return b.status !== 'queued' && b.status !== 'running' ? b : undefined;
      },
      'build #1 to end',
      60_000,
    );
    const b = build as unknown as { status: string; commit: string; steps: { name: string; status: string; exitCode?: number }[]; artifacts: string[]; hostname: string; error?: string };
    assert.equal(b.status, 'success', JSON.stringify(b));
    assert.deepEqual(
      b.steps.map((s) => [s.name, s.status, s.exitCode]),
      [
        ['build', 'success', 0],
        ['test', 'success', 0],
      ],
    );
    assert.equal(b.commit, head);
    const log = (await api('GET', '/ci/v1/jobs/hello/builds/1/log')).body as unknown as string;
    assert.match(log, new RegExp(`building hello #1 at ${b.commit}`));
    assert.match(log, /tests passed/);
    const testLog = (await api('GET', '/ci/v1/jobs/hello/builds/1/log?step=test')).body as unknown as string;
    assert.doesNotMatch(testLog, /building/);
    assert.deepEqual(b.artifacts, ['out/result.txt']);
    const artifact = await fetch(`${base}/ci/v1/jobs/hello/builds/1/artifacts/out/result.txt`);
    assert.equal(await artifact.text(), 'artifact-content\n');
    process.stderr.write(`ci e2e: first build (cold executor) took ${Date.now() - started} ms\n`);

    // A second build takes the executor that is now idle: no new executor.
    const executorsBefore = ((await api('GET', '/ci/v1/executors')).body['executors'] as unknown[]).length;
    assert.equal((await api('POST', '/ci/v1/jobs/hello/builds')).status, 201);
    await waitUntil(async () => ((await api('GET', '/ci/v1/jobs/hello/builds/2')).body['status'] === 'success' ? true : undefined), 'build #2 to succeed', 30_000);
    assert.equal(((await api('GET', '/ci/v1/executors')).body['executors'] as unknown[]).length, executorsBefore);
  });

  it('refuses bad input with the field and a 4xx, never a 500', async () => {
    const bad = await api('PUT', '/ci/v1/jobs/bad', { repo: 'relative/path', pipeline: 'steps:\n  - name: x\n    commandz: [a]\n' });
    assert.equal(bad.status, 422, JSON.stringify(bad.body));
    assert.match(JSON.stringify(bad.body), /repo/);
    assert.match(JSON.stringify(bad.body), /line/);
    const docker = await api('PUT', '/ci/v1/executors/boxed', { containerizer: 'docker' });
    assert.equal(docker.status, 422);
    assert.match(JSON.stringify(docker.body), /"field":"image","message":"is required with containerizer/);
    assert.equal((await api('GET', '/ci/v1/jobs/nope/builds/1')).status, 404);
    assert.equal((await api('GET', '/ci/v1/jobs/hello/builds/abc')).status, 400);
    assert.equal((await api('POST', '/ci/v1/jobs/hello/builds/1/cancel')).status, 409);
  });

  it('backs off an executor label whose executors die before connecting, and ends its builds in error with the reason', async () => {
    // 16 MB: the executor (a Node process) is killed by its memory limit before it says HELLO.
    assert.equal((await api('PUT', '/ci/v1/executors/tiny', { cpus: 0.1, mem: 16, disk: 0, maxExecutors: 1 })).status, 201);
    assert.equal((await api('PUT', '/ci/v1/jobs/starved', { repo, executor: 'tiny' })).status, 201);
    assert.equal((await api('POST', '/ci/v1/jobs/starved/builds')).status, 201);
    const b = await waitUntil(
      async () => {
        const x = (await api('GET', '/ci/v1/jobs/starved/builds/1')).body as { status: string; error?: string };
        return x.status !== 'queued' ? x : undefined;
      },
      'the starved build to end',
      60_000,
    );
    assert.equal(b.status, 'error', JSON.stringify(b));
    assert.match(b.error ?? '', /no executor of label tiny could start: 5 failed in a row/);
    // Five launches, with backoff between them: not a launch loop.
    const state = (await (await fetch(`${base}/master/state`)).json()) as { completed_tasks?: { task_id: { value: string } }[]; tasks?: { task_id: { value: string } }[] };
    const tiny = [...(state.completed_tasks ?? []), ...(state.tasks ?? [])].filter((t) => t.task_id.value.startsWith('ci-executor-tiny-'));
    assert.ok(tiny.length >= 5 && tiny.length <= 6, `${tiny.length} executor launches`);
  });
});
