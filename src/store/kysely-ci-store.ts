import type { Kysely, Transaction } from 'kysely';
import type { CiChange, CiStore, StoredBuild, StoredCiState } from '../frameworks/ci/ci-store.ts';
import type { CiDatabase } from './ci-database.ts';
import { CallQueue } from './call-queue.ts';
import type { StoreDatabase, StoreDatabases } from './store-database.ts';
import { fromJson, toJson } from './json-column.ts';
import { writeBatch } from './write-batch.ts';

/** The key of the framework id in `ci_meta`. */
const FRAMEWORK_ID_KEY = 'framework_id';

/**
 * The CI framework's store, over any database a factory of `store-database.ts` makes (SQLite's
 * `<dataDir>/ci.db` in the embedded default). A database of its own (its migrations are
 * `CI_MIGRATIONS`), so that CI can run in its own process with its own data dir or share one data
 * dir with the master and the services framework in `slipway up`.
 *
 * Contract (beyond `CiStore`'s):
 * - Calls run one at a time in call order, `load` and `builds` included: a read sees every
 *   `write` called before it, and batches commit in the order they were handed in even if the
 *   caller does not await them. A failed `write` does not hold up the ones queued behind it.
 * - `write` resolves once its transaction committed (WAL, `synchronous = NORMAL`: a committed batch
 *   survives a crash of the process in SQLite; see sqlite-database.ts for what an OS crash may lose).
 * - A failed `write` rejects with `StoreWriteFailed`, naming the change that failed; nothing of
 *   its batch is applied. A document JSON cannot hold (a BigInt, a cycle, `undefined`) fails, and
 *   so does a BUILD_SAVED whose `number` is not a whole number of at least 1 or whose `finished`
 *   is not a boolean.
 * - Build numbers: BUILD_SAVED raises the job's counter to the build's number if that is higher
 *   (saving an older build again never lowers it). JOB_REMOVED deletes the job, its builds and its
 *   trigger state but keeps the counter, so `lastNumbers` also holds jobs that no longer exist: a
 *   job recreated under the same name goes on from its old highest number.
 * - `load`'s builds are every build not finished and, per job, the finished build with the
 *   highest number (Jenkins's "last completed build"), whatever the order they finished in. The
 *   port promises no order of jobs, specs, executors, trigger states or builds; this store lists
 *   them by key.
 * - `builds` pages by number, finished or not: the ones below `before`, highest first. It rejects
 *   with a `RangeError` if `limit` is not a whole number of at least 0 or `before` is not a whole
 *   number. An unknown job has no builds.
 * - `close` waits for queued calls, then closes its database; later calls reject with `StoreClosed`.
 *
 * The SQL is portable (upserts by `ON CONFLICT ... DO UPDATE ... WHERE`, a correlated `max`
 * subquery), so that a PostgreSQL store can run the same statements over the same migrations;
 * the queries over builds are exported for that, and for the query-plan test.
 */
export class KyselyCiStore implements CiStore {
  private readonly db: Kysely<CiDatabase>;
  private readonly calls = new CallQueue('CI store');

  /** A store over `database` (open and migrated), which it owns from now on: `close` closes it. */
  constructor(private readonly database: StoreDatabase<CiDatabase>) {
    this.db = database.db;
  }

  /** Opens CI's database of `databases` (e.g. `sqliteDatabases(dataDir)`) and a store over it. */
  static async open(databases: StoreDatabases): Promise<KyselyCiStore> {
    return new KyselyCiStore(await databases.open('ci'));
  }

  load(): Promise<StoredCiState> {
    return this.calls.run('load', () => this.db.transaction().execute(readState));
  }

  write(changes: readonly CiChange[]): Promise<void> {
    // Copied now: the caller may reuse its array as soon as this returns.
    const batch = changes.slice();
    return this.calls.run('write', () => writeBatch(this.db, batch, applyChange, describeChange, 'CI store'));
  }

  builds(job: string, options: { limit: number; before?: number }): Promise<StoredBuild[]> {
    const { limit, before } = options;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      return Promise.reject(new RangeError(`limit must be a whole number of at least 0, not ${limit}`));
    }
    if (before !== undefined && !Number.isSafeInteger(before)) {
      return Promise.reject(new RangeError(`before must be a whole number, not ${before}`));
    }
    return this.calls.run('read builds', async () => {
      const rows = await selectBuildPage(this.db, job, { limit, before }).execute();
      return rows.map(toStoredBuild);
    });
  }

  close(): Promise<void> {
    return this.calls.close(() => this.database.close());
  }
}

// Queries over builds --------------------------------------------------------------------------

