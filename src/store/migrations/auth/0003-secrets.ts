import type { Kysely, Migration } from 'kysely';

/** The secret store (src/auth/secret-registry.ts): each secret's value sealed (AES-256-GCM), never in clear. */
export const migration0003Secrets: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('secrets')
      .addColumn('name', 'text', (c) => c.primaryKey().notNull())
      .addColumn('sealed', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .execute();
  },
};
