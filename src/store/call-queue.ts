import { StoreClosed } from './errors.ts';

/**
 * The calls of one store, run one at a time in call order.
 *
 * Contract: `run` starts `op` once every call queued before it has settled, so a `load` sees every
 * `write` called before it, and batches commit in the order they were handed in even if the
 * caller does not await them. A failed call does not hold up the ones queued behind it. `close`
 * waits for the queued calls, then runs `finish` (once, however often `close` is called); a `run`
 * after `close` rejects with `StoreClosed`.
 */
export class CallQueue {
  /** The end of the queue; never rejects, so one failure does not poison the rest. */
  private tail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  /** `storeName` names the store in errors, e.g. `master store`. */
  constructor(private readonly storeName: string) {}

  run<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new StoreClosed(`cannot ${what}: the ${this.storeName} is closed`));
    const run = this.tail.then(op);
    this.tail = run.catch(() => undefined);
    return run;
  }

  close(finish: () => Promise<void>): Promise<void> {
    this.closing ??= this.tail.then(finish);
    return this.closing;
  }
}
