import type { AuditStore } from './audit-log.ts';
import type { AuditEntry } from './http-gate.ts';

/**
 * The audit log of a part that runs apart from the master (`slipway apps`, `slipway ci`): its
 * entries are appended to the master's log (`POST /auth/v1/audit`, with the part's own token,
 * which the master records as `via`), so that every change of the cluster is in one log, in the
 * master's store, readable through `GET /auth/v1/audit`. AuditLog batches and keeps a batch the
 * master did not take for the next write.
 */
export class RemoteAuditStore implements AuditStore {
  constructor(
    private readonly masterUrl: string,
    private readonly token: string | undefined,
  ) {}

  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    const r = await fetch(new URL('/auth/v1/audit', this.masterUrl), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(this.token !== undefined ? { Authorization: `Bearer ${this.token}` } : {}) },
      body: JSON.stringify({ entries }),
      signal: AbortSignal.timeout(10_000),
    });
    if (r.status !== 204) throw new Error(`the master refused the audit entries: ${r.status} ${(await r.text()).slice(0, 300)}`);
  }

  async listAudit(o: { limit: number; before?: number }): Promise<(AuditEntry & { seq: number })[]> {
    const q = new URLSearchParams({ limit: String(o.limit), ...(o.before !== undefined ? { before: String(o.before) } : {}) });
    const r = await fetch(new URL(`/auth/v1/audit?${q}`, this.masterUrl), { headers: this.token !== undefined ? { Authorization: `Bearer ${this.token}` } : {} });
    if (!r.ok) throw new Error(`the master's audit log: ${r.status} ${(await r.text()).slice(0, 300)}`);
    const body = (await r.json()) as { entries: (Omit<AuditEntry, 'at'> & { at: string; seq: number })[] };
    return body.entries.map((e) => ({ ...e, at: Date.parse(e.at) }));
  }
}
