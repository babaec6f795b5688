import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { up, type Up } from '../src/server/up.ts';
import { SQLITE_FILES } from '../src/store/sqlite-database.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';

// A store outage answers 503 (StoreUnavailable declares it), not 500, through the real routes of
// `slipway up` on 127.0.0.1. The outage is real too: another connection holds the write lock of
// CI's database, so CI's writes wait out SQLite's busy timeout (5 s) and fail with SQLITE_BUSY,
// as they would beside a backup tool or a second server started on the same data dir by mistake.
// The write queue gives such a write up after one attempt (it retries for 3 s at most).

describe('a store outage on `slipway up`', { timeout: 120_000 }, () => {
  let server: Up;
  let dir: string;
  let repo: string;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-outage-'));
    repo = join(dir, 'repo');
    // No pipeline file: a build of it ends `error` at once, so no executor is ever launched.
    createTestRepo(repo).commit({ 'README.md': 'nothing to build\n' });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:2;mem:2048;disk:2000;ports:[34100-34109]' });
    base = server.master.url;
  });

  after(async () => {
    await server.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Holds the write lock of CI's database until the returned function is called. */
  const lockCiStore = () => {
    const locker = new SqliteDatabase(join(dir, 'data', 'ci', SQLITE_FILES.ci));
    locker.exec('BEGIN EXCLUSIVE');
    return () => {
      locker.exec('ROLLBACK');
      locker.close();
    };
  };

  it("answers CI's JSON API and Jenkins's API 503 while CI's store refuses writes, and serves again once it is back", async () => {
    const put = await fetch(`${base}/ci/v1/jobs/hello`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ repo }) });
    assert.equal(put.status, 201, await put.text());

    const unlock = lockCiStore();
    try {
      const refused = await fetch(`${base}/ci/v1/jobs/other`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ repo }) });
      const body = (await refused.json()) as { code?: unknown; message?: unknown };
      assert.equal(refused.status, 503, JSON.stringify(body));
      assert.equal(body.code, 'STORE_UNAVAILABLE');
      assert.match(String(body.message), /CI store refused a write .*nothing of the change was written/);

      const jenkins = await fetch(`${base}/jenkins/job/hello/build`, { method: 'POST' });
      const text = await jenkins.text();
      assert.equal(jenkins.status, 503, text);
      assert.match(jenkins.headers.get('content-type') ?? '', /^text\/plain/);
      assert.match(text, /nothing of the change was written/);
    } finally {
      unlock();
    }

    const again = await fetch(`${base}/ci/v1/jobs/other`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ repo }) });
    assert.ok(again.status === 200 || again.status === 201, `${again.status} ${await again.text()}`);
  });
});
