import type { Kysely, Migration } from 'kysely';

/**
 * The services framework's state (see `AppsStore` in src/frameworks/apps/apps-store.ts), in its
 * own database (`apps.db` beside the master's `slipway.db`): the framework id it registered
 * with, apps, their kept versions, deployments in flight and the instances it launched.
 *
 * Portable on purpose, as the master's migrations are (see README.md): `text` and `bigint`
 * columns only, documents as JSON text, primary-key columns `notNull()` explicitly.
 *
 * `app_versions.seq` orders an app's versions: the store gives a saved version the app's highest
 * `seq` plus one, so the newest save is last whatever the version strings look like (the store
 * does not interpret them). No foreign key from versions or instances to apps: the store records
 * what the framework says, in the order it says it (an instance outlives its app's removal until
 * the framework removes it).
 *
 * Never edited once committed; written against `Kysely<unknown>` for the same reason as the
 * master's migrations.
 */
export const migration0001Apps: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('apps_meta')
      .addColumn('key', 'text', (c) => c.primaryKey().notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('apps')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('app_versions')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('app_versions_pk', ['app_id', 'version'])
      .execute();
    await db.schema.createIndex('app_versions_by_seq').on('app_versions').columns(['app_id', 'seq']).execute();

    await db.schema
      .createTable('deployments')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('instances')
      .addColumn('task_id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();
  },
};
