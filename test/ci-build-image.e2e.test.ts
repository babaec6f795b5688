import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { startAuthRegistry, dockerRegistryInstalled, type TestRegistry } from './support/docker-registry.ts';
import { createTestRepo } from './support/git-repo.ts';
import { freePort } from './support/nginx.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 14, section 1: `kind: build-image` steps build an image from a Dockerfile the build wrote
// into its workspace, with the agent host's Docker engine (dockerd runs with --bridge=none: RUN
// steps use the host's network), tag it from templates, push it to a registry of the job and
// record its digest on the build. Over real processes on `slipway up` (CI, a process executor on
// the engine's socket, git), the real engine, Debian's docker-registry on 127.0.0.1:5000 (as
// .ci/run starts it) and a second one with htpasswd authentication started here.

const MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const PASSWORD = 'reg-pa55/w0rd';
const MAIN_REGISTRY = process.env['SLIPWAY_REGISTRY'] ?? '127.0.0.1:5000';
/** A repository namespace of this run, so that runs never meet in the shared registry. */
const NS = `slipway-e2e-${randomBytes(4).toString('hex')}`;
const JOBS = ['web', 'secure', 'badrun', 'down', 'manual-tag', 'escape', 'filed'];

interface ImageOutput {
  kind: string;
  step: string;
  registry: string;
  name: string;
  digest: string;
}
interface BuildAnswer {
  number: number;
  status: string;
  error?: string;
  commitSha?: string;
  steps: { name: string; status: string; error?: string }[];
  outputs?: ImageOutput[];
}

let skip: string | false = false;

