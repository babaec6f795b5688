import type { Kysely, Migration } from 'kysely';

/**
 * The CI framework's state (see `CiStore` in src/frameworks/ci/ci-store.ts), in its own database
 * (`ci.db` beside the master's `slipway.db` and the services framework's `apps.db`): the
 * framework id it registered with, jobs, executor specs, executors, trigger states, builds, and
 * each job's build-number counter.
 *
 * Portable on purpose, as the other databases' migrations are (see README.md): `text` and
 * `bigint` columns only, documents as JSON text, primary-key columns `notNull()` explicitly.
 * `builds.finished` is a `bigint` 0 or 1 rather than a `boolean`: SQLite has no boolean type, and
 * one statement text serves both dialects.
 *
 * Indexes, for the queries the store runs (checked by EXPLAIN QUERY PLAN in
 * sqlite-ci-store.test.ts):
 * - `builds_by_finished` (`finished`, `job`, `number`): `load`'s unfinished builds are the range
 *   `finished = 0`, and a job's last finished build is one seek, `max(number)` under
 *   (`finished = 1`, `job`), so `load` costs the unfinished builds plus one seek per job, however
 *   long the histories are.
 * - the primary key (`job`, `number`): a page of a job's history, newest first, below a number.
 *
 * `job_numbers` is the counter of each job's highest build number. It is not derived from
 * `builds` because numbers are never reused: JOB_REMOVED deletes a job's builds but keeps its
 * counter, so a job recreated under the same name goes on from there.
 *
 * No foreign keys: the store records what the framework says, in the order it says it.
 *
 * Never edited once committed; written against `Kysely<unknown>` for the same reason as the
 * master's migrations.
 */
export const migration0001Ci: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('ci_meta')
      .addColumn('key', 'text', (c) => c.primaryKey().notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('jobs')
      .addColumn('name', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('executor_specs')
      .addColumn('label', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('executors')
      .addColumn('id', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('trigger_states')
      .addColumn('job', 'text', (c) => c.primaryKey().notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('builds')
      .addColumn('job', 'text', (c) => c.notNull())
      .addColumn('number', 'bigint', (c) => c.notNull())
      .addColumn('finished', 'bigint', (c) => c.notNull())
      .addColumn('doc', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('builds_pk', ['job', 'number'])
      .execute();
    await db.schema.createIndex('builds_by_finished').on('builds').columns(['finished', 'job', 'number']).execute();

    await db.schema
      .createTable('job_numbers')
      .addColumn('job', 'text', (c) => c.primaryKey().notNull())
      .addColumn('last_number', 'bigint', (c) => c.notNull())
      .execute();
  },
};
