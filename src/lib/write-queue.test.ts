import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { StoreUnavailable, WriteQueue, type StoreHealth } from './write-queue.ts';

/** A store that keeps what it was given, and refuses writes while `failing` is set. */
class ListStore {
  readonly batches: number[][] = [];
  failing: string | undefined;
  calls = 0;
  async write(changes: readonly number[]): Promise<void> {
    this.calls++;
    await Promise.resolve();
    if (this.failing !== undefined) throw new Error(this.failing);
    this.batches.push([...changes]);
  }
}

/** Lets promises and microtasks run (the store's write, the queue's drain), no time passing. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

describe('WriteQueue', () => {
  it('writes batches in the order they came, joining those that came during a write', async () => {
    const store = new ListStore();
    const q = new WriteQueue<number>({ write: (c) => store.write(c), clock: new ManualClock(), name: 'test store' });
    const done: number[] = [];
    const a = q.write([1, 2]).then(() => done.push(1));
    const b = q.write([3]).then(() => done.push(2));
    await Promise.resolve();
    const c = q.write([4]).then(() => done.push(3));
    await Promise.all([a, b, c]);
    assert.deepEqual(store.batches.flat(), [1, 2, 3, 4]);
    assert.deepEqual(store.batches[0], [1, 2, 3], 'writers of one turn share a batch');
    assert.deepEqual(done, [1, 2, 3]);
  });

  it('retries a refused batch and resolves once it is written', async () => {
    const store = new ListStore();
    const clock = new ManualClock();
    const q = new WriteQueue<number>({ write: (c) => store.write(c), clock, name: 'test store' });
    store.failing = 'disk full';
    let resolved = false;
    const p = q.write([7]).then(() => (resolved = true));
    await settle();
    assert.equal(store.calls, 1);
    assert.equal(q.health.ok, false);
    assert.match((q.health as Extract<StoreHealth, { ok: false }>).reason, /disk full/);
    store.failing = undefined;
    clock.advance(50);
    await p;
    assert.equal(resolved, true);
    assert.deepEqual(store.batches, [[7]]);
    assert.deepEqual(q.health, { ok: true });
  });

  it('rejects with StoreUnavailable after its attempts, having written nothing, and goes on with the next batch', async () => {
    const store = new ListStore();
    const clock = new ManualClock();
    const healths: boolean[] = [];
    const q = new WriteQueue<number>({ write: (c) => store.write(c), clock, name: 'test store', attempts: 3, onHealth: (h) => healths.push(h.ok) });
    store.failing = 'read-only file system';
    const first = q.write([1]);
    const outcome = first.then(
      () => 'written',
      (e: unknown) => e,
    );
    for (let i = 0; i < 5; i++) {
      await settle();
      clock.advance(1000);
    }
    const error = await outcome;
    assert.ok(error instanceof StoreUnavailable);
    assert.equal(error.status, 503);
    assert.match(error.message, /test store refused a write 3 time\(s\); nothing of the change was written: read-only file system/);
    assert.equal(store.calls, 3);
    assert.deepEqual(store.batches, []);
    store.failing = undefined;
    await q.write([2]);
    assert.deepEqual(store.batches, [[2]], 'the failed batch is not written with the next');
    assert.deepEqual(healths, [false, false, false, true]);
  });

  it('with attempts Infinity keeps a batch until the store takes it, later batches queued behind in order', async () => {
    const store = new ListStore();
    const clock = new ManualClock();
    const q = new WriteQueue<number>({ write: (c) => store.write(c), clock, name: 'test store', attempts: Infinity });
    store.failing = 'no space left on device';
    const a = q.write([1]);
    await settle();
    const b = q.write([2]);
    for (let i = 0; i < 30; i++) {
      clock.advance(2000);
      await settle();
    }
    assert.ok(store.calls >= 30);
    assert.deepEqual(store.batches, []);
    store.failing = undefined;
    clock.advance(2000);
    await Promise.all([a, b]);
    assert.deepEqual(store.batches.flat(), [1, 2]);
  });

  it('flush waits for every batch handed in', async () => {
    const store = new ListStore();
    const q = new WriteQueue<number>({ write: (c) => store.write(c), clock: new ManualClock(), name: 'test store' });
    void q.write([1]);
    void q.write([2]);
    await q.flush();
    assert.deepEqual(store.batches.flat(), [1, 2]);
  });

  it('gives a slowly failing store up after retryForMs, however few attempts that is', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const q = new WriteQueue<number>({
      // Each attempt takes 5 s of the clock (a busy timeout), then fails.
      write: async () => {
        calls++;
        clock.advance(5_000);
        throw new Error('database is locked');
      },
      clock,
      name: 'test store',
      attempts: 10,
      retryForMs: 3_000,
    });
    await assert.rejects(q.write([1]), (e: unknown) => e instanceof StoreUnavailable && /1 time\(s\)/.test(e.message));
    assert.equal(calls, 1);
  });
});
