import type { Kysely, Migration } from 'kysely';

/** Policies an operator writes (src/auth/policy-registry.ts): a name and the JSON of its document. */
export const migration0002Policies: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('policies')
      .addColumn('name', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();
  },
};
