import type { Kysely, Migration } from 'kysely';

/**
 * The master's state (see `MasterStore` in src/master/master-store.ts): frameworks, agents, tasks,
 * role weights and quotas.
 *
 * Portable on purpose: PostgreSQL will run this same migration. Only `text`, `bigint` and
 * `double precision` columns (SQLite gives them TEXT, INTEGER and REAL affinity), JSON kept as
 * text, no dialect-specific clauses. Times are integer milliseconds since the epoch.
 *
 * Primary-key columns say `notNull()` explicitly: SQLite, unlike PostgreSQL, lets a non-INTEGER
 * primary key hold NULL unless told otherwise.
 *
 * No foreign keys from tasks to frameworks or agents: the master decides what exists, and an agent
 * may report tasks of a framework this master has not stored (yet); the store records, it does not
 * second-guess.
 *
 * A migration is never edited once committed (see README.md); it is written against `Kysely<unknown>`
 * rather than today's `Database` type because it must keep meaning what it meant when it ran.
 */
export const migration0001Master: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('frameworks')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('info', 'text', (c) => c.notNull())
      .addColumn('registered_at', 'bigint', (c) => c.notNull())
      .addColumn('removed_at', 'bigint')
      .execute();

    await db.schema
      .createTable('agents')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('hostname', 'text', (c) => c.notNull())
      .addColumn('url', 'text')
      .addColumn('resources', 'text', (c) => c.notNull())
      .addColumn('attributes', 'text', (c) => c.notNull())
      .addColumn('registered_at', 'bigint', (c) => c.notNull())
      .addColumn('removed_at', 'bigint')
      .execute();

    await db.schema
      .createTable('tasks')
      .addColumn('framework_id', 'text', (c) => c.notNull())
      .addColumn('task_id', 'text', (c) => c.notNull())
      .addColumn('agent_id', 'text', (c) => c.notNull())
      .addColumn('info', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('status', 'text')
      .addPrimaryKeyConstraint('tasks_pk', ['framework_id', 'task_id'])
      .execute();

    await db.schema
      .createTable('weights')
      .addColumn('role', 'text', (c) => c.primaryKey().notNull())
      .addColumn('weight', 'double precision', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('quotas')
      .addColumn('role', 'text', (c) => c.primaryKey().notNull())
      .addColumn('limits', 'text', (c) => c.notNull())
      .execute();
  },
};
