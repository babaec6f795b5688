import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';
import { unauthenticatedFetch } from './support/auth-preload.ts';

// Issue 14, section 1: `kind: deploy` steps. A tag build writes a Dockerfile, builds and pushes
// the image (build-image), and its deploy step makes a release of that image by digest and
// promotes it through /deliver/v1 with a token CI gives the step for that service alone, then
// follows the promotion: success when healthy, failure when delivery rolled it back. Over real
// processes on `slipway up` (CI, a process executor on the engine's socket, git, the services
// framework running Docker instances), the real engine and Debian's docker-registry on
// 127.0.0.1:5000 (as .ci/run starts it).

const REGISTRY = process.env['SLIPWAY_REGISTRY'] ?? '127.0.0.1:5000';
const NS = `slipway-e2e-${randomBytes(4).toString('hex')}`;
const LABEL = 'slipway.e2e=ci-deploy';

interface Output {
  kind: string;
  step: string;
  name: string;
  digest?: string;
  service?: string;
  env?: string;
  promotion?: string;
  state?: string;
}
interface BuildAnswer {
  number: number;
  status: string;
  error?: string;
  steps: { name: string; status: string; error?: string }[];
  outputs?: Output[];
}

let skip: string | false = false;

describe('deploy steps on `slipway up`: a tag built, pushed, released and promoted by its pipeline', { timeout: 400_000 }, () => {
  let dir: string;
  let server: Up;
  let docker: Dockerode;
  let repo = '';
  let git: (...args: string[]) => string;
  let busybox = '';

  const pipeline = (to: string, deadline: string) =>
    [
      'steps:',
      '  - name: prepare',
      '    commands:',
      '      - mkdir -p app',
      '      - echo "$CI_COMMIT_TAG" > app/version',
      '      - case "$CI_COMMIT_TAG" in *bad*) touch app/bad ;; esac',
      `      - printf 'FROM ${busybox}\\nCOPY . /app\\nLABEL ${LABEL}\\n' > app/Dockerfile`,
      '  - name: image',
      '    kind: build-image',
      '    dockerfile: app/Dockerfile',
      '    context: app',
      `    tags: ["${NS}/shop:{{tag}}"]`,
      '    registry: private',
      '  - name: deploy',
      '    kind: deploy',
      '    service: shop',
      `    to: ${to}`,
      `    deadline: ${deadline}`,
      '',
    ].join('\n');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-deploy-'));
    docker = new Dockerode();
    try {
      await docker.ping();
      busybox = await ensureBusyboxImage(docker);
      const r = await fetch(`http://${REGISTRY}/v2/`);
      if (r.status !== 200) throw new Error(`the registry at ${REGISTRY} answers ${r.status}`);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine and the registry on ${REGISTRY} for these tests: ${(e as Error).message}`, { cause: e });
      skip = `no Docker engine or registry: ${(e as Error).message}`;
      return;
    }
    const r = createTestRepo(join(dir, 'repo'));
    repo = r.path;
    git = r.git;
    r.commit({ '.slipway.yml': pipeline('dev', '20s') });
    for (const tag of ['v1.0.0', 'v1.1.0-bad']) r.git('tag', tag);
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process', 'docker'], resources: 'cpus:4;mem:8192;disk:20000;ports:[32400-32499]', ciUser: 'root' });
  });

  after(async () => {
    if (skip === false) {
      for (const id of ['/dev/shop', '/prod/shop']) await api('DELETE', `/v2/apps${id}?force=true`).catch(() => undefined);
      await waitUntil(async () => (await docker.listContainers({ filters: { label: [LABEL] } })).length === 0, 'the containers to stop', 60_000).catch(() => undefined);
    }
    await server?.close();
    killProcessesUnder(dir);
    if (skip === false) {
      for (const c of await docker.listContainers({ all: true, filters: { label: [LABEL] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      for (const image of await docker.listImages({ filters: { label: [LABEL] } }).catch(() => [])) {
        for (const tag of image.RepoTags ?? []) if (tag.includes(NS)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function api(method: string, path: string, body?: unknown, token?: string) {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token !== undefined) headers['Authorization'] = `Bearer ${token}`;
    const r = await fetch(`${server.master.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  }
  const tokenFor = async (name: string, policies: string[]) => {
    const r = await api('POST', '/auth/v1/tokens', { name, policies });
    assert.equal(r.status, 201, r.text);
    return r.json()['token'] as string;
  };
  const build = async (job: string, tag: string): Promise<{ build: BuildAnswer; log: string }> => {
    const trig = await api('POST', `/ci/v1/jobs/${job}/builds`, { tag });
    assert.equal(trig.status, 201, trig.text);
    const number = trig.json()['number'] as number;
    const b = await waitUntil(
      async () => {
        const x = (await api('GET', `/ci/v1/jobs/${job}/builds/${number}`)).json() as unknown as BuildAnswer;
        return x.status !== 'running' && x.status !== 'queued' ? x : undefined;
      },
      `build ${number} of ${job} to end`,
      180_000,
    );
    return { build: b, log: (await api('GET', `/ci/v1/jobs/${job}/builds/${number}/log`)).text };
  };
  /** What each running instance of the app serves, and the image it runs. */
  const served = async (appId: string) => {
    const app = (await api('GET', `/v2/apps${appId}`)).json()['app'] as { tasks: { ports: number[] }[]; container: { docker: { image: string } } };
    const texts = await Promise.all(app.tasks.map(async (t) => (await fetch(`http://127.0.0.1:${t.ports[0]}/`)).text()));
    return { image: app.container.docker.image, texts: texts.map((t) => t.trim()).sort() };
  };

  it('refuses a job whose pipeline deploys a service it does not list, and one listing a service its author may not deploy', { skip }, async () => {
    assert.equal((await api('PUT', '/deliver/v1/environments/dev', { order: 1 })).status, 201);
    assert.equal((await api('PUT', '/deliver/v1/environments/prod', { order: 2, gate: { kind: 'manual' } })).status, 201);
    const svc = await api('PUT', '/deliver/v1/services/shop', {
      image: `${NS}/shop`,
      app: {
        cmd: '[ -e /app/bad ] && exec sleep 600; mkdir -p /tmp/www && cat /app/version > /tmp/www/index.html && exec httpd -f -p $PORT0 -h /tmp/www',
        container: { type: 'DOCKER', docker: { network: 'HOST', parameters: [{ key: 'label', value: LABEL }] } },
        cpus: 0.1,
        mem: 32,
        instances: 2,
        healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 2, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 }],
      },
    });
    assert.equal(svc.status, 201, svc.text);

    const inline = await api('PUT', '/ci/v1/jobs/other', { repo, pipeline: pipeline('dev', '20s'), registries: { private: { address: REGISTRY } }, deploys: ['web'] });
    assert.equal(inline.status, 422, inline.text);
    assert.deepEqual(inline.json()['details'], [{ field: 'pipeline', path: 'steps[2].service', message: '"shop" is not in the job\'s deploys (it deploys: web)' }]);
    const bad = await api('PUT', '/ci/v1/jobs/other', { repo, deploys: ['shop', 'shop', 'no/slash'] });
    assert.equal(bad.status, 422, bad.text);
    const fields = (bad.json()['details'] as { field: string; message: string }[]).map((d) => `${d.field}: ${d.message}`);
    assert.equal(fields.length, 2, bad.text);
    assert.match(fields[0]!, /^deploys\[1\]: "shop" is listed twice/);
    assert.match(fields[1]!, /^deploys\[2\]: is not a delivery service name/);

    // CI's own rights are not enough: its builds would release and promote the service.
    assert.equal((await api('PUT', '/auth/v1/policies/ci-editor', { rules: [{ kind: 'ci', match: '*', capabilities: ['read', 'configure'] }] })).status, 201);
    const editor = await tokenFor('editor', ['ci-editor']);
    const refused = await api('PUT', '/ci/v1/jobs/shop', { repo, registries: { private: { address: REGISTRY } }, deploys: ['shop'] }, editor);
    assert.equal(refused.status, 403, refused.text);
    assert.match(refused.text, /deploy.*delivery.*shop\/\*/);
    const put = await api('PUT', '/ci/v1/jobs/shop', { repo, registries: { private: { address: REGISTRY } }, deploys: ['shop'] });
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.json()['deploys'], ['shop']);
  });

  it('builds a tag, pushes its image, releases it by digest and deploys it to dev with a token for that service alone', { skip }, async () => {
    const { build: b, log } = await build('shop', 'v1.0.0');
    assert.equal(b.status, 'success', `${JSON.stringify(b)}\n${log}`);
    const image = b.outputs?.find((o) => o.kind === 'image');
    assert.match(image?.digest ?? '', /^sha256:[0-9a-f]{64}$/);
    const release = b.outputs?.find((o) => o.kind === 'release');
    assert.deepEqual({ ...release, promotion: undefined }, { kind: 'release', step: 'deploy', service: 'shop', name: 'v1.0.0', env: 'dev', promotion: undefined, state: 'succeeded' });
    assert.match(log, /promotion shop\.dev\.\S+ of shop v1\.0\.0 to dev: deploying/);
    assert.match(log, /succeeded/);

    // The release is the build's: its image by digest, its commit and build, made by CI's token.
    const r = (await api('GET', '/deliver/v1/services/shop/releases/v1.0.0')).json();
    assert.deepEqual(r['images'], [{ name: `${REGISTRY}/${NS}/shop:v1.0.0`, digest: image!.digest }]);
    assert.deepEqual(r['build'], { job: 'shop', number: b.number });
    assert.equal(r['createdBy'], `ci:shop/${b.number}`);
    assert.match(String(r['commit']), /^[0-9a-f]{40}$/);
    assert.deepEqual(await served('/dev/shop'), { image: `${REGISTRY}/${NS}/shop@${image!.digest}`, texts: ['v1.0.0', 'v1.0.0'] });

    // The tag trigger remembers the release made from the tag.
    const triggers = (await api('GET', '/ci/v1/jobs/shop/triggers')).json();
    assert.deepEqual((triggers['releases'] as Record<string, { service: string; version: string; state: string }[]>)['v1.0.0']?.map((x) => [x.service, x.version, x.state]), [['shop', 'v1.0.0', 'succeeded']]);

    // The step's token: short-lived, of a policy that reads and deploys shop and nothing else.
    const tokens = (await api('GET', '/auth/v1/tokens')).json()['tokens'] as { name: string; policies: string[]; expiresAt?: string }[];
    const minted = tokens.find((t) => t.name === `ci:shop/${b.number}`);
    assert.deepEqual(minted?.policies, ['ci-deploy.shop']);
    const lifetime = Date.parse(minted?.expiresAt ?? '') - Date.now();
    assert.ok(lifetime > 0 && lifetime <= (20 + 600) * 1000, `the token expires within the step's deadline and a margin (${lifetime} ms)`);
    const policy = (await api('GET', '/auth/v1/policies/ci-deploy.shop')).json();
    assert.deepEqual(policy['rules'], [{ kind: 'delivery', match: 'shop/*', capabilities: ['read', 'deploy'] }]);
    // A token of that policy may promote shop, not another service, and touches no app directly.
    const scoped = await tokenFor('scoped', ['ci-deploy.shop']);
    assert.equal((await api('PUT', '/deliver/v1/services/other', { image: 'x/other', app: { cmd: 'true', container: { type: 'DOCKER', docker: {} } } }, scoped)).status, 403);
    assert.equal((await api('POST', '/deliver/v1/services/other/promotions', { release: 'v1', to: 'dev' }, scoped)).status, 403);
    assert.equal((await api('DELETE', '/v2/apps/dev/shop', undefined, scoped)).status, 403);
    // Only the executor running a build gets its tokens.
    const stolen = await unauthenticatedFetch(`${server.master.url}/ci/v1/jobs/shop/builds/${b.number}/deploy-token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ executor: 'x', token: 'y', service: 'shop' }) });
    assert.equal(stolen.status, 403, await stolen.text());
  });

  it('fails the step when delivery rolls back a release whose instances never get healthy, and dev runs what it ran', { skip }, async () => {
    const before = await served('/dev/shop');
    const { build: b, log } = await build('shop', 'v1.1.0-bad');
    assert.equal(b.status, 'failure', `${JSON.stringify(b)}\n${log}`);
    const deploy = b.steps.find((s) => s.name === 'deploy');
    assert.equal(deploy?.status, 'failure');
    assert.match(deploy?.error ?? '', /promotion shop\.dev\.\S+ of shop v1\.1\.0-bad to dev failed: after 20 s.*rolled back to v1\.0\.0/);
    assert.equal(b.outputs?.find((o) => o.kind === 'release')?.state, 'failed');
    await waitUntil(async () => JSON.stringify(await served('/dev/shop').catch(() => undefined)) === JSON.stringify(before), 'dev to run v1.0.0 again', 60_000);
  });

  it('waits at a manual gate until someone other than the build approves, then succeeds', { skip }, async () => {
    const put = await api('PUT', '/ci/v1/jobs/shop-prod', { repo, pipeline: pipeline('prod', '60s'), registries: { private: { address: REGISTRY } }, deploys: ['shop'] });
    assert.equal(put.status, 201, put.text);
    git('tag', 'v1.2.0');
    const trig = await api('POST', '/ci/v1/jobs/shop-prod/builds', { tag: 'v1.2.0' });
    assert.equal(trig.status, 201, trig.text);
    const number = trig.json()['number'] as number;
    const waiting = await waitUntil(
      async () => ((await api('GET', '/deliver/v1/services/shop/promotions?env=prod')).json()['promotions'] as { id: string; state: string; release: string }[]).find((p) => p.release === 'v1.2.0' && p.state === 'waiting-approval'),
      'the promotion to prod to wait for an approval',
      180_000,
    );
    const running = (await api('GET', `/ci/v1/jobs/shop-prod/builds/${number}`)).json() as unknown as BuildAnswer;
    assert.equal(running.status, 'running', 'the build waits with its promotion');
    const approved = await api('POST', `/deliver/v1/services/shop/promotions/${waiting.id}/approve`, {});
    assert.equal(approved.status, 200, approved.text);
    const b = await waitUntil(
      async () => {
        const x = (await api('GET', `/ci/v1/jobs/shop-prod/builds/${number}`)).json() as unknown as BuildAnswer;
        return x.status !== 'running' && x.status !== 'queued' ? x : undefined;
      },
      'the prod build to end',
      120_000,
    );
    const log = (await api('GET', `/ci/v1/jobs/shop-prod/builds/${number}/log`)).text;
    assert.equal(b.status, 'success', `${JSON.stringify(b)}\n${log}`);
    assert.match(log, /waiting-approval/);
    assert.deepEqual((await served('/prod/shop')).texts, ['v1.2.0', 'v1.2.0']);
  });
});
