import type { ColumnType, Migration } from 'kysely';
import { migration0001Delivery } from './migrations/delivery/0001-delivery.ts';

/** The tables of delivery's database (`delivery.db`), as Kysely sees them, and its migrations. */

type Bigint = ColumnType<number | string, number, number>;

export interface DeliveryDocTable {
  name: string;
  doc: string;
}

export interface DeliveryReleasesTable {
  service: string;
  version: string;
  created_at: Bigint;
  /** JSON of DeliveryRelease. */
  doc: string;
}

export interface PromotionsTable {
  id: string;
  created_at: Bigint;
  /** JSON of StoredPromotion. */
  doc: string;
}

export interface DeliveryDatabase {
  services: DeliveryDocTable;
  environments: DeliveryDocTable;
  releases: DeliveryReleasesTable;
  promotions: PromotionsTable;
}

/** Every migration of the delivery database, by name. Append only (see master-database.ts). */
export const DELIVERY_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-delivery': migration0001Delivery,
};
