import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestRepo } from './support/git-repo.ts';
import { freePort, SlipwayProcess, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13, "Bad input and faults": a kill -9 of `slipway up` while a rollout runs; the rollout
// is not lost: once up is back it goes on from where the instances are and ends with a status.

const dir = tempDir('config-faults');
const dataDir = join(dir, 'data');
let base = '';
let port = 0;
const processes: SlipwayProcess[] = [];

function startUp(n: number): SlipwayProcess {
  const up = new SlipwayProcess(`up-${n}`, ['up', '--port', String(port), '--data-dir', dataDir, '--containerizers', 'process', '--resources', 'cpus:2;mem:512;ports:[36700-36719]'], join(dir, `up-${n}.log`));
  up.start();
  processes.push(up);
  return up;
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  return { status: r.status, text, json: text !== '' && text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe('the config center across a kill -9 of `slipway up` during a rollout', { timeout: 180_000 }, () => {
  before(async () => {
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    startUp(1);
    await waitForHttp(`${base}/health`);
  });

  after(async () => {
    await fetch(`${base}/v2/apps/dev/svc?force=true`, { method: 'DELETE' }).catch(() => undefined);
    for (const p of processes.reverse()) await p.kill9();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('resumes the rollout after the restart and ends it with a status', async () => {
    const repo = createTestRepo(join(dir, 'tpl'));
    repo.commit({ 'svc/conf.txt': 'mode: {{ mode }}\nrev: {{ rev }}\n' });
    assert.equal((await api('PUT', '/config/v1/environments/dev', {})).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/svc', { repo: repo.path, files: [{ name: 'conf.txt', template: 'svc/conf.txt', destination: '/etc/svc/conf.txt' }], apps: { dev: '/dev/svc' } })).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/svc/environments/dev/values', { mode: 'good', rev: 1 })).status, 200);
    assert.equal((await api('POST', '/config/v1/services/svc/environments/dev/releases')).status, 201);
    const created = await api('POST', '/v2/apps', {
      id: '/dev/svc',
      cmd: 'if grep -q "mode: good" "$SLIPWAY_CONFIG_DIR/etc/svc/conf.txt"; then exec python3 -m http.server $PORT0; else exec sleep 300; fi',
      cpus: 0.1,
      mem: 64,
      labels: { SLIPWAY_CONFIG_SERVICE: 'svc', SLIPWAY_CONFIG_ENV: 'dev' },
      healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 3, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 }],
    });
    assert.equal(created.status, 201, created.text);
    const healthyOn = (v: number) => async () => {
      const r = await api('GET', '/config/v1/services/svc/environments/dev/instances').catch(() => undefined);
      const list = (r?.json['instances'] ?? []) as { release?: number; healthy?: boolean }[];
      return list.length > 0 && list.every((i) => i.release === v && i.healthy === true);
    };
    await waitUntil(healthyOn(1), 'the app healthy on release 1', 60_000);

    assert.equal((await api('PATCH', '/config/v1/services/svc/environments/dev/values', { set: { rev: 2 } })).status, 200);
    const release = await api('POST', '/config/v1/services/svc/environments/dev/releases', { deadlineSeconds: 120 });
    assert.equal(release.status, 201, release.text);
    assert.equal(((release.json['release'] as { rollout: { state: string } }).rollout).state, 'running');
    await processes[0]!.kill9();

    startUp(2);
    await waitForHttp(`${base}/health`);
    const ended = await waitUntil(async () => {
      const r = await api('GET', '/config/v1/services/svc/environments/dev/rollouts/svc.dev.2').catch(() => undefined);
      const state = r?.json['state'];
      return state === 'succeeded' || state === 'failed' ? r!.json : undefined;
    }, 'the rollout to end after the restart', 120_000);
    assert.equal(ended['state'], 'succeeded', JSON.stringify(ended));
    await waitUntil(healthyOn(2), 'the app healthy on release 2', 30_000);
    // It was the restarted up that saw it through, not the first before its kill.
    assert.ok(!readFileSync(join(dir, 'up-1.log'), 'utf8').includes('rollout svc.dev.2 of /dev/svc: succeeded'), 'not ended before the kill');
    assert.match(readFileSync(join(dir, 'up-2.log'), 'utf8'), /rollout svc\.dev\.2 of \/dev\/svc: succeeded/);
  });
});
