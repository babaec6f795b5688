import type { Kysely, Transaction } from 'kysely';
import type {
  AppsChange,
  AppsStore,
  StoredAppsState,
  StoredDeployment,
  StoredInstance,
} from '../frameworks/apps/apps-store.ts';
import { MAX_VERSIONS_PER_APP, readStoredApp } from '../frameworks/apps/apps-store.ts';
import type { AppsDatabase } from './apps-database.ts';
import { CallQueue } from './call-queue.ts';
import type { StoreDatabase, StoreDatabases } from './store-database.ts';
import { fromJson, toJson } from './json-column.ts';
import { writeBatch } from './write-batch.ts';

/** The key of the framework id in `apps_meta`. */
const FRAMEWORK_ID_KEY = 'framework_id';

export interface KyselyAppsStoreOptions {
  /** How many versions of an app are kept (oldest dropped); Marathon's `--max_versions`. Default `MAX_VERSIONS_PER_APP`. */
  maxVersionsPerApp?: number;
}

/**
 * The services framework's store, over any database a factory of `store-database.ts` makes
 * (SQLite's `<dataDir>/apps.db` in the embedded default). A database of its own (its migrations
 * are `APPS_MIGRATIONS`), so that the framework can run in its own process with its own data dir
 * or share the master's data dir in `slipway up`.
 *
 * Contract (beyond `AppsStore`'s):
 * - Calls run one at a time in call order, `load` included: a `load` sees every `write` called
 *   before it, and batches commit in the order they were handed in even if the caller does not
 *   await them. A failed `write` does not hold up the ones queued behind it.
 * - `write` resolves once its transaction committed (WAL, `synchronous = NORMAL`: a committed batch
 *   survives a crash of the process in SQLite; see sqlite-database.ts for what an OS crash may lose).
 * - A failed `write` rejects with `StoreWriteFailed`, naming the change that failed; nothing of
 *   its batch is applied. A document JSON cannot hold (a BigInt, a cycle, `undefined`) fails.
 * - Versions: APP_SAVED sets the app's current definition and records `app.version` as the app's
 *   newest version. Saving a version the app already has replaces that row (one row per version)
 *   and makes it the newest, so the current definition is always the last version and is never
 *   the one pruned. Past `maxVersionsPerApp` versions the oldest are deleted. A database written
 *   with a higher limit loads at most the newest `maxVersionsPerApp` (the rest are deleted at the
 *   app's next save).
 * - APP_REMOVED deletes the app and its versions, not its instances or deployments: those are
 *   the framework's to remove.
 * - `load` lists apps, deployments and instances by key (the port promises no order), and each
 *   app's versions oldest first.
 * - `close` waits for queued calls, then closes its database; later calls reject with `StoreClosed`.
 *
 * The SQL is portable (upserts by `ON CONFLICT ... DO UPDATE`, `LIMIT ... OFFSET`), so that a
 * PostgreSQL store can run the same statements over the same migrations.
 */
export class KyselyAppsStore implements AppsStore {
  private readonly db: Kysely<AppsDatabase>;
  private readonly maxVersionsPerApp: number;
  private readonly calls = new CallQueue('apps store');

  /**
   * A store over `database` (open and migrated), which it owns from now on: `close` closes it.
   * Throws a `RangeError` if `maxVersionsPerApp` is not a whole number of at least 1 (the
   * database is then still the caller's).
   */
  constructor(
    private readonly database: StoreDatabase<AppsDatabase>,
    options: KyselyAppsStoreOptions = {},
  ) {
    this.db = database.db;
    this.maxVersionsPerApp = maxVersionsOf(options);
  }

  /**
   * Opens the services framework's database of `databases` (e.g. `sqliteDatabases(dataDir)`) and
   * a store over it. Throws a `RangeError`, opening nothing, if `maxVersionsPerApp` is not a
   * whole number of at least 1.
   */
  static async open(databases: StoreDatabases, options: KyselyAppsStoreOptions = {}): Promise<KyselyAppsStore> {
    maxVersionsOf(options);
    return new KyselyAppsStore(await databases.open('apps'), options);
  }

  load(): Promise<StoredAppsState> {
    return this.calls.run('load', () => this.db.transaction().execute((trx) => readState(trx, this.maxVersionsPerApp)));
  }

  write(changes: readonly AppsChange[]): Promise<void> {
    // Copied now: the caller may reuse its array as soon as this returns.
    const batch = changes.slice();
    const apply = (trx: Transaction<AppsDatabase>, change: AppsChange) => applyChange(trx, change, this.maxVersionsPerApp);
    return this.calls.run('write', () => writeBatch(this.db, batch, apply, describeChange, 'apps store'));
  }

  close(): Promise<void> {
    return this.calls.close(() => this.database.close());
  }
}

function maxVersionsOf(options: KyselyAppsStoreOptions): number {
  const maxVersionsPerApp = options.maxVersionsPerApp ?? MAX_VERSIONS_PER_APP;
  if (!Number.isSafeInteger(maxVersionsPerApp) || maxVersionsPerApp < 1) {
    throw new RangeError(`maxVersionsPerApp must be a whole number of at least 1, not ${maxVersionsPerApp}`);
  }
  return maxVersionsPerApp;
}

