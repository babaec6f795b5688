import { randomUUID } from 'node:crypto';
import { SystemClock, type Clock, type Timer } from '../../core/clock.ts';
import { WriteQueue } from '../../lib/write-queue.ts';
import type { Offer, TaskStatus } from '../../protocol/mesos.ts';
import type { Event } from '../../protocol/scheduler.ts';
import type { SchedulerTransport } from '../../protocol/scheduler-transport.ts';
import { FrameworkSession } from '../kit/framework-session.ts';
import { PlanApplier } from '../kit/plan-applier.ts';
import type { AppDefinition } from './app-definition.ts';
import { AppsState, toStoreChange, type AppsStateChange, type AppsView } from './apps-state.ts';
import type { AppsChange, AppsStore } from './apps-store.ts';
import type { MarathonEvent } from './events/marathon-events.ts';
import type { AppsPlan } from './plan/apps-plan.ts';
import { planLaunches } from './plan/plan-launches.ts';
import { planCancelDeployment, planDeploy, planKillTasks, planReadinessResult, planResetDelay, type DeployResult, type KillResult, type Planned } from './plan/plan-operations.ts';
import { planPass, planSubscribed } from './plan/plan-pass.ts';
import { planUpdates } from './plan/plan-updates.ts';
import { ReadinessProber } from './readiness-prober.ts';

export interface AppsFrameworkOptions {
  transport: SchedulerTransport;
  store: AppsStore;
  /** Where Marathon's events go (the event bus of /v2/events). */
  events?: { publish(event: MarathonEvent): void };
  /** The role the framework subscribes with (default `*`). */
  role?: string;
  /** Default `slipway-apps`. */
  frameworkName?: string;
  /** How long the master keeps the tasks while the framework is away (default a week, as Marathon). */
  failoverTimeoutSeconds?: number;
  /** Time and timers (default the system clock); a ManualClock runs the framework on simulated time. */
  clock?: Clock;
  /** New UUIDs for task and deployment ids (default randomUUID). */
  uuid?: () => string;
  /** Attempts of a store write before the change is refused with 503 (default 10). */
  writeAttempts?: number;
  log?: (line: string) => void;
}

/** A pass runs at least this often, for what changes with time (backoff delays, unreachable strategies, retries). */
const TICK_MS = 1000;

/**
 * The services framework: Marathon's model on Slipway's scheduler API, as a short wiring of the
 * kit (session, applier, write queue), its state (apps-state.ts) and its pure planners (plan/):
 *
 *   scheduler events, REST verbs, readiness results, the tick
 *        ──► a turn: plan*(view, now)  ──► store batch (awaited) ──► memory ──► calls ──► events
 *
 * A turn that changed what the reconciler looks at asks for a pass (planPass), which runs as a
 * turn of its own, after the tick too. A batch of offers is planned right after a pass, so it
 * meets fresh needs. Every turn reads state that is in memory and on disk alike (PlanApplier).
 *
 * After a (re)start: the store gives the apps, deployments and instances; SUBSCRIBE (with the
 * stored framework id), then explicit and implicit reconciliation; a task the master knows but
 * the framework does not is killed, an instance the master does not know ends (TASK_UNKNOWN /
 * LOST) and is replaced. A deployment in flight goes on from its stored step.
 */
export class AppsFramework {
  private readonly state = new AppsState();
  /** The framework's state, read-only: what routes read. */
  readonly view: AppsView = this.state;
  private readonly clock: Clock;
  private readonly uuid: () => string;
  private readonly log: (line: string) => void;
  private readonly role: string;
  private readonly writes: WriteQueue<AppsChange>;
  private readonly applier: PlanApplier<AppsStateChange, MarathonEvent, AppsChange, AppsPlan>;
  private readonly prober: ReadinessProber;
  /** Created by start(), with the stored framework id. */
  private session: FrameworkSession | undefined;
  private tick: Timer | undefined;
  private passQueued = false;
  private stopped = false;
  /** Status updates waiting for their turn (one turn takes all that came meanwhile). */
  private readonly updates: TaskStatus[] = [];

  constructor(private readonly options: AppsFrameworkOptions) {
    this.clock = options.clock ?? new SystemClock();
    this.uuid = options.uuid ?? randomUUID;
    this.log = options.log ?? (() => undefined);
    this.role = options.role ?? '*';
    this.writes = new WriteQueue({
      name: 'apps store',
      write: (changes) => options.store.write(changes),
      clock: this.clock,
      attempts: options.writeAttempts ?? 10,
      onHealth: (h) => this.log(h.ok ? 'apps store takes writes again' : `apps store write failed (attempt ${h.failedAttempts}): ${h.reason}`),
    });
    this.applier = new PlanApplier({
      toStore: toStoreChange,
      write: (changes) => this.writes.write(changes),
      apply: (c) => this.state.apply(c),
      send: (call) => this.session?.send(call),
      publish: (e) => options.events?.publish(e),
      log: this.log,
      finish: (plan) => this.finish(plan),
    });
    this.prober = new ReadinessProber({ clock: this.clock, onResult: (r) => void this.turn(() => planReadinessResult(this.state, r)) });
  }

