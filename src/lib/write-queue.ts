import type { Clock } from '../core/clock.ts';
import { SlipwayError } from '../core/errors.ts';

/** A store refused a batch (after the queue's retries): nothing of it was written. */
export class StoreUnavailable extends SlipwayError {
  readonly code = 'STORE_UNAVAILABLE';
  readonly status = 503;
}

export interface WriteQueueOptions<C> {
  /**
   * Writes one batch atomically and in order, resolving once it is durable. A rejected write must
   * have written nothing of the batch (every Slipway store's contract), so the queue may write the
   * same batch again.
   */
  write(changes: readonly C[]): Promise<void>;
  clock: Clock;
  /**
   * How many times a batch is tried before its writers are told it failed; `Infinity` keeps
   * trying (write-behind, where nobody waits and nothing may be dropped). Default 10.
   */
  attempts?: number;
  /**
   * How long a batch is tried at most (ms, from its first attempt): no attempt starts after
   * that. Default Infinity. A store that fails slowly (a lock held elsewhere: each attempt waits
   * out the busy timeout) is then given up in about this time, not `attempts` times as long.
   */
  retryForMs?: number;
  /** The wait before attempt `n + 1` after `n` failed (default 50 ms × n, at most 2 s). */
  retryDelayMs?: (failedAttempts: number) => number;
  /** Called on each failed attempt (for the log), and once the store takes writes again. */
  onHealth?: (health: StoreHealth) => void;
  /** Names the store in messages, e.g. `apps store`. */
  name: string;
}

export type StoreHealth = { ok: true } | { ok: false; reason: string; since: number; failedAttempts: number };

interface Batch<C> {
  changes: C[];
  waiters: { resolve(): void; reject(e: unknown): void }[];
}

/**
 * Ordered batches of store changes, one write at a time: the one write path of the master, the
 * services framework and CI.
 *
 * Contract:
 * - Batches are written in the order they were handed in; changes handed in while a write is in
 *   flight are written together in the next one (group commit), each caller waiting for the batch
 *   its changes went into.
 * - `write` resolves once its changes are durable. It rejects with `StoreUnavailable` when the
 *   batch failed `attempts` times: then nothing of it was written, and the caller must not act
 *   on it (a framework leaves its memory as it was and answers 503; a status update stays
 *   unacknowledged, so the master sends it again). The next batch is tried afresh.
 * - With `attempts: Infinity` a batch is retried until it is written, never dropped; batches
 *   handed in meanwhile queue behind it, in order.
 * - `health` says whether the last attempt failed, since when and why (`/health` shows it).
 */
export class WriteQueue<C> {
  private pending: Batch<C> | undefined;
  private running: Promise<void> | undefined;
  private current: StoreHealth = { ok: true };
  private readonly attempts: number;
  private readonly retryForMs: number;
  private readonly retryDelayMs: (n: number) => number;

  constructor(private readonly o: WriteQueueOptions<C>) {
    this.attempts = o.attempts ?? 10;
    this.retryForMs = o.retryForMs ?? Infinity;
    this.retryDelayMs = o.retryDelayMs ?? ((n) => Math.min(2000, 50 * n));
  }

  get health(): StoreHealth {
    return this.current;
  }

  /** Writes `changes` (after every batch handed in before); an empty list waits for those. */
  write(changes: readonly C[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending ??= { changes: [], waiters: [] };
      this.pending.changes.push(...changes);
      this.pending.waiters.push({ resolve, reject });
      this.running ??= this.drain().finally(() => (this.running = undefined));
    });
  }

  /** Resolves once every batch handed in so far has been written or given up. */
  async flush(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private async drain(): Promise<void> {
    // Let the writers of this turn of the event loop join the first batch.
    await Promise.resolve();
    while (this.pending !== undefined) {
      const batch = this.pending;
      this.pending = undefined;
      const error = batch.changes.length === 0 ? undefined : await this.writeWithRetries(batch.changes);
      for (const w of batch.waiters) {
        if (error === undefined) w.resolve();
        else w.reject(error);
      }
    }
  }

  private async writeWithRetries(changes: readonly C[]): Promise<StoreUnavailable | undefined> {
    const firstAt = this.o.clock.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.o.write(changes);
        if (!this.current.ok) {
          this.current = { ok: true };
          this.o.onHealth?.(this.current);
        }
        return undefined;
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        const since = this.current.ok ? this.o.clock.now() : this.current.since;
        this.current = { ok: false, reason, since, failedAttempts: attempt };
        this.o.onHealth?.(this.current);
        const delay = this.retryDelayMs(attempt);
        if (attempt >= this.attempts || this.o.clock.now() + delay - firstAt > this.retryForMs) {
          const error = new StoreUnavailable(`the ${this.o.name} refused a write ${attempt} time(s); nothing of the change was written: ${reason}`);
          error.cause = e;
          return error;
        }
        await new Promise<void>((r) => this.o.clock.setTimer(delay, r));
      }
    }
  }
}

/**
 * The write queue of a framework's store, write-through: a batch is tried up to `attempts` times
 * (default 10) within about 3 s before the change it records is refused with StoreUnavailable
 * (an API call answers 503 in seconds, however the store fails); each failure and the recovery
 * are logged.
 */
export function writeThrough<C>(
  name: string,
  store: { write(changes: readonly C[]): Promise<void> },
  o: { clock: Clock; attempts?: number | undefined; log: (line: string) => void },
): WriteQueue<C> {
  return new WriteQueue<C>({
    name,
    write: (changes) => store.write(changes),
    clock: o.clock,
    attempts: o.attempts ?? 10,
    retryForMs: 3_000,
    onHealth: (h) => o.log(h.ok ? `${name} takes writes again` : `${name} write failed (attempt ${h.failedAttempts}): ${h.reason}`),
  });
}
