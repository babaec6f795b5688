import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCiServer } from '../src/server/ci-server.ts';
import { importCiConfig } from '../src/server/ci-import.ts';
import { startMasterServer, type MasterServer } from '../src/server/master-server.ts';

// CI's configuration survives the loss of its server through the git mirror: jobs and specs
// PUT on one CI are pushed to a bare repository; `slipway ci import --from` restores them into
// a fresh CI with an empty data dir.
describe('the git mirror of CI jobs, and slipway ci import into a fresh server', () => {
  let dir: string;
  let master: MasterServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-mirror-'));
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', join(dir, 'mirror.git')]);
    master = await startMasterServer({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'master') });
  });
  after(async () => {
    await master.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('restores every job and executor spec, as they were, into a CI that lost its data', async () => {
    const mirror = join(dir, 'mirror.git');
    const first = await startCiServer({ masterUrl: master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'ci1'), mirrorRepo: mirror });
    const put = (base: string, path: string, body: unknown) => fetch(`${base}${path}`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await put(first.url, '/ci/v1/executors/big', { cpus: 2, mem: 2048, maxExecutors: 2, idleTerminationSeconds: 60 })).status, 201);
    assert.equal((await put(first.url, '/ci/v1/jobs/shop', { repo: 'https://git.example.com/shop.git', branch: 'main', executor: 'big', concurrency: 2, env: { A: '1' } })).status, 201);
    assert.equal((await put(first.url, '/ci/v1/jobs/gone', { repo: '/srv/gone' })).status, 201);
    assert.equal((await fetch(`${first.url}/ci/v1/jobs/gone`, { method: 'DELETE' })).status, 204);
    await first.service.framework.mirrored();
    const jobsBefore = await (await fetch(`${first.url}/ci/v1/jobs`)).json();
    const specsBefore = ((await (await fetch(`${first.url}/ci/v1/executors`)).json()) as { specs: { label: string }[] }).specs;
    await first.close();

    const second = await startCiServer({ masterUrl: master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'ci2') });
    try {
      assert.deepEqual(((await (await fetch(`${second.url}/ci/v1/jobs`)).json()) as { jobs: unknown[] }).jobs, [], 'a fresh CI');
      const imported = await importCiConfig(mirror, second.url);
      assert.deepEqual(imported, { jobs: ['shop'], executors: ['big'] });
      assert.deepEqual(await (await fetch(`${second.url}/ci/v1/jobs`)).json(), jobsBefore);
      const specsAfter = ((await (await fetch(`${second.url}/ci/v1/executors`)).json()) as { specs: { label: string }[] }).specs;
      assert.deepEqual(specsAfter.find((s) => s.label === 'big'), specsBefore.find((s) => s.label === 'big'));
    } finally {
      await second.close();
    }
  });
});
