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
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /**
   * Sends the entries in reports the master takes (fields cut to its bounds, at most
   * REPORT_ENTRIES each). A report the master refuses for what it is (4xx) would be refused again:
   * it is dropped, said in `log`. Unreachable or 5xx: rejects, and AuditLog keeps the batch.
   */
  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += REPORT_ENTRIES) {
      const report = entries.slice(i, i + REPORT_ENTRIES).map(bounded);
      const r = await fetch(new URL('/auth/v1/audit', this.masterUrl), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(this.token !== undefined ? { Authorization: `Bearer ${this.token}` } : {}) },
        body: JSON.stringify({ entries: report }),
        signal: AbortSignal.timeout(10_000),
      });
      if (r.status === 204) continue;
      const why = `${r.status} ${(await r.text()).slice(0, 300)}`;
      if (r.status >= 400 && r.status < 500) {
        this.log(`audit: the master refused ${report.length} entries (${why}); they are dropped`);
        continue;
      }
      throw new Error(`the master did not take the audit entries: ${why}`);
    }
  }

  async listAudit(o: { limit: number; before?: number }): Promise<(AuditEntry & { seq: number })[]> {
    const q = new URLSearchParams({ limit: String(o.limit), ...(o.before !== undefined ? { before: String(o.before) } : {}) });
    const r = await fetch(new URL(`/auth/v1/audit?${q}`, this.masterUrl), { headers: this.token !== undefined ? { Authorization: `Bearer ${this.token}` } : {} });
    if (!r.ok) throw new Error(`the master's audit log: ${r.status} ${(await r.text()).slice(0, 300)}`);
    const body = (await r.json()) as { entries: (Omit<AuditEntry, 'at'> & { at: string; seq: number })[] };
    return body.entries.map((e) => ({ ...e, at: Date.parse(e.at) }));
  }
}

/** At most this many entries per report (the master's bound, MAX_REPORTED_ENTRIES). */
const REPORT_ENTRIES = 1000;

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 3)}...` : text);

/** An entry within the master's bounds on each field (auth-routes.ts readAuditEntries). */
function bounded(e: AuditEntry): AuditEntry {
  return { ...e, name: cut(e.name, 200), method: cut(e.method, 16), path: cut(e.path, 2000), remote: cut(e.remote, 100), requestId: cut(e.requestId, 100), ...(e.tokenId !== undefined ? { tokenId: cut(e.tokenId, 64) } : {}) };
}
