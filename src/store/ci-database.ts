import type { ColumnType, Migration } from 'kysely';
import { migration0001Ci } from './migrations/ci/0001-ci.ts';

/**
 * The tables of the CI framework's database (`ci.db`), as Kysely sees them, and its migrations.
 * A database of its own, apart from the master's and the services framework's: CI may run as its
 * own process with its own data dir, or inside `slipway up` beside the others, and either way
 * neither migrates nor reads the others' tables. A factory opens it and migrates it to the latest
 * of `CI_MIGRATIONS` (`sqliteDatabases(dataDir).open('ci')`, store-database.ts).
 *
 * As in master-database.ts, the column types say what both dialects return (`bigint` is a string from
 * `pg`); documents are JSON text.
 */

/** A `bigint` column: a number from better-sqlite3, a string from `pg` (read with `Number()`). */
type Bigint = ColumnType<number | string, number, number>;

/** Key/value facts of the framework; today only `framework_id`. */
export interface CiMetaTable {
  key: string;
  value: string;
}

export interface JobsTable {
  name: string;
  /** JSON of the job's `doc`. */
  doc: string;
}

export interface ExecutorSpecsTable {
  label: string;
  /** JSON of the spec's `doc`. */
  doc: string;
}

export interface ExecutorsTable {
  id: string;
  /** JSON of the executor's `doc`. */
  doc: string;
}

export interface TriggerStatesTable {
  /** The job whose triggers this is; deleted with the job. */
  job: string;
  /** JSON of the trigger state's `doc`. */
  doc: string;
}

export interface BuildsTable {
  job: string;
  number: Bigint;
  /** 1 once the build has ended, else 0 (`StoredBuild.finished`). */
  finished: Bigint;
  /** JSON of the build's `doc`. */
  doc: string;
}

export interface JobNumbersTable {
  job: string;
  /** The highest build number the job ever had; never lowered, kept when the job is removed. */
  last_number: Bigint;
}

export interface CiDatabase {
  ci_meta: CiMetaTable;
  jobs: JobsTable;
  executor_specs: ExecutorSpecsTable;
  executors: ExecutorsTable;
  trigger_states: TriggerStatesTable;
  builds: BuildsTable;
  job_numbers: JobNumbersTable;
}

/**
 * Every migration of the CI database, by name. Append only, under the same rules as the master's
 * `MASTER_MIGRATIONS` (README.md); the files live in `migrations/ci/`.
 */
export const CI_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-ci': migration0001Ci,
};
