import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { MasterDatabase } from './master-database.ts';
import { MASTER_MIGRATIONS as MIGRATIONS } from './master-database.ts';
import { APPS_MIGRATIONS } from './apps-database.ts';
import { CI_MIGRATIONS } from './ci-database.ts';
import { StoreMigrationFailed } from './errors.ts';
import { migrateToLatest } from './migrate-to-latest.ts';
import { SQLITE_FILES, openSqlite, sqliteDatabases } from './sqlite-database.ts';
import type { StoreDatabase } from './store-database.ts';

/** SQLite specifics that the dialect-neutral conformance suite does not see: pragmas, migrations. */
describe('SQLite database', () => {
  let dir: string;
  let database: StoreDatabase<MasterDatabase>;
  let db: Kysely<MasterDatabase>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipway-db-'));
    database = openSqlite(join(dir, 'test.db'));
    db = database.db;
  });
  afterEach(async () => {
    await database.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('makes the database, its WAL and its shared memory 0600 under any umask, and tightens a file an older version left open', async () => {
    const before = process.umask(0);
    try {
      const dbs = sqliteDatabases(join(dir, 'owner'));
      const ci = await dbs.open('ci');
      try {
        await sql`select 1`.execute(ci.db);
        const names = (await readdir(join(dir, 'owner'))).sort();
        assert.deepEqual(names, ['ci.db', 'ci.db-shm', 'ci.db-wal']);
        for (const n of names) assert.equal(statSync(join(dir, 'owner', n)).mode & 0o777, 0o600, n);
        assert.equal(statSync(join(dir, 'owner')).mode & 0o777, 0o700);
      } finally {
        await ci.close();
      }
      chmodSync(join(dir, 'owner', 'ci.db'), 0o644);
      const again = openSqlite(join(dir, 'owner', 'ci.db'));
      await again.close();
      assert.equal(statSync(join(dir, 'owner', 'ci.db')).mode & 0o777, 0o600);
    } finally {
      process.umask(before);
    }
  });

  async function pragma(name: string): Promise<unknown> {
    const { rows } = await sql<Record<string, unknown>>`${sql.raw(`pragma ${name}`)}`.execute(db);
    return Object.values(rows[0] ?? {})[0];
  }

  async function tables(): Promise<string[]> {
    const { rows } = await sql<{ name: string }>`
      select name from sqlite_master where type = 'table' and name not like 'kysely_%' order by name
    `.execute(db);
    return rows.map((r) => r.name);
  }

  it('opens the file in WAL mode with synchronous NORMAL, foreign keys on and a busy timeout', async () => {
    assert.equal(await pragma('journal_mode'), 'wal');
    assert.equal(await pragma('synchronous'), 1); // NORMAL
    assert.equal(await pragma('foreign_keys'), 1);
    assert.ok(Number(await pragma('busy_timeout')) >= 1000);
  });

  it('creates the master tables, and a second run changes nothing', async () => {
    await migrateToLatest(db, MIGRATIONS);
    assert.deepEqual(await tables(), ['agents', 'frameworks', 'quotas', 'tasks', 'weights']);
    await db.insertInto('weights').values({ role: 'web', weight: 2 }).execute();
    await migrateToLatest(db, MIGRATIONS);
    assert.deepEqual(await db.selectFrom('weights').selectAll().execute(), [{ role: 'web', weight: 2 }]);
  });

  it('creates the apps tables from APPS_MIGRATIONS, in a database that refuses the master migrations', async () => {
    await migrateToLatest(db, APPS_MIGRATIONS);
    assert.deepEqual(await tables(), ['app_versions', 'apps', 'apps_meta', 'deployments', 'instances']);
    await migrateToLatest(db, APPS_MIGRATIONS);
    // One database, one list of migrations: the master's list finds 0001-apps unknown.
    await assert.rejects(migrateToLatest(db, MIGRATIONS), (err: unknown) => {
      assert.ok(err instanceof StoreMigrationFailed);
      assert.match(err.message, /0001-apps/);
      return true;
    });
    assert.deepEqual(await tables(), ['app_versions', 'apps', 'apps_meta', 'deployments', 'instances']);
  });

  it('creates the CI tables from CI_MIGRATIONS, in a database that refuses the other lists', async () => {
    const ciTables = ['builds', 'ci_meta', 'executor_specs', 'executors', 'job_numbers', 'jobs', 'trigger_states'];
    await migrateToLatest(db, CI_MIGRATIONS);
    assert.deepEqual(await tables(), ciTables);
    await migrateToLatest(db, CI_MIGRATIONS);
    for (const other of [MIGRATIONS, APPS_MIGRATIONS]) {
      await assert.rejects(migrateToLatest(db, other), (err: unknown) => {
        assert.ok(err instanceof StoreMigrationFailed);
        assert.match(err.message, /0001-ci/);
        return true;
      });
    }
    assert.deepEqual(await tables(), ciTables);
  });

  it('rolls back the whole run and names the migration when one fails', async () => {
    const broken: Migration = {
      async up(m: Kysely<unknown>) {
        await m.schema.createTable('half_done').addColumn('id', 'text').execute();
        await sql`insert into no_such_table values (1)`.execute(m);
      },
    };
    const failure = await migrateToLatest(db, { ...MIGRATIONS, '0002-broken': broken }).then(
      () => assert.fail('the broken migration was applied'),
      (err: unknown) => err,
    );
    assert.ok(failure instanceof StoreMigrationFailed);
    assert.equal(failure.code, 'STORE_MIGRATION_FAILED');
    assert.match(failure.message, /0002-broken failed/);
    assert.match(failure.message, /no such table: no_such_table/);
    // 0001 ran in the same transaction as the broken 0002, so it is gone too: no half schema.
    assert.deepEqual(await tables(), []);

    await migrateToLatest(db, MIGRATIONS);
    assert.deepEqual(await tables(), ['agents', 'frameworks', 'quotas', 'tasks', 'weights']);
  });

  it('refuses a database that a newer Slipway migrated further', async () => {
    const future: Migration = {
      async up(m: Kysely<unknown>) {
        await m.schema.createTable('from_the_future').addColumn('id', 'text').execute();
      },
    };
    await migrateToLatest(db, { ...MIGRATIONS, '0099-future': future });
    await assert.rejects(migrateToLatest(db, MIGRATIONS), (err: unknown) => {
      assert.ok(err instanceof StoreMigrationFailed);
      assert.match(err.message, /newer version/);
      assert.match(err.message, /0099-future/);
      return true;
    });
  });

  it('closes the file even if no query ever ran on it, and a second close is the first', async () => {
    const other = openSqlite(join(dir, 'idle.db'));
    assert.ok((await openFiles()).some((f) => f.endsWith('idle.db')), 'the file was open before close');
    const closing = other.close();
    assert.equal(other.close(), closing);
    await closing;
    assert.deepEqual((await openFiles()).filter((f) => f.includes('idle.db')), []);
  });
});

