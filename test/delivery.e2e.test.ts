import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 14, section 2: delivery's environments, releases and promotions on `slipway up`, with
// the real Docker engine and Debian's docker-registry on 127.0.0.1:5000 (as .ci/run starts it).
// Images are built here from the local busybox image and pushed, and promotions deploy them by
// digest as Marathon apps with HTTP health checks: dev (no gate), demo (auto after dev), prod
// (manual approval by someone else than the release's author); a release whose instances never
// become healthy is rolled back at the environment's deadline.

const REGISTRY = process.env['SLIPWAY_REGISTRY'] ?? '127.0.0.1:5000';
const REPO = `slipway-e2e-${randomBytes(4).toString('hex')}/shop`;

interface Promotion {
  id: string;
  state: string;
  env: string;
  release: string;
  image: string;
  appId: string;
  reason?: string;
  auto?: boolean;
  approvedBy?: string;
  previousRelease?: string;
}

let skip: string | false = false;

describe('delivery on `slipway up`: a release promoted dev → demo → prod by digest, a bad one rolled back', { timeout: 400_000 }, () => {
  let dir: string;
  let server: Up;
  let docker: Dockerode;
  const digests: Record<string, string> = {};

  const upOptions = () => ({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process', 'docker'] as ('process' | 'docker')[], resources: 'cpus:4;mem:4096;disk:1000;ports:[32300-32399]' });

  /** Builds `REPO:tag` from busybox with /version holding `tag` (and /bad for a release that never serves), pushes it, answers its digest. */
  async function buildAndPush(base: string, tag: string, bad: boolean): Promise<string> {
    const ctx = mkdtempSync(join(dir, 'ctx-'));
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${base}\nRUN echo ${tag} > /version${bad ? ' && touch /bad' : ''}\nLABEL slipway.e2e=delivery\n`);
    const name = `${REGISTRY}/${REPO}:${tag}`;
    const build = await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { t: name, networkmode: 'host', forcerm: true });
    await new Promise((resolve, reject) => docker.modem.followProgress(build, (e: Error | null) => (e ? reject(e) : resolve(undefined))));
    let digest = '';
    const push = await docker.getImage(`${REGISTRY}/${REPO}`).push({ tag, authconfig: { serveraddress: REGISTRY } });
    await new Promise((resolve, reject) =>
      docker.modem.followProgress(
        push,
        (e: Error | null) => (e ? reject(e) : resolve(undefined)),
        (m: { aux?: { Digest?: string }; error?: string }) => {
          if (m.error !== undefined) reject(new Error(m.error));
          if (typeof m.aux?.Digest === 'string') digest = m.aux.Digest;
        },
      ),
    );
    assert.match(digest, /^sha256:[0-9a-f]{64}$/, `the push of ${name} answered a digest`);
    return digest;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-delivery-'));
    docker = new Dockerode();
    let base: string;
    try {
      await docker.ping();
      base = await ensureBusyboxImage(docker);
      const r = await fetch(`http://${REGISTRY}/v2/`);
      if (r.status !== 200) throw new Error(`the registry at ${REGISTRY} answers ${r.status}`);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine and the registry on ${REGISTRY} for these tests: ${(e as Error).message}`, { cause: e });
      skip = `no Docker engine or registry: ${(e as Error).message}`;
      return;
    }
    for (const [tag, bad] of [['v1.0.0', false], ['v1.1.0', true], ['v1.2.0', false]] as const) digests[tag] = await buildAndPush(base, tag, bad);
    server = await up(upOptions());
  });

  after(async () => {
    if (skip === false) {
      for (const id of ['/dev/shop', '/demo/shop', '/prod/shop']) await api('DELETE', `/v2/apps${id}?force=true`).catch(() => undefined);
      await waitUntil(async () => (await docker.listContainers({ filters: { label: ['slipway.e2e=delivery'] } })).length === 0, 'the containers to stop', 60_000).catch(() => undefined);
    }
    await server?.close();
    killProcessesUnder(dir);
    if (skip === false) {
      for (const c of await docker.listContainers({ all: true, filters: { label: ['slipway.e2e=delivery'] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      for (const tag of Object.keys(digests)) await docker.getImage(`${REGISTRY}/${REPO}:${tag}`).remove({ force: true }).catch(() => undefined);
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
  const ended = (service: string, id: string, what: string, ms = 120_000) =>
    waitUntil(
      async () => {
        const p = (await api('GET', `/deliver/v1/services/${service}/promotions/${id}`)).json() as unknown as Promotion;
        return ['succeeded', 'failed', 'rejected'].includes(p.state) ? p : undefined;
      },
      what,
      ms,
    );
  /** What each running, healthy instance of the app serves. */
  const served = async (appId: string) => {
    const app = (await api('GET', `/v2/apps${appId}`)).json()['app'] as { tasks: { ports: number[]; state: string; healthCheckResults?: { alive: boolean }[] }[]; container: { docker: { image: string } } };
    const texts = await Promise.all(app.tasks.map(async (t) => (await fetch(`http://127.0.0.1:${t.ports[0]}/`)).text()));
    return { image: app.container.docker.image, texts: texts.map((t) => t.trim()).sort() };
  };

  it('refuses bad definitions naming their fields, and promotions to what does not exist', { skip }, async () => {
    const env = await api('PUT', '/deliver/v1/environments/dev', { order: 'one', gate: { kind: 'sometimes' }, freezes: [{ from: 'tomorrow', to: '2026-01-01T00:00:00Z' }], deadlineSeconds: 0, colour: 'red' });
    assert.equal(env.status, 400, env.text);
    const fields = (env.json()['details'] as { field: string }[]).map((d) => d.field).sort();
    assert.deepEqual(fields, ['colour', 'deadlineSeconds', 'freezes[0].from', 'gate.kind', 'order']);
    const svc = await api('PUT', '/deliver/v1/services/shop', { app: { id: '/x', cmd: 'true' } });
    assert.equal(svc.status, 400, svc.text);
    assert.match(svc.text, /app\.id.*must not be set/);
    assert.match(svc.text, /app\.container.*DOCKER/);
    assert.equal((await api('POST', '/deliver/v1/services/nope/promotions', { release: 'v1', to: 'dev' })).status, 404);
  });

  it('defines the environments and the service', { skip }, async () => {
    const deadline = 12;
    assert.equal((await api('PUT', '/deliver/v1/environments/dev', { order: 1, deadlineSeconds: deadline })).status, 201);
    assert.equal((await api('PUT', '/deliver/v1/environments/demo', { order: 2, gate: { kind: 'auto', healthyMinutes: 0 } })).status, 201);
    assert.equal((await api('PUT', '/deliver/v1/environments/prod', { order: 3, gate: { kind: 'manual' } })).status, 201);
    const frozen = await api('PUT', '/deliver/v1/environments/frozen', { order: 4, freezes: [{ from: '2020-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', reason: 'the holidays' }] });
    assert.equal(frozen.status, 201, frozen.text);
    const svc = await api('PUT', '/deliver/v1/services/shop', {
      image: REPO,
      app: {
        // As nobody (the agent's default user): /tmp is writable.
        cmd: '[ -e /bad ] && exec sleep 600; mkdir -p /tmp/www && cat /version > /tmp/www/index.html && exec httpd -f -p $PORT0 -h /tmp/www',
        container: { type: 'DOCKER', docker: { network: 'HOST', parameters: [{ key: 'label', value: 'slipway.e2e=delivery' }] } },
        cpus: 0.1,
        mem: 32,
        instances: 2,
        healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 2, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 }],
      },
    });
    assert.equal(svc.status, 201, svc.text);
    const environments = (await api('GET', '/deliver/v1/environments')).json()['environments'] as { name: string }[];
    assert.deepEqual(environments.map((e) => e.name), ['dev', 'demo', 'prod', 'frozen']);
  });

  it('makes immutable releases of the images a build pushed', { skip }, async () => {
    for (const tag of Object.keys(digests)) {
      const r = await api('POST', '/deliver/v1/services/shop/releases', { version: tag, commit: 'abcdef1', images: [{ name: `${REGISTRY}/${REPO}:${tag}`, digest: digests[tag] }] });
      assert.equal(r.status, 201, r.text);
    }
    const again = await api('POST', '/deliver/v1/services/shop/releases', { version: 'v1.0.0', images: [{ name: `${REGISTRY}/${REPO}:v1.0.0`, digest: digests['v1.2.0'] }] });
    assert.equal(again.status, 409, again.text);
    assert.match(again.text, /immutable/);
    const bad = await api('POST', '/deliver/v1/services/shop/releases', { version: 'v9', images: [{ name: 'shop', digest: 'sha256:nothex' }] });
    assert.equal(bad.status, 400);
    assert.deepEqual((bad.json()['details'] as { field: string }[]).map((d) => d.field), ['images[0].name', 'images[0].digest']);
  });

  it('promotes to dev by digest, and demo follows by its auto gate', { skip }, async () => {
    const created = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.0.0', to: 'dev' });
    assert.equal(created.status, 201, created.text);
    const p = created.json() as unknown as Promotion;
    assert.equal(p.state, 'deploying');
    assert.equal(p.appId, '/dev/shop');
    assert.equal(p.image, `${REGISTRY}/${REPO}@${digests['v1.0.0']}`);
    const second = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.2.0', to: 'dev' });
    assert.equal(second.status, 409, second.text);
    assert.match(second.text, new RegExp(`promotion ${p.id.replace(/\./g, '\\.')} .* is under way`));
    const done = await ended('shop', p.id, 'the promotion to dev to end');
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.deepEqual(await served('/dev/shop'), { image: p.image, texts: ['v1.0.0', 'v1.0.0'] });

    const demo = await waitUntil(
      async () => {
        const list = (await api('GET', '/deliver/v1/services/shop/promotions?env=demo')).json()['promotions'] as Promotion[];
        return list.find((x) => x.state === 'succeeded');
      },
      'the auto gate to promote v1.0.0 to demo',
      120_000,
    );
    assert.equal(demo.auto, true);
    assert.equal(demo.release, 'v1.0.0');
    assert.deepEqual(await served('/demo/shop'), { image: p.image, texts: ['v1.0.0', 'v1.0.0'] });
  });

  it('holds prod at its manual gate until someone other than the release\'s author approves', { skip }, async () => {
    const created = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.0.0', to: 'prod' });
    assert.equal(created.status, 201, created.text);
    const p = created.json() as unknown as Promotion;
    assert.equal(p.state, 'waiting-approval');
    assert.equal((await api('GET', '/v2/apps/prod/shop')).status, 404, 'nothing deployed before the approval');
    const self = await api('POST', `/deliver/v1/services/shop/promotions/${p.id}/approve`);
    assert.equal(self.status, 409, self.text);
    assert.match(self.text, /someone else approves/);
    const viewer = (await api('POST', '/auth/v1/tokens', { name: 'vera', policies: ['viewer'] })).json()['token'] as string;
    assert.equal((await api('POST', `/deliver/v1/services/shop/promotions/${p.id}/approve`, undefined, viewer)).status, 403);
    const alice = (await api('POST', '/auth/v1/tokens', { name: 'alice', policies: ['deployer'] })).json()['token'] as string;
    const approved = await api('POST', `/deliver/v1/services/shop/promotions/${p.id}/approve`, undefined, alice);
    assert.equal(approved.status, 200, approved.text);
    assert.equal((approved.json() as unknown as Promotion).approvedBy, 'alice');
    const done = await ended('shop', p.id, 'the promotion to prod to end');
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.deepEqual((await served('/prod/shop')).texts, ['v1.0.0', 'v1.0.0']);
    const frozen = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.0.0', to: 'frozen' });
    assert.equal(frozen.status, 409);
    assert.match(frozen.text, /frozen until 2100-01-01T00:00:00.000Z: the holidays/);
  });

  it('rolls a release whose instances never get healthy back at the deadline, then rolls back by hand', { skip }, async () => {
    const created = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.1.0', to: 'dev' });
    assert.equal(created.status, 201, created.text);
    const p = created.json() as unknown as Promotion;
    const done = await ended('shop', p.id, 'the bad promotion to end', 120_000);
    assert.equal(done.state, 'failed', JSON.stringify(done));
    assert.match(done.reason ?? '', /after 12 s, 0 of 2 instance\(s\) run v1\.1\.0 and are healthy.*rolled back to v1\.0\.0/);
    await waitUntil(async () => {
      const s = await served('/dev/shop').catch(() => undefined);
      return s !== undefined && s.texts.length === 2 && s.texts.every((t) => t === 'v1.0.0') ? s : undefined;
    }, 'dev serving v1.0.0 again');
    assert.equal((await served('/dev/shop')).image, `${REGISTRY}/${REPO}@${digests['v1.0.0']}`);

    const good = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.2.0', to: 'dev' });
    assert.equal(good.status, 201, good.text);
    assert.equal((await ended('shop', (good.json() as unknown as Promotion).id, 'v1.2.0 in dev')).state, 'succeeded');
    const back = await api('POST', '/deliver/v1/services/shop/environments/dev/rollback', {});
    assert.equal(back.status, 201, back.text);
    const b = back.json() as unknown as Promotion;
    assert.equal(b.release, 'v1.0.0', 'the release that ran before v1.2.0 (v1.1.0 never did)');
    assert.equal((await ended('shop', b.id, 'the rollback')).state, 'succeeded');
    assert.deepEqual((await served('/dev/shop')).texts, ['v1.0.0', 'v1.0.0']);
    const service = (await api('GET', '/deliver/v1/services/shop')).json();
    const current = Object.fromEntries(Object.entries(service['environments'] as Record<string, { release: string } | null>).map(([k, v]) => [k, v?.release ?? null]));
    // demo follows dev by its auto gate: v1.0.0, or v1.2.0 once that was healthy in dev.
    assert.deepEqual({ ...current, demo: undefined }, { dev: 'v1.0.0', demo: undefined, prod: 'v1.0.0', frozen: null });
    const figures = (await api('GET', '/deliver/v1/services/shop/figures')).json();
    assert.equal(figures['environment'], 'frozen', 'the last environment by order');
  });

  it('goes on with a promotion across a restart of `slipway up`', { skip }, async () => {
    const created = await api('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.2.0', to: 'dev' });
    assert.equal(created.status, 201, created.text);
    const p = created.json() as unknown as Promotion;
    assert.equal(p.state, 'deploying');
    await server.close();
    server = await up(upOptions());
    const done = await ended('shop', p.id, 'the promotion begun before the restart to end');
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.deepEqual(await served('/dev/shop'), { image: `${REGISTRY}/${REPO}@${digests['v1.2.0']}`, texts: ['v1.2.0', 'v1.2.0'] });
  });

  it('gives the config center the app id of each environment (one mapping, defined by the environment)', { skip }, async () => {
    const repo = createTestRepo(join(dir, 'config-repo'));
    repo.commit({ 'shop.conf': 'greeting={{ greeting }}\n' });
    assert.equal((await api('PUT', '/config/v1/environments/dev', { description: 'dev' })).status, 201);
    const files = [{ name: 'shop.conf', template: 'shop.conf', destination: '/tmp/shop.conf' }];
    assert.equal((await api('PUT', '/config/v1/services/shopcfg', { repo: repo.path, files })).status, 201);
    assert.deepEqual((await api('GET', '/config/v1/services/shopcfg')).json()['linkedApps'], {}, 'no delivery service takes its files yet');
    const svc = (await api('GET', '/deliver/v1/services/shop')).json();
    const put = await api('PUT', '/deliver/v1/services/shop', { image: svc['image'], app: svc['app'], configService: 'shopcfg' });
    assert.equal(put.status, 200, put.text);
    const got = (await api('GET', '/config/v1/services/shopcfg')).json();
    assert.deepEqual(got['linkedApps'], { dev: '/dev/shop' }, "delivery's dev gives it /dev/shop");
    // GET, PUT back: linkedApps is read-only and ignored.
    assert.equal((await api('PUT', '/config/v1/services/shopcfg', got)).status, 200);
    const contradicting = await api('PUT', '/config/v1/services/shopcfg', { repo: repo.path, files, apps: { dev: '/dev/elsewhere' } });
    assert.equal(contradicting.status, 400, contradicting.text);
    assert.deepEqual((contradicting.json()['details'] as { field: string }[]).map((d) => d.field), ['apps.dev']);
    assert.match(contradicting.text, /defined once, by delivery's environment/);
    assert.equal((await api('PUT', '/config/v1/services/shopcfg', { repo: repo.path, files, apps: { dev: '/dev/shop' } })).status, 200, 'saying the same is fine');
  });
});