describe('build-image steps on `slipway up`, with the real Docker engine and registry', { timeout: 300_000 }, () => {
  let dir: string;
  let server: Up;
  let docker: Dockerode;
  let busybox = '';
  let repo = '';
  let commit = '';
  let authRegistry: TestRegistry | undefined;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-build-image-'));
    docker = new Dockerode();
    try {
      await docker.ping();
      busybox = await ensureBusyboxImage(docker);
      const registry = await fetch(`http://${MAIN_REGISTRY}/v2/`);
      if (registry.status !== 200) throw new Error(`the registry at ${MAIN_REGISTRY} answers ${registry.status}`);
      if (!dockerRegistryInstalled()) throw new Error('docker-registry is not installed (apt-get install docker-registry; .ci/run does)');
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine and the registry on ${MAIN_REGISTRY} for these tests: ${(e as Error).message}`, { cause: e });
      skip = `no Docker engine or registry: ${(e as Error).message}`;
      return;
    }
    authRegistry = await startAuthRegistry(join(dir, 'registry'), { ci: PASSWORD });
    const r = createTestRepo(join(dir, 'repo'));
    repo = r.path;
    commit = r.commit({
      '.slipway.yml': [
        'steps:',
        '  - name: prepare',
        '    commands:',
        '      - mkdir -p app',
        `      - printf 'FROM ${busybox}\\nARG GREETING=none\\nRUN echo "$GREETING from RUN" > /hello\\nCOPY version.txt /version.txt\\n' > app/Dockerfile`,
        '      - echo "$CI_COMMIT_TAG" > app/version.txt',
        '  - name: image',
        '    kind: build-image',
        '    dockerfile: app/Dockerfile',
        '    context: app',
        `    tags: ["${NS}/web:{{tag}}", "${NS}/web:sha-{{commit}}"]`,
        '    registry: private',
        '    buildArgs:',
        '      GREETING: hi',
        '',
      ].join('\n'),
      // A pipeline file whose step names a registry the job lacks: refused when it runs.
      'unknown-registry.yml': ['steps:', '  - kind: build-image', '    dockerfile: Dockerfile', '    context: .', `    tags: ["${NS}/x:1"]`, '    registry: nope', ''].join('\n'),
    });
    r.git('tag', 'v1.0.0');
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:8192;disk:20000;ports:[34700-34799]', ciUser: 'root' });
    base = server.master.url;
  });

  after(async () => {
    await server?.close();
    await authRegistry?.stop();
    killProcessesUnder(dir);
    if (skip === false) {
      // The images this test built (labelled with their job by the step); never the base image.
      for (const job of JOBS) {
        const images = await docker.listImages({ filters: { label: [`slipway.ci.job=${job}`] } }).catch(() => []);
        for (const image of images) {
          for (const tag of image.RepoTags ?? []) if (tag.includes(NS)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  const build = async (job: string, body?: unknown): Promise<{ build: BuildAnswer; log: string }> => {
    const trig = await api('POST', `/ci/v1/jobs/${job}/builds`, body);
    assert.equal(trig.status, 201, trig.text);
    const number = trig.json()['number'] as number;
    const b = await waitUntil(
      async () => {
        const x = (await api('GET', `/ci/v1/jobs/${job}/builds/${number}`)).json() as unknown as BuildAnswer;
        return x.status !== 'running' && x.status !== 'queued' ? x : undefined;
      },
      `build ${number} of ${job} to end`,
      120_000,
    );
    return { build: b, log: (await api('GET', `/ci/v1/jobs/${job}/builds/${number}/log`)).text };
  };
  const step = (b: BuildAnswer, name: string) => b.steps.find((s) => s.name === name);
  /** The digest the registry answers for a tag, asked as the v2 manifest. */
  const manifestDigest = async (address: string, repository: string, tag: string, auth?: string) => {
    const r = await fetch(`http://${address}/v2/${repository}/manifests/${tag}`, { headers: { Accept: MANIFEST_V2, ...(auth !== undefined ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}) } });
    return { status: r.status, digest: r.headers.get('docker-content-digest') };
  };
  /** What `cat` of files prints in a container of the image (no network needed). */
  const catInImage = async (image: string, files: string[]) => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const [result, container] = (await docker.run(image, ['cat', ...files], out, { Tty: true, HostConfig: { NetworkMode: 'none' } })) as [{ StatusCode: number }, Dockerode.Container];
    await container.remove({ force: true });
    assert.equal(result.StatusCode, 0, text);
    return text.replace(/\r\n/g, '\n');
  };
  const simplePipeline = (dockerfile: string[], tags: string[], registry: string) =>
    [
      'steps:',
      '  - name: prepare',
      '    commands:',
      `      - printf '${dockerfile.join('\\n')}\\n' > Dockerfile`,
      '      - echo data > data.txt',
      '  - name: image',
      '    kind: build-image',
      '    dockerfile: Dockerfile',
      '    context: .',
      `    tags: [${tags.map((t) => JSON.stringify(t)).join(', ')}]`,
      `    registry: ${registry}`,
      '',
    ].join('\n');

  it('builds the Dockerfile a step wrote, with RUN on the host network, pushes every tag and records each digest the registry answers', async (t) => {
    if (skip !== false) return t.skip(skip);
    const put = await api('PUT', '/ci/v1/jobs/web', { repo, registries: { private: { address: MAIN_REGISTRY } } });
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.json()['registries'], { private: { address: MAIN_REGISTRY } });

    const { build: b, log } = await build('web', { tag: 'v1.0.0' });
    assert.equal(b.status, 'success', `${JSON.stringify(b)}\n${log}`);
    const names = [`${MAIN_REGISTRY}/${NS}/web:v1.0.0`, `${MAIN_REGISTRY}/${NS}/web:sha-${commit}`];
    assert.deepEqual(b.outputs?.map((o) => [o.kind, o.step, o.registry, o.name]), names.map((n) => ['image', 'image', 'private', n]));
    const digest = b.outputs?.[0]?.digest ?? '';
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(b.outputs?.[1]?.digest, digest, 'two tags of one image: one manifest');
    for (const tag of ['v1.0.0', `sha-${commit}`]) {
      assert.deepEqual(await manifestDigest(MAIN_REGISTRY, `${NS}/web`, tag), { status: 200, digest }, `the registry has ${tag} at the recorded digest`);
    }
    // The image is what the Dockerfile says: RUN's output (with the build argument) and the COPY.
    assert.equal(await catInImage(names[0]!, ['/hello', '/version.txt']), 'hi from RUN\nv1.0.0\n');
    const labels = (await docker.getImage(names[0]!).inspect()).Config.Labels ?? {};
    assert.equal(labels['slipway.ci.job'], 'web');
    assert.equal(labels['org.opencontainers.image.revision'], commit);
    assert.match(log, new RegExp(`\\+ docker build --network host -f app/Dockerfile -t ${names[0]!.replace(/[.]/g, '\\.')} --build-arg GREETING app`));
    assert.match(log, /Step 3\/\d+ : RUN echo "\$GREETING from RUN" > \/hello/, 'the engine\'s build output streams to the step log');
    assert.match(log, new RegExp(`v1\\.0\\.0: digest: ${digest} size: \\d+`), 'and its push output');
  });

  it('pushes to a registry with htpasswd authentication using the password secret, masked in the log; a wrong password fails the push with the registry\'s words', async (t) => {
    if (skip !== false) return t.skip(skip);
    const registry = authRegistry!;
    assert.equal((await api('PUT', '/auth/v1/secrets/ci/registry', { value: PASSWORD })).status, 201);
    const pipeline = simplePipeline([`FROM ${busybox}`, 'RUN echo secured > /s', 'COPY data.txt /data.txt'], [`${NS}/secure:b{{build}}`], 'secure');
    const put = await api('PUT', '/ci/v1/jobs/secure', { repo, pipeline, registries: { secure: { address: registry.address, username: 'ci', passwordSecret: 'ci/registry' } } });
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.json()['registries'], { secure: { address: registry.address, username: 'ci', passwordSecret: 'ci/registry' } }, 'shown with the name of the secret');

    const { build: b, log } = await build('secure');
    assert.equal(b.status, 'success', `${JSON.stringify(b)}\n${log}`);
    const output = b.outputs?.[0];
    assert.equal(output?.name, `${registry.address}/${NS}/secure:b${b.number}`);
    assert.equal((await manifestDigest(registry.address, `${NS}/secure`, `b${b.number}`)).status, 401, 'the registry wants credentials');
    assert.deepEqual(await manifestDigest(registry.address, `${NS}/secure`, `b${b.number}`, `ci:${PASSWORD}`), { status: 200, digest: output?.digest ?? null });
    assert.ok(!log.includes(PASSWORD), log);

    assert.equal((await api('PUT', '/auth/v1/secrets/ci/registry', { value: 'not-the-password' })).status, 200);
    const { build: refused, log: refusedLog } = await build('secure');
    assert.equal(refused.status, 'failure', JSON.stringify(refused));
    assert.equal(step(refused, 'image')?.error, `docker push of ${registry.address}/${NS}/secure:b${refused.number} to registry secure (${registry.address}) failed: unauthorized: authentication required`);
    assert.equal(refused.outputs, undefined);
    assert.ok(!refusedLog.includes('not-the-password'), refusedLog);
  });

  it('fails the step with the engine\'s message when a RUN of the Dockerfile exits 1', async (t) => {
    if (skip !== false) return t.skip(skip);
    const pipeline = simplePipeline([`FROM ${busybox}`, 'RUN echo about to fail && exit 1'], [`${NS}/badrun:{{build}}`], 'private');
    assert.equal((await api('PUT', '/ci/v1/jobs/badrun', { repo, pipeline, registries: { private: { address: MAIN_REGISTRY } } })).status, 201);
    const { build: b, log } = await build('badrun');
    assert.equal(b.status, 'failure', JSON.stringify(b));
    assert.equal(step(b, 'image')?.status, 'failure');
    assert.equal(step(b, 'image')?.error, "docker build failed: The command '/bin/sh -c echo about to fail && exit 1' returned a non-zero code: 1");
    assert.match(log, /about to fail/, 'the RUN\'s own output is in the log');
    assert.equal(b.outputs, undefined);
    assert.equal((await manifestDigest(MAIN_REGISTRY, `${NS}/badrun`, String(b.number))).status, 404, 'nothing was pushed');
  });

  it('fails the push naming the registry and its address when nothing answers there', async (t) => {
    if (skip !== false) return t.skip(skip);
    const port = await freePort();
    const pipeline = simplePipeline([`FROM ${busybox}`, 'COPY data.txt /data.txt'], [`${NS}/down:{{build}}`], 'gone');
    assert.equal((await api('PUT', '/ci/v1/jobs/down', { repo, pipeline, registries: { gone: { address: `127.0.0.1:${port}` } } })).status, 201);
    const { build: b } = await build('down');
    assert.equal(b.status, 'failure', JSON.stringify(b));
    assert.match(
      step(b, 'image')?.error ?? '',
      new RegExp(`^docker push of 127\\.0\\.0\\.1:${port}/${NS}/down:${b.number} to registry gone \\(127\\.0\\.0\\.1:${port}\\) failed: .*127\\.0\\.0\\.1:${port}.*connection refused`),
    );
  });

  it('ends the step in error when a tag needs {{tag}} and no tag started the build, and refuses a context that leads out of the workspace', async (t) => {
    if (skip !== false) return t.skip(skip);
    const manual = await api('PUT', '/ci/v1/jobs/manual-tag', { repo, registries: { private: { address: MAIN_REGISTRY } } });
    assert.equal(manual.status, 201, manual.text);
    const { build: b } = await build('manual-tag');
    assert.equal(b.status, 'error', JSON.stringify(b));
    assert.equal(step(b, 'prepare')?.status, 'success');
    assert.equal(step(b, 'image')?.error, `tag ${NS}/web:{{tag}}: {{tag}} has no value: build #${b.number} was not started by a tag (event manual)`);

    const escape = ['steps:', '  - commands: [ln -s / outside]', '  - kind: build-image', '    dockerfile: outside/etc/hostname', '    context: outside', `    tags: ["${NS}/escape:1"]`, '    registry: private', ''].join('\n');
    assert.equal((await api('PUT', '/ci/v1/jobs/escape', { repo, pipeline: escape, registries: { private: { address: MAIN_REGISTRY } } })).status, 201);
    const { build: out } = await build('escape');
    assert.equal(out.status, 'failure', JSON.stringify(out));
    assert.equal(out.steps[1]?.error, 'context outside leads out of the workspace (to /): a build context comes from the workspace only');
  });

  it('refuses at save a registry the inline pipeline names that the job lacks, and bad registry addresses; a pipeline file\'s, when it runs', async (t) => {
    if (skip !== false) return t.skip(skip);
    const pipeline = ['steps:', '  - kind: build-image', '    dockerfile: Dockerfile', '    context: .', `    tags: ["${NS}/x:1"]`, '    registry: private', ''].join('\n');
    const missing = await api('PUT', '/ci/v1/jobs/nothere', { repo, pipeline });
    assert.equal(missing.status, 422, missing.text);
    assert.deepEqual((missing.json()['details'] as unknown[])[0], { field: 'pipeline', path: 'steps[0].registry', message: `no registry "private" in the job's registries (it has none)` });
    const bad = await api('PUT', '/ci/v1/jobs/nothere', { repo, registries: { a: { address: 'http://127.0.0.1:5000' }, b: { address: 'registry' }, c: { address: '127.0.0.1:5000/team' }, d: {} } });
    assert.equal(bad.status, 422, bad.text);
    const fields = (bad.json()['details'] as { field: string; message: string }[]).map((d) => [d.field, d.message]);
    assert.match(JSON.stringify(fields), /registries\.a\.address","must be host\[:port\] without a scheme/);
    assert.match(JSON.stringify(fields), /registries\.b\.address","host \\"registry\\" has no `\.` and no port: Docker would read it as a Docker Hub namespace/);
    assert.match(JSON.stringify(fields), /registries\.c\.address","must be host\[:port\] only/);
    assert.match(JSON.stringify(fields), /registries\.d\.address","is required/);
    const badTag = await api('PUT', '/ci/v1/jobs/nothere', { repo, pipeline: pipeline.replace(`${NS}/x:1`, 'Web'), registries: { private: { address: MAIN_REGISTRY } } });
    assert.equal(badTag.status, 422, badTag.text);
    assert.match(badTag.text, /steps\[0\]\.tags\[0\]","message":"must be REPOSITORY:TAG/);

    assert.equal((await api('PUT', '/ci/v1/jobs/filed', { repo, pipelineFile: 'unknown-registry.yml', registries: { private: { address: MAIN_REGISTRY } } })).status, 201);
    const { build: b } = await build('filed');
    assert.equal(b.status, 'error', JSON.stringify(b));
    assert.equal(b.steps[0]?.error, 'registry nope is not configured in job filed (its registries: private)');
  });
});
