import type { Kysely, Migration } from 'kysely';

/**
 * Delivery's state (see `DeliveryStore` in src/delivery/delivery-store.ts), in its own database
 * (`delivery.db`): services and environments (documents, replaced), releases (appended, never
 * changed; the primary key makes a version unique in its service), promotions (a document saved
 * at each change of state). Portable as the other databases' migrations are.
 */
export const migration0001Delivery: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createTable('services').addColumn('name', 'text', (c) => c.primaryKey().notNull()).addColumn('doc', 'text', (c) => c.notNull()).execute();
    await db.schema.createTable('environments').addColumn('name', 'text', (c) => c.primaryKey().notNull()).addColumn('doc', 'text', (c) => c.notNull()).execute();
    await db.schema
      .createTable('releases')
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('releases_pk', ['service', 'version'])
      .execute();
    await db.schema
      .createTable('promotions')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();
  },
};
