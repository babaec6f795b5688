import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createTestRepo } from './support/git-repo.ts';
import { freePort, SlipwayProcess, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13 §4, `slipway config` as a user runs it against `slipway up`: values, release,
// unchanged, diff, rollback, and `pull --watch --exec` rewriting a file when a release comes.

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const dir = tempDir('config-cli');
let master = '';
const processes: SlipwayProcess[] = [];

function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args, '--master', master], { cwd: dir }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? 1), stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

describe('`slipway config` against `slipway up`', { timeout: 120_000 }, () => {
  before(async () => {
    const repo = createTestRepo(join(dir, 'tpl'));
    repo.commit({ 'web/app.yaml': 'port: {{ port }}\npw: {{ pw }}\n' });
    const port = await freePort();
    master = `http://127.0.0.1:${port}`;
    const up = new SlipwayProcess('up', ['up', '--port', String(port), '--data-dir', join(dir, 'data'), '--containerizers', 'process', '--resources', 'cpus:1;mem:256;ports:[36600-36609]'], join(dir, 'up.log'));
    up.start();
    processes.push(up);
    await waitForHttp(`${master}/health`);
    writeFileSync(join(dir, 'web.json'), JSON.stringify({ repo: repo.path, files: [{ name: 'app.yaml', template: 'web/app.yaml', destination: '/etc/web/app.yaml', mode: '0640' }] }));
  });

  after(async () => {
    for (const p of processes.reverse()) await p.kill9();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('sets values (a secret from stdin), releases, says unchanged, diffs with the secret masked, and rolls back', async () => {
    assert.equal((await cli(['config', 'env-put', 'dev'])).code, 0);
    assert.equal((await cli(['config', 'service-put', 'web', join(dir, 'web.json')])).code, 0);
    const set = await cli(['config', 'values', 'set', 'web', 'dev', 'port=8080', '--secret', 'pw=-'], 'hunter2\n');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /version 1 \(a draft until released\)/);
    const got = await cli(['config', 'values', 'get', 'web', 'dev', '--json']);
    assert.deepEqual((JSON.parse(got.stdout) as { values: unknown }).values, { port: 8080, pw: { $secret: '***' } });
    assert.match((await cli(['config', 'release', 'web', 'dev', '--note', 'first'])).stdout, /release 1 of web in dev: first/);
    assert.match((await cli(['config', 'release', 'web', 'dev'])).stdout, /unchanged: release 1 stays/);
    assert.equal((await cli(['config', 'values', 'set', 'web', 'dev', 'port=9090'])).code, 0);
    const preview = await cli(['config', 'diff', 'web', 'dev']);
    assert.match(preview.stdout, /-port: 8080\n\+port: 9090\n pw: \*\*\*\*/);
    assert.ok(!preview.stdout.includes('hunter2'));
    assert.match((await cli(['config', 'release', 'web', 'dev'])).stdout, /release 2 of web in dev: values-changed/);
    assert.match((await cli(['config', 'rollback', 'web', 'dev', '--to', '1'])).stdout, /release 3 of web in dev: rollback to 1/);
    const bad = await cli(['config', 'release', 'nope', 'dev']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /404 no config service 'nope'/);
  });

  it('keeps what it pulled when the config center cannot be reached, and fails when it never pulled', async () => {
    const out = join(dir, 'kept');
    assert.equal((await cli(['config', 'pull', 'web', 'dev', '--dir', out])).code, 0);
    const before = readFileSync(join(out, 'etc', 'web', 'app.yaml'), 'utf8');
    const dead = `http://127.0.0.1:${await freePort()}`;
    const away = (to: string) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(process.execPath, [BIN, 'config', 'pull', 'web', 'dev', '--dir', to, '--master', dead], { cwd: dir }, (error, _stdout, stderr) => resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? 1), stderr }));
      });
    const kept = await away(out);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stderr, /not answering .*; release \d+ stays on disk/);
    assert.equal(readFileSync(join(out, 'etc', 'web', 'app.yaml'), 'utf8'), before);
    const none = await away(join(dir, 'never'));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /cannot reach/);
  });

  it('pulls the files under a directory, and with --watch rewrites them and runs --exec when a release comes', async () => {
    const out = join(dir, 'pulled');
    const marker = join(dir, 'reloaded');
    const watcher = new SlipwayProcess('pull', ['config', 'pull', 'web', 'dev', '--dir', out, '--watch', '--exec', `cat ${out}/etc/web/app.yaml >> ${marker}`, '--master', master], join(dir, 'pull.log'));
    watcher.start();
    processes.push(watcher);
    const file = join(out, 'etc', 'web', 'app.yaml');
    await waitUntil(() => existsSync(marker) && readFileSync(marker, 'utf8').includes('port: 8080'), 'the first pull and its --exec');
    assert.equal(readFileSync(file, 'utf8'), 'port: 8080\npw: hunter2\n');
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.equal(JSON.parse(readFileSync(join(out, '.slipway-config.json'), 'utf8')).release, 3);
    assert.equal((await cli(['config', 'values', 'set', 'web', 'dev', 'port=7070'])).code, 0);
    assert.equal((await cli(['config', 'release', 'web', 'dev'])).code, 0);
    await waitUntil(() => readFileSync(marker, 'utf8').includes('port: 7070'), 'the next release pulled and --exec run again');
    assert.equal(readFileSync(file, 'utf8'), 'port: 7070\npw: hunter2\n');
  });
});
