import type { Kysely } from 'kysely';
import type { ConfigEnvironment, ConfigService } from '../config/config-definitions.ts';
import type { ConfigStore, StoredGray, StoredRelease, StoredRollout, StoredValues } from '../config/config-store.ts';
import { CallQueue } from './call-queue.ts';
import type { ConfigDatabase } from './config-database.ts';
import { fromJson, toJson } from './json-column.ts';
import type { StoreDatabase, StoreDatabases } from './store-database.ts';

/**
 * The config center's state in its database. Every write is one statement (a values version, a
 * release: all or nothing), answered once durable; the center changes its memory only after.
 */
export class KyselyConfigStore implements ConfigStore {
  private readonly db: Kysely<ConfigDatabase>;
  private readonly calls = new CallQueue('config store');

  constructor(private readonly database: StoreDatabase<ConfigDatabase>) {
    this.db = database.db;
  }

  static async open(databases: StoreDatabases): Promise<KyselyConfigStore> {
    return new KyselyConfigStore(await databases.open('config'));
  }

  load(): ReturnType<ConfigStore['load']> {
    return this.calls.run('load', async () => {
      const services = (await this.db.selectFrom('services').selectAll().orderBy('name').execute()).map((r) => fromJson(r.doc) as ConfigService);
      const environments = (await this.db.selectFrom('environments').selectAll().orderBy('name').execute()).map((r) => fromJson(r.doc) as ConfigEnvironment);
      const values = (await this.db.selectFrom('config_values').selectAll().orderBy('version').execute()).map((r) => fromJson(r.doc) as StoredValues);
      const releases = (await this.db.selectFrom('releases').selectAll().orderBy('version').execute()).map((r) => fromJson(r.doc) as StoredRelease);
      const rollouts = (await this.db.selectFrom('rollouts').selectAll().orderBy('started_at').execute()).map((r) => fromJson(r.doc) as StoredRollout);
      const grays = (await this.db.selectFrom('grays').selectAll().orderBy('started_at').execute()).map((r) => fromJson(r.doc) as StoredGray);
      return { services, environments, values, releases, rollouts, grays };
    });
  }

  saveService(s: ConfigService): Promise<void> {
    const doc = toJson(s);
    return this.calls.run('save service', async () => {
      await this.db.insertInto('services').values({ name: s.name, doc }).onConflict((oc) => oc.column('name').doUpdateSet({ doc })).execute();
    });
  }

  deleteService(name: string): Promise<void> {
    return this.calls.run('delete service', async () => {
      await this.db.deleteFrom('services').where('name', '=', name).execute();
    });
  }

  saveEnvironment(e: ConfigEnvironment): Promise<void> {
    const doc = toJson(e);
    return this.calls.run('save environment', async () => {
      await this.db.insertInto('environments').values({ name: e.name, doc }).onConflict((oc) => oc.column('name').doUpdateSet({ doc })).execute();
    });
  }

  deleteEnvironment(name: string): Promise<void> {
    return this.calls.run('delete environment', async () => {
      await this.db.deleteFrom('environments').where('name', '=', name).execute();
    });
  }

  appendValues(v: StoredValues): Promise<void> {
    const doc = toJson(v);
    return this.calls.run('append values', async () => {
      await this.db.insertInto('config_values').values({ scope: v.scope, version: v.version, doc }).execute();
    });
  }

  appendRelease(r: StoredRelease): Promise<void> {
    const doc = toJson(r);
    return this.calls.run('append release', async () => {
      await this.db.insertInto('releases').values({ service: r.service, env: r.env, version: r.version, doc }).execute();
    });
  }

  recordAuditCommit(service: string, env: string, version: number, commit: string): Promise<void> {
    return this.calls.run('record audit commit', async () => {
      const row = await this.db.selectFrom('releases').select('doc').where('service', '=', service).where('env', '=', env).where('version', '=', version).executeTakeFirst();
      if (row === undefined) return;
      const doc = { ...(fromJson(row.doc) as StoredRelease), auditCommit: commit };
      await this.db.updateTable('releases').set({ doc: toJson(doc) }).where('service', '=', service).where('env', '=', env).where('version', '=', version).execute();
    });
  }

  saveRollout(r: StoredRollout): Promise<void> {
    const doc = toJson(r);
    return this.calls.run('save rollout', async () => {
      await this.db.insertInto('rollouts').values({ id: r.id, started_at: r.startedAt, doc }).onConflict((oc) => oc.column('id').doUpdateSet({ doc })).execute();
    });
  }

  saveGray(g: StoredGray): Promise<void> {
    const doc = toJson(g);
    return this.calls.run('save gray', async () => {
      await this.db.insertInto('grays').values({ id: g.id, started_at: g.startedAt, doc }).onConflict((oc) => oc.column('id').doUpdateSet({ doc })).execute();
    });
  }

  close(): Promise<void> {
    return this.calls.close(() => this.database.close());
  }
}
