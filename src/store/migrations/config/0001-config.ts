import type { Kysely, Migration } from 'kysely';

/**
 * The config center's state (see `ConfigStore` in src/config/config-store.ts), in its own database
 * (`config.db`): services and environments (documents, replaced), values versions and releases
 * (appended, never changed). Portable as the other databases' migrations are: `text` and `bigint`
 * columns, documents as JSON text (secrets and rendered files inside them sealed).
 */
export const migration0001Config: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createTable('services').addColumn('name', 'text', (c) => c.primaryKey().notNull()).addColumn('doc', 'text', (c) => c.notNull()).execute();
    await db.schema.createTable('environments').addColumn('name', 'text', (c) => c.primaryKey().notNull()).addColumn('doc', 'text', (c) => c.notNull()).execute();
    await db.schema
      .createTable('config_values')
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('config_values_pk', ['scope', 'version'])
      .execute();
    await db.schema
      .createTable('releases')
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('env', 'text', (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('releases_pk', ['service', 'env', 'version'])
      .execute();
  },
};