/** Every build not finished. A range of the index `builds_by_finished`. */
export function selectUnfinishedBuilds(db: Kysely<CiDatabase>) {
  return db
    .selectFrom('builds')
    .select(['job', 'number', 'finished', 'doc'])
    .where('finished', '=', 0)
    .orderBy('job')
    .orderBy('number');
}

/**
 * The finished build with the highest number of each job: for each row of `job_numbers` (every
 * job that ever had a build), one seek of `builds_by_finished` for the number, one of the primary
 * key for the build. It reads none of the rest of a job's history.
 *
 * Written as `(job, number) IN (...)` rather than as a join on purpose: SQLite, which keeps no
 * statistics here, would plan the join as a scan of every build (to save a sort), while the list
 * subquery can only be evaluated first and probed by key. Row values work in both dialects.
 */
export function selectLastFinishedBuilds(db: Kysely<CiDatabase>) {
  const lastFinished = db
    .selectFrom('job_numbers as j')
    .select((eb) => [
      'j.job',
      eb
        .selectFrom('builds as f')
        .select((agg) => agg.fn.max('f.number').as('top'))
        .where('f.finished', '=', 1)
        .whereRef('f.job', '=', 'j.job')
        .as('number'),
    ])
    // Null for a job without a finished build, which matches no build; narrowed only because the
    // tuple comparison wants the type of `builds.number`.
    .$narrowType<{ number: number | string }>()
    .$asTuple('job', 'number');
  return db
    .selectFrom('builds as b')
    .select(['b.job', 'b.number', 'b.finished', 'b.doc'])
    .where((eb) => eb(eb.refTuple('b.job', 'b.number'), 'in', lastFinished));
}

/** A page of a job's builds below `before` (all when absent), highest number first. The primary key. */
export function selectBuildPage(db: Kysely<CiDatabase>, job: string, options: { limit: number; before?: number | undefined }) {
  let query = db.selectFrom('builds').select(['job', 'number', 'finished', 'doc']).where('job', '=', job);
  if (options.before !== undefined) query = query.where('number', '<', options.before);
  return query.orderBy('number', 'desc').limit(options.limit);
}

function toStoredBuild(row: { job: string; number: number | string; finished: number | string; doc: string }): StoredBuild {
  return { job: row.job, number: Number(row.number), finished: Number(row.finished) === 1, doc: fromJson(row.doc) };
}

// Writes ---------------------------------------------------------------------------------------

