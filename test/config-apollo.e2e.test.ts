import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
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

  it('refuses an Apollo signature for a service without an access key, even where anonymous requests may read', async () => {
    const at = String(Date.now());
    const signature = createHmac('sha1', 'some-key').update(`${at}\n/configs/web/prod/application`).digest('base64');
    const r = await unauthenticatedFetch(`${base}/configs/web/prod/application`, { headers: { authorization: `Apollo web:${signature}`, timestamp: at } });
    assert.equal(r.status, 401);
    assert.match(((await r.json()) as { message: string }).message, /^no access key: appId 'web'/);
  });
});

// Apollo's access-key signatures (apolloconfig/apollo: Signature, ClientAuthenticationFilter),
// on a server that grants anonymous requests nothing: a signed request is read by its signature
// alone. The signatures are computed here from Apollo's definition, not with Slipway's code:
// Base64(HmacSHA1(access key, Timestamp + "\n" + path?query)), Timestamp in milliseconds.
describe("Apollo's access-key signatures on `slipway up`", { timeout: 60_000 }, () => {
  const KEY = 'df23df3f59884980844ff3dada30fa97';
  let dir: string;
  let server: Up;
  let base: string;
  let repo: TestRepo;
  /** Every answer's text, to check the access key is in none of them. */
  const answers: string[] = [];

  const sign = (pathWithQuery: string, o: { key?: string; appId?: string; at?: number } = {}) => {
    const at = String(o.at ?? Date.now());
    return { authorization: `Apollo ${o.appId ?? 'web'}:${createHmac('sha1', o.key ?? KEY).update(`${at}\n${pathWithQuery}`).digest('base64')}`, timestamp: at };
  };
  const get = async (pathWithQuery: string, headers: Record<string, string>) => {
    const r = await unauthenticatedFetch(`${base}${pathWithQuery}`, { headers });
    const text = await r.text();
    answers.push(text);
    return { status: r.status, text };
  };
  const api = async (method: string, path: string, body?: unknown, token?: string) => {
    const r = await fetch(`${base}${path}`, { method, headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    answers.push(text);
    return { status: r.status, text };
  };
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${r.text}`);
    return r;
  };
  const files = (dirName: string) => [{ name: 'application.properties', template: `${dirName}/application.properties`, destination: 'application.properties' }];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-apollo-keys-'));
    repo = createTestRepo(join(dir, 'templates'));
    repo.commit({ 'web/application.properties': 'server.port={{ port }}\n', 'api/application.properties': 'server.port=9000\n' });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:1;mem:256;ports:[34710-34719]' });
    base = server.master.url;
    await ok('PUT', '/auth/v1/secrets/apollo/web', { value: KEY });
    await ok('PUT', '/config/v1/environments/prod', {});
    await ok('PUT', '/config/v1/services/web', { repo: repo.path, files: files('web'), apollo: { accessKeySecret: 'apollo/web' } });
    await ok('PUT', '/config/v1/services/api', { repo: repo.path, files: files('api') });
    await ok('PUT', '/config/v1/services/web/environments/prod/values', { port: 8080 });
    await ok('POST', '/config/v1/services/web/environments/prod/releases', {});
    await ok('POST', '/config/v1/services/api/environments/prod/releases', {});
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /configs, /configfiles/json, /configfiles and /notifications/v2 to signed requests without a token', async () => {
    assert.equal((await get('/configs/web/prod/application', {})).status, 401, 'unsigned and without a token: nothing is granted to anonymous requests here');
    const configs = await get('/configs/web/prod/application?ip=10.0.0.1', sign('/configs/web/prod/application?ip=10.0.0.1'));
    assert.equal(configs.status, 200, configs.text);
    assert.deepEqual((JSON.parse(configs.text) as { configurations: unknown }).configurations, { 'server.port': '8080' });
    const json = await get('/configfiles/json/web/prod/application', sign('/configfiles/json/web/prod/application'));
    assert.equal(json.status, 200, json.text);
    assert.deepEqual(JSON.parse(json.text), { 'server.port': '8080' });
    const text = await get('/configfiles/web/prod/application', sign('/configfiles/web/prod/application'));
    assert.deepEqual([text.status, text.text], [200, 'server.port=8080\n']);
    const n = `/notifications/v2?cluster=prod&appId=web&ip=10.0.0.1&notifications=${encodeURIComponent(JSON.stringify([{ namespaceName: 'application', notificationId: -1 }]))}`;
    const notified = await get(n, sign(n));
    assert.equal(notified.status, 200, notified.text);
    assert.equal((JSON.parse(notified.text) as { notificationId: number }[])[0]!.notificationId, 1);
  });

  it('refuses a wrong key, a stale or missing Timestamp, and a signature of another path with 401 saying why', async () => {
    const path = '/configs/web/prod/application';
    const refused = async (headers: Record<string, string>, why: RegExp, at = path) => {
      const r = await get(at, headers);
      assert.equal(r.status, 401, r.text);
      const body = JSON.parse(r.text) as { status: number; message: string };
      assert.equal(body.status, 401);
      assert.match(body.message, why);
    };
    await refused(sign(path, { key: 'not-the-key' }), /^Unauthorized: the signature is not that of this request/);
    await refused(sign(path, { at: Date.now() - 120_000 }), /^RequestTimeTooSkewed: the Timestamp is 120 s old/);
    const { authorization } = sign(path);
    await refused({ authorization }, /Timestamp header is missing/);
    await refused(sign('/configs/web/prod/settings.json'), /^Unauthorized/);
    await refused(sign(`${path}?ip=10.0.0.1`), /^Unauthorized/, `${path}?ip=10.0.0.2`);
    await refused(sign(path, { appId: 'api' }), /for appId 'api', the request for 'web'/);
    await refused({ authorization: 'Apollo web', timestamp: String(Date.now()) }, /\{appId\}:\{signature\}/);
  });

  it('refuses signatures for an appId without an access key ("no access key"), which a token still reads', async () => {
    const path = '/configs/api/prod/application';
    const r = await get(path, sign(path, { appId: 'api' }));
    assert.equal(r.status, 401, r.text);
    assert.match(r.text, /no access key: appId 'api' has none/);
    const missing = await get('/configs/nope/prod/application', sign('/configs/nope/prod/application', { appId: 'nope' }));
    assert.equal(missing.status, 401, 'a service that does not exist has no key either');
    assert.equal((await fetch(`${base}${path}`)).status, 200, 'with the admin token');
  });

  it('needs `use` on the secret to name it as an access key, and never answers its value', async () => {
    const developer = (JSON.parse((await ok('POST', '/auth/v1/tokens', { name: 'dev', policies: ['developer'] })).text) as { token: string }).token;
    const named = await api('PUT', '/config/v1/services/web2', { repo: repo.path, files: files('web'), apollo: { accessKeySecret: 'apollo/web' } }, developer);
    assert.equal(named.status, 403, named.text);
    assert.match(named.text, /use on secrets 'apollo\/web'/);
    assert.equal((await api('PUT', '/config/v1/services/web2', { repo: repo.path, files: files('web') }, developer)).status, 201, 'the same service without the key');
    const bad = await api('PUT', '/config/v1/services/web2', { repo: repo.path, files: files('web'), apollo: { accessKeySecret: 'not a name' } });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /apollo\.accessKeySecret/);
    const shown = await ok('GET', '/config/v1/services/web');
    assert.deepEqual((JSON.parse(shown.text) as { apollo: unknown }).apollo, { accessKeySecret: 'apollo/web' });
    await ok('GET', '/config/v1/services');
    await ok('GET', '/auth/v1/secrets/apollo/web');
    for (const a of answers) assert.ok(!a.includes(KEY), `an answer holds the access key: ${a.slice(0, 200)}`);
  });

  it('checks each request against the current version of the secret', async () => {
    const path = '/configfiles/json/web/prod/application';
    await ok('PUT', '/auth/v1/secrets/apollo/web', { value: 'rotated-key-0123456789' });
    assert.equal((await get(path, sign(path))).status, 401, 'the old key');
    assert.equal((await get(path, sign(path, { key: 'rotated-key-0123456789' }))).status, 200, 'the new key');
    // A short key signs for nobody (an empty one would sign for anyone); an empty secret is refused.
    await ok('PUT', '/auth/v1/secrets/apollo/web', { value: 'short' });
    const short = await get(path, sign(path, { key: 'short' }));
    assert.equal(short.status, 401);
    assert.match(short.text, /shorter than 16 characters/);
    const empty = await api('PUT', '/auth/v1/secrets/apollo/web', { value: '' });
    assert.equal(empty.status, 400);
    assert.match(empty.text, /value is empty/);
    await ok('DELETE', '/auth/v1/secrets/apollo/web');
    const gone = await get(path, sign(path, { key: 'rotated-key-0123456789' }));
    assert.equal(gone.status, 401);
    assert.match(gone.text, /not in the secret store/);
    await ok('PUT', '/auth/v1/secrets/apollo/web', { value: KEY });
  });
});
