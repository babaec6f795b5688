import type { SimCluster } from './sim-cluster.ts';

/**
 * Runs a SimCluster together with real frameworks that work asynchronously (store writes,
 * the in-process scheduler transport, which delivers on later turns of the event loop), on the
 * cluster's simulated time. Time moves only in `advance`; between moves, `quiesce` lets
 * everything that is ready run: the cluster's messages, the event loop's pending turns, and each
 * framework's turns (`settled`), until nothing moves any more.
 *
 * Contract: a framework's turns must not wait on the simulated clock (run frameworks with one
 * store write attempt: a retry's delay would wait for a clock that moves only between turns).
 */
export class SimRunner {
  constructor(
    readonly cluster: SimCluster,
    /** Each resolves once that framework has no turn waiting or running. */
    private readonly settled: (() => Promise<void>)[],
  ) {}

  /** Runs what is ready now until three rounds in a row move nothing (at most `maxRounds`). */
  async quiesce(maxRounds = 10_000): Promise<void> {
    let still = 0;
    for (let round = 0; round < maxRounds; round++) {
      const moved = this.cluster.settle();
      // Turns of the event loop: in-process deliveries, store writes, framework turns.
      await new Promise<void>((r) => setImmediate(r));
      await Promise.all(this.settled.map((s) => s()));
      still = moved === 0 ? still + 1 : 0;
      if (still >= 3) return;
    }
    throw new Error(`the simulation did not come to rest in ${maxRounds} rounds`);
  }

  /** Moves simulated time forward by `ms`, in steps of at most `stepMs`, quiescing after each. */
  async advance(ms: number, stepMs = 100): Promise<void> {
    const clock = this.cluster.clock;
    const end = clock.now() + ms;
    await this.quiesce();
    while (clock.now() < end) {
      const due = clock.nextDue();
      const next = Math.min(end, clock.now() + stepMs, due === undefined ? end : Math.max(due, clock.now()));
      clock.advance(next - clock.now());
      await this.quiesce();
    }
  }

  /**
   * Advances until `condition` holds (checked after every step), or fails after `maxMs` of
   * simulated time, saying what it waited for. Answers the simulated milliseconds it took.
   */
  async until(what: string, condition: () => boolean, maxMs = 60_000, stepMs = 100): Promise<number> {
    const clock = this.cluster.clock;
    const start = clock.now();
    await this.quiesce();
    while (!condition()) {
      if (clock.now() - start >= maxMs) throw new Error(`not within ${maxMs} ms of simulated time: ${what}`);
      await this.advance(stepMs, stepMs);
    }
    return clock.now() - start;
  }
}
