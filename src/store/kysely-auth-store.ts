import type { Kysely } from 'kysely';
import type { AuditEntry } from '../auth/http-gate.ts';
import type { StoredToken, TokenStore } from '../auth/tokens.ts';
import { readPolicy, type PolicyStore } from '../auth/policy-registry.ts';
import type { Policy } from '../auth/policy.ts';
import type { SecretStore, StoredSecret } from '../auth/secret-registry.ts';
import type { AuthDatabase } from './auth-database.ts';
import { CallQueue } from './call-queue.ts';
import { fromJson, toJson } from './json-column.ts';
import type { StoreDatabase, StoreDatabases } from './store-database.ts';

/**
 * Tokens, policies, the secret store (sealed values only) and the audit log (src/auth) in the
 * authentication database. Tokens are written through
 * (a created token answers once it is durable); audit entries are appended in batches (`appendAudit`
 * resolves once the batch holding them is written).
 */
export class KyselyAuthStore implements TokenStore, PolicyStore, SecretStore {
  private readonly db: Kysely<AuthDatabase>;
  private readonly calls = new CallQueue('auth store');

  constructor(private readonly database: StoreDatabase<AuthDatabase>) {
    this.db = database.db;
  }

  static async open(databases: StoreDatabases): Promise<KyselyAuthStore> {
    return new KyselyAuthStore(await databases.open('auth'));
  }

  loadTokens(): Promise<StoredToken[]> {
    return this.calls.run('load tokens', async () => {
      const rows = await this.db.selectFrom('tokens').selectAll().orderBy('created_at').execute();
      return rows.map((r) => {
        const policies = fromJson(r.policies);
        const t: StoredToken = { id: r.id, name: r.name, policies: Array.isArray(policies) ? policies.filter((p): p is string => typeof p === 'string') : [], hash: r.hash, createdAt: Number(r.created_at) };
        if (r.expires_at !== null) t.expiresAt = Number(r.expires_at);
        if (r.revoked_at !== null) t.revokedAt = Number(r.revoked_at);
        return t;
      });
    });
  }

  saveToken(t: StoredToken): Promise<void> {
    const row = { name: t.name, policies: toJson(t.policies), hash: t.hash, created_at: t.createdAt, expires_at: t.expiresAt ?? null, revoked_at: t.revokedAt ?? null };
    return this.calls.run('save token', async () => {
      await this.db.insertInto('tokens').values({ id: t.id, ...row }).onConflict((oc) => oc.column('id').doUpdateSet(row)).execute();
    });
  }

  /** The stored policies, each read back through readPolicy (a document that no longer reads is an error naming it). */
  loadPolicies(): Promise<Policy[]> {
    return this.calls.run('load policies', async () => {
      const rows = await this.db.selectFrom('policies').selectAll().orderBy('name').execute();
      return rows.map((r) => readPolicy(r.name, fromJson(r.doc)));
    });
  }

  savePolicy(policy: Policy): Promise<void> {
    const doc = toJson({ description: policy.description, rules: policy.rules });
    return this.calls.run('save policy', async () => {
      await this.db.insertInto('policies').values({ name: policy.name, doc }).onConflict((oc) => oc.column('name').doUpdateSet({ doc })).execute();
    });
  }

  deletePolicy(name: string): Promise<void> {
    return this.calls.run('delete policy', async () => {
      await this.db.deleteFrom('policies').where('name', '=', name).execute();
    });
  }

  loadSecrets(): Promise<StoredSecret[]> {
    return this.calls.run('load secrets', async () => {
      const rows = await this.db.selectFrom('secrets').selectAll().orderBy('name').execute();
      return rows.map((r) => ({ name: r.name, sealed: r.sealed, version: Number(r.version), createdAt: Number(r.created_at), updatedAt: Number(r.updated_at), updatedBy: r.updated_by }));
    });
  }

  saveSecret(s: StoredSecret): Promise<void> {
    const row = { sealed: s.sealed, version: s.version, created_at: s.createdAt, updated_at: s.updatedAt, updated_by: s.updatedBy };
    return this.calls.run('save secret', async () => {
      await this.db.insertInto('secrets').values({ name: s.name, ...row }).onConflict((oc) => oc.column('name').doUpdateSet(row)).execute();
    });
  }

  deleteSecret(name: string): Promise<void> {
    return this.calls.run('delete secret', async () => {
      await this.db.deleteFrom('secrets').where('name', '=', name).execute();
    });
  }

  appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    const batch = entries.slice();
    return this.calls.run('append audit', () =>
      this.db.transaction().execute(async (trx) => {
        const top = await trx.selectFrom('audit').select((eb) => eb.fn.max('seq').as('top')).executeTakeFirst();
        let seq = Number(top?.top ?? 0);
        for (const e of batch) {
          seq++;
          await trx
            .insertInto('audit')
            .values({ seq, at: e.at, token_id: e.tokenId ?? null, name: e.name, method: e.method, path: e.path, status: e.status, remote: e.remote, request_id: e.requestId, via: e.via ?? null })
            .execute();
        }
      }),
    );
  }

  /** The newest `limit` entries before `before` (a seq), newest first. */
  listAudit(o: { limit: number; before?: number }): Promise<(AuditEntry & { seq: number })[]> {
    return this.calls.run('list audit', async () => {
      let q = this.db.selectFrom('audit').selectAll().orderBy('seq', 'desc').limit(o.limit);
      if (o.before !== undefined) q = q.where('seq', '<', o.before);
      const rows = await q.execute();
      return rows.map((r) => ({ seq: Number(r.seq), at: Number(r.at), tokenId: r.token_id ?? undefined, name: r.name, method: r.method, path: r.path, status: Number(r.status), remote: r.remote, requestId: r.request_id, ...(r.via !== null ? { via: r.via } : {}) }));
    });
  }

  close(): Promise<void> {
    return this.calls.close(() => this.database.close());
  }
}
