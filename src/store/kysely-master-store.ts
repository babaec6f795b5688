import type { Kysely, Transaction } from 'kysely';
import type {
  MasterChange,
  MasterStore,
  StoredAgent,
  StoredFramework,
  StoredState,
  StoredTask,
} from '../master/master-store.ts';
import {
  readAgentAttributes,
  readAgentMaintenance, readAgentResources,
  readFrameworkInfo,
  readQuotaLimits,
  readTaskInfo,
  readTaskState,
  readTaskStatus,
} from '../master/master-store.ts';
import type { MasterDatabase } from './master-database.ts';
import type { StoreDatabase, StoreDatabases } from './store-database.ts';
import { CallQueue } from './call-queue.ts';
import { fromJson, toJson } from './json-column.ts';
import { writeBatch } from './write-batch.ts';

/**
 * The master's store, over any database a factory of `store-database.ts` makes (SQLite's
 * `<dataDir>/slipway.db` in the embedded default).
 *
 * Contract (beyond `MasterStore`'s):
 * - Calls run one at a time in call order, `load` included: a `load` sees every `write` called
 *   before it, and batches commit in the order they were handed in even if the caller does not
 *   await them. A failed `write` does not hold up the ones queued behind it.
 * - A failed `write` rejects with `StoreWriteFailed`, naming the change that failed; nothing of
 *   its batch is applied.
 * - Removal is for good: FRAMEWORK_REMOVED / AGENT_REMOVED retire the id even if it was never
 *   saved, and a later *_SAVED of a retired id updates its row but does not bring it back.
 * - `close` waits for queued calls, then closes its database; later calls reject with `StoreClosed`.
 *
 * The SQL is portable (upserts by `ON CONFLICT ... DO UPDATE`, no SQLite-only clause), so that a
 * PostgreSQL store can run the same statements over the same migrations.
 */
export class KyselyMasterStore implements MasterStore {
  private readonly db: Kysely<MasterDatabase>;
  private readonly calls = new CallQueue('master store');

  /** A store over `database` (open and migrated), which it owns from now on: `close` closes it. */
  constructor(private readonly database: StoreDatabase<MasterDatabase>) {
    this.db = database.db;
  }

  /** Opens the master's database of `databases` (e.g. `sqliteDatabases(dataDir)`) and a store over it. */
  static async open(databases: StoreDatabases): Promise<KyselyMasterStore> {
    return new KyselyMasterStore(await databases.open('master'));
  }

  load(): Promise<StoredState> {
    return this.calls.run('load', () => this.db.transaction().execute((trx) => readState(trx)));
  }

  write(changes: readonly MasterChange[]): Promise<void> {
    // Copied now: the caller may reuse its journal array as soon as this returns.
    const batch = changes.slice();
    return this.calls.run('write', () => writeBatch(this.db, batch, applyChange, describeChange, 'master store'));
  }

  close(): Promise<void> {
    return this.calls.close(() => this.database.close());
  }
}

