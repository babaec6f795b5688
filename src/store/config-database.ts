import type { ColumnType, Migration } from 'kysely';
import { migration0001Config } from './migrations/config/0001-config.ts';
import { migration0002Rollouts } from './migrations/config/0002-rollouts.ts';
import { migration0003Grays } from './migrations/config/0003-grays.ts';

/** The tables of the config center's database (`config.db`), as Kysely sees them, and its migrations. */

type Bigint = ColumnType<number | string, number, number>;

export interface DocTable {
  name: string;
  doc: string;
}

export interface ConfigValuesTable {
  scope: string;
  version: Bigint;
  /** JSON of StoredValues. */
  doc: string;
}

export interface ReleasesTable {
  service: string;
  env: string;
  version: Bigint;
  /** JSON of StoredRelease (rendered files sealed). */
  doc: string;
}

export interface RolloutsTable {
  id: string;
  started_at: Bigint;
  /** JSON of StoredRollout. */
  doc: string;
}

export interface ConfigDatabase {
  services: DocTable;
  environments: DocTable;
  config_values: ConfigValuesTable;
  releases: ReleasesTable;
  rollouts: RolloutsTable;
  grays: RolloutsTable;
}

/** Every migration of the config database, by name. Append only (see master-database.ts). */
export const CONFIG_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-config': migration0001Config,
  '0002-rollouts': migration0002Rollouts,
  '0003-grays': migration0003Grays,
};
