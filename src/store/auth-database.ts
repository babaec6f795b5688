import type { ColumnType, Migration } from 'kysely';
import type { Millis } from './master-database.ts';
import { migration0001Auth } from './migrations/auth/0001-auth.ts';
import { migration0002Policies } from './migrations/auth/0002-policies.ts';
import { migration0003Secrets } from './migrations/auth/0003-secrets.ts';
import { migration0004AuditVia } from './migrations/auth/0004-audit-via.ts';

/** The tables of the authentication database (`auth.db`), as Kysely sees them, and its migrations. */

type MillisOrNull = ColumnType<number | string | null, number | null, number | null>;

export interface TokensTable {
  id: string;
  name: string;
  /** JSON of the policy names. */
  policies: string;
  /** Hex SHA-256 of the token text. */
  hash: string;
  created_at: Millis;
  expires_at: MillisOrNull;
  revoked_at: MillisOrNull;
}

export interface AuditTable {
  seq: Millis;
  at: Millis;
  token_id: string | null;
  name: string;
  method: string;
  path: string;
  status: ColumnType<number | string, number, number>;
  remote: string;
  request_id: string;
  /** The part that reported it (0004), null for the master's own. */
  via: string | null;
}

export interface PoliciesTable {
  name: string;
  /** JSON of the policy (src/auth/policy.ts `Policy`). */
  doc: string;
}

export interface SecretsTable {
  name: string;
  /** The value sealed by lib's SecretBox (`v1:<iv>:<tag>:<ciphertext>`). */
  sealed: string;
  version: ColumnType<number | string, number, number>;
  created_at: Millis;
  updated_at: Millis;
  updated_by: string;
}

export interface AuthDatabase {
  tokens: TokensTable;
  audit: AuditTable;
  policies: PoliciesTable;
  secrets: SecretsTable;
}

/** Every migration of the authentication database, by name. Append only (see master-database.ts). */
export const AUTH_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-auth': migration0001Auth,
  '0002-policies': migration0002Policies,
  '0003-secrets': migration0003Secrets,
  '0004-audit-via': migration0004AuditVia,
};
