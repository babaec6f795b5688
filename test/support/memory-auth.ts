import { AuditLog, type AuditStore } from '../../src/auth/audit-log.ts';
import { HttpGate, type AuditEntry } from '../../src/auth/http-gate.ts';
import { TokenRegistry, type StoredToken, type TokenStore } from '../../src/auth/tokens.ts';
import { PolicyRegistry, type PolicyStore } from '../../src/auth/policy-registry.ts';
import type { Policy } from '../../src/auth/policy.ts';
import { SecretRegistry, type SecretStore, type StoredSecret } from '../../src/auth/secret-registry.ts';
import { SystemClock } from '../../src/core/clock.ts';
import { SecretBox } from '../../src/lib/secret-box.ts';

/**
 * Authentication for a server a test builds by hand (buildMasterApp): tokens and the audit log in
 * memory, and an admin token to call it with.
 */
export async function memoryAuth(): Promise<{ auth: { gate: HttpGate; tokens: TokenRegistry; audit: AuditLog; policies: PolicyRegistry; secrets: SecretRegistry }; adminToken: string; audit: AuditEntry[] }> {
  const rows = new Map<string, StoredToken>();
  const entries: (AuditEntry & { seq: number })[] = [];
  const written = new Map<string, Policy>();
  const kept = new Map<string, StoredSecret>();
  const store: TokenStore & AuditStore & PolicyStore & SecretStore = {
    loadSecrets: () => Promise.resolve([...kept.values()]),
    saveSecret: (s) => {
      kept.set(s.name, { ...s });
      return Promise.resolve();
    },
    deleteSecret: (name) => {
      kept.delete(name);
      return Promise.resolve();
    },
    loadPolicies: () => Promise.resolve([...written.values()]),
    savePolicy: (p) => {
      written.set(p.name, p);
      return Promise.resolve();
    },
    deletePolicy: (name) => {
      written.delete(name);
      return Promise.resolve();
    },
    loadTokens: () => Promise.resolve([...rows.values()]),
    saveToken: (t) => {
      rows.set(t.id, { ...t });
      return Promise.resolve();
    },
    appendAudit: (batch) => {
      for (const e of batch) entries.push({ ...e, seq: entries.length + 1 });
      return Promise.resolve();
    },
    listAudit: (o) => Promise.resolve(entries.filter((e) => o.before === undefined || e.seq < o.before).reverse().slice(0, o.limit)),
  };
  const clock = new SystemClock();
  const policies = await PolicyRegistry.open(store);
  const tokens = await TokenRegistry.open(store, clock, (name) => policies.get(name));
  const secrets = await SecretRegistry.open(store, SecretBox.random(), clock);
  const { token } = await tokens.create({ name: 'admin', policies: ['admin'] });
  const audit = new AuditLog(store, { flushMs: 10 });
  const gate = new HttpGate({ resolve: (t) => tokens.resolve(t), now: () => clock.now(), audit: (e) => audit.record(e) });
  return { auth: { gate, tokens, audit, policies, secrets }, adminToken: token, audit: entries };
}
