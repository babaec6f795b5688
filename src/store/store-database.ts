import type { Kysely, Migration } from 'kysely';
import type { AuthDatabase } from './auth-database.ts';
import { AUTH_MIGRATIONS } from './auth-database.ts';
import type { AppsDatabase } from './apps-database.ts';
import { APPS_MIGRATIONS } from './apps-database.ts';
import type { CiDatabase } from './ci-database.ts';
import type { ConfigDatabase } from './config-database.ts';
import { CONFIG_MIGRATIONS } from './config-database.ts';
import { CI_MIGRATIONS } from './ci-database.ts';
import type { DeliveryDatabase } from './delivery-database.ts';
import { DELIVERY_MIGRATIONS } from './delivery-database.ts';
import type { MasterDatabase } from './master-database.ts';
import { MASTER_MIGRATIONS } from './master-database.ts';

/**
 * Database handles, and the factories that make them: one factory per kind of database (SQLite
 * today, `sqlite-database.ts`; PostgreSQL with cluster mode), one store class per owner over any
 * of them (`KyselyMasterStore`, `KyselyAppsStore`, `KyselyCiStore`). A store only ever sees a
 * `StoreDatabase`; what differs between kinds (files or schemas, pragmas, connection pools) stays
 * in the factory.
 *
 *   factory.open(owner) ──► connect ──► migrateToLatest(OWNER_MIGRATIONS[owner]) ──► StoreDatabase
 *                                         (refused: the connection is closed, the error thrown)
 *   new Kysely*Store(database) ──► load / write ... ──► store.close() ──► database.close()
 */

/** The kinds of database a factory can make. */
export type StoreDialect = 'sqlite' | 'postgres';

/**
 * One owner's database, open and migrated to the latest. The store it is given owns it: the
 * store's `close` closes it.
 */
export interface StoreDatabase<DB> {
  readonly db: Kysely<DB>;
  readonly dialect: StoreDialect;
  /** Closes the connection(s). Once; a second call returns the first call's promise. */
  close(): Promise<void>;
}

/** The tables of each owner's database. */
export interface OwnerDatabases {
  master: MasterDatabase;
  apps: AppsDatabase;
  ci: CiDatabase;
  auth: AuthDatabase;
  config: ConfigDatabase;
  delivery: DeliveryDatabase;
}

/** Who owns a database: the master, the services framework, CI, authentication, the config center. Each has a database of its own. */
export type StoreOwner = keyof OwnerDatabases;

/**
 * Each owner's migrations. Every factory runs the same lists, so every kind of database has the
 * same tables.
 */
export const OWNER_MIGRATIONS: { readonly [O in StoreOwner]: Readonly<Record<string, Migration>> } = {
  master: MASTER_MIGRATIONS,
  apps: APPS_MIGRATIONS,
  ci: CI_MIGRATIONS,
  auth: AUTH_MIGRATIONS,
  config: CONFIG_MIGRATIONS,
  delivery: DELIVERY_MIGRATIONS,
};

/**
 * A factory of one kind of database, at one location (a data dir for SQLite; a server and a
 * database for PostgreSQL).
 *
 * Contract: `open(owner)` resolves with that owner's database, created if missing and migrated to
 * the latest of `OWNER_MIGRATIONS[owner]`; it rejects with `StoreMigrationFailed` (and leaves
 * nothing open) if the database cannot be migrated, e.g. because a newer Slipway wrote it. Owners
 * never share a database: each `open` of a different owner is a different database (SQLite: a
 * file; PostgreSQL: a schema), so that each can run as its own process.
 */
export interface StoreDatabases {
  readonly dialect: StoreDialect;
  open<O extends StoreOwner>(owner: O): Promise<StoreDatabase<OwnerDatabases[O]>>;
}
