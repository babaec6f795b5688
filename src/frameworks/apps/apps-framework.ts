import { randomUUID } from 'node:crypto';
import { SystemClock, type Clock } from '../../core/clock.ts';
import { writeThrough, type WriteQueue } from '../../lib/write-queue.ts';
import type { TaskStatus } from '../../protocol/mesos.ts';
import type { Event } from '../../protocol/scheduler.ts';
import type { SchedulerTransport } from '../../protocol/scheduler-transport.ts';
import { FrameworkSession } from '../kit/framework-session.ts';
import { FrameworkTurns } from '../kit/framework-turns.ts';
import { MasterAgentsUnavailable, type MasterAgents } from '../kit/master-agents.ts';
import type { AppDefinition } from './app-definition.ts';
import { AppsState, toStoreChange, type AppsStateChange, type AppsView } from './apps-state.ts';
import type { AppsChange, AppsStore } from './apps-store.ts';
import type { MarathonEvent } from './events/marathon-events.ts';
import { AppsPlanBuilder, type AppsPlan } from './plan/apps-plan.ts';
import { planLaunches } from './plan/plan-launches.ts';
import { planCancelDeployment, planDeploy, planKillTasks, planReadinessResult, planResetDelay, type DeployResult, type KillResult } from './plan/plan-operations.ts';
import { planPass, planSubscribed } from './plan/plan-pass.ts';
import { previewDeploy, type PlanPreview } from './plan/plan-preview.ts';
import type { ConfigPort } from './config-port.ts';
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
  /** The config center, for apps linked to a config service (config-port.ts); absent: no config is delivered. */
  config?: ConfigPort;
  /** The master's agents (GET_AGENTS), for previews (POST /v2/plan); absent: previews answer 503. */
  masterAgents?: MasterAgents;
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
 * The kit's FrameworkTurns runs them: passes after plans that ask for one and every second,
 * updates batched, offers planned right after a pass. Every turn reads state that is in memory
 * and on disk alike (PlanApplier).
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
  private readonly turns: FrameworkTurns<AppsStateChange, MarathonEvent, AppsChange, AppsPlan>;
  private readonly prober: ReadinessProber;
  /** Created by start(), with the stored framework id. */
  private session: FrameworkSession | undefined;
  private stopped = false;
  /** Queues a status update; one turn takes all that came meanwhile. */
  private readonly update: (status: TaskStatus) => void;

  constructor(private readonly options: AppsFrameworkOptions) {
    this.clock = options.clock ?? new SystemClock();
    this.uuid = options.uuid ?? randomUUID;
    this.log = options.log ?? (() => undefined);
    this.role = options.role ?? '*';
    this.writes = writeThrough('apps store', options.store, { clock: this.clock, attempts: options.writeAttempts, log: this.log });
    this.turns = new FrameworkTurns({
      name: 'apps framework',
      clock: this.clock,
      tickMs: TICK_MS,
      // A pass looks at every app at most once a second; in between, only at the apps changed
      // since (a create must not cost a pass over 10,000 apps).
      planPass: () => {
        const now = this.clock.now();
        return planPass(this.state, { now, subscribed: this.connected, role: this.role, full: now - this.state.lastFullPassAt >= TICK_MS });
      },
      toStore: toStoreChange,
      write: (changes) => this.writes.write(changes),
      apply: (c) => this.state.apply(c),
      send: (call) => this.session?.send(call),
      publish: (e) => options.events?.publish(e),
      log: this.log,
      finish: (plan) => this.finish(plan),
    });
    this.update = this.turns.batched((statuses: TaskStatus[]) => planUpdates(this.state, statuses, this.clock.now()));
    this.prober = new ReadinessProber({ clock: this.clock, onResult: (r) => void this.turns.turn(() => planReadinessResult(this.state, r)) });
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
      onFrameworkId: (id) => void this.turns.turn(() => new AppsPlanBuilder().change({ type: 'FRAMEWORK_ID', frameworkId: id }).plan),
      onSubscribed: () => {
        void this.turns.turn(() => planSubscribed(this.state, this.clock.now()));
        connected();
      },
      onEvent: (e) => this.onEvent(e),
      log: this.log,
    });
    void this.session.connect();
    this.turns.start();
    await subscribed;
  }

  /** Leaves the tasks running (the master keeps them for the failover timeout) and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.prober.stopAll();
    this.session?.close();
    await this.turns.stop();
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
    return this.turns.drained();
  }

  // --- the REST API's verbs (plan/plan-operations.ts) ----------------------------------------

  /** See planDeploy. `edit` gets a copy of the declared apps, at the turn's time. */
  deploy(edit: (declared: Map<string, AppDefinition>) => ReadonlyMap<string, AppDefinition>, opts: { force?: boolean; restart?: readonly string[] } = {}): Promise<DeployResult> {
    return this.turns.operation(() => planDeploy(this.state, edit, opts, this.context()));
  }

  cancelDeployment(id: string, force: boolean): Promise<{ deploymentId: string; version: string } | undefined> {
    return this.turns.operation(() => planCancelDeployment(this.state, id, force, this.context()));
  }

  /** See planKillTasks: `select` names the tasks from the state at the turn's time. */
  killTasks(select: (view: AppsView) => readonly string[], opts: { scale?: boolean; wipe?: boolean; force?: boolean } = {}): Promise<KillResult> {
    return this.turns.operation(() => planKillTasks(this.state, select, opts, this.context()));
  }

  /**
   * What `deploy(edit)` would do now, and whether its new instances can be placed on the master's
   * agents (plan/plan-preview.ts). Changes nothing: no turn, no store, no version. Rejects with
   * MasterAgentsUnavailable (503) when the master's agents cannot be read, and with the errors
   * `edit` and planning throw (422 for a bad definition or a dependency cycle).
   */
  async preview(edit: (declared: Map<string, AppDefinition>) => ReadonlyMap<string, AppDefinition>): Promise<PlanPreview> {
    const source = this.options.masterAgents;
    if (source === undefined) throw new MasterAgentsUnavailable('this services framework has no view of the master\'s agents (no GET_AGENTS source is wired)');
    const agents = await source.agents();
    // Read after the agents came: the state as it is now (memory changes only with durable writes).
    return previewDeploy({ view: this.state, edit, agents, role: this.role, now: this.clock.now(), seed: this.state.seed });
  }

  resetDelay(appId: string): Promise<void> {
    return this.turns.operation(() => planResetDelay(this.state, appId));
  }

  // --- the master's events -------------------------------------------------------------------

  private onEvent(e: Event): void {
    switch (e.type) {
      case 'OFFERS': {
        const offers = e.offers.offers;
        this.turns.offers(offers, () => planLaunches(this.state, offers, { now: this.clock.now(), uuid: this.uuid, ...(this.options.config !== undefined ? { config: this.options.config } : {}) }));
        return;
      }
      case 'UPDATE':
        this.update(e.update.status);
        return;
      case 'ERROR':
        this.log(`apps framework: master error: ${e.error.message}`);
        return;
      default:
        return;
    }
  }

  /** What a plan asks of the framework itself, once it is applied. */
  private finish(plan: AppsPlan): void {
    for (const c of plan.changes) if (c.type === 'INSTANCE_REMOVED') this.prober.stop(c.taskId);
    for (const inst of plan.probes) {
      const def = this.state.runSpec(inst.appId).def ?? this.state.app(inst.appId)?.def;
      if (def !== undefined && this.state.instance(inst.taskId) !== undefined && !this.stopped) this.prober.start(inst, def);
    }
  }

  private context(): { now: number; uuid: () => string } {
    return { now: this.clock.now(), uuid: this.uuid };
  }
}
