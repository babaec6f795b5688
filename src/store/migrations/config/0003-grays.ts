import type { Kysely, Migration } from 'kysely';

/** Gray releases (src/config/config-store.ts StoredGray): a release of a subset of instances, then promoted or abandoned. */
export const migration0003Grays: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('grays')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('started_at', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();
  },
};