async function applyChange(trx: Transaction<CiDatabase>, change: CiChange): Promise<void> {
  switch (change.type) {
    case 'FRAMEWORK_ID':
      await trx
        .insertInto('ci_meta')
        .values({ key: FRAMEWORK_ID_KEY, value: change.frameworkId })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: change.frameworkId }))
        .execute();
      return;
    case 'JOB_SAVED': {
      const doc = toJson(change.doc);
      await trx
        .insertInto('jobs')
        .values({ name: change.name, doc })
        .onConflict((oc) => oc.column('name').doUpdateSet({ doc }))
        .execute();
      return;
    }
    case 'JOB_REMOVED':
      // Not `job_numbers`: a job recreated under this name must not reuse its numbers.
      await trx.deleteFrom('builds').where('job', '=', change.name).execute();
      await trx.deleteFrom('trigger_states').where('job', '=', change.name).execute();
      await trx.deleteFrom('jobs').where('name', '=', change.name).execute();
      return;
    case 'EXECUTOR_SPEC_SAVED': {
      const doc = toJson(change.doc);
      await trx
        .insertInto('executor_specs')
        .values({ label: change.label, doc })
        .onConflict((oc) => oc.column('label').doUpdateSet({ doc }))
        .execute();
      return;
    }
    case 'EXECUTOR_SPEC_REMOVED':
      await trx.deleteFrom('executor_specs').where('label', '=', change.label).execute();
      return;
    case 'BUILD_SAVED':
      await saveBuild(trx, change.build);
      return;
    case 'EXECUTOR_SAVED': {
      const doc = toJson(change.doc);
      await trx
        .insertInto('executors')
        .values({ id: change.id, doc })
        .onConflict((oc) => oc.column('id').doUpdateSet({ doc }))
        .execute();
      return;
    }
    case 'EXECUTOR_REMOVED':
      await trx.deleteFrom('executors').where('id', '=', change.id).execute();
      return;
    case 'TRIGGER_STATE_SAVED': {
      const doc = toJson(change.doc);
      await trx
        .insertInto('trigger_states')
        .values({ job: change.job, doc })
        .onConflict((oc) => oc.column('job').doUpdateSet({ doc }))
        .execute();
      return;
    }
    default: {
      const unknown: never = change;
      throw new Error(`unknown change type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}

/** Upserts the build, and raises its job's counter to its number if that is higher. */
async function saveBuild(trx: Transaction<CiDatabase>, build: StoredBuild): Promise<void> {
  const { job, number, finished } = build;
  // SQLite would keep 1.5 or '7' in a bigint column; PostgreSQL would not. Refused alike.
  if (!Number.isSafeInteger(number) || number < 1) {
    throw new TypeError(`a build number must be a whole number of at least 1, not ${String(number)}`);
  }
  if (typeof finished !== 'boolean') throw new TypeError(`finished must be a boolean, not ${String(finished)}`);
  const row = { finished: finished ? 1 : 0, doc: toJson(build.doc) };
  await trx
    .insertInto('builds')
    .values({ job, number, ...row })
    .onConflict((oc) => oc.columns(['job', 'number']).doUpdateSet(row))
    .execute();
  await trx
    .insertInto('job_numbers')
    .values({ job, last_number: number })
    .onConflict((oc) =>
      oc
        .column('job')
        .doUpdateSet((eb) => ({ last_number: eb.ref('excluded.last_number') }))
        .whereRef('excluded.last_number', '>', 'job_numbers.last_number'),
    )
    .execute();
}

// Reads ----------------------------------------------------------------------------------------

async function readState(trx: Transaction<CiDatabase>): Promise<StoredCiState> {
  const state: StoredCiState = {
    jobs: [],
    executorSpecs: [],
    executors: [],
    triggerStates: [],
    builds: [],
    lastNumbers: new Map(),
  };

  const meta = await trx.selectFrom('ci_meta').selectAll().where('key', '=', FRAMEWORK_ID_KEY).executeTakeFirst();
  // Absent rather than `frameworkId: undefined`, so the state equals the one that was saved.
  if (meta) state.frameworkId = meta.value;

  for (const row of await trx.selectFrom('jobs').selectAll().orderBy('name').execute()) {
    state.jobs.push({ name: row.name, doc: fromJson(row.doc) });
  }
  for (const row of await trx.selectFrom('executor_specs').selectAll().orderBy('label').execute()) {
    state.executorSpecs.push({ label: row.label, doc: fromJson(row.doc) });
  }
  for (const row of await trx.selectFrom('executors').selectAll().orderBy('id').execute()) {
    state.executors.push({ id: row.id, doc: fromJson(row.doc) });
  }
  for (const row of await trx.selectFrom('trigger_states').selectAll().orderBy('job').execute()) {
    state.triggerStates.push({ job: row.job, doc: fromJson(row.doc) });
  }

  const unfinished = (await selectUnfinishedBuilds(trx).execute()).map(toStoredBuild);
  const lastFinished = (await selectLastFinishedBuilds(trx).execute()).map(toStoredBuild);
  state.builds = [...unfinished, ...lastFinished].sort(byJobAndNumber);

  for (const row of await trx.selectFrom('job_numbers').selectAll().orderBy('job').execute()) {
    state.lastNumbers.set(row.job, Number(row.last_number));
  }
  return state;
}

function byJobAndNumber(a: StoredBuild, b: StoredBuild): number {
  if (a.job !== b.job) return a.job < b.job ? -1 : 1;
  return a.number - b.number;
}

/**
 * Names a change in an error message: its type and its key. May throw on a malformed change
 * (`writeBatch` then calls it malformed).
 */
function describeChange(change: CiChange): string {
  switch (change.type) {
    case 'FRAMEWORK_ID':
      return `FRAMEWORK_ID ${change.frameworkId}`;
    case 'JOB_SAVED':
      return `JOB_SAVED of job ${change.name}`;
    case 'JOB_REMOVED':
      return `JOB_REMOVED of job ${change.name}`;
    case 'EXECUTOR_SPEC_SAVED':
      return `EXECUTOR_SPEC_SAVED of label ${change.label}`;
    case 'EXECUTOR_SPEC_REMOVED':
      return `EXECUTOR_SPEC_REMOVED of label ${change.label}`;
    case 'BUILD_SAVED':
      return `BUILD_SAVED of build ${String(change.build.number)} of job ${change.build.job}`;
    case 'EXECUTOR_SAVED':
      return `EXECUTOR_SAVED of executor ${change.id}`;
    case 'EXECUTOR_REMOVED':
      return `EXECUTOR_REMOVED of executor ${change.id}`;
    case 'TRIGGER_STATE_SAVED':
      return `TRIGGER_STATE_SAVED of job ${change.job}`;
    default:
      return `a change of unknown type ${JSON.stringify((change as { type?: unknown }).type)}`;
  }
}
