import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteAdapter, SqliteDialect } from 'kysely';
import type { ColumnType, DialectAdapter, Migration, MigrationProvider } from 'kysely';
import { StoreMigrationFailed } from './errors.ts';
import { migration0001Master } from './migrations/0001-master.ts';
import { migration0002UnreachableAndRole } from './migrations/0002-unreachable-and-role.ts';

/**
 * The tables of the master's database, as Kysely sees them, and how to open and migrate a SQLite
 * database (the master's, and the services framework's of `apps-database.ts`).
 *
 * The column types describe what both dialects return, because PostgreSQL will use the same
 * tables: `bigint` comes back as a number from better-sqlite3 but as a string from `pg`, so
 * readers convert with `Number()`. JSON columns hold text (`JSON.stringify` of the value).
 */

/** Integer milliseconds since the epoch, in a `bigint` column. */
export type Millis = ColumnType<number | string, number, number>;
type MillisOrNull = ColumnType<number | string | null, number | null, number | null>;

export interface FrameworksTable {
  id: string;
  /** JSON of `FrameworkInfo`; `null` (the JSON text) for an id removed without ever being saved. */
  info: string;
  registered_at: Millis;
  /** Set once the framework is torn down or timed out; never cleared (its id is retired). */
  removed_at: MillisOrNull;
}

export interface AgentsTable {
  id: string;
  hostname: string;
  url: string | null;
  /** JSON of `Resource[]`. */
  resources: string;
  /** JSON of `Attribute[]`. */
  attributes: string;
  registered_at: Millis;
  /** Set once the operator removes the agent; never cleared (its id is refused for good). */
  removed_at: MillisOrNull;
  /** Set while the agent is unreachable (migration 0002). */
  unreachable_at: MillisOrNull;
}

export interface TasksTable {
  framework_id: string;
  task_id: string;
  agent_id: string;
  /** JSON of `TaskInfo`. */
  info: string;
  /** A `TaskState` name. */
  state: string;
  /** JSON of the latest `TaskStatus`, if any. */
  status: string | null;
  /** The role the task's resources were allocated to (migration 0002). */
  role: string | null;
}

export interface WeightsTable {
  role: string;
  weight: number;
}

export interface QuotasTable {
  role: string;
  /** JSON of `Record<resource name, amount>`; never `{}` (an empty quota is no row). */
  limits: string;
}

export interface Database {
  frameworks: FrameworksTable;
  agents: AgentsTable;
  tasks: TasksTable;
  weights: WeightsTable;
  quotas: QuotasTable;
}

/** How long a statement waits for a lock held by another connection before failing with BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens (creating if need be) the SQLite database at `path`; `:memory:` works for tests. Its
 * directory must exist.
 *
 * WAL lets readers run beside the writer, and with `synchronous = NORMAL` a commit is one write to
 * the log with no fsync: a committed transaction survives a crash of the process, and the file is
 * never corrupted, but an OS crash or power loss may lose the last commits. That is the trade the
 * embedded default makes; PostgreSQL is the answer for stronger durability.
 *
 * Contract: the returned `Kysely` owns the file; `destroy()` closes it. (Kysely closes the handle
 * only once it has run a query; every caller runs `migrateToLatest` first, which does.)
 */
export function openSqlite<DB = Database>(path: string): Kysely<DB> {
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
  return new Kysely<DB>({ dialect: new TransactionalDdlSqliteDialect({ database: sqlite }) });
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

/**
 * Every migration of the master's database, by name. Append only: a new migration gets the next
 * number and a name that sorts after every other (Kysely runs them in name order and refuses a
 * database whose executed migrations are not a prefix of this list). A committed migration is
 * never edited or removed.
 */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-master': migration0001Master,
  '0002-unreachable-and-role': migration0002UnreachableAndRole,
};

/**
 * Brings the database up to the latest of `migrations` (the master's `MIGRATIONS` unless told
 * otherwise; another database passes its own list, e.g. `APPS_MIGRATIONS`). All pending
 * migrations run in one transaction (both dialects), so a failure leaves the database as it was
 * before the call.
 * Throws `StoreMigrationFailed` naming the migration that failed, or saying that the database
 * was written by a newer Slipway (it has migrations this code does not know).
 *
 * The migrations list must be the one of that database: Kysely keeps one record of executed
 * migrations per database, so two lists over one file refuse each other.
 */
export function migrateToLatest(db: Kysely<Database>): Promise<void>;
export function migrateToLatest<DB>(db: Kysely<DB>, migrations: Readonly<Record<string, Migration>>): Promise<void>;
export async function migrateToLatest<DB>(
  db: Kysely<DB>,
  migrations: Readonly<Record<string, Migration>> = MIGRATIONS,
): Promise<void> {
  const provider: MigrationProvider = { getMigrations: () => Promise.resolve({ ...migrations }) };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error === undefined) return;

  const reason = error instanceof Error ? error.message : String(error);
  const failed = results?.find((r) => r.status === 'Error');
  if (failed) {
    throw new StoreMigrationFailed(`database migration ${failed.migrationName} failed, the database is left as it was: ${reason}`, error);
  }
  if (/previously executed migration .* is missing/.test(reason)) {
    throw new StoreMigrationFailed(
      `the database has migrations this version of Slipway does not know (written by a newer version?): ${reason}`,
      error,
    );
  }
  throw new StoreMigrationFailed(`could not migrate the database: ${reason}`, error);
}
