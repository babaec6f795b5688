import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { nginxInstalled, startNginx, type Nginx } from './support/nginx.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 14, section 1: `kind: publish` steps upload workspace files to an artifact store (here
// Debian's nginx with `dav_methods PUT`, started by the test), by name and by content hash, with
// Basic credentials from the secret store; a store that refuses fails the step with its status.
// A kind parsed but not run yet (deploy) fails its step, never passes (build-image:
// ci-build-image.e2e.test.ts). Over real
// processes on `slipway up`: CI, an executor, git, nginx.

const PASSWORD = 'cdn-pa55/w0rd';
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

interface BuildAnswer {
  number: number;
  status: string;
  error?: string;
  steps: { name: string; status: string; error?: string }[];
  outputs?: { kind: string; step: string; store: string; name: string; sha256: string; size: number; url: string; contentUrl: string }[];
}

describe('publish steps on `slipway up`, against a real nginx', { timeout: 240_000, skip: nginxInstalled() || process.env['CI'] === 'true' ? false : 'nginx is not installed (apt-get install nginx; .ci/run does)' }, () => {
  let dir: string;
  let server: Up;
  let nginx: Nginx;
  let base: string;
  let repo: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-publish-'));
    nginx = await startNginx(join(dir, 'nginx'), { ci: PASSWORD });
    const r = createTestRepo(join(dir, 'repo'));
    repo = r.path;
    r.commit({
      '.slipway.yml': [
        'steps:',
        '  - name: pack',
        '    commands:',
        '      - mkdir -p out',
        `      - printf 'agent %s of %s\\n' "$CI_COMMIT_TAG" "$CI_COMMIT_SHA" > out/agent.tar.gz`,
        '  - name: upload',
        '    kind: publish',
        '    store: cdn',
        '    files: out/agent.tar.gz',
        '    target: agent/{{tag}}/agent.tar.gz',
        '',
      ].join('\n'),
    });
    r.git('tag', 'v1.2.0');
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:8192;disk:20000;ports:[34300-34399]', ciUser: 'root' });
    base = server.master.url;
  });

  after(async () => {
    await server?.close();
    await nginx?.stop();
    killProcessesUnder(dir);
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
      90_000,
    );
    return { build: b, log: (await api('GET', `/ci/v1/jobs/${job}/builds/${number}/log`)).text };
  };
  const step = (b: BuildAnswer, name: string) => b.steps.find((s) => s.name === name);

  it('uploads a file a step made to the store by name and by content hash, with the secret as Basic credentials, and records it on the build', async () => {
    assert.equal((await api('PUT', '/auth/v1/secrets/ci/cdn', { value: PASSWORD })).status, 201);
    const put = await api('PUT', '/ci/v1/jobs/agent', { repo, artifactStores: { cdn: { url: `${nginx.url}/auth/`, username: 'ci', passwordSecret: 'ci/cdn' } } });
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.json()['artifactStores'], { cdn: { url: `${nginx.url}/auth`, username: 'ci', passwordSecret: 'ci/cdn' } }, 'shown with the name of the secret, the URL without its trailing /');

    const { build: b, log } = await build('agent', { tag: 'v1.2.0' });
    assert.equal(b.status, 'success', `${JSON.stringify(b)}\n${log}`);
    const expected = readFileSync(join(nginx.root, 'auth', 'agent', 'v1.2.0', 'agent.tar.gz'));
    assert.match(expected.toString(), /^agent v1\.2\.0 of [0-9a-f]{40}\n$/, 'the bytes the step wrote, under the name with {{tag}} filled in');
    const hex = sha256(expected);
    assert.deepEqual(readFileSync(join(nginx.root, 'auth', 'sha256', hex)), expected, 'and under its content hash');
    assert.deepEqual(b.outputs, [
      {
        kind: 'artifact',
        step: 'upload',
        store: 'cdn',
        name: 'agent/v1.2.0/agent.tar.gz',
        sha256: hex,
        size: expected.length,
        url: `${nginx.url}/auth/agent/v1.2.0/agent.tar.gz`,
        contentUrl: `${nginx.url}/auth/sha256/${hex}`,
      },
    ]);
    assert.equal((await fetch(b.outputs[0]!.url)).status, 401, 'the store still wants its credentials to read');
    assert.match(log, /\+ publish out\/agent\.tar\.gz \(\d+ bytes, sha256 [0-9a-f]{64}\) to cdn as agent\/v1\.2\.0\/agent\.tar\.gz/);
    assert.ok(!log.includes(PASSWORD), log);
  });

  it('fails the step naming 401 when the store refuses the credentials', async () => {
    assert.equal((await api('PUT', '/auth/v1/secrets/ci/cdn', { value: 'not-the-password' })).status, 200);
    const { build: b, log } = await build('agent', { tag: 'v1.2.0' });
    assert.equal(b.status, 'failure', JSON.stringify(b));
    assert.equal(step(b, 'pack')?.status, 'success');
    const upload = step(b, 'upload');
    assert.equal(upload?.status, 'failure');
    assert.match(upload?.error ?? '', /^artifact store cdn refused PUT http:\/\/127\.0\.0\.1:\d+\/auth\/sha256\/[0-9a-f]{64}: HTTP 401 Unauthorized: 401 Authorization Required$/);
    assert.match(log, /HTTP 401 Unauthorized/);
    assert.equal(b.outputs, undefined);
    assert.ok(!log.includes('not-the-password'), 'the password is masked in the log');
  });

  it('fails the step naming 403 when the store refuses the upload', async () => {
    const pipeline = ['steps:', '  - name: make', '    commands: [echo hi > hi.txt]', '  - name: upload', '    kind: publish', '    store: ro', '    files: hi.txt', '    target: builds/{{build}}/', ''].join('\n');
    const put = await api('PUT', '/ci/v1/jobs/readonly', { repo, pipeline, artifactStores: { ro: { url: `${nginx.url}/readonly` } } });
    assert.equal(put.status, 201, put.text);
    const { build: b } = await build('readonly');
    assert.equal(b.status, 'failure', JSON.stringify(b));
    assert.match(step(b, 'upload')?.error ?? '', /refused PUT http:\/\/127\.0\.0\.1:\d+\/readonly\/sha256\/[0-9a-f]{64}: HTTP 403 Forbidden/);
  });

  it('uploads every file under a target ending in /, and fails a {{tag}} target of a build no tag started', async () => {
    const pipeline = [
      'steps:',
      '  - name: make',
      '    commands: [mkdir -p dist/sub, echo a > dist/a.txt, echo b > dist/sub/b.txt]',
      '  - name: all',
      '    kind: publish',
      '    store: open',
      '    files: dist/**',
      '    target: builds/{{build}}/',
      '  - name: tagged',
      '    kind: publish',
      '    store: open',
      '    files: dist/a.txt',
      '    target: agent/{{tag}}/a.txt',
      '',
    ].join('\n');
    assert.equal((await api('PUT', '/ci/v1/jobs/many', { repo, pipeline, artifactStores: { open: { url: `${nginx.url}/open` } } })).status, 201);
    const { build: b } = await build('many');
    assert.equal(step(b, 'all')?.status, 'success', JSON.stringify(b));
    assert.deepEqual(
      b.outputs?.map((o) => o.name),
      [`builds/${b.number}/dist/a.txt`, `builds/${b.number}/dist/sub/b.txt`],
    );
    assert.equal(readFileSync(join(nginx.root, 'open', 'builds', String(b.number), 'dist', 'sub', 'b.txt'), 'utf8'), 'b\n');
    assert.equal(readFileSync(join(nginx.root, 'open', 'sha256', sha256('a\n')), 'utf8'), 'a\n');
    assert.equal(step(b, 'tagged')?.status, 'error');
    assert.match(step(b, 'tagged')?.error ?? '', /\{\{tag\}\} has no value: build #\d+ was not started by a tag \(event manual\)/);
    assert.equal(b.status, 'error');
  });

  it('ends a deploy step without an image upstream in error, saying so (deploy steps: test/ci-deploy.e2e.test.ts)', async () => {
    const pipeline = ['steps:', '  - name: ship', '    kind: deploy', '    service: shop', '    to: dev', ''].join('\n');
    const put = await api('PUT', '/ci/v1/jobs/later', { repo, pipeline, deploys: ['shop'] });
    assert.equal(put.status, 201, put.text);
    const { build: b } = await build('later');
    assert.equal(b.status, 'error', JSON.stringify(b));
    assert.equal(step(b, 'ship')?.error, 'step ship deploys the images of the steps before it, and none pushed one (add a build-image step it depends on)');
  });

  it('refuses at save an inline pipeline whose publish step names a store the job does not have, and a store URL with credentials', async () => {
    const pipeline = ['steps:', '  - kind: publish', '    store: cdn', '    files: a', '    target: a', ''].join('\n');
    const missing = await api('PUT', '/ci/v1/jobs/nostore', { repo, pipeline });
    assert.equal(missing.status, 422, missing.text);
    assert.deepEqual((missing.json()['details'] as unknown[])[0], { field: 'pipeline', path: 'steps[0].store', message: `no artifact store "cdn" in the job's artifactStores (it has none)` });
    const bad = await api('PUT', '/ci/v1/jobs/nostore', { repo, artifactStores: { cdn: { url: 'http://u:p@127.0.0.1/x' }, 'b c': { url: 'ftp://x' } } });
    assert.equal(bad.status, 422, bad.text);
    assert.match(bad.text, /artifactStores\.cdn\.url.*must not hold credentials/);
    assert.match(bad.text, /artifactStores\.b c.*is not a valid store name/);
    const wrongKind = await api('PUT', '/ci/v1/jobs/nostore', { repo, pipeline: ['steps:', '  - kind: publish', '    commands: [x]', ''].join('\n') });
    assert.equal(wrongKind.status, 422);
    assert.ok((wrongKind.json()['details'] as { path?: string; line?: number; column?: number }[]).some((d) => d.path === 'steps[0].commands' && d.line === 3 && d.column === 5), wrongKind.text);
  });
});
