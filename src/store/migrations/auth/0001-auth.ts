import type { Kysely, Migration } from 'kysely';

/**
 * Authentication and audit (issue 12; src/auth), in a database of their own (`auth.db` beside the
 * master's `slipway.db`): tokens, kept as a SHA-256 of their text and never in clear, and the audit
 * log of every change made through an API. Portable, as the other migrations are: `text` and
 * `bigint` columns, JSON as text, primary keys `notNull()` explicitly.
 *
 * `audit.seq` orders the log: the store gives each entry the highest seq plus one in the
 * transaction that writes it (no dialect-specific autoincrement).
 *
 * Never edited once committed.
 */
export const migration0001Auth: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('tokens')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('policies', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('revoked_at', 'bigint')
      .execute();

    await db.schema
      .createTable('audit')
      .addColumn('seq', 'bigint', (c) => c.primaryKey().notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('token_id', 'text')
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('status', 'bigint', (c) => c.notNull())
      .addColumn('remote', 'text', (c) => c.notNull())
      .addColumn('request_id', 'text', (c) => c.notNull())
      .execute();
  },
};
