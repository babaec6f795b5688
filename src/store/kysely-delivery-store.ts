import type { Kysely } from 'kysely';
import type { DeliveryEnvironment, DeliveryRelease, DeliveryService } from '../delivery/delivery-definitions.ts';
import type { DeliveryStore, StoredPromotion } from '../delivery/delivery-store.ts';
import { CallQueue } from './call-queue.ts';
import type { DeliveryDatabase } from './delivery-database.ts';
import { fromJson, toJson } from './json-column.ts';
import type { StoreDatabase, StoreDatabases } from './store-database.ts';

/**
 * Delivery's state in its database. Every write is one statement, answered once durable; the
 * center changes its memory only after. A release's version is unique in its service by the
 * primary key: a second append of it writes nothing and answers false.
 */
export class KyselyDeliveryStore implements DeliveryStore {
  private readonly db: Kysely<DeliveryDatabase>;
  private readonly calls = new CallQueue('delivery store');

  constructor(private readonly database: StoreDatabase<DeliveryDatabase>) {
    this.db = database.db;
  }

  static async open(databases: StoreDatabases): Promise<KyselyDeliveryStore> {
    return new KyselyDeliveryStore(await databases.open('delivery'));
  }

  load(): ReturnType<DeliveryStore['load']> {
    return this.calls.run('load', async () => {
      const services = (await this.db.selectFrom('services').selectAll().orderBy('name').execute()).map((r) => fromJson(r.doc) as DeliveryService);
      const environments = (await this.db.selectFrom('environments').selectAll().orderBy('name').execute()).map((r) => fromJson(r.doc) as DeliveryEnvironment);
      const releases = (await this.db.selectFrom('releases').selectAll().orderBy('created_at').execute()).map((r) => fromJson(r.doc) as DeliveryRelease);
      const promotions = (await this.db.selectFrom('promotions').selectAll().orderBy('created_at').execute()).map((r) => fromJson(r.doc) as StoredPromotion);
      return { services, environments, releases, promotions };
    });
  }

  saveService(s: DeliveryService): Promise<void> {
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

  saveEnvironment(e: DeliveryEnvironment): Promise<void> {
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

  appendRelease(r: DeliveryRelease): Promise<boolean> {
    const doc = toJson(r);
    return this.calls.run('append release', async () => {
      const result = await this.db.insertInto('releases').values({ service: r.service, version: r.version, created_at: r.createdAt, doc }).onConflict((oc) => oc.columns(['service', 'version']).doNothing()).executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
    });
  }

  savePromotion(p: StoredPromotion): Promise<void> {
    const doc = toJson(p);
    return this.calls.run('save promotion', async () => {
      await this.db.insertInto('promotions').values({ id: p.id, created_at: p.createdAt, doc }).onConflict((oc) => oc.column('id').doUpdateSet({ doc })).execute();
    });
  }

  close(): Promise<void> {
    return this.calls.close(() => this.database.close());
  }
}
