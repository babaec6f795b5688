import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { unauthenticatedFetch } from './support/auth-preload.ts';
import { createTestRepo, type TestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13 §2, Apollo's client API: the npm `node-apollo` client reads /configs and /configfiles
// unchanged (it sends no credentials: the built-in config-client policy is granted to anonymous
// requests from loopback, as docs/security.md says an operator may); the notifications long poll
// is tested from Apollo's docs.

type NodeApollo = {
  remoteConfigServiceSkipCache(c: Record<string, unknown>): Promise<Record<string, unknown>>;
  remoteConfigServiceFromCache(c: Record<string, unknown>): Promise<Record<string, unknown>>;
};
// node-apollo is CommonJS without types.
const apollo = createRequire(import.meta.url)('node-apollo') as NodeApollo;

describe("Apollo's client API on `slipway up`", { timeout: 60_000 }, () => {
  let dir: string;
  let server: Up;
  let base: string;
  let repo: TestRepo;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-apollo-'));
    repo = createTestRepo(join(dir, 'templates'));
    repo.commit({ 'web/application.properties': 'server.port={{ port }}\ndb.url=jdbc:pg://{{ db_host }}/app\n', 'web/settings.json': '{"feature": {{ feature }}}\n' });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:1;mem:256;ports:[34700-34709]', auth: { anonymousPolicies: ['config-client'], anonymousLoopbackOnly: true } });
    base = server.master.url;
    const api = async (method: string, path: string, body: unknown) => {
      const r = await fetch(`${base}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      assert.ok(r.ok, `${method} ${path}: ${r.status} ${await r.text()}`);
    };
    await api('PUT', '/config/v1/environments/prod', {});
    await api('PUT', '/config/v1/services/web', { repo: repo.path, files: [{ name: 'application.properties', template: 'web/application.properties', destination: '/etc/web/application.properties' }, { name: 'settings.json', template: 'web/settings.json', destination: '/etc/web/settings.json' }] });
    await api('PUT', '/config/v1/services/web/environments/prod/values', { port: 8080, db_host: 'pg-prod', feature: true });
    await api('POST', '/config/v1/services/web/environments/prod/releases', {});
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /configs and /configfiles/json to node-apollo unchanged: properties as keys, other formats as content', async () => {
    const common = { configServerUrl: base, appId: 'web', clusterName: 'prod' };
    assert.deepEqual(await apollo.remoteConfigServiceSkipCache({ ...common, namespaceName: 'application' }), { 'server.port': '8080', 'db.url': 'jdbc:pg://pg-prod/app' });
    assert.deepEqual(await apollo.remoteConfigServiceFromCache({ ...common, namespaceName: ['application', 'settings.json'] }), { 'server.port': '8080', 'db.url': 'jdbc:pg://pg-prod/app', content: '{"feature": true}\n' });
  });

  it('answers /configs with a releaseKey, 304 for the same key, and 404 naming the namespaces it has', async () => {
    const r = await unauthenticatedFetch(`${base}/configs/web/prod/application`);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { appId: string; cluster: string; namespaceName: string; releaseKey: string; configurations: Record<string, string> };
    assert.deepEqual([body.appId, body.cluster, body.namespaceName], ['web', 'prod', 'application']);
    assert.equal(body.configurations['server.port'], '8080');
    assert.equal((await unauthenticatedFetch(`${base}/configs/web/prod/application?releaseKey=${body.releaseKey}`)).status, 304);
    const missing = await unauthenticatedFetch(`${base}/configs/web/prod/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /application\.properties, settings\.json/);
    assert.equal((await unauthenticatedFetch(`${base}/configfiles/web/prod/settings.json`)).headers.get('content-type'), 'text/plain; charset=utf-8');
  });

  it('long-polls /notifications/v2: newer namespaces at once, a release while held, 304 otherwise', async () => {
    const n = (id: number) => encodeURIComponent(JSON.stringify([{ namespaceName: 'application', notificationId: id }]));
    const now = await unauthenticatedFetch(`${base}/notifications/v2?appId=web&cluster=prod&notifications=${n(-1)}`);
    assert.equal(now.status, 200);
    const first = (await now.json()) as { namespaceName: string; notificationId: number; messages: { details: Record<string, number> } }[];
    assert.deepEqual(first, [{ namespaceName: 'application', notificationId: 1, messages: { details: { 'web+prod+application': 1 } } }]);
    const held = unauthenticatedFetch(`${base}/notifications/v2?appId=web&cluster=prod&notifications=${n(1)}`);
    await waitUntil(() => server.config.center.watching() === 1, 'the notification request to be held');
    const change = await fetch(`${base}/config/v1/services/web/environments/prod/values`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ set: { port: 9090 } }) });
    assert.equal(change.status, 200);
    assert.equal((await fetch(`${base}/config/v1/services/web/environments/prod/releases`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status, 201);
    const got = await held;
    assert.equal(got.status, 200);
    assert.equal(((await got.json()) as { notificationId: number }[])[0]!.notificationId, 2);
    assert.equal((await unauthenticatedFetch(`${base}/notifications/v2?appId=web&cluster=prod&notifications=not-json`)).status, 400);
  });

  it('refuses anonymous requests that are not reads of config (config-client on loopback), and a viewer the files', async () => {
    assert.equal((await unauthenticatedFetch(`${base}/config/v1/services/web/environments/prod/releases`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status, 403);
    const viewer = ((await (await fetch(`${base}/auth/v1/tokens`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'v', policies: ['viewer'] }) })).json()) as { token: string }).token;
    const asViewer = { headers: { authorization: `Bearer ${viewer}` } };
    assert.equal((await unauthenticatedFetch(`${base}/config/v1/services/web/environments/prod/releases`, asViewer)).status, 200, 'a viewer sees the releases');
    assert.equal((await unauthenticatedFetch(`${base}/config/v1/files/web/prod/1/application.properties`, asViewer)).status, 403, 'not the bytes, which hold secrets');
    assert.equal((await unauthenticatedFetch(`${base}/configs/web/prod/application`, asViewer)).status, 403);
  });
});
