import { Migrator } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { StoreMigrationFailed } from './errors.ts';

/**
 * Brings a database up to the latest of `migrations`, the list of that database (the master's
 * `MASTER_MIGRATIONS`, the services framework's `APPS_MIGRATIONS`, CI's `CI_MIGRATIONS`). All
 * pending migrations run in one transaction (both dialects), so a failure leaves the database as
 * it was before the call. The factories of `store-database.ts` call it as they open a database.
 *
 * Throws `StoreMigrationFailed` naming the migration that failed, or saying that the database was
 * written by a newer Slipway (it has migrations this code does not know).
 *
 * The migrations list must be the one of that database: Kysely keeps one record of executed
 * migrations per database, so two lists over one database refuse each other.
 */
export async function migrateToLatest<DB>(db: Kysely<DB>, migrations: Readonly<Record<string, Migration>>): Promise<void> {
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