async function applyChange(trx: Transaction<AppsDatabase>, change: AppsChange, maxVersions: number): Promise<void> {
  switch (change.type) {
    case 'FRAMEWORK_ID':
      await trx
        .insertInto('apps_meta')
        .values({ key: FRAMEWORK_ID_KEY, value: change.frameworkId })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: change.frameworkId }))
        .execute();
      return;
    case 'APP_SAVED': {
      const { id, version } = change.app;
      const doc = toJson(change.app);
      await trx
        .insertInto('apps')
        .values({ id, doc })
        .onConflict((oc) => oc.column('id').doUpdateSet({ doc }))
        .execute();
      await saveVersion(trx, id, version, doc, maxVersions);
      return;
    }
    case 'APP_REMOVED':
      await trx.deleteFrom('app_versions').where('app_id', '=', change.appId).execute();
      await trx.deleteFrom('apps').where('id', '=', change.appId).execute();
      return;
    case 'DEPLOYMENT_SAVED': {
      const doc = toJson(change.deployment.doc);
      await trx
        .insertInto('deployments')
        .values({ id: change.deployment.id, doc })
        .onConflict((oc) => oc.column('id').doUpdateSet({ doc }))
        .execute();
      return;
    }
    case 'DEPLOYMENT_REMOVED':
      await trx.deleteFrom('deployments').where('id', '=', change.id).execute();
      return;
    case 'INSTANCE_SAVED': {
      const row = { app_id: change.instance.appId, doc: toJson(change.instance.doc) };
      await trx
        .insertInto('instances')
        .values({ task_id: change.instance.taskId, ...row })
        .onConflict((oc) => oc.column('task_id').doUpdateSet(row))
        .execute();
      return;
    }
    case 'INSTANCE_REMOVED':
      await trx.deleteFrom('instances').where('task_id', '=', change.taskId).execute();
      return;
    default: {
      const unknown: never = change;
      throw new Error(`unknown change type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}

/** Records `version` as the newest of the app's versions, then drops those past `maxVersions`. */
async function saveVersion(
  trx: Transaction<AppsDatabase>,
  appId: string,
  version: string,
  doc: string,
  maxVersions: number,
): Promise<void> {
  const { top } = await trx
    .selectFrom('app_versions')
    .select((eb) => eb.fn.max('seq').as('top'))
    .where('app_id', '=', appId)
    .executeTakeFirstOrThrow();
  const seq = Number(top ?? 0) + 1;
  await trx
    .insertInto('app_versions')
    .values({ app_id: appId, version, seq, doc })
    .onConflict((oc) => oc.columns(['app_id', 'version']).doUpdateSet({ seq, doc }))
    .execute();

  // The newest version beyond the limit, if any: it and everything older go.
  const cut = await trx
    .selectFrom('app_versions')
    .select('seq')
    .where('app_id', '=', appId)
    .orderBy('seq', 'desc')
    .limit(1)
    .offset(maxVersions)
    .executeTakeFirst();
  if (cut) {
    await trx.deleteFrom('app_versions').where('app_id', '=', appId).where('seq', '<=', Number(cut.seq)).execute();
  }
}

async function readState(trx: Transaction<AppsDatabase>, maxVersions: number): Promise<StoredAppsState> {
  const state: StoredAppsState = { apps: [], versions: new Map(), deployments: [], instances: [] };

  const meta = await trx.selectFrom('apps_meta').selectAll().where('key', '=', FRAMEWORK_ID_KEY).executeTakeFirst();
  // Absent rather than `frameworkId: undefined`, so the state equals the one that was saved.
  if (meta) state.frameworkId = meta.value;

  for (const row of await trx.selectFrom('apps').selectAll().orderBy('id').execute()) {
    state.apps.push(readStoredApp(fromJson(row.doc)));
  }

  const versions = await trx
    .selectFrom('app_versions')
    .select(['app_id', 'doc'])
    .orderBy('app_id')
    .orderBy('seq')
    .execute();
  for (const row of versions) {
    let list = state.versions.get(row.app_id);
    if (!list) state.versions.set(row.app_id, (list = []));
    list.push(readStoredApp(fromJson(row.doc)));
  }
  // Only after a re-open with a lower limit: rows past it stay until the app's next save.
  for (const [appId, list] of state.versions) {
    if (list.length > maxVersions) state.versions.set(appId, list.slice(-maxVersions));
  }

  for (const row of await trx.selectFrom('deployments').selectAll().orderBy('id').execute()) {
    const deployment: StoredDeployment = { id: row.id, doc: fromJson(row.doc) };
    state.deployments.push(deployment);
  }
  for (const row of await trx.selectFrom('instances').selectAll().orderBy('task_id').execute()) {
    const instance: StoredInstance = { taskId: row.task_id, appId: row.app_id, doc: fromJson(row.doc) };
    state.instances.push(instance);
  }
  return state;
}

/**
 * Names a change in an error message: its type and its key. May throw on a malformed change
 * (`writeBatch` then calls it malformed).
 */
function describeChange(change: AppsChange): string {
  switch (change.type) {
    case 'FRAMEWORK_ID':
      return `FRAMEWORK_ID ${change.frameworkId}`;
    case 'APP_SAVED':
      return `APP_SAVED of app ${change.app.id} version ${change.app.version}`;
    case 'APP_REMOVED':
      return `APP_REMOVED of app ${change.appId}`;
    case 'DEPLOYMENT_SAVED':
      return `DEPLOYMENT_SAVED of deployment ${change.deployment.id}`;
    case 'DEPLOYMENT_REMOVED':
      return `DEPLOYMENT_REMOVED of deployment ${change.id}`;
    case 'INSTANCE_SAVED':
      return `INSTANCE_SAVED of instance ${change.instance.taskId} of app ${change.instance.appId}`;
    case 'INSTANCE_REMOVED':
      return `INSTANCE_REMOVED of instance ${change.taskId}`;
    default:
      return `a change of unknown type ${JSON.stringify((change as { type?: unknown }).type)}`;
  }
}
