import type { ColumnType, Migration } from 'kysely';
import { migration0001Apps } from './migrations/apps/0001-apps.ts';

/**
 * The tables of the services framework's database (`apps.db`), as Kysely sees them, and its
 * migrations. A database of its own, apart from the master's: the framework may run as its own
 * process (`slipway apps`) with its own data dir, or inside `slipway up` beside the master, and
 * either way neither migrates nor reads the other's tables. A factory opens it and migrates it to
 * the latest of `APPS_MIGRATIONS` (`sqliteDatabases(dataDir).open('apps')`, store-database.ts).
 *
 * As in master-database.ts, the column types say what both dialects return (`bigint` is a string from
 * `pg`); documents are JSON text.
 */

/** A `bigint` column: a number from better-sqlite3, a string from `pg` (read with `Number()`). */
type Bigint = ColumnType<number | string, number, number>;

/** Key/value facts of the framework; today only `framework_id`. */
export interface AppsMetaTable {
  key: string;
  value: string;
}

export interface AppsTable {
  /** The app id (`/group/app`). */
  id: string;
  /** JSON of the current `StoredAppJson`. */
  doc: string;
}

export interface AppVersionsTable {
  app_id: string;
  /** The app's `version`; saving the same version again updates this row. */
  version: string;
  /** Order of the versions of one app, oldest lowest; the last save of a version gets the highest. */
  seq: Bigint;
  /** JSON of that version's `StoredAppJson`. */
  doc: string;
}

export interface DeploymentsTable {
  id: string;
  /** JSON of the deployment's `doc`. */
  doc: string;
}

export interface InstancesTable {
  task_id: string;
  app_id: string;
  /** JSON of the instance's `doc`. */
  doc: string;
}

export interface AppsDatabase {
  apps_meta: AppsMetaTable;
  apps: AppsTable;
  app_versions: AppVersionsTable;
  deployments: DeploymentsTable;
  instances: InstancesTable;
}

/**
 * Every migration of the apps database, by name. Append only, under the same rules as the
 * master's `MASTER_MIGRATIONS` (README.md); the files live in `migrations/apps/`.
 */
export const APPS_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-apps': migration0001Apps,
};
