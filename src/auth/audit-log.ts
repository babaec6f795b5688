import type { AuditEntry } from './http-gate.ts';

/** What an audit log persists (src/store implements it in the authentication database). */
export interface AuditStore {
  appendAudit(entries: readonly AuditEntry[]): Promise<void>;
  listAudit(o: { limit: number; before?: number }): Promise<(AuditEntry & { seq: number })[]>;
}

/**
 * The audit log: entries are appended in batches (a write per request would put the disk on every
 * change's path), at most `flushMs` after they were recorded; `flush` writes what is pending now
 * (close, tests). A batch that fails is kept and written with the next one: the log loses no
 * entry while the store comes back; `log` hears of the failure.
 */
export class AuditLog {
  private pending: AuditEntry[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dropped = 0;

  constructor(
    private readonly store: AuditStore,
    /** `maxPending`: entries kept while the store refuses; past it the oldest are dropped, said in `log`. */
    private readonly o: { flushMs?: number; log?: (line: string) => void; maxPending?: number } = {},
  ) {}

  record(entry: AuditEntry): void {
    this.pending.push(entry);
    const max = this.o.maxPending;
    if (max !== undefined && this.pending.length > max) {
      this.pending.splice(0, this.pending.length - max);
      // Said once per thousand, not once per entry.
      if (this.dropped++ % 1000 === 0) this.o.log?.(`audit log: the store has not taken entries for a while; ${this.dropped} of the oldest dropped so far`);
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.o.flushMs ?? 200);
  }

  /** Writes what is pending; resolves once it is durable (or failed and is kept for the next flush). */
  flush(): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending;
      this.pending = [];
      try {
        await this.store.appendAudit(batch);
      } catch (e) {
        this.pending = [...batch, ...this.pending];
        this.o.log?.(`audit log: could not write ${batch.length} entries, kept for the next write: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
    return this.writing;
  }

  /** The newest entries, newest first; what is pending is written first so that it shows. */
  async list(o: { limit: number; before?: number }): Promise<(AuditEntry & { seq: number })[]> {
    await this.flush();
    return this.store.listAudit(o);
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
