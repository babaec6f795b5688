import type { ColumnType, Migration } from 'kysely';
import { migration0001Master } from './migrations/0001-master.ts';
import { migration0002UnreachableAndRole } from './migrations/0002-unreachable-and-role.ts';
import { migration0003AgentMaintenance } from './migrations/0003-agent-maintenance.ts';
import { migration0004AgentCredential } from './migrations/0004-agent-credential.ts';

/**
 * The tables of the master's database (`slipway.db` in SQLite), as Kysely sees them, and its
 * migrations. Opened by a factory of `store-database.ts` (`sqliteDatabases(dataDir).open('master')`),
 * which migrates it to the latest of `MIGRATIONS`.
 *
 * The column types describe what both dialects return, because PostgreSQL will use the same
 * tables: `bigint` comes back as a number from better-sqlite3 but as a string from `pg`, so
 * readers convert with `Number()`. JSON columns hold text (`JSON.stringify` of the value).
 */

/** Integer milliseconds since the epoch, in a `bigint` column. */
export type Millis = ColumnType<number | string, number, number>;
type MillisOrNull = ColumnType<number | string | null, number | null, number | null>;

export interface FrameworksTable {
  id: string;
  /** JSON of `FrameworkInfo`; `null` (the JSON text) for an id removed without ever being saved. */
  info: string;
  registered_at: Millis;
  /** Set once the framework is torn down or timed out; never cleared (its id is retired). */
  removed_at: MillisOrNull;
}

export interface AgentsTable {
  id: string;
  hostname: string;
  url: string | null;
  /** JSON of `Resource[]`. */
  resources: string;
  /** JSON of `Attribute[]`. */
  attributes: string;
  registered_at: Millis;
  /** Set once the operator removes the agent; never cleared (its id is refused for good). */
  removed_at: MillisOrNull;
  /** Set while the agent is unreachable (migration 0002). */
  unreachable_at: MillisOrNull;
  /** JSON of `AgentMaintenance` while the operator deactivated or drains the agent, else null (migration 0003). */
  maintenance: string | null;
  /** The token id the agent's id is bound to (migration 0004). */
  credential: string | null;
}

export interface TasksTable {
  framework_id: string;
  task_id: string;
  agent_id: string;
  /** JSON of `TaskInfo`. */
  info: string;
  /** A `TaskState` name. */
  state: string;
  /** JSON of the latest `TaskStatus`, if any. */
  status: string | null;
  /** The role the task's resources were allocated to (migration 0002). */
  role: string | null;
}

export interface WeightsTable {
  role: string;
  weight: number;
}

export interface QuotasTable {
  role: string;
  /** JSON of `Record<resource name, amount>`; never `{}` (an empty quota is no row). */
  limits: string;
}

export interface MasterDatabase {
  frameworks: FrameworksTable;
  agents: AgentsTable;
  tasks: TasksTable;
  weights: WeightsTable;
  quotas: QuotasTable;
}

/**
 * Every migration of the master's database, by name. Append only: a new migration gets the next
 * number and a name that sorts after every other (Kysely runs them in name order and refuses a
 * database whose executed migrations are not a prefix of this list). A committed migration is
 * never edited or removed.
 */
export const MASTER_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-master': migration0001Master,
  '0002-unreachable-and-role': migration0002UnreachableAndRole,
  '0003-agent-maintenance': migration0003AgentMaintenance,
  '0004-agent-credential': migration0004AgentCredential,
};