async function applyChange(trx: Transaction<MasterDatabase>, change: MasterChange): Promise<void> {
  switch (change.type) {
    case 'FRAMEWORK_SAVED': {
      const { id, info, registeredAt } = change.framework;
      const row = { info: toJson(info), registered_at: registeredAt };
      // removed_at is left alone on update: a retired id stays retired.
      await trx
        .insertInto('frameworks')
        .values({ id, ...row, removed_at: null })
        .onConflict((oc) => oc.column('id').doUpdateSet(row))
        .execute();
      return;
    }
    case 'FRAMEWORK_REMOVED': {
      // An upsert, not an UPDATE: retiring an id that was never saved must still retire it.
      // The placeholder row (`null` info) is never read back as a live framework.
      await trx
        .insertInto('frameworks')
        .values({ id: change.id, info: 'null', registered_at: change.removedAt, removed_at: change.removedAt })
        .onConflict((oc) => oc.column('id').doUpdateSet({ removed_at: change.removedAt }))
        .execute();
      await trx.deleteFrom('tasks').where('framework_id', '=', change.id).execute();
      return;
    }
    case 'AGENT_SAVED': {
      const a = change.agent;
      const row = {
        hostname: a.hostname,
        url: a.url ?? null,
        resources: toJson(a.resources),
        attributes: toJson(a.attributes),
        registered_at: a.registeredAt,
        unreachable_at: a.unreachableAt ?? null,
        maintenance: a.maintenance !== undefined ? toJson(a.maintenance) : null,
        credential: a.credential ?? null,
      };
      await trx
        .insertInto('agents')
        .values({ id: a.id, ...row, removed_at: null })
        .onConflict((oc) => oc.column('id').doUpdateSet(row))
        .execute();
      return;
    }
    case 'AGENT_REMOVED': {
      // As for frameworks: an upsert, so that an id never saved is refused all the same. The
      // agent's tasks are the master's business (it sends TASK_REMOVED or TASK_SAVED for them).
      await trx
        .insertInto('agents')
        .values({
          id: change.id,
          hostname: '',
          url: null,
          resources: '[]',
          attributes: '[]',
          registered_at: change.removedAt,
          removed_at: change.removedAt,
        })
        .onConflict((oc) => oc.column('id').doUpdateSet({ removed_at: change.removedAt }))
        .execute();
      return;
    }
    case 'TASK_SAVED': {
      const t = change.task;
      const row = {
        agent_id: t.agentId,
        info: toJson(t.info),
        state: t.state,
        status: t.status === undefined ? null : toJson(t.status),
        role: t.role ?? null,
      };
      await trx
        .insertInto('tasks')
        .values({ framework_id: t.frameworkId, task_id: t.taskId, ...row })
        .onConflict((oc) => oc.columns(['framework_id', 'task_id']).doUpdateSet(row))
        .execute();
      return;
    }
    case 'TASK_REMOVED':
      await trx
        .deleteFrom('tasks')
        .where('framework_id', '=', change.frameworkId)
        .where('task_id', '=', change.taskId)
        .execute();
      return;
    case 'WEIGHT_SET':
      await trx
        .insertInto('weights')
        .values({ role: change.role, weight: change.weight })
        .onConflict((oc) => oc.column('role').doUpdateSet({ weight: change.weight }))
        .execute();
      return;
    case 'QUOTA_SET':
      if (Object.keys(change.limits).length === 0) {
        await trx.deleteFrom('quotas').where('role', '=', change.role).execute();
      } else {
        const limits = toJson(change.limits);
        await trx
          .insertInto('quotas')
          .values({ role: change.role, limits })
          .onConflict((oc) => oc.column('role').doUpdateSet({ limits }))
          .execute();
      }
      return;
    default: {
      const unknown: never = change;
      throw new Error(`unknown change type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}

async function readState(trx: Transaction<MasterDatabase>): Promise<StoredState> {
  const state: StoredState = {
    frameworks: [],
    removedFrameworks: [],
    agents: [],
    removedAgents: [],
    tasks: [],
    weights: {},
    quotas: {},
  };

  for (const row of await trx.selectFrom('frameworks').selectAll().orderBy('id').execute()) {
    if (row.removed_at !== null) {
      state.removedFrameworks.push(row.id);
      continue;
    }
    const framework: StoredFramework = {
      id: row.id,
      info: readFrameworkInfo(fromJson(row.info), row.id),
      registeredAt: Number(row.registered_at),
    };
    state.frameworks.push(framework);
  }

  for (const row of await trx.selectFrom('agents').selectAll().orderBy('id').execute()) {
    if (row.removed_at !== null) {
      state.removedAgents.push(row.id);
      continue;
    }
    const agent: StoredAgent = {
      id: row.id,
      hostname: row.hostname,
      resources: readAgentResources(fromJson(row.resources), row.id),
      attributes: readAgentAttributes(fromJson(row.attributes), row.id),
      registeredAt: Number(row.registered_at),
    };
    // Absent rather than `url: undefined`, so the object equals the one that was saved.
    if (row.url !== null) agent.url = row.url;
    if (row.unreachable_at !== null) agent.unreachableAt = Number(row.unreachable_at);
    if (row.credential !== null) agent.credential = row.credential;
    if (row.maintenance !== null) agent.maintenance = readAgentMaintenance(fromJson(row.maintenance), row.id);
    state.agents.push(agent);
  }

  const tasks = await trx.selectFrom('tasks').selectAll().orderBy('framework_id').orderBy('task_id').execute();
  for (const row of tasks) {
    const task: StoredTask = {
      frameworkId: row.framework_id,
      taskId: row.task_id,
      agentId: row.agent_id,
      info: readTaskInfo(fromJson(row.info), row.framework_id, row.task_id),
      state: readTaskState(row.state, row.framework_id, row.task_id),
    };
    if (row.status !== null) task.status = readTaskStatus(fromJson(row.status), row.framework_id, row.task_id);
    if (row.role !== null) task.role = row.role;
    state.tasks.push(task);
  }

  for (const row of await trx.selectFrom('weights').selectAll().orderBy('role').execute()) {
    state.weights[row.role] = Number(row.weight);
  }
  for (const row of await trx.selectFrom('quotas').selectAll().orderBy('role').execute()) {
    state.quotas[row.role] = readQuotaLimits(fromJson(row.limits), row.role);
  }
  return state;
}

/**
 * Names a change in an error message: its type and the key of its row. May throw on a malformed
 * change (`writeBatch` then calls it malformed).
 */
function describeChange(change: MasterChange): string {
  switch (change.type) {
    case 'FRAMEWORK_SAVED':
      return `FRAMEWORK_SAVED of framework ${change.framework.id}`;
    case 'FRAMEWORK_REMOVED':
      return `FRAMEWORK_REMOVED of framework ${change.id}`;
    case 'AGENT_SAVED':
      return `AGENT_SAVED of agent ${change.agent.id}`;
    case 'AGENT_REMOVED':
      return `AGENT_REMOVED of agent ${change.id}`;
    case 'TASK_SAVED':
      return `TASK_SAVED of task ${change.task.taskId} of framework ${change.task.frameworkId}`;
    case 'TASK_REMOVED':
      return `TASK_REMOVED of task ${change.taskId} of framework ${change.frameworkId}`;
    case 'WEIGHT_SET':
      return `WEIGHT_SET of role ${change.role}`;
    case 'QUOTA_SET':
      return `QUOTA_SET of role ${change.role}`;
    default:
      return `a change of unknown type ${JSON.stringify((change as { type?: unknown }).type)}`;
  }
}
