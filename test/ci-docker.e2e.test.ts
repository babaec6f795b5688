import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { createTestRepo } from './support/git-repo.ts';
import { ensureNodeImage } from '../src/sim/node-image.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// CI executors in a Docker container (executor spec `containerizer: docker`), as a CI user sets
// them up: an image with node and git, the repository mounted, a pipeline with a process step (run
// inside the executor's container) and an image step (run next to it, on the agent host's engine,
// with the workspace mounted from the host path behind the executor's sandbox). Docker is
// required in CI; elsewhere the tests are skipped with the reason.

let dockerSkip: string | false = false;

describe('CI executors in Docker containers on `slipway up`', { timeout: 180_000 }, () => {
  let server: Up;
  let dir: string;
  let repo: string;
  let docker: Dockerode | undefined;
  let nodeImage = '';
  let busybox = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-docker-'));
    try {
      docker = new Dockerode();
      await docker.ping();
      busybox = await ensureBusyboxImage(docker);
      nodeImage = await ensureNodeImage(docker);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine for these tests: ${(e as Error).message}`, { cause: e });
      dockerSkip = `no Docker engine: ${(e as Error).message}`;
      docker = undefined;
    }
    repo = join(dir, 'repo');
    createTestRepo(repo).commit({
      '.slipway.yml': [
        'steps:',
        '  - name: inside',
        '    commands:',
        '      - test -f /.dockerenv && echo "executor in a container"',
        '      - echo "node $(node --version) workspace $CI_WORKSPACE"',
        '  - name: image-step',
        `    image: ${busybox || 'none'}`,
        '    commands:',
        '      - echo made-by-the-image-step > from-image.txt',
        '  - name: check',
        '    commands:',
        '      - cat from-image.txt',
        'artifacts:',
        '  - from-image.txt',
        '',
      ].join('\n'),
      // An image step that runs until something stops it.
      'hang.yml': ['steps:', '  - name: hang', `    image: ${busybox || 'none'}`, '    commands:', '      - sleep 300', ''].join('\n'),
    });
    server = await up({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir, 'data'),
      containerizers: docker !== undefined ? ['process', 'docker'] : ['process'],
      resources: 'cpus:4;mem:8192;disk:20000;ports:[34600-34699]',
      // CI executors as root, explicitly: they clone the test's repositories, which are root's
      // (git refuses another user's repository: "dubious ownership"), and their image steps use
      // the Docker socket (a CI user for that must be in the docker group: docs/security.md).
      ciUser: 'root',
    });
  });

  after(async () => {
    await server.close();
    killProcessesUnder(dir);
    if (docker !== undefined) {
      const left = await docker.listContainers({ all: true, filters: { label: ['slipway.sandbox'] } }).catch(() => []);
      for (const c of left) if ((c.Labels['slipway.sandbox'] ?? '').startsWith(dir)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      // Step containers a failed test may have left.
      const steps = await docker.listContainers({ all: true, filters: { label: ['slipway.ci.job'] } }).catch(() => []);
      for (const c of steps) if (['boxed-build', 'hang'].includes(c.Labels['slipway.ci.job'] ?? '')) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${server.master.url}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, body: (text !== '' && (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text) as Record<string, unknown> };
  };
  type Executor = { id: string; label: string; taskId: string; state: string };
  const executorsOf = async (label: string) => ((await api('GET', '/ci/v1/executors')).body['executors'] as Executor[]).filter((e) => e.label === label);

  it('runs a build on an executor in a container of its image, with process and image steps sharing the workspace', async (t) => {
    if (dockerSkip !== false) return t.skip(dockerSkip);
    const spec = await api('PUT', '/ci/v1/executors/boxed', {
      containerizer: 'docker',
      image: nodeImage,
      mem: 512,
      idleTerminationSeconds: 2,
      volumes: [{ containerPath: repo, hostPath: repo, mode: 'RO' }],
    });
    assert.equal(spec.status, 201, JSON.stringify(spec.body));
    assert.equal((await api('PUT', '/ci/v1/jobs/boxed-build', { repo, executor: 'boxed' })).status, 201);
    assert.equal((await api('POST', '/ci/v1/jobs/boxed-build/builds')).status, 201);

    // While it runs or idles, the executor is a container of the image, labelled with its task.
    const [executor] = await waitUntil(async () => {
      const e = await executorsOf('boxed');
      return e.length > 0 ? e : undefined;
    }, 'an executor of label boxed');
    const container = await waitUntil(async () => {
      const found = await docker!.listContainers({ filters: { label: [`slipway.task_id=${executor!.taskId}`] } });
      return found[0];
    }, 'the container of the executor task', 30_000);
    assert.equal(container.Image, nodeImage);

    const b = await waitUntil(
      async () => {
        const x = (await api('GET', '/ci/v1/jobs/boxed-build/builds/1')).body as { status: string };
        return x.status !== 'queued' && x.status !== 'running' ? x : undefined;
      },
      'the build on the docker executor to end',
      90_000,
    );
    const build = b as unknown as { status: string; steps: { name: string; status: string }[]; artifacts: string[]; error?: string };
    const log = (await api('GET', '/ci/v1/jobs/boxed-build/builds/1/log')).body as unknown as string;
    assert.equal(build.status, 'success', `${JSON.stringify(build)}\n${log}`);
    assert.deepEqual(build.steps.map((s) => [s.name, s.status]), [['inside', 'success'], ['image-step', 'success'], ['check', 'success']]);
    const times = b as unknown as { queuedAt: number; steps: { startedAt?: number }[] };
    process.stderr.write(`ci docker e2e: cold docker executor, queued to first step ${(times.steps[0]?.startedAt ?? NaN) - times.queuedAt} ms\n`);
    assert.match(log, /executor in a container/);
    // The sandbox as the container sees it: $MESOS_SANDBOX, not the host's path.
    assert.match(log, new RegExp(`node ${process.version} workspace /mnt/mesos/sandbox/workspace/boxed-build-1`));
    // Written by the image step in its own container, read by the next step in the executor's.
    const checkLog = (await api('GET', '/ci/v1/jobs/boxed-build/builds/1/log?step=check')).body as unknown as string;
    assert.match(checkLog, /made-by-the-image-step/);
    assert.deepEqual(build.artifacts, ['from-image.txt']);
    assert.equal(await (await fetch(`${server.master.url}/ci/v1/jobs/boxed-build/builds/1/artifacts/from-image.txt`)).text(), 'made-by-the-image-step\n');

    // Idle past its 2 s, the executor exits: its container stops, its resources go back.
    await waitUntil(async () => ((await executorsOf('boxed')).length === 0 ? true : undefined), 'the idle docker executor to go', 30_000);
    await waitUntil(async () => ((await docker!.listContainers({ filters: { label: [`slipway.task_id=${executor!.taskId}`] } })).length === 0 ? true : undefined), 'its container to stop', 30_000);
  });

  it('removes the step containers of its build when the executor is terminated (SIGTERM to its container)', async (t) => {
    if (dockerSkip !== false) return t.skip(dockerSkip);
    assert.equal((await api('PUT', '/ci/v1/executors/term', { containerizer: 'docker', image: nodeImage, mem: 512, idleTerminationSeconds: 0, volumes: [{ containerPath: repo, hostPath: repo, mode: 'RO' }] })).status, 201);
    assert.equal((await api('PUT', '/ci/v1/jobs/hang', { repo, executor: 'term', pipelineFile: 'hang.yml' })).status, 201);
    assert.equal((await api('POST', '/ci/v1/jobs/hang/builds')).status, 201);
    const step = await waitUntil(async () => (await docker!.listContainers({ filters: { label: ['slipway.ci.job=hang'] } }))[0], 'the step container of hang #1 to run', 60_000);
    const [executor] = await executorsOf('term');
    const [own] = await docker!.listContainers({ filters: { label: [`slipway.task_id=${executor!.taskId}`] } });
    assert.ok(own !== undefined, 'the executor container');
    // What the agent's kill does first (docker stop): SIGTERM to the executor's PID 1, node.
    await docker!.getContainer(own.Id).kill({ signal: 'SIGTERM' });
    await waitUntil(async () => ((await docker!.listContainers({ all: true, filters: { id: [step.Id] } })).length === 0 ? true : undefined), 'the step container to be removed', 15_000);
    await waitUntil(async () => ((await docker!.listContainers({ filters: { id: [own.Id] } })).length === 0 ? true : undefined), 'the executor container to stop', 15_000);
    const b = await waitUntil(
      async () => {
        const x = (await api('GET', '/ci/v1/jobs/hang/builds/1')).body as { status: string; error?: string };
        return x.status !== 'queued' && x.status !== 'running' ? x : undefined;
      },
      'hang #1 to end',
      30_000,
    );
    assert.ok(b.status === 'error' || b.status === 'cancelled', JSON.stringify(b));
  });

  it('ends the builds of a label whose image has no node in error, saying so, after the launch backoff', async (t) => {
    if (dockerSkip !== false) return t.skip(dockerSkip);
    assert.equal((await api('PUT', '/ci/v1/executors/no-node', { containerizer: 'docker', image: busybox, mem: 64, maxExecutors: 1 })).status, 201);
    assert.equal((await api('PUT', '/ci/v1/jobs/no-node', { repo, executor: 'no-node' })).status, 201);
    assert.equal((await api('POST', '/ci/v1/jobs/no-node/builds')).status, 201);
    // 5 launches in a row, 1 + 2 + 4 + 8 s of backoff between them.
    const b = await waitUntil(
      async () => {
        const x = (await api('GET', '/ci/v1/jobs/no-node/builds/1')).body as { status: string; error?: string };
        return x.status !== 'queued' ? x : undefined;
      },
      'the build of the label without node to end',
      90_000,
    );
    assert.equal(b.status, 'error');
    // The engine's own words: `exec: "node": executable file not found in $PATH`.
    assert.match(b.error ?? '', new RegExp(`no executor of label no-node could start: 5 failed in a row.*image ${busybox}.*"node": executable file not found`));
  });

  it('refuses docker executor specs without an image, and images or volumes on process executors, naming the field', async () => {
    const noImage = await api('PUT', '/ci/v1/executors/broken', { containerizer: 'docker' });
    assert.equal(noImage.status, 422);
    assert.match(JSON.stringify(noImage.body), /"field":"image"/);
    const processImage = await api('PUT', '/ci/v1/executors/broken', { containerizer: 'process', image: 'x' });
    assert.equal(processImage.status, 422);
    assert.match(JSON.stringify(processImage.body), /"field":"image","message":"is only for containerizer/);
    const badVolume = await api('PUT', '/ci/v1/executors/broken', { containerizer: 'docker', image: 'x', volumes: [{ containerPath: 'relative', hostPath: '/tmp' }] });
    assert.equal(badVolume.status, 422);
    assert.match(JSON.stringify(badVolume.body), /volumes\[0\]/);
  });
});
