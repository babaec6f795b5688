import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { BuildImageStep, PublishStep } from '../pipeline/pipeline.ts';
import { expandTemplate, templateProblem } from '../pipeline/step-template.ts';
import { BUILD, dag, removeWorkspaces, run, workspace } from './engine-test-support.ts';
import { storeMessage } from './publish-step.ts';

// Publish steps in the engine, against an in-process HTTP origin that records what it is sent
// (the e2e test, test/ci-publish.e2e.test.ts, runs them against Debian's nginx).

after(removeWorkspaces);

function publish(name: string, more: Partial<Omit<PublishStep, 'kind' | 'name'>> = {}): PublishStep {
  return { name, kind: 'publish', store: 'cdn', files: ['out.bin'], target: 'pkg/{{build}}/out.bin', when: [], dependsOn: [], failure: 'fail', ...more };
}

describe('publish steps', () => {
  let server: Server;
  let url: string;
  const received: { method: string; url: string; auth?: string; length?: string; body: Buffer }[] = [];
  let answer = { status: 201, body: '' };

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', ...(req.headers.authorization !== undefined ? { auth: req.headers.authorization } : {}), ...(req.headers['content-length'] !== undefined ? { length: req.headers['content-length'] } : {}), body: Buffer.concat(chunks) });
        res.writeHead(answer.status, { 'Content-Type': 'text/html' }).end(answer.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/files`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('PUTs each file by content hash, then by name, with Basic credentials and its length, and returns both as outputs', async () => {
    received.length = 0;
    answer = { status: 201, body: '' };
    const ws = await workspace();
    await writeFile(join(ws, 'out.bin'), 'payload\n');
    const r = await run(dag(publish('up')), { workspace: ws, artifactStores: { cdn: { url, username: 'ci', password: 's3cret' } } });
    assert.equal(r.result.status, 'success', JSON.stringify(r.result));
    const hex = createHash('sha256').update('payload\n').digest('hex');
    assert.deepEqual(
      received.map((x) => [x.method, x.url, x.auth, x.length, x.body.toString()]),
      [
        ['PUT', `/files/sha256/${hex}`, `Basic ${Buffer.from('ci:s3cret').toString('base64')}`, '8', 'payload\n'],
        ['PUT', '/files/pkg/7/out.bin', `Basic ${Buffer.from('ci:s3cret').toString('base64')}`, '8', 'payload\n'],
      ],
    );
    assert.deepEqual(r.step('up').outputs, [{ kind: 'artifact', step: 'up', store: 'cdn', name: 'pkg/7/out.bin', sha256: hex, size: 8, url: `${url}/pkg/7/out.bin`, contentUrl: `${url}/sha256/${hex}` }]);
    assert.ok(!r.log('up').includes('s3cret'));
  });

  it('fails with the status and the store\'s words when the store refuses, and stops there', async () => {
    received.length = 0;
    answer = { status: 507, body: '<html><head><title>507 Insufficient Storage</title></head><body>full</body></html>' };
    const ws = await workspace();
    await writeFile(join(ws, 'out.bin'), 'x');
    const r = await run(dag(publish('up')), { workspace: ws, artifactStores: { cdn: { url } } });
    assert.equal(r.step('up').status, 'failure');
    assert.equal(r.step('up').error, `artifact store cdn refused PUT ${url}/sha256/${createHash('sha256').update('x').digest('hex')}: HTTP 507 Insufficient Storage: 507 Insufficient Storage`);
    assert.equal(received.length, 1, 'stops at the first refusal');
    assert.equal(received[0]?.auth, undefined, 'no credentials when the store has none');
    assert.match(r.log('up'), /HTTP 507/);
    answer = { status: 201, body: '' };
  });

  it('fails a target naming one file when the files match several, and files that match nothing', async () => {
    const ws = await workspace();
    await mkdir(join(ws, 'd'));
    await writeFile(join(ws, 'd', 'a'), 'a');
    await writeFile(join(ws, 'd', 'b'), 'b');
    const r = await run(dag(publish('many', { files: ['d/*'], target: 'one.bin' }), publish('none', { files: ['nothing/*.tgz'] })), { workspace: ws, artifactStores: { cdn: { url } } });
    assert.match(r.step('many').error ?? '', /files match 2 files \(d\/a, d\/b\), and target one\.bin names one: end it with \/ to upload each under its path/);
    assert.equal(r.step('none').error, 'files: nothing/*.tgz matched no file in the workspace');
    assert.deepEqual([r.step('many').status, r.step('none').status], ['failure', 'failure']);
  });

  it('cannot run a step whose store the job lacks, nor a {{tag}} target in a build no tag started', async () => {
    const ws = await workspace();
    await writeFile(join(ws, 'out.bin'), 'x');
    const r = await run(dag(publish('nostore', { store: 'gone' }), publish('notag', { target: 'a/{{tag}}/x' })), { workspace: ws, artifactStores: { cdn: { url } } });
    assert.deepEqual([r.step('nostore').status, r.step('nostore').error], ['error', 'artifact store gone is not configured in job shop (its artifactStores: cdn)']);
    assert.deepEqual([r.step('notag').status, r.step('notag').error], ['error', 'target a/{{tag}}/x: {{tag}} has no value: build #7 was not started by a tag (event push)']);
    assert.equal(r.result.status, 'error');
    const tagged = await run(dag(publish('tagged', { target: 'a/{{tag}}/{{commit}}.bin' })), { workspace: ws, build: { ...BUILD, event: 'tag', tag: 'v2' }, artifactStores: { cdn: { url } } });
    assert.equal(tagged.step('tagged').outputs?.[0]?.name, 'a/v2/c0ffee.bin');
  });
});

describe('build-image steps that cannot run', () => {
  it('ends a build-image step in error before any build when its registry is not the job\'s, a template has no value, or a tag is no Docker tag', async () => {
    const ws = await workspace();
    const image = (name: string, more: Partial<BuildImageStep> = {}): BuildImageStep => ({ name, kind: 'build-image', dockerfile: 'Dockerfile', context: '.', tags: ['web:1'], registry: 'r', buildArgs: {}, when: [], dependsOn: [], failure: 'fail', ...more });
    const r = await run(dag(image('noreg', { registry: 'gone' }), image('notag', { tags: ['web:{{tag}}'] }), image('badtag', { tags: ['web:{{commit}}', 'Web:x'] }), image('nodocker')), {
      workspace: ws,
      registries: { r: { address: '127.0.0.1:5000', password: 'x' } },
    });
    assert.deepEqual([r.step('noreg').status, r.step('noreg').error], ['error', 'registry gone is not configured in job shop (its registries: r)']);
    assert.equal(r.step('notag').error, 'tag web:{{tag}}: {{tag}} has no value: build #7 was not started by a tag (event push)');
    assert.match(r.step('badtag').error ?? '', /^tag Web:x is Web:x in this build: repository "Web" is not a Docker repository name/);
    assert.equal(r.step('nodocker').error, 'step nodocker builds an image, and this executor has no Docker engine (no /var/run/docker.sock on its host)');
    const slash = await run(dag(image('slash', { tags: ['web:{{tag}}'] })), { workspace: ws, build: { ...BUILD, event: 'tag', tag: 'release/1.0' }, registries: { r: { address: 'h:1' } } });
    assert.match(slash.step('slash').error ?? '', /^tag web:\{\{tag\}\} is web:release\/1\.0 in this build: tag "release\/1\.0" is not a Docker tag/);
  });
});

describe('step templates and store messages', () => {
  it('expands {{tag}}, {{commit}}, {{build}} (spaces allowed) and names the first without a value', () => {
    assert.deepEqual(expandTemplate('a/{{tag}}/{{ commit }}-{{build}}', { tag: 'v1', commit: 'abc', build: '3' }), { text: 'a/v1/abc-3' });
    assert.deepEqual(expandTemplate('{{commit}}/{{tag}}', { tag: '', commit: '', build: '3' }), { missing: 'commit' });
    assert.equal(templateProblem('plain/{{build}}'), undefined);
    assert.match(templateProblem('{{version}}') ?? '', /\{\{version\}\} is not a variable/);
    assert.match(templateProblem('a{{tag') ?? '', /not a variable reference/);
  });

  it('reads an HTML page as its title, and cuts long text', () => {
    assert.equal(storeMessage('<html><head><title>403 Forbidden</title></head><body><h1>403</h1></body></html>'), '403 Forbidden');
    assert.equal(storeMessage('  quota\n exceeded  '), 'quota exceeded');
    assert.equal(storeMessage('x'.repeat(300)).length, 203);
  });
});