describe('sqliteDatabases (the SQLite factory)', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipway-db-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("opens each owner's own file in a data dir it creates, migrated to that owner's latest", async () => {
    const dataDir = join(dir, 'data', 'nested');
    const databases = sqliteDatabases(dataDir);
    assert.equal(databases.dialect, 'sqlite');
    const master = await databases.open('master');
    const apps = await databases.open('apps');
    const ci = await databases.open('ci');
    const auth = await databases.open('auth');
    const config = await databases.open('config');
    const delivery = await databases.open('delivery');
    try {
      assert.equal(master.dialect, 'sqlite');
      await master.db.insertInto('weights').values({ role: 'web', weight: 2 }).execute();
      await apps.db.insertInto('apps_meta').values({ key: 'k', value: 'v' }).execute();
      await ci.db.insertInto('job_numbers').values({ job: 'j', last_number: 3 }).execute();
      await auth.db.insertInto('tokens').values({ id: 't', name: 'n', policies: '[]', hash: 'h', created_at: 1, expires_at: null, revoked_at: null }).execute();
      await config.db.insertInto('environments').values({ name: 'dev', doc: '{}' }).execute();
      await delivery.db.insertInto('releases').values({ service: 's', version: 'v1', created_at: 1, doc: '{}' }).execute();
    } finally {
      await Promise.all([master.close(), apps.close(), ci.close(), auth.close(), config.close(), delivery.close()]);
    }
    assert.deepEqual((await readdir(dataDir)).filter((f) => f.endsWith('.db')).sort(), ['apps.db', 'auth.db', 'ci.db', 'config.db', 'delivery.db', 'slipway.db']);
    assert.deepEqual(SQLITE_FILES, { master: 'slipway.db', apps: 'apps.db', ci: 'ci.db', auth: 'auth.db', config: 'config.db', delivery: 'delivery.db' });
  });

  it("refuses, and leaves nothing open, a file that another owner's migrations wrote", async () => {
    // The CI database under the master's file name: the master's migrations refuse it.
    const wrong = openSqlite(join(dir, SQLITE_FILES.master));
    await migrateToLatest(wrong.db, CI_MIGRATIONS);
    await wrong.close();
    await assert.rejects(sqliteDatabases(dir).open('master'), StoreMigrationFailed);
    assert.deepEqual((await openFiles()).filter((f) => f.startsWith(dir)), []);
  });
});

/** The files this process has open (Linux's /proc). */
async function openFiles(): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t !== '');
}
