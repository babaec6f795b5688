import { chmodSync, closeSync, constants, existsSync, openSync } from 'node:fs';
import { PRIVATE_FILE_MODE, privateDir } from '../lib/private-files.ts';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteAdapter, SqliteDialect } from 'kysely';
import type { DialectAdapter } from 'kysely';
import { migrateToLatest } from './migrate-to-latest.ts';
import type { OwnerDatabases, StoreDatabase, StoreDatabases, StoreOwner } from './store-database.ts';
import { OWNER_MIGRATIONS } from './store-database.ts';

/**
 * The SQLite factory (the embedded default): one database file per owner in a data dir, so that
 * each owner can run as its own process with its own data dir, or share one in `slipway up`.
 */

/** Each owner's database file inside a data dir. */
export const SQLITE_FILES: { readonly [O in StoreOwner]: string } = {
  master: 'slipway.db',
  apps: 'apps.db',
  ci: 'ci.db',
  auth: 'auth.db',
  config: 'config.db',
  delivery: 'delivery.db',
};

/**
 * The SQLite databases of `dataDir`: `open(owner)` creates the dir if missing, opens
 * `<dataDir>/<SQLITE_FILES[owner]>` (creating it if need be, `openSqlite`) and migrates it to the
 * latest of the owner's migrations (`StoreDatabases` has the contract).
 */
export function sqliteDatabases(dataDir: string): StoreDatabases {
  return {
    dialect: 'sqlite',
    async open<O extends StoreOwner>(owner: O): Promise<StoreDatabase<OwnerDatabases[O]>> {
      await privateDir(dataDir);
      const database = openSqlite<OwnerDatabases[O]>(join(dataDir, SQLITE_FILES[owner]));
      try {
        await migrateToLatest(database.db, OWNER_MIGRATIONS[owner]);
      } catch (err) {
        await database.close();
        throw err;
      }
      return database;
    },
  };
}

/** How long a statement waits for a lock held by another connection before failing with BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens (creating if need be) the SQLite database at `path`, as it is: no migrations (the factory
 * above runs them; tests of raw tables call this directly). `:memory:` works for tests. Its
 * directory must exist.
 *
 * WAL lets readers run beside the writer, and with `synchronous = NORMAL` a commit is one write to
 * the log with no fsync: a committed transaction survives a crash of the process, and the file is
 * never corrupted, but an OS crash or power loss may lose the last commits. That is the trade the
 * embedded default makes; PostgreSQL is the answer for stronger durability.
 *
 * The file is its owner's only (0600, whatever the umask): it is made so before SQLite opens it,
 * and SQLite gives its `-wal` and `-shm` files the database file's mode; files of an older
 * version, made with the umask's mode, are set to 0600 too.
 *
 * Contract: the returned database owns the file; `close()` closes it, whether or not a query ran.
 */
export function openSqlite<DB>(path: string): StoreDatabase<DB> {
  if (path !== ':memory:') makePrivate(path);
  const sqlite = new SqliteDatabase(path);
  try {
    const mode: unknown = sqlite.pragma('journal_mode = WAL', { simple: true });
    if (path !== ':memory:' && mode !== 'wal') {
      throw new Error(`SQLite refused WAL mode for ${path} (journal mode is ${String(mode)})`);
    }
    sqlite.pragma('synchronous = NORMAL');
    // No table declares foreign keys today; on, so that a later migration that adds one is
    // enforced (SQLite ignores them unless asked, per connection).
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  } catch (err) {
    sqlite.close();
    throw err;
  }
  const db = new Kysely<DB>({ dialect: new TransactionalDdlSqliteDialect({ database: sqlite }) });
  let closing: Promise<void> | undefined;
  return {
    db,
    dialect: 'sqlite',
    close() {
      closing ??= (async () => {
        await db.destroy();
        // Kysely closes the handle only if it ever ran a query on it.
        if (sqlite.open) sqlite.close();
      })();
      return closing;
    },
  };
}

/** The database file made if missing, and it and its WAL and shared-memory files set to 0600. */
function makePrivate(path: string): void {
  closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT, PRIVATE_FILE_MODE));
  chmodSync(path, PRIVATE_FILE_MODE);
  for (const f of [`${path}-wal`, `${path}-shm`, `${path}-journal`]) if (existsSync(f)) chmodSync(f, PRIVATE_FILE_MODE);
}

/**
 * Kysely's SQLite adapter says SQLite has no transactional DDL (kysely-org/kysely#56), so its
 * Migrator would run SQLite migrations outside a transaction and a failing one would leave half a
 * schema behind. SQLite does roll back CREATE/ALTER/DROP; saying so makes the Migrator run all
 * pending migrations and their bookkeeping in one transaction, as it does on PostgreSQL.
 * Consequence for migration authors: `PRAGMA foreign_keys` is a no-op inside a transaction, so a
 * migration cannot switch it (the SQLite table-rebuild recipe needs care; see README.md).
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class TransactionalDdlSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}
