import type { Clock, Timer } from '../../core/clock.ts';
import type { Offer } from '../../protocol/mesos.ts';
import { PlanApplier, type Plan, type PlanApplierOptions } from './plan-applier.ts';

export interface FrameworkTurnsOptions<C, E, S, P extends Plan<C, E>> extends PlanApplierOptions<C, E, S, P> {
  clock: Clock;
  /** The framework's reconcile pass (pure: it reads the state as it is when the turn runs). */
  planPass(): P;
  /** How often a pass runs at the least, for what changes with time alone. */
  tickMs: number;
  /** Names the framework in log lines. */
  name: string;
}

/**
 * The turns of a framework: every input (an event of the master, an API verb, a timer) is a
 * turn of one PlanApplier, so that planning always reads applied state and applying happens in
 * one place. What every framework does the same way lives here:
 * - a pass (`planPass`) runs after every plan that asks for one (`plan.pass`) and every `tickMs`,
 *   coalesced: at most one waits at a time;
 * - inputs that come in bursts (status updates, executor reports) are `batched`: one turn takes
 *   all that arrived before it runs (a group commit: one store batch for many updates);
 * - a batch of offers is planned right after a pass, so it meets fresh needs; if its plan cannot
 *   be applied (the store refuses), the offers are declined at once with a short filter;
 * - a turn started by an event logs its failure (the next pass, update or reconciliation repairs
 *   it); an `operation` (an API verb) hands its result or error to the caller.
 */
export class FrameworkTurns<C, E, S, P extends Plan<C, E>> {
  private readonly applier: PlanApplier<C, E, S, P>;
  private passQueued = false;
  private stopped = false;
  private tick: Timer | undefined;

  constructor(private readonly o: FrameworkTurnsOptions<C, E, S, P>) {
    this.applier = new PlanApplier({
      ...o,
      finish: (plan) => {
        o.finish?.(plan);
        if (plan.pass) this.schedulePass();
      },
    });
  }

  /** Starts the tick. */
  start(): void {
    const tick = () => {
      this.schedulePass();
      this.tick = this.o.clock.setTimer(this.o.tickMs, tick);
    };
    this.tick = this.o.clock.setTimer(this.o.tickMs, tick);
  }

  /** No more passes; resolves once every turn asked so far is applied or failed. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tick?.cancel();
    await this.applier.drained();
  }

  /** Resolves once every turn asked so far is applied or failed. */
  drained(): Promise<void> {
    return this.applier.drained();
  }

  schedulePass(): void {
    if (this.passQueued || this.stopped) return;
    this.passQueued = true;
    void this.turn(() => {
      this.passQueued = false;
      return this.o.planPass();
    });
  }

  /** A turn whose failure is only logged. */
  turn(decide: () => P): Promise<void> {
    return this.applier
      .turn(() => ({ plan: decide(), result: undefined }))
      .catch((e: unknown) => this.o.log(`${this.o.name}: ${e instanceof Error ? e.message : String(e)}`));
  }

  /** A turn whose result or error goes to the caller (an API verb: 4xx, or 503 from the store). */
  operation<R>(decide: () => { plan: P; result: R }): Promise<R> {
    return this.applier.turn(decide);
  }

  /** A function that queues an input; one turn plans every input queued before it runs. */
  batched<T>(plan: (items: T[]) => P): (item: T) => void {
    const queue: T[] = [];
    return (item) => {
      queue.push(item);
      if (queue.length === 1) void this.turn(() => plan(queue.splice(0)));
    };
  }

  /** A batch of offers: a pass first, then `plan` with them; declined at once if that plan fails. */
  offers(offers: readonly Offer[], plan: () => P): void {
    this.schedulePass();
    this.applier
      .turn(() => ({ plan: plan(), result: undefined }))
      .catch((e: unknown) => {
        this.o.log(`${this.o.name}: nothing stored, nothing launched from ${offers.length} offer(s): ${e instanceof Error ? e.message : String(e)}`);
        this.o.send({ type: 'DECLINE', decline: { offer_ids: offers.map((x) => x.id), filters: { refuse_seconds: 1 } } });
      });
  }
}
