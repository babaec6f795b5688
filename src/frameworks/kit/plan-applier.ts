import type { OutgoingCall } from './framework-session.ts';

/**
 * What a framework's pure planner decides (Nomad's plan): changes of the framework's state,
 * scheduler calls, events for its clients, log lines. A planner only returns one; the
 * PlanApplier is the one place that acts on it.
 *
 * `changes` are the framework's own state changes in memory form; the applier writes those its
 * `toStore` maps to store changes (the durable ones) in one batch, and applies every change to
 * memory only once that batch is durable. Memory-only changes (timestamps, offer statistics, the
 * offer mode) ride along, so they too take effect only with the plan.
 */
export interface Plan<C, E> {
  changes: C[];
  calls: OutgoingCall[];
  events: E[];
  log: string[];
  /** The state changed in a way the next reconcile pass must see: one runs after this plan. */
  pass: boolean;
}

/** Builds a plan (a framework's builder adds what it writes its own way). */
export class PlanBuilder<C, E, P extends Plan<C, E>> {
  constructor(readonly plan: P) {}

  change(c: C): this {
    this.plan.changes.push(c);
    return this;
  }

  call(c: OutgoingCall): this {
    this.plan.calls.push(c);
    return this;
  }

  event(e: E): this {
    this.plan.events.push(e);
    return this;
  }

  log(line: string): this {
    this.plan.log.push(line);
    return this;
  }

  pass(): this {
    this.plan.pass = true;
    return this;
  }
}

export interface PlanApplierOptions<C, E, S, P extends Plan<C, E>> {
  /** The store change of a state change, or undefined for a memory-only change. */
  toStore(change: C): S | undefined;
  /**
   * Writes one batch (a WriteQueue's `write`): resolves once durable, rejects (StoreUnavailable)
   * when nothing of it was written.
   */
  write(changes: S[]): Promise<void>;
  /** Applies a change to memory (the same projection that loads the stored state at start). */
  apply(change: C): void;
  send(call: OutgoingCall): void;
  publish(event: E): void;
  log(line: string): void;
  /** Work that must be durable before the store batch (CI: log pieces into their files). */
  prepare?(plan: P): Promise<void>;
  /** The framework's own outputs besides calls and events (executor messages, probes), last. */
  finish?(plan: P): void;
  /** The plan's store batch was refused (nothing of the plan took effect; `prepare` had run). */
  failed?(plan: P, error: unknown): void;
}

/**
 * Runs a framework's decisions one at a time and applies each (Nomad's plan applier):
 *
 *   turn(decide) ──► decide() against the current state: a plan, or a throw (nothing happens)
 *                ──► prepare(plan)                 (if any)
 *                ──► write(store changes), awaited  (rejected: nothing happens, turn rejects)
 *                ──► apply every change to memory
 *                ──► send the calls, in order
 *                ──► publish the events, log the lines, finish(plan)
 *
 * Contract: a turn's `decide` runs only after every earlier turn was applied (or failed), so it
 * always reads state that is in memory and on disk alike, and no two plans are ever built on
 * the same state. Memory never runs ahead of the store: a change takes effect only once the
 * batch that records it is durable. A status update acknowledged in a plan's calls is therefore
 * acknowledged only after the write that records it. The turn resolves with decide's result once
 * the plan is applied, and rejects with decide's error or the store's (then nothing of the plan
 * took effect).
 */
export class PlanApplier<C, E, S, P extends Plan<C, E>> {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  constructor(private readonly o: PlanApplierOptions<C, E, S, P>) {}

  turn<R>(decide: () => { plan: P; result: R }): Promise<R> {
    this.pending++;
    const run = this.tail.then(async () => {
      try {
        const { plan, result } = decide();
        await this.applyPlan(plan);
        return result;
      } finally {
        this.pending--;
      }
    });
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Whether no turn is waiting or running. */
  get idle(): boolean {
    return this.pending === 0;
  }

  /** Resolves once every turn asked so far has been applied or has failed. */
  async drained(): Promise<void> {
    while (this.pending > 0) await this.tail;
  }

  private async applyPlan(plan: P): Promise<void> {
    if (this.o.prepare !== undefined) await this.o.prepare(plan);
    const writes: S[] = [];
    for (const c of plan.changes) {
      const s = this.o.toStore(c);
      if (s !== undefined) writes.push(s);
    }
    if (writes.length > 0) {
      try {
        await this.o.write(writes);
      } catch (e) {
        this.o.failed?.(plan, e);
        throw e;
      }
    }
    for (const c of plan.changes) this.o.apply(c);
    for (const call of plan.calls) this.o.send(call);
    for (const e of plan.events) this.o.publish(e);
    for (const line of plan.log) this.o.log(line);
    this.o.finish?.(plan);
  }
}
