import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
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

  it('restores every job and executor spec, as they were, secrets included, into a CI that lost its data and has the same key', async () => {
    const mirror = join(dir, 'mirror.git');
    // The operator's key, given to both servers (--secret-key-file).
    const keyFile = join(dir, 'ci.key');
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    const first = await startCiServer({ masterUrl: master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'ci1'), mirrorRepo: mirror, secretKeyFile: keyFile });
    const put = (base: string, path: string, body: unknown) => fetch(`${base}${path}`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await put(first.url, '/ci/v1/executors/big', { cpus: 2, mem: 2048, maxExecutors: 2, idleTerminationSeconds: 60 })).status, 201);
    const secrets = { DEPLOY_TOKEN: 'tok-3f9a71c2', DB_PASSWORD: 'hunter2-e2e' };
    const shop = { repo: 'https://git.example.com/shop.git', branch: 'main', executor: 'big', concurrency: 2, env: { A: '1' }, secrets, triggers: { webhook: { secret: 'hook-s3cret-e2e' } } };
    assert.equal((await put(first.url, '/ci/v1/jobs/shop', shop)).status, 201);
    assert.equal((await put(first.url, '/ci/v1/jobs/gone', { repo: '/srv/gone' })).status, 201);
    assert.equal((await fetch(`${first.url}/ci/v1/jobs/gone`, { method: 'DELETE' })).status, 204);
    await first.service.framework.mirrored();
    // The mirror holds the secrets sealed, never in clear: in the repository and in CI's working copy.
    const mirrored = execFileSync('git', ['--git-dir', mirror, 'show', 'main:jobs/shop.json'], { encoding: 'utf8' });
    assert.match(mirrored, /"DEPLOY_TOKEN": \{\s*"encrypted": "v1:/);
    assert.match(mirrored, /"secret": \{\s*"encrypted": "v1:/);
    const history = execFileSync('git', ['--git-dir', mirror, 'log', '-p', '--all'], { encoding: 'utf8' });
    const workingCopy = filesUnder(join(dir, 'ci1', 'mirror')).map((f) => readFileSync(f, 'latin1')).join('\n');
    for (const clear of ['tok-3f9a71c2', 'hunter2-e2e', 'hook-s3cret-e2e']) {
      assert.ok(!history.includes(clear), `${clear} in the mirror's history`);
      assert.ok(!workingCopy.includes(clear), `${clear} in the mirror's working copy`);
    }
    // A change of something else seals nothing anew: the job's file is the same.
    assert.equal((await put(first.url, '/ci/v1/executors/small', { cpus: 1, mem: 512 })).status, 201);
    await first.service.framework.mirrored();
    assert.equal(execFileSync('git', ['--git-dir', mirror, 'show', 'main:jobs/shop.json'], { encoding: 'utf8' }), mirrored);
    const jobsBefore = await (await fetch(`${first.url}/ci/v1/jobs`)).json();
    assert.doesNotMatch(JSON.stringify(jobsBefore), /tok-3f9a71c2|hunter2-e2e|hook-s3cret-e2e/);
    const specsBefore = ((await (await fetch(`${first.url}/ci/v1/executors`)).json()) as { specs: { label: string }[] }).specs;
    await first.close();

    const second = await startCiServer({ masterUrl: master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'ci2'), secretKeyFile: keyFile });
    try {
      assert.deepEqual(((await (await fetch(`${second.url}/ci/v1/jobs`)).json()) as { jobs: unknown[] }).jobs, [], 'a fresh CI');
      const imported = await importCiConfig(mirror, second.url);
      assert.deepEqual(imported, { jobs: ['shop'], executors: ['big', 'small'] });
      assert.deepEqual(await (await fetch(`${second.url}/ci/v1/jobs`)).json(), jobsBefore);
      const restored = second.service.framework.view.jobs.get('shop');
      assert.deepEqual(restored?.secrets, secrets, 'the secrets themselves came back');
      assert.equal(restored?.triggers.webhook?.secret, 'hook-s3cret-e2e');
      const specsAfter = ((await (await fetch(`${second.url}/ci/v1/executors`)).json()) as { specs: { label: string }[] }).specs;
      assert.deepEqual(specsAfter.find((s) => s.label === 'big'), specsBefore.find((s) => s.label === 'big'));
    } finally {
      await second.close();
    }

    // A CI with another key (its own secret.key, made on first start) cannot open them, and says so.
    const third = await startCiServer({ masterUrl: master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'ci3') });
    try {
      assert.equal(statSync(join(dir, 'ci3', 'secret.key')).mode & 0o777, 0o600);
      await assert.rejects(importCiConfig(mirror, third.url), /secrets\.DEPLOY_TOKEN.*does not open with this server's key/s);
      assert.equal(third.service.framework.view.jobs.get('shop'), undefined);
    } finally {
      await third.close();
    }
  });
});

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
}
