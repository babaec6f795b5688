import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo, type TestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13 §3, gray releases over real tasks of a real `slipway up`: a release for a subset of
// the linked app's instances (a count, a percentage, named instances), restarted onto it or taken
// up by watchers, promoted to every instance or abandoned; one whose subset turns unhealthy is
// abandoned at its deadline, its instances back on the environment's release.

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

type Instance = { taskId: string; release?: number; target?: number; gray?: true; state: string; healthy?: boolean; stale: boolean };
type Instances = { release?: number; gray?: { release: number; members: string[] }; instances: Instance[] };

describe('gray releases of the config center', { timeout: 240_000 }, () => {
  let dir: string;
  let server: Up;
  let base: string;
  let repo: TestRepo;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-gray-'));
    chmodSync(dir, 0o711);
    repo = createTestRepo(join(dir, 'templates'));
    repo.commit({ 'g/mode.txt': 'mode: {{ mode }}\n' });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:2048;disk:1000;ports:[34700-34799]' });
    base = server.master.url;
  });

  after(async () => {
    await fetch(`${base}/v2/apps/dev/g?force=true`, { method: 'DELETE' }).catch(() => undefined);
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, headers: body !== undefined ? { 'Content-Type': 'application/json' } : {}, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: <T>() => JSON.parse(text) as T };
  };
  const g = '/config/v1/services/g/environments/dev';
  const instances = async () => (await api('GET', `${g}/instances`)).json<Instances>();
  const running = (l: Instances) => l.instances.filter((i) => i.state === 'TASK_RUNNING');
  /** Waits until the running instances are `want` (release -> how many, all healthy) and no others run. */
  const settledOn = (want: Record<number, number>, what: string) =>
    waitUntil(async () => {
      const l = await instances();
      const r = running(l);
      const total = Object.values(want).reduce((a, b) => a + b, 0);
      const ok = r.length === total && r.every((i) => i.healthy === true) && Object.entries(want).every(([v, n]) => r.filter((i) => i.release === Number(v)).length === n);
      return ok ? l : undefined;
    }, what, 90_000);
  const rolloutOf = (id: string) => waitUntil(async () => {
    const r = (await api('GET', `${g}/rollouts/${id}`)).json<{ state: string; reason?: string; progress: { waitingFor?: string } }>();
    return r.state !== 'running' ? r : undefined;
  }, `the rollout ${id} to end`, 90_000);

  it('tries a release on one instance, then promotes it to all', async () => {
    assert.equal((await api('PUT', '/config/v1/environments/dev', {})).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/g', { repo: repo.path, files: [{ name: 'mode.txt', template: 'g/mode.txt', destination: '/etc/g/mode.txt' }], apps: { dev: '/dev/g' } })).status, 201);
    // Before there is a release, a gray one has nothing to be tried beside.
    assert.equal((await api('PUT', `${g}/values`, { mode: 'a' })).status, 200);
    const early = await api('POST', `${g}/releases`, { gray: { instances: 1 } });
    assert.equal(early.status, 409, early.text);
    assert.match(early.text, /no release in dev yet/);
    assert.equal((await api('POST', `${g}/releases`)).status, 201);
    const app = await api('POST', '/v2/apps', {
      id: '/dev/g',
      // Healthy only while its file says a good mode.
      cmd: 'if grep -q "mode: bad" "$SLIPWAY_CONFIG_DIR/etc/g/mode.txt"; then exec sleep 300; else exec python3 -m http.server $PORT0; fi',
      cpus: 0.1,
      mem: 32,
      instances: 3,
      labels: { SLIPWAY_CONFIG_SERVICE: 'g', SLIPWAY_CONFIG_ENV: 'dev' },
      healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 3, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 }],
      upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 },
    });
    assert.equal(app.status, 201, app.text);
    await settledOn({ 1: 3 }, 'three instances healthy on release 1');

    // Bad targets are named.
    for (const [gray, field] of [[{}, 'gray'], [{ instances: 0 }, 'gray.instances'], [{ percent: 101 }, 'gray.percent'], [{ instances: 1, percent: 5 }, 'gray'], [{ taskIds: ['dev_g.nope'] }, 'gray.taskIds'], [{ hosts: ['x'] }, 'gray.hosts']] as const) {
      const r = await api('POST', `${g}/releases`, { gray });
      assert.equal(r.status, 400, `${JSON.stringify(gray)}: ${r.text}`);
      assert.ok(r.json<{ details: { field: string }[] }>().details.some((d) => d.field === field), `${JSON.stringify(gray)}: ${r.text}`);
    }

    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'b' } })).status, 200);
    // Some instances, not all of them.
    const all = await api('POST', `${g}/releases`, { gray: { instances: 3 } });
    assert.equal(all.status, 409, all.text);
    assert.match(all.text, /is for all of them/);
    const made = await api('POST', `${g}/releases`, { gray: { instances: 1 }, note: 'try b on one' });
    assert.equal(made.status, 201, made.text);
    const release = made.json<{ release: { version: number; gray: { id: string; state: string; main: number; size: number } } }>().release;
    assert.deepEqual([release.version, release.gray.state, release.gray.main, release.gray.size], [2, 'active', 1, 1]);
    // The environment's release is still 1: what a new watcher or an Apollo client gets.
    assert.equal((await api('GET', '/config/v1/files?service=g&env=dev')).json<{ release: number }>().release, 1);
    // One change at a time: no other release or rollback while the gray one is active.
    assert.equal((await api('POST', `${g}/rollback`, { to: 1 })).status, 409);
    const gray = await rolloutOf(release.gray.id);
    assert.equal(gray.state, 'succeeded', JSON.stringify(gray));
    const tried = await settledOn({ 1: 2, 2: 1 }, 'one instance on the gray release 2, two on 1');
    const member = running(tried).find((i) => i.release === 2)!;
    assert.equal(member.gray, true);
    assert.deepEqual(tried.gray, { release: 2, members: [member.taskId] });
    assert.ok(running(tried).every((i) => !i.stale), JSON.stringify(tried));
    // Its files, asked by the member, are the gray release's; anyone else's, the environment's.
    assert.equal((await api('GET', `/config/v1/files?service=g&env=dev&instance=${encodeURIComponent(member.taskId)}`)).json<{ release: number }>().release, 2);
    const other = running(tried).find((i) => i.release === 1)!;
    assert.equal((await api('GET', `/config/v1/files?service=g&env=dev&instance=${encodeURIComponent(other.taskId)}`)).json<{ release: number }>().release, 1);
    // The release of another is refused while it is active.
    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'c' } })).status, 200);
    assert.equal((await api('POST', `${g}/releases`)).status, 409);
    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'b' } })).status, 200);

    const promoted = await api('POST', `${g}/releases/2/promote`, {});
    assert.equal(promoted.status, 200, promoted.text);
    const p = promoted.json<{ gray: { state: string }; rollout: { id: string } }>();
    assert.equal(p.gray.state, 'promoted');
    assert.equal((await rolloutOf(p.rollout.id)).state, 'succeeded');
    await settledOn({ 2: 3 }, 'all three on release 2 once promoted');
    assert.equal((await api('GET', '/config/v1/files?service=g&env=dev')).json<{ release: number }>().release, 2);
    // Promoted once: not again, nor abandoned.
    assert.equal((await api('POST', `${g}/releases/2/promote`, {})).status, 409);
    assert.equal((await api('POST', `${g}/releases/1/abandon`, {})).status, 409);
  });

  it('gives named instances a hot gray release through their watch, and takes it back when abandoned', async () => {
    const l = await settledOn({ 2: 3 }, 'three on release 2');
    const named = running(l)[0]!.taskId;
    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'c' } })).status, 200);
    const made = await api('POST', `${g}/releases`, { gray: { taskIds: [named] }, rollout: 'hot' });
    assert.equal(made.status, 201, made.text);
    assert.equal(made.json<{ release: { version: number } }>().release.version, 3);
    const watch = (instance: string | undefined, since: number, wait = 1) => api('GET', `/config/v1/watch?service=g&env=dev&since=${since}&wait=${wait}${instance !== undefined ? `&instance=${encodeURIComponent(instance)}` : ''}`);
    const got = await watch(named, 2);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json<{ release: { version: number } }>().release.version, 3);
    // Everyone else stays on 2: nothing new for them.
    assert.equal((await watch(undefined, 2)).status, 304);
    assert.equal((await watch(running(l)[1]!.taskId, 2)).status, 304);
    const listed = await instances();
    assert.deepEqual(listed.gray, { release: 3, members: [named] });
    // Hot: nothing restarted, the member is stale until it takes the release up.
    assert.ok(listed.instances.find((i) => i.taskId === named)?.stale === true, JSON.stringify(listed));

    // The member's watch, held, hears the abandon: it is to run 2 again.
    const held = watch(named, 3, 30);
    await waitUntil(() => server.config!.center.watching() > 0, 'the member watching');
    const abandoned = await api('POST', `${g}/releases/3/abandon`, { note: 'c is wrong' });
    assert.equal(abandoned.status, 200, abandoned.text);
    assert.deepEqual(abandoned.json<{ gray: { state: string; reason: string } }>().gray, { ...abandoned.json<{ gray: object }>().gray, state: 'abandoned', reason: 'c is wrong' });
    const back = await held;
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json<{ release: { version: number } }>().release.version, 2);
    assert.equal((await api('GET', '/config/v1/files?service=g&env=dev')).json<{ release: number }>().release, 2);
  });

  it('abandons a gray release whose instances are unhealthy at its deadline, restarting them on the environment\'s release', async () => {
    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'bad' } })).status, 200);
    // From the CLI, which follows the gray release's rollout to its end and exits 1.
    const shown = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'config', 'release', 'g', 'dev', '--gray-percent', '34', '--deadline', '8', '--master', base], (error, stdout, stderr) => resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? null), stdout, stderr }));
    });
    assert.equal(shown.code, 1, `${shown.stdout}${shown.stderr}`);
    assert.match(shown.stdout, /release 4 of g in dev: values-changed/);
    assert.match(shown.stderr, /rollout g\.dev\.4\.gray of \/dev\/g: failed after \d+ s: .*the gray release is abandoned/);
    const release = (await api('GET', `${g}/releases/4`)).json<{ version: number; gray: { id: string; size: number } }>();
    assert.deepEqual([release.version, release.gray.size], [4, 2]);
    const ended = await rolloutOf(release.gray.id);
    assert.equal(ended.state, 'failed');
    assert.match(ended.reason ?? '', /instance\(s\) run release 4 and are healthy; the gray release is abandoned/);
    const r4 = (await api('GET', `${g}/releases/4`)).json<{ gray: { state: string; endedBy: string } }>();
    assert.deepEqual([r4.gray.state, r4.gray.endedBy], ['abandoned', 'slipway-config']);
    await settledOn({ 2: 3 }, 'all three back on release 2, healthy');
  });

  it('gives a gray release by agent attributes to the instances on matching agents only', async () => {
    await settledOn({ 2: 3 }, 'three on release 2');
    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'e' } })).status, 200);
    // No agent has rack=r1 here: nobody gets it.
    const none = await api('POST', `${g}/releases`, { gray: { agents: { rack: 'r1' } }, rollout: 'hot' });
    assert.equal(none.status, 201, none.text);
    assert.deepEqual((await instances()).gray, { release: 5, members: [] });
    assert.equal((await api('POST', `${g}/releases/5/abandon`, {})).status, 200);
    // This machine's agent, by its host name: every instance.
    const all = await api('POST', `${g}/releases`, { gray: { agents: { hostname: hostname() } }, rollout: 'hot' });
    assert.equal(all.status, 201, all.text);
    const l = await instances();
    assert.deepEqual(l.gray?.members, running(l).map((i) => i.taskId).sort());
    const watched = await api('GET', `/config/v1/watch?service=g&env=dev&since=2&wait=1&instance=${encodeURIComponent(running(l)[0]!.taskId)}`);
    assert.equal(watched.json<{ release: { version: number } }>().release.version, 6);
    assert.equal((await api('POST', `${g}/releases/6/abandon`, { rollout: 'hot' })).status, 200);
    assert.equal((await api('GET', '/config/v1/files?service=g&env=dev')).json<{ release: number }>().release, 2);
  });

  it('abandons a gray release while its own rollout runs, and ends one whose app is deleted', async () => {
    await settledOn({ 2: 3 }, 'three on release 2');
    assert.equal((await api('PATCH', `${g}/values`, { set: { mode: 'f' } })).status, 200);
    const made = await api('POST', `${g}/releases`, { gray: { instances: 1 }, deadlineSeconds: 600 });
    assert.equal(made.status, 201, made.text);
    const v = made.json<{ release: { version: number; gray: { id: string } } }>().release;
    const abandoned = await api('POST', `${g}/releases/${v.version}/abandon`, { note: 'changed my mind' });
    assert.equal(abandoned.status, 200, abandoned.text);
    const ended = (await api('GET', `${g}/rollouts/${v.gray.id}`)).json<{ state: string; reason: string }>();
    assert.equal(ended.state, 'failed');
    assert.match(ended.reason, /^the gray release was abandoned \(by .+\): changed my mind$/);
    await settledOn({ 2: 3 }, 'all three back on release 2');

    const again = await api('POST', `${g}/releases`, { gray: { instances: 1 }, deadlineSeconds: 600 });
    assert.equal(again.status, 201, again.text);
    const w = again.json<{ release: { version: number } }>().release.version;
    assert.equal((await api('DELETE', '/v2/apps/dev/g?force=true')).status, 200);
    const gone = await waitUntil(async () => {
      const r = (await api('GET', `${g}/releases/${w}`)).json<{ gray: { state: string; reason?: string } }>();
      return r.gray.state !== 'active' ? r.gray : undefined;
    }, 'the gray release of the deleted app to end', 30_000);
    assert.deepEqual([gone.state, gone.reason], ['abandoned', 'the app /dev/g is gone']);
    assert.equal((await api('GET', '/config/v1/files?service=g&env=dev')).json<{ release: number }>().release, 2);
  });
});
