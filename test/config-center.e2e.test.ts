import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { pathSegment } from '../src/agent/path-segment.ts';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo, type TestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13, the config center's model and API on `slipway up`: templates in a real git
// repository, values per environment (and shared), releases rendered at one commit, unchanged
// ones not made, diffs, rollback byte for byte, the files contract, the long poll, secrets.

const SECRET = 'pw-9c1e-horse';
const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

describe('the config center on `slipway up`: services, values, releases, diffs, rollback, watch', { timeout: 120_000 }, () => {
  let dir: string;
  let server: Up;
  let base: string;
  let repo: TestRepo;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-config-'));
    // Tasks run as nobody: their sandboxes must be reachable by path.
    chmodSync(dir, 0o711);
    repo = createTestRepo(join(dir, 'templates'));
    repo.commit({
      'web/app.yaml': 'server:\n  port: {{ port }}\n  region: {{ region }}\ndb:\n  host: {{ db.host }}\n  password: {{ password }}\n',
      'web/app.properties': 'server.port={{ port }}\nfeature.x={{ feature_x | default: false }}\n',
    });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:2;mem:1024;disk:1000;ports:[34500-34599]' });
    base = server.master.url;
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(`${base}${path}`, { method, headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  const web = '/config/v1/services/web/environments/dev';

  it('takes environments and a service whose templates are in git, refusing bad input with the field named', async () => {
    for (const env of ['dev', 'prod']) assert.equal((await api('PUT', `/config/v1/environments/${env}`, { description: env })).status, 201);
    const bad = await api('PUT', '/config/v1/services/web', { repo: 'relative/path', files: [{ name: 'x', template: '../../etc/passwd', destination: '/etc/x' }], apps: { nowhere: '/web' } });
    assert.equal(bad.status, 400, bad.text);
    const fields = (bad.json()['details'] as { field: string }[]).map((d) => d.field);
    assert.deepEqual(fields, ['repo', 'files[0].template']);
    const put = await api('PUT', '/config/v1/services/web', {
      repo: repo.path,
      ref: 'main',
      files: [
        { name: 'app.yaml', template: 'web/app.yaml', destination: '/etc/web/app.yaml' },
        { name: 'app.properties', template: 'web/app.properties', destination: 'conf/app.properties', mode: '0600' },
      ],
      apps: { dev: '/dev/web', prod: '/prod/web' },
    });
    assert.equal(put.status, 201, put.text);
    assert.equal((await api('GET', '/config/v1/services/web')).json()['ref'], 'main');
    assert.equal((await api('PUT', '/config/v1/services/web', { repo: repo.path, files: [{ name: 'a', template: 'a', destination: '/a' }], apps: { staging: '/s' } })).status, 400, 'an app in an environment that does not exist');
    assert.equal((await api('GET', '/config/v1/services/nope')).status, 404);
    assert.equal((await api('GET', '/config/v1/services/web/environments/nope/values')).status, 404);
  });

  it('keeps values per environment as versions, shared values too, secrets write-only and sealed', async () => {
    assert.equal((await api('PUT', '/config/v1/environments/dev/values', { region: 'eu-1' })).status, 200);
    const put = await api('PUT', `${web}/values`, { port: 8080, 'db.host': 'pg-dev', password: { $secret: SECRET } });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual(put.json(), { version: 1, values: { port: 8080, 'db.host': 'pg-dev', password: { $secret: '***' } } });
    const got = (await api('GET', `${web}/values`)).json();
    assert.deepEqual(got['values'], { port: 8080, 'db.host': 'pg-dev', password: { $secret: '***' } });
    assert.equal(got['createdBy'], 'admin');
    // "***" keeps the stored secret; one that was never stored is refused.
    assert.equal((await api('PATCH', `${web}/values`, { set: { password: { $secret: '***' }, extra: true }, unset: ['extra'] })).status, 200);
    assert.equal((await api('PATCH', `${web}/values`, { set: { other: { $secret: '***' } } })).status, 400);
    assert.equal((await api('PUT', `${web}/values`, { '1bad': 1 })).status, 400);
    assert.equal((await api('PUT', `${web}/values`, [1, 2])).status, 400);
    const versions = (await api('GET', `${web}/values/versions`)).json()['versions'] as { version: number }[];
    assert.deepEqual(versions.map((v) => v.version), [1, 2]);
    for (const f of readdirSync(join(dir, 'data', 'config')).filter((n) => n.startsWith('config.db'))) {
      assert.ok(!readFileSync(join(dir, 'data', 'config', f)).includes(Buffer.from(SECRET)), `${f} holds the secret in clear`);
    }
  });

  it('releases every file at one commit, answers unchanged without a release, and serves the files with their digests', async () => {
    const first = await api('POST', `${web}/releases`, { note: 'first' });
    assert.equal(first.status, 201, first.text);
    const r1 = first.json() as { change: string; release: { version: number; templateCommit: string; files: { name: string; sha256: string }[] } };
    assert.equal(r1.change, 'first');
    assert.equal(r1.release.version, 1);
    assert.equal(r1.release.templateCommit, execFileSync('git', ['-C', repo.path, 'rev-parse', 'main']).toString().trim());
    const again = await api('POST', `${web}/releases`);
    assert.equal(again.status, 200);
    assert.equal(again.json()['change'], 'unchanged');
    assert.equal((await api('GET', `${web}/releases`)).json()['releases'] instanceof Array, true);

    const files = (await api('GET', '/config/v1/files?service=web&env=dev')).json() as { release: number; files: { name: string; destination: string; sha256: string; url: string }[] };
    assert.equal(files.release, 1);
    const yaml = files.files.find((f) => f.name === 'app.yaml')!;
    assert.equal(yaml.destination, '/etc/web/app.yaml');
    const content = await fetch(`${base}${yaml.url}`);
    const text = await content.text();
    assert.equal(text, `server:\n  port: 8080\n  region: eu-1\ndb:\n  host: pg-dev\n  password: ${SECRET}\n`, 'the task gets the secret in its file');
    assert.equal(content.headers.get('x-slipway-sha256'), yaml.sha256);
    assert.equal((await api('GET', '/config/v1/files/web/dev/1/app.properties')).text, 'server.port=8080\nfeature.x=false\n');
    // The audit repository: one commit, the secret masked.
    const audit = join(dir, 'data', 'config', 'releases');
    assert.match(execFileSync('git', ['-C', audit, 'log', '--format=%s']).toString(), /web dev release 1 \(first\)/);
    const copy = readFileSync(join(audit, 'dev', 'web', 'app.yaml'), 'utf8');
    assert.ok(!copy.includes(SECRET) && copy.includes('password: ****'), copy);
  });

  it('names the change: values, then templates; diffs mask secrets; a rollback is a new release with the old bytes', async () => {
    assert.equal((await api('PATCH', `${web}/values`, { set: { port: 9090 } })).status, 200);
    const preview = (await api('POST', `${web}/preview`)).json() as { change: string; files: { name: string; patch: string }[] };
    assert.equal(preview.change, 'values-changed');
    assert.ok(preview.files.some((f) => f.patch.includes('+  port: 9090')));
    const r2 = (await api('POST', `${web}/releases`)).json() as { change: string; release: { version: number } };
    assert.deepEqual([r2.change, r2.release.version], ['values-changed', 2]);
    const diff = (await api('GET', `${web}/releases/1/diff/2`)).json() as { files: { name: string; patch: string }[] };
    const patch = diff.files.find((f) => f.name === 'app.yaml')!.patch;
    assert.match(patch, /- {2}port: 8080\n\+ {2}port: 9090/);
    assert.ok(!JSON.stringify(diff).includes(SECRET), 'no secret in a diff');

    repo.commit({ 'web/app.yaml': 'server:\n  port: {{ port }}\n  region: {{ region }}\n  workers: 4\ndb:\n  host: {{ db.host }}\n  password: {{ password }}\n' }, 'workers');
    const r3 = (await api('POST', `${web}/releases`)).json() as { change: string; release: { version: number } };
    assert.deepEqual([r3.change, r3.release.version], ['template-changed', 3]);

    const back = await api('POST', `${web}/rollback`, { to: 1 });
    assert.equal(back.status, 201, back.text);
    const r4 = back.json() as { version: number; change: string; rolledBackTo: number; files: { name: string; sha256: string }[] };
    assert.deepEqual([r4.version, r4.change, r4.rolledBackTo], [4, 'rollback', 1]);
    const v1 = (await api('GET', `${web}/releases/1`)).json() as { files: { name: string; sha256: string }[] };
    assert.deepEqual(r4.files.map((f) => f.sha256), v1.files.map((f) => f.sha256), 'byte for byte');
    assert.equal((await api('POST', `${web}/rollback`, { to: 99 })).status, 404);
    assert.equal((await api('POST', `${web}/rollback`, {})).status, 400);
  });

  it('refuses templates that do not render, naming the file, the line and the variable, and makes no release', async () => {
    repo.commit({ 'web/app.yaml': 'server:\n  port: {{ port }}\n  host: {{ host_name }}\n' }, 'undefined variable');
    const r = await api('POST', `${web}/releases`);
    assert.equal(r.status, 422, r.text);
    const details = r.json()['details'] as { field: string; message: string }[];
    assert.equal(details[0]!.field, 'files.app.yaml (template web/app.yaml)');
    assert.match(details[0]!.message, /undefined variable: host_name, line:3/);
    repo.commit({ 'web/app.yaml': 'server: [unclosed\n' }, 'bad yaml');
    const y = await api('POST', `${web}/releases`);
    assert.equal(y.status, 422);
    assert.match(y.text, /renders to invalid YAML/);
    assert.equal(((await api('GET', `${web}/releases`)).json()['releases'] as unknown[]).length, 4, 'no release was made');
    assert.equal((await api('PUT', '/config/v1/services/web', { repo: repo.path, ref: 'no-such-branch', files: [{ name: 'app.yaml', template: 'web/app.yaml', destination: '/etc/web/app.yaml' }] })).status, 200);
    const missing = await api('POST', `${web}/releases`);
    assert.equal(missing.status, 502);
    assert.match(missing.text, /no branch, tag or commit 'no-such-branch'/);
  });

  it('long-polls: answers a newer release at once, holds until one is made, and answers 304 when none comes', async () => {
    repo.commit({ 'web/app.yaml': 'port: {{ port }}\n' }, 'simple');
    assert.equal((await api('PUT', '/config/v1/services/web', { repo: repo.path, files: [{ name: 'app.yaml', template: 'web/app.yaml', destination: '/etc/web/app.yaml' }] })).status, 200);
    assert.equal(((await api('GET', '/config/v1/watch?service=web&env=dev&since=1')).json()['release'] as { version: number }).version, 4);
    const none = await api('GET', '/config/v1/watch?service=web&env=dev&since=4&wait=1');
    assert.equal(none.status, 304);
    const held = api('GET', '/config/v1/watch?service=web&env=dev&since=4&wait=30');
    await waitUntil(() => server.config.center.watching() === 1, 'the watcher to wait');
    const made = (await api('POST', `${web}/releases`)).json() as { release: { version: number } };
    const got = await held;
    assert.equal(got.status, 200);
    assert.equal((got.json()['release'] as { version: number }).version, made.release.version);
    assert.equal((await api('GET', '/config/v1/watch?service=web&env=dev&since=x')).status, 400);

    // Server-sent events: every release as it is made.
    const abort = new AbortController();
    const stream = await fetch(`${base}/config/v1/watch?service=web&env=dev&since=${made.release.version}`, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
    assert.equal(stream.headers.get('content-type'), 'text/event-stream');
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended: ${text}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    await until(/: watching/);
    await waitUntil(() => server.config.center.watching() === 1, 'the stream to follow');
    assert.equal((await api('PATCH', `${web}/values`, { set: { port: 6060 } })).status, 200);
    const next = (await api('POST', `${web}/releases`)).json() as { release: { version: number } };
    await until(/event: release\ndata: .*\n\n/);
    const data = JSON.parse(/event: release\ndata: (.*)\n\n/.exec(text)![1]!) as { version: number; change: string };
    assert.deepEqual([data.version, data.change], [next.release.version, 'values-changed']);
    abort.abort();
    await waitUntil(() => server.config.center.watching() === 0, 'the stream to be let go');
  });

  it('starts the tasks of a linked app with the current release: its variables, and its files fetched with their digests', async () => {
    repo.commit({ 'api/app.json': '{"port": {{ port }}, "db": "{{ password }}"}\n', 'api/x.txt': 'x={{ port }}\n' }, 'api templates');
    assert.equal((await api('PUT', '/config/v1/services/api', { repo: repo.path, files: [{ name: 'app.json', template: 'api/app.json', destination: '/etc/api/app.json', mode: '0600' }, { name: 'x.txt', template: 'api/x.txt', destination: 'conf/x.txt' }], apps: { dev: '/dev/api' } })).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/api/environments/dev/values', { port: 7001, password: { $secret: SECRET } })).status, 200);
    const rel = (await api('POST', '/config/v1/services/api/environments/dev/releases')).json() as { release: { version: number } };
    const app = await api('POST', '/v2/apps', {
      id: '/dev/api',
      cmd: 'cat "$SLIPWAY_CONFIG_DIR/etc/api/app.json" > seen.json; cat conf/x.txt > seen.txt; env | grep -E "^(CONFIG_SERVER|SERVICE|SLIPWAY_CONFIG_[A-Z]+)=" | sort > seen.env; stat -c %a "$SLIPWAY_CONFIG_DIR/etc/api/app.json" > seen.mode; exec sleep 300',
      cpus: 0.1,
      mem: 32,
      labels: { SLIPWAY_CONFIG_SERVICE: 'api', SLIPWAY_CONFIG_ENV: 'dev' },
    });
    assert.equal(app.status, 201, app.text);
    const taskId = await waitUntil(async () => {
      const t = (await api('GET', '/v2/apps/dev/api/tasks')).json() as { tasks: { id: string; state: string }[] };
      return t.tasks.find((x) => x.state === 'TASK_RUNNING')?.id;
    }, 'the linked app to run', 60_000);
    const root = join(dir, 'data', 'agent', 'sandboxes');
    const sandbox = readdirSync(root).map((fw) => join(root, fw, pathSegment(taskId))).find((d) => existsSync(d))!;
    const seen = (name: string) => waitUntil(() => (existsSync(join(sandbox, name)) && readFileSync(join(sandbox, name), 'utf8') !== '' ? readFileSync(join(sandbox, name), 'utf8') : undefined), name);
    assert.equal(await seen('seen.json'), `{"port": 7001, "db": "${SECRET}"}\n`);
    assert.equal(await seen('seen.txt'), 'x=7001\n');
    assert.equal((await seen('seen.mode')).trim(), '600');
    const env = (await seen('seen.env')).trim().split('\n');
    assert.deepEqual(env, [`CONFIG_SERVER=${base}`, `SERVICE=api`, `SLIPWAY_CONFIG_DIR=${sandbox}`, 'SLIPWAY_CONFIG_ENV=dev', `SLIPWAY_CONFIG_RELEASE=${rel.release.version}`]);
    // The signed URL is the proof: another signature, or none, is refused.
    const fetchUrl = server.config.center.fetchUrl('api', 'dev', rel.release.version, 'app.json', Date.now() + 60_000);
    assert.equal((await fetch(`${base}${fetchUrl}`, { headers: { authorization: 'none' } })).status, 200);
    assert.equal((await fetch(`${base}${fetchUrl.replace(/sig=[0-9a-f]{4}/, 'sig=0000')}`)).status, 403);
    assert.equal((await fetch(`${base}${server.config.center.fetchUrl('api', 'dev', rel.release.version, 'app.json', Date.now() - 1)}`)).status, 403, 'an expired URL');
    // Which release each instance runs, and when it is stale.
    const task = ((await api('GET', '/v2/apps/dev/api/tasks')).json()['tasks'] as { configRelease?: unknown }[])[0]!;
    assert.deepEqual(task.configRelease, { service: 'api', env: 'dev', version: rel.release.version }, 'Marathon\'s task JSON says which release');
    type Instances = { release: number; pending: { values: boolean }; instances: { taskId: string; release: number; stale: boolean; why: string[] }[] };
    const fresh = (await api('GET', '/config/v1/services/api/environments/dev/instances')).json() as Instances;
    assert.deepEqual(fresh.instances.map((i) => [i.taskId, i.release, i.stale]), [[taskId, rel.release.version, false]]);
    assert.equal((await api('PATCH', '/config/v1/services/api/environments/dev/values', { set: { port: 7002 } })).status, 200);
    const edited = (await api('GET', '/config/v1/services/api/environments/dev/instances')).json() as Instances;
    assert.equal(edited.pending.values, true);
    assert.deepEqual(edited.instances[0]!.why, ['values edited since the release']);
    assert.equal((await api('POST', '/config/v1/services/api/environments/dev/releases', { rollout: 'none' })).status, 201);
    const released = (await api('GET', '/config/v1/services/api/environments/dev/instances')).json() as Instances;
    assert.deepEqual(released.instances[0]!.why, [`started with release ${rel.release.version}; it is to run release ${rel.release.version + 1}`]);
    assert.equal((await api('DELETE', '/v2/apps/dev/api?force=true')).status, 200);

    // Labels alone link nothing: an app the service does not name gets none of its files.
    const other = await api('POST', '/v2/apps', { id: '/dev/thief', cmd: 'env > seen.env; ls -R > seen.ls; exec sleep 300', cpus: 0.1, mem: 16, labels: { SLIPWAY_CONFIG_SERVICE: 'api', SLIPWAY_CONFIG_ENV: 'dev' } });
    assert.equal(other.status, 201, other.text);
    const thief = await waitUntil(async () => {
      const t = (await api('GET', '/v2/apps/dev/thief/tasks')).json() as { tasks: { id: string; state: string; configRelease?: unknown }[] };
      return t.tasks.find((x) => x.state === 'TASK_RUNNING');
    }, 'the unlinked app to run', 60_000);
    assert.equal(thief.configRelease, undefined);
    const thiefBox = readdirSync(root).map((fw) => join(root, fw, pathSegment(thief.id))).find((d) => existsSync(d))!;
    const thiefEnv = await waitUntil(() => (existsSync(join(thiefBox, 'seen.env')) && readFileSync(join(thiefBox, 'seen.env'), 'utf8') !== '' ? readFileSync(join(thiefBox, 'seen.env'), 'utf8') : undefined), 'seen.env');
    assert.ok(!thiefEnv.includes('SLIPWAY_CONFIG_RELEASE') && !existsSync(join(thiefBox, 'etc')), 'no config for an app the service does not name');
    assert.equal((await api('DELETE', '/v2/apps/dev/thief?force=true')).status, 200);
    // Naming an app needs restart and read on it, beside configure on the service.
    assert.equal((await api('PUT', '/auth/v1/policies/config-only', { description: 'config only', rules: [{ kind: 'config', match: '*', capabilities: ['read', 'configure'] }] })).status, 201);
    const configOnly = ((await api('POST', '/auth/v1/tokens', { name: 'config-editor', policies: ['config-only'] })).json() as { token: string }).token;
    const hijack = await api('PUT', '/config/v1/services/grab', { repo: repo.path, files: [{ name: 'a', template: 'api/x.txt', destination: 'a' }], apps: { dev: '/prod/payments' } }, { authorization: `Bearer ${configOnly}` });
    assert.equal(hijack.status, 403, hijack.text);
    assert.match(hijack.text, /restart on apps '\/prod\/payments'/);
  });

  it('rolls a release out by restarting the linked app; one that leaves it unhealthy past the deadline goes back to the release before', async () => {
    // Its events, as /config/v1/events streams them.
    const abort = new AbortController();
    const events = await fetch(`${base}/config/v1/events`, { signal: abort.signal });
    assert.equal(events.headers.get('content-type'), 'text/event-stream');
    const decoder = new TextDecoder();
    let eventText = '';
    const reading = (async () => {
      try {
        for await (const c of events.body as unknown as AsyncIterable<Uint8Array>) eventText += decoder.decode(c, { stream: true });
      } catch {
        // Aborted at the end of the test.
      }
    })();
    repo.commit({ 'svc/mode.txt': 'mode: {{ mode }}\n' }, 'svc');
    assert.equal((await api('PUT', '/config/v1/services/svc', { repo: repo.path, files: [{ name: 'mode.txt', template: 'svc/mode.txt', destination: '/etc/svc/mode.txt' }], apps: { dev: '/dev/svc' } })).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/svc/environments/dev/values', { mode: 'good' })).status, 200);
    assert.equal((await api('POST', '/config/v1/services/svc/environments/dev/releases')).status, 201);
    const app = await api('POST', '/v2/apps', {
      id: '/dev/svc',
      // Serves HTTP (healthy) only with the good config.
      cmd: 'if grep -q "mode: good" "$SLIPWAY_CONFIG_DIR/etc/svc/mode.txt"; then exec python3 -m http.server $PORT0; else exec sleep 300; fi',
      cpus: 0.1,
      mem: 64,
      instances: 1,
      labels: { SLIPWAY_CONFIG_SERVICE: 'svc', SLIPWAY_CONFIG_ENV: 'dev' },
      healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 3, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 }],
      upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
    });
    assert.equal(app.status, 201, app.text);
    type Instances = { instances: { release: number; state: string; healthy?: boolean }[] };
    const healthyOn = (v: number) => async () => {
      const r = (await api('GET', '/config/v1/services/svc/environments/dev/instances')).json() as Instances;
      return r.instances.some((i) => i.release === v && i.healthy === true) ? r : undefined;
    };
    await waitUntil(healthyOn(1), 'the app healthy on release 1', 60_000);

    assert.equal((await api('PATCH', '/config/v1/services/svc/environments/dev/values', { set: { mode: 'bad' } })).status, 200);
    // Released from the CLI, which follows the rollout, and its way back, to the end.
    const cliRun = new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'config', 'release', 'svc', 'dev', '--deadline', '8', '--master', base], (error, stdout, stderr) => resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? null), stdout, stderr }));
    });
    const r2 = await waitUntil(async () => {
      const r = await api('GET', '/config/v1/services/svc/environments/dev/releases/2');
      const release = r.status === 200 ? (r.json() as { version: number; rollout?: { id: string; state: string } }) : undefined;
      return release?.rollout !== undefined ? { release: { ...release, rollout: release.rollout } } : undefined;
    }, 'release 2, made by the CLI, and its rollout');
    assert.deepEqual([r2.release.version, r2.release.rollout.state], [2, 'running']);
    // One change of an environment at a time.
    assert.equal((await api('POST', '/config/v1/services/svc/environments/dev/releases')).status, 409);
    const progress = (await api('GET', `/config/v1/services/svc/environments/dev/rollouts/${r2.release.rollout.id}`)).json() as { progress: { waitingFor?: string } };
    assert.match(progress.progress.waitingFor ?? '', /instance\(s\) to run release 2 and be healthy|the deployment/);

    const failed = await waitUntil(async () => {
      const r = (await api('GET', '/config/v1/services/svc/environments/dev/releases/2')).json() as { rollout: { state: string; reason?: string } };
      return r.rollout.state === 'failed' ? r : undefined;
    }, 'the rollout of release 2 to fail at its deadline', 60_000);
    assert.match(failed.rollout.reason ?? '', /after \d+ s, 0 of 1 instance\(s\) run release 2 and are healthy/);
    const back = await waitUntil(async () => {
      const r = await api('GET', '/config/v1/services/svc/environments/dev/releases/3');
      return r.status === 200 ? (r.json() as { change: string; rolledBackTo: number; note: string; files: { sha256: string }[] }) : undefined;
    }, 'the automatic rollback release');
    assert.deepEqual([back.change, back.rolledBackTo], ['rollback', 1]);
    assert.match(back.note, /automatic rollback: the rollout of release 2 failed/);
    assert.deepEqual(back.files.map((f) => f.sha256), ((await api('GET', '/config/v1/services/svc/environments/dev/releases/1')).json() as { files: { sha256: string }[] }).files.map((f) => f.sha256));
    await waitUntil(async () => ((await api('GET', '/config/v1/services/svc/environments/dev/releases/3')).json() as { rollout?: { state: string } }).rollout?.state === 'succeeded', 'the way back rolled out, healthy', 90_000);
    const after = (await api('GET', '/config/v1/services/svc/environments/dev/instances')).json() as Instances;
    assert.ok(after.instances.filter((i) => i.state === 'TASK_RUNNING').every((i) => i.release === 3 && i.healthy === true), JSON.stringify(after));
    const rollouts = (await api('GET', '/config/v1/services/svc/environments/dev/rollouts')).json() as { rollouts: { release: number; state: string; rolledBackBy?: string }[] };
    assert.deepEqual(rollouts.rollouts.map((r) => [r.release, r.state]), [[2, 'failed'], [3, 'succeeded']]);
    assert.equal(rollouts.rollouts[0]!.rolledBackBy, 'svc.dev.3');
    await waitUntil(() => eventText.includes('event: rollout_succeeded'), 'the events up to the end of the way back');
    abort.abort();
    await reading;
    const seen = [...eventText.matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => [m[1], (JSON.parse(m[2]!) as { version?: number; release?: number }).version ?? (JSON.parse(m[2]!) as { release: number }).release]).filter(([, v]) => (v as number) >= 2);
    // The way back is made (and started) before the failed rollout ends: no release comes in between.
    assert.deepEqual(seen, [['release_created', 2], ['rollout_started', 2], ['release_created', 3], ['rollout_started', 3], ['rollout_failed', 2], ['rollout_succeeded', 3]]);
    // The CLI showed the progress, the failure and the way back, and exits 1.
    const shown = await cliRun;
    assert.equal(shown.code, 1, shown.stderr);
    assert.match(shown.stdout, /release 2 of svc in dev: values-changed/);
    assert.match(shown.stderr, /rollout svc\.dev\.2 of \/dev\/svc: 0\/1 on release 2 and healthy/);
    assert.match(shown.stderr, /rollout svc\.dev\.2 of \/dev\/svc: failed after \d+ s: after \d+ s, 0 of 1 instance\(s\)/);
    assert.match(shown.stderr, /going back to release 1: rollout svc\.dev\.3\n/);
    assert.match(shown.stderr, /rollout svc\.dev\.3 of \/dev\/svc: succeeded after \d+ s/);
    assert.equal((await api('DELETE', '/v2/apps/dev/svc?force=true')).status, 200);
  });

  it('asks read to see, configure to edit values and publish-config to release (Apollo edit and publish)', async () => {
    const tokens = async (policies: string[]) => ((await api('POST', '/auth/v1/tokens', { name: `t-${policies.join('-')}`, policies })).json() as { token: string }).token;
    const viewer = await tokens(['viewer']);
    const developer = await tokens(['developer']);
    const deployer = await tokens(['deployer']);
    const as = (t: string) => ({ authorization: `Bearer ${t}` });
    assert.equal((await api('GET', `${web}/values`, undefined, as(viewer))).status, 200);
    assert.equal((await api('PATCH', `${web}/values`, { set: { port: 1 } }, as(viewer))).status, 403);
    assert.equal((await api('PATCH', `${web}/values`, { set: { port: 7070 } }, as(developer))).status, 200, 'a developer edits');
    assert.equal((await api('POST', `${web}/releases`, undefined, as(developer))).status, 403, 'a developer does not publish');
    assert.equal((await api('POST', `${web}/releases`, undefined, as(deployer))).status, 201, 'a deployer publishes');
    assert.equal((await api('PATCH', `${web}/values`, { set: { port: 1 } }, as(deployer))).status, 403, 'a deployer does not edit');
  });
});