  /** Loads the stored state and connects to the master; resolves once subscribed the first time. */
  async start(): Promise<void> {
    this.state.load(await this.options.store.load(), this.log);
    let connected: () => void = () => undefined;
    const subscribed = new Promise<void>((resolve) => (connected = resolve));
    this.session = new FrameworkSession({
      transport: this.options.transport,
      clock: this.clock,
      name: this.options.frameworkName ?? 'slipway-apps',
      role: this.role,
      failoverTimeoutSeconds: this.options.failoverTimeoutSeconds ?? 7 * 24 * 3600,
      capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }, { type: 'TASK_KILLING_STATE' }],
      ...(this.state.frameworkId !== undefined ? { frameworkId: this.state.frameworkId } : {}),
      onFrameworkId: (id) => void this.turn(() => ({ ...this.emptyPlan(), changes: [{ type: 'FRAMEWORK_ID', frameworkId: id }] })),
      onSubscribed: () => {
        void this.turn(() => planSubscribed(this.state, this.clock.now()));
        connected();
      },
      onEvent: (e) => this.onEvent(e),
      log: this.log,
    });
    void this.session.connect();
    const tick = () => {
      this.schedulePass();
      this.tick = this.clock.setTimer(TICK_MS, tick);
    };
    this.tick = this.clock.setTimer(TICK_MS, tick);
    await subscribed;
  }

  /** Leaves the tasks running (the master keeps them for the failover timeout) and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tick?.cancel();
    this.prober.stopAll();
    this.session?.close();
    await this.applier.drained();
    await this.writes.flush();
  }

  get connected(): boolean {
    return this.session?.subscription !== undefined;
  }

  get id(): string | undefined {
    return this.session?.frameworkId;
  }

  /** The framework's clock. */
  now(): number {
    return this.clock.now();
  }

  /** Resolves once every turn asked so far is applied (tests and benchmarks wait on it). */
  settled(): Promise<void> {
    return this.applier.drained();
  }

  // --- the REST API's verbs (plan/plan-operations.ts) ----------------------------------------

  /** See planDeploy. `edit` gets a copy of the declared apps, at the turn's time. */
  deploy(edit: (declared: Map<string, AppDefinition>) => ReadonlyMap<string, AppDefinition>, opts: { force?: boolean; restart?: readonly string[] } = {}): Promise<DeployResult> {
    return this.operation(() => planDeploy(this.state, edit, opts, this.context()));
  }

  cancelDeployment(id: string, force: boolean): Promise<{ deploymentId: string; version: string } | undefined> {
    return this.operation(() => planCancelDeployment(this.state, id, force, this.context()));
  }

  /** See planKillTasks: `select` names the tasks from the state at the turn's time. */
  killTasks(select: (view: AppsView) => readonly string[], opts: { scale?: boolean; wipe?: boolean; force?: boolean } = {}): Promise<KillResult> {
    return this.operation(() => planKillTasks(this.state, select, opts, this.context()));
  }

  resetDelay(appId: string): Promise<void> {
    return this.operation(() => planResetDelay(this.state, appId));
  }

  // --- the master's events -------------------------------------------------------------------

  private onEvent(e: Event): void {
    switch (e.type) {
      case 'OFFERS':
        this.onOffers(e.offers.offers);
        return;
      case 'UPDATE':
        this.updates.push(e.update.status);
        // One turn takes every update that arrived before it runs.
        if (this.updates.length === 1) void this.turn(() => planUpdates(this.state, this.updates.splice(0), this.clock.now()));
        return;
      case 'ERROR':
        this.log(`apps framework: master error: ${e.error.message}`);
        return;
      default:
        return;
    }
  }

  private onOffers(offers: Offer[]): void {
    this.schedulePass();
    this.applier
      .turn(() => ({ plan: planLaunches(this.state, offers, { now: this.clock.now(), uuid: this.uuid }), result: undefined }))
      .catch((e: unknown) => {
        // Nothing was stored, nothing launched: the offers go back at once.
        this.log(`apps framework: instances not stored, not launched: ${e instanceof Error ? e.message : String(e)}`);
        this.session?.send({ type: 'DECLINE', decline: { offer_ids: offers.map((o) => o.id), filters: { refuse_seconds: 1 } } });
      });
  }

  // --- turns ---------------------------------------------------------------------------------

  private schedulePass(): void {
    if (this.passQueued || this.stopped) return;
    this.passQueued = true;
    void this.turn(() => {
      this.passQueued = false;
      return planPass(this.state, { now: this.clock.now(), subscribed: this.connected, role: this.role });
    });
  }

  /** A turn whose failure is only logged (the next pass, update or reconciliation repairs it). */
  private turn(decide: () => AppsPlan): Promise<void> {
    return this.applier
      .turn(() => ({ plan: decide(), result: undefined }))
      .catch((e: unknown) => this.log(`apps framework: ${e instanceof Error ? e.message : String(e)}`));
  }

  /** A turn whose result or error goes to the caller (a REST verb: 4xx, or 503 from the store). */
  private operation<R>(decide: () => Planned<R>): Promise<R> {
    return this.applier.turn(decide);
  }

  /** What a plan asks of the framework itself, once it is applied. */
  private finish(plan: AppsPlan): void {
    for (const c of plan.changes) if (c.type === 'INSTANCE_REMOVED') this.prober.stop(c.taskId);
    for (const inst of plan.probes) {
      const def = this.state.runSpec(inst.appId).def ?? this.state.app(inst.appId)?.def;
      if (def !== undefined && this.state.instance(inst.taskId) !== undefined && !this.stopped) this.prober.start(inst, def);
    }
    if (plan.pass) this.schedulePass();
  }

  private context(): { now: number; uuid: () => string } {
    return { now: this.clock.now(), uuid: this.uuid };
  }

  private emptyPlan(): AppsPlan {
    return { changes: [], calls: [], events: [], log: [], probes: [], pass: false };
  }
}
