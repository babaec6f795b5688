import type { Kysely, Migration } from 'kysely';

/** Rollouts of releases (src/config/config-store.ts StoredRollout): resumed after a restart, never lost. */
export const migration0002Rollouts: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('rollouts')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('started_at', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();
  },
};
