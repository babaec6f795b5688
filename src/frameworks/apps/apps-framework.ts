import { SystemClock } from '../../core/clock.ts';
import { randomUUID } from 'node:crypto';
import { jsonEqual } from '../../core/json-equal.ts';
import { Resources } from '../../core/resources.ts';
import { isTerminal, type TaskState } from '../../core/task-state.ts';
import type { DistributiveOmit } from '../../core/distributive-omit.ts';
import type { Offer, TaskInfo, TaskStatus } from '../../protocol/mesos.ts';
import { FrameworkSession } from '../kit/framework-session.ts';
import { offerAttributes } from '../kit/offer-attributes.ts';
import type { Event, FrameworkCall } from '../../protocol/scheduler.ts';
import type { SchedulerTransport } from '../../protocol/scheduler-transport.ts';
import type { AppDefinition, AppVersionInfo } from './app-definition.ts';
import { isInactive, reconcileApp } from './app-reconciler.ts';
import { AppLocked, AppNotFound, AppsStoreUnavailable, DeploymentNotFound, TaskNotFoundInApp } from './apps-errors.ts';
import { MAX_VERSIONS_PER_APP, type AppsChange, type AppsStore, type StoredAppJson } from './apps-store.ts';
import { planDeployment, type DeploymentPlan, type ReadinessCheckResultJson } from './deployment/deployment-plan.ts';
import { DeploymentRun, storedApp, versionedApp, type DeploymentDoc, type RunSpec, type VersionedApp } from './deployment/deployment-run.ts';
import { isAlive, isHealthy, newTaskId, type Instance } from './instance.ts';
import { planPlacements, type Location, type PlacementApp, type PlacementOffer } from './placement/placement.ts';
import { probeReadiness } from './readiness-probe.ts';
import { assignServicePorts } from './service-ports.ts';
import { buildTaskInfo } from './task-builder.ts';

/** Where the framework sends Marathon's events (the event bus of /v2/events). */
export interface MarathonEventSink {
  publish(event: { eventType: string; timestamp: string } & Record<string, unknown>): void;
}

export interface AppsFrameworkOptions {
  transport: SchedulerTransport;
  store: AppsStore;
  events?: MarathonEventSink;
  /** The role the framework subscribes with (default `*`). */
  role?: string;
  /** Default `slipway-apps`. */
  frameworkName?: string;
  /** How long the master keeps the tasks while the framework is away (default a week, as Marathon). */
  failoverTimeoutSeconds?: number;
  /** Clock in milliseconds since the epoch (default Date.now). */
  now?: () => number;
  log?: (line: string) => void;
}

/** Marathon's `lastTaskFailure`. */
export interface TaskFailure {
  appId: string;
  host: string;
  message: string;
  state: string;
  taskId: string;
  timestamp: string;
  version: string;
  slaveId: string;
}

/** The launch delay of an app that keeps failing (Marathon's RateLimiter). */
interface Backoff {
  failures: number;
  delaySeconds: number;
  /** Launches wait until then (milliseconds since the epoch). */
  until: number;
}

/** An entry of /v2/queue: an app that needs instances launched. */
export interface QueueEntry {
  app: VersionedApp;
  count: number;
  since: number;
  delayUntil: number;
  processedOffers: number;
  unusedOffers: number;
}

interface ReadinessState {
  results: Map<string, ReadinessCheckResultJson>;
  timer?: NodeJS.Timeout;
}

const TICK_MS = 1000;
/** Offers nobody needs are declined for this long (Marathon's --decline_offer_duration). */
const DECLINE_IDLE_SECONDS = 120;
/** Offers declined while apps wait for others (a constraint, a fit) come back this soon. */
const DECLINE_BUSY_SECONDS = 5;
const MAX_WRITE_ATTEMPTS = 10;
/** A KILL without a terminal update after this long is sent again (Marathon's KillService retries too). */
const KILL_RETRY_MS = 10_000;
/** Needs waiting this long without any offer make the framework REVIVE again. */
const REVIVE_RETRY_MS = 5_000;
/** How often instances the master has not answered for are reconciled again. */
const RECONCILE_RETRY_MS = 5000;

/**
 * The services framework: Marathon's model on Slipway's scheduler API.
 *
 * State (in memory, every change persisted through the store before it is acted on):
 * declared apps with their versions, deployments in flight, instances. Each turn that changes
 * something schedules one reconcile pass, which (1) moves deployments whose current step is
 * done, (2) runs the pure reconciler of every app against its run spec, sending the kills it
 * answers and keeping its launch needs, and (3) REVIVEs or SUPPRESSes offers by whether anything
 * needs launching. Offers are matched to the needs by the pure placement; instances are
 * persisted, then launched in one ACCEPT per offer. A timer runs the pass every second too, for
 * what changes with time (backoff delays, unreachable strategies).
 *
 * After a (re)start: the store gives the apps, deployments and instances; SUBSCRIBE (with the
 * stored framework id), then explicit reconciliation of every stored instance and implicit
 * reconciliation; a task the master knows but the framework does not is killed, an instance the
 * master does not know ends (TASK_UNKNOWN / LOST) and is replaced. A deployment in flight goes on
 * from its stored step.
 */
export class AppsFramework {
  private readonly apps = new Map<string, VersionedApp>();
  private readonly versions = new Map<string, StoredAppJson[]>();
  private readonly deploymentRuns = new Map<string, DeploymentRun>();
  /** The deployment holding each app (at most one: a change touching a held app is refused). */
  private readonly runOfApp = new Map<string, DeploymentRun>();
  private readonly instances = new Map<string, Instance>();
  private readonly byApp = new Map<string, Map<string, Instance>>();
  private readonly backoffs = new Map<string, Backoff>();
  private readonly failures = new Map<string, TaskFailure>();
  private readonly readiness = new Map<string, ReadinessState>();
  /** What each agent looks like to constraints, learned from offers. */
  private readonly agents = new Map<string, Location>();
  private readonly queueSince = new Map<string, number>();
  private readonly offerStats = new Map<string, { processed: number; unused: number }>();
  private needs = new Map<string, number>();
  private lastOffersAt = 0;
  private lastReviveAt = 0;
  /** When each KILL was last sent (memory only): kills are repeated until the task ends. */
  private readonly killSentAt = new Map<string, number>();
  /** Instances the master has not confirmed since we (re)subscribed: reconciled again until it does. */
  private unconfirmed = new Set<string>();
  /** When each instance was last reported on (milliseconds; memory only). */
  private readonly lastHeard = new Map<string, number>();
  private lastReconcileAt = 0;

  /** Created by start(), with the stored framework id. */
  private session: FrameworkSession | undefined;
  private suppressed = false;
  private lastNeedTotal = 0;
  private stopped = false;
  private passScheduled = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private seed = 1;
  private lastVersion = 0;
  private connectedOnce: (() => void) | undefined;

  private writeQueue: { changes: AppsChange[]; waiters: { resolve(): void; reject(e: unknown): void }[] } | undefined;
  private writing = false;

  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly role: string;

  constructor(private readonly options: AppsFrameworkOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
    this.role = options.role ?? '*';
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle
  // -------------------------------------------------------------------------------------------

  /** Loads the stored state and connects to the master; resolves once subscribed the first time. */
  async start(): Promise<void> {
    const state = await this.options.store.load();
    for (const j of state.apps) {
      try {
        this.apps.set(j.id, versionedApp(j));
      } catch (e) {
        // Stored by an older version under rules since tightened, or damaged: the framework
        // starts without it (its instances are killed as unknown) rather than not at all.
        this.log(`apps framework: stored app ${j.id} does not parse and is left out: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    for (const [id, list] of state.versions) this.versions.set(id, [...list]);
    for (const d of state.deployments) {
      const run = DeploymentRun.fromDoc(d.doc as DeploymentDoc);
      this.addRun(run);
    }
    for (const s of state.instances) this.addInstance(s.doc as Instance);
    const connected = new Promise<void>((resolve) => (this.connectedOnce = resolve));
    this.session = new FrameworkSession({
      transport: this.options.transport,
      clock: new SystemClock(),
      name: this.options.frameworkName ?? 'slipway-apps',
      role: this.role,
      failoverTimeoutSeconds: this.options.failoverTimeoutSeconds ?? 7 * 24 * 3600,
      capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }, { type: 'TASK_KILLING_STATE' }],
      ...(state.frameworkId !== undefined ? { frameworkId: state.frameworkId } : {}),
      onFrameworkId: (id) => void this.persist([{ type: 'FRAMEWORK_ID', frameworkId: id }]).catch((e) => this.log(`framework id not stored: ${String(e)}`)),
      onSubscribed: () => this.onSubscribed(),
      onEvent: (e) => this.onEvent(e),
      log: this.log,
    });
    void this.session.connect();
    this.tickTimer = setInterval(() => this.schedulePass(), TICK_MS);
    this.tickTimer.unref();
    await connected;
  }

  /** Leaves the tasks running (the master keeps them for the failover timeout) and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tickTimer);
    for (const r of this.readiness.values()) clearTimeout(r.timer);
    this.session?.close();
    await this.flushWrites().catch(() => undefined);
  }

  get connected(): boolean {
    return this.session?.subscription !== undefined;
  }

  get id(): string | undefined {
    return this.session?.frameworkId;
  }

  /** Subscribed (again): reconcile with the master, then a pass. */
  private onSubscribed(): void {
    this.suppressed = false;
    this.reconcileWithMaster();
    this.schedulePass();
    this.connectedOnce?.();
    this.connectedOnce = undefined;
  }

  /** Explicit reconciliation of every instance we know, then implicit (to learn of strangers). */
  private reconcileWithMaster(): void {
    this.unconfirmed = new Set(this.instances.keys());
    this.lastReconcileAt = this.now();
    const tasks = [...this.instances.values()].map((i) => ({ task_id: { value: i.taskId }, agent_id: { value: i.agentId } }));
    for (let k = 0; k < tasks.length; k += 1000) this.send({ type: 'RECONCILE', reconcile: { tasks: tasks.slice(k, k + 1000) } });
    this.send({ type: 'RECONCILE', reconcile: { tasks: [] } });
    // Kills decided while disconnected (or not yet confirmed before a restart) go out again.
    for (const i of this.instances.values()) {
      if (i.killing) this.send({ type: 'KILL', kill: { task_id: { value: i.taskId }, agent_id: { value: i.agentId } } });
    }
  }

  /**
   * Explicit reconciliation again, every RECONCILE_RETRY_MS, of the instances the master has not
   * answered for: the master stays silent about tasks of agents that have not come back after
   * its own restart (Mesos's rule), and an instance whose LAUNCH never reached the master (a
   * crash between storing it and sending it, a dropped ACCEPT) is only found out this way.
   */
  private reconcileUnconfirmed(now: number): void {
    if (this.session?.subscription === undefined || now - this.lastReconcileAt < RECONCILE_RETRY_MS) return;
    const tasks: { task_id: { value: string }; agent_id: { value: string } }[] = [];
    for (const i of this.instances.values()) {
      const silent = (i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING') && now - (this.lastHeard.get(i.taskId) ?? i.stagedAt) >= RECONCILE_RETRY_MS;
      if (this.unconfirmed.has(i.taskId) || silent) tasks.push({ task_id: { value: i.taskId }, agent_id: { value: i.agentId } });
    }
    this.lastReconcileAt = now;
    for (let k = 0; k < tasks.length; k += 1000) this.send({ type: 'RECONCILE', reconcile: { tasks: tasks.slice(k, k + 1000) } });
  }

  /** Sends a call (dropped while not subscribed: the next pass or reconciliation repairs it). */
  private send(call: DistributiveOmit<FrameworkCall, 'framework_id'>): void {
    this.session?.send(call);
  }

  // -------------------------------------------------------------------------------------------
  // Persistence: one ordered queue of writes; callers await the batch their changes went into.
  // -------------------------------------------------------------------------------------------

  private persist(changes: AppsChange[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.writeQueue === undefined) this.writeQueue = { changes: [], waiters: [] };
      this.writeQueue.changes.push(...changes);
      this.writeQueue.waiters.push({ resolve, reject });
      if (!this.writing) setImmediate(() => void this.drainWrites());
    });
  }

  private async drainWrites(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.writeQueue !== undefined) {
        const batch = this.writeQueue;
        this.writeQueue = undefined;
        let error: unknown;
        for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt++) {
          try {
            await this.options.store.write(batch.changes);
            error = undefined;
            break;
          } catch (e) {
            error = e;
            this.log(`apps store write failed (attempt ${attempt}): ${e instanceof Error ? e.message : String(e)}`);
            await new Promise((r) => setTimeout(r, 50 * attempt));
          }
        }
        if (error === undefined) for (const w of batch.waiters) w.resolve();
        else for (const w of batch.waiters) w.reject(new AppsStoreUnavailable(`the apps store refused a write: ${error instanceof Error ? error.message : String(error)}`));
      }
    } finally {
      this.writing = false;
    }
  }

  private async flushWrites(): Promise<void> {
    if (this.writeQueue === undefined && !this.writing) return;
    await this.persist([]);
  }

  // -------------------------------------------------------------------------------------------
  // Scheduler events
  // -------------------------------------------------------------------------------------------

  private onEvent(e: Event): void {
    switch (e.type) {
      case 'OFFERS':
        void this.onOffers(e.offers.offers);
        return;
      case 'UPDATE':
        this.onUpdate(e.update.status);
        return;
      case 'FAILURE':
      case 'RESCIND':
      case 'HEARTBEAT':
      case 'SUBSCRIBED':
        return;
      case 'ERROR':
        this.log(`apps framework: master error: ${e.error.message}`);
        return;
    }
  }

  private onUpdate(status: TaskStatus): void {
    const taskId = status.task_id.value;
    const inst = this.instances.get(taskId);
    const ack = () => {
      if (status.uuid !== undefined && status.agent_id !== undefined) {
        this.send({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid } });
      }
    };
    if (inst === undefined) {
      // Not ours (any more): launched by an earlier incarnation and expunged, or forgotten.
      if (!isTerminal(status.state) && status.state !== 'TASK_UNREACHABLE') {
        this.log(`apps framework: killing unknown task ${taskId}`);
        this.send({ type: 'KILL', kill: { task_id: status.task_id, ...(status.agent_id !== undefined ? { agent_id: status.agent_id } : {}) } });
      }
      ack();
      return;
    }
    const now = this.now();
    this.unconfirmed.delete(taskId);
    this.lastHeard.set(taskId, now);
    if (status.reason === 'REASON_RECONCILIATION' && status.state === inst.state && (status.healthy === undefined || status.healthy === inst.healthy)) {
      // A reconciliation answer that changes nothing: no write, no event (a reconnect at 10,000
      // instances would otherwise write and publish 20,000 times).
      if (status.state === 'TASK_RUNNING' && !inst.ready) this.startReadiness(inst);
      ack();
      return;
    }
    const previousHealth = isHealthy(inst);
    const wasUnreachable = inst.unreachableSince !== undefined;
    inst.state = status.state;
    if (status.message !== undefined) inst.message = status.message;
    if (status.healthy !== undefined) inst.healthy = status.healthy;
    if (status.state === 'TASK_UNREACHABLE') inst.unreachableSince ??= now;
    else delete inst.unreachableSince;
    if (status.state === 'TASK_RUNNING' && inst.startedAt === undefined) inst.startedAt = now;
    if (status.state === 'TASK_RUNNING' && wasUnreachable && inst.killing) {
      // Back from a partition after we gave it up: the master may have forgotten the kill.
      this.send({ type: 'KILL', kill: { task_id: status.task_id, agent_id: { value: inst.agentId } } });
    }

    this.publish('status_update_event', {
      slaveId: inst.agentId,
      taskId,
      taskStatus: status.state,
      message: status.message ?? '',
      appId: inst.appId,
      host: inst.host,
      ipAddresses: [],
      ports: inst.ports,
      version: inst.version,
    });
    this.publish('instance_changed_event', {
      instanceId: taskId,
      condition: marathonCondition(status.state),
      runSpecId: inst.appId,
      agentId: inst.agentId,
      host: inst.host,
      runSpecVersion: inst.version,
    });
    if (isHealthy(inst) !== previousHealth && inst.hasHealthCheck) {
      this.publish('health_status_changed_event', { appId: inst.appId, instanceId: taskId, version: inst.version, alive: isHealthy(inst) });
      const check = this.apps.get(inst.appId)?.def.healthChecks[0];
      if (status.healthy === false && check !== undefined) this.publish('failed_health_check_event', { appId: inst.appId, instanceId: taskId, healthCheck: check });
    }

    let write: AppsChange;
    if (isTerminal(status.state)) {
      this.removeInstance(taskId);
      write = { type: 'INSTANCE_REMOVED', taskId };
      if (!inst.killing) this.recordFailure(inst, status, now);
      if (status.reason === 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED') {
        this.publish('unhealthy_instance_kill_event', { appId: inst.appId, taskId, instanceId: taskId, version: inst.version, reason: status.message ?? 'health check failed', host: inst.host, slaveId: inst.agentId });
      }
    } else {
      if (status.state === 'TASK_RUNNING' && !inst.ready) this.startReadiness(inst);
      write = { type: 'INSTANCE_SAVED', instance: { taskId, appId: inst.appId, doc: inst } };
    }
    // Acknowledge once the state it reports is stored: a crash before that gets it resent.
    this.persist([write]).then(ack, (e: unknown) => this.log(`apps framework: update of ${taskId} not stored: ${String(e)}`));
    this.schedulePass();
  }

  private recordFailure(inst: Instance, status: TaskStatus, now: number): void {
    const failed: TaskState[] = ['TASK_FAILED', 'TASK_ERROR', 'TASK_FINISHED', 'TASK_KILLED'];
    this.failures.set(inst.appId, {
      appId: inst.appId,
      host: inst.host,
      message: status.message ?? '',
      state: status.state,
      taskId: inst.taskId,
      timestamp: new Date(now).toISOString(),
      version: inst.version,
      slaveId: inst.agentId,
    });
    if (!failed.includes(status.state)) return;
    const spec = this.runSpec(inst.appId).def;
    if (spec === undefined) return;
    // Marathon's RateLimiter: the first failure waits backoffSeconds, each further one factor
    // times longer, up to maxLaunchDelaySeconds; counted from the failure.
    const prev = this.backoffs.get(inst.appId);
    const delaySeconds = prev === undefined ? spec.backoffSeconds : Math.min(prev.delaySeconds * spec.backoffFactor, spec.maxLaunchDelaySeconds);
    this.backoffs.set(inst.appId, { failures: (prev?.failures ?? 0) + 1, delaySeconds, until: now + delaySeconds * 1000 });
  }

  /**
   * Marathon's RateLimiter forgets an app's delay once maxLaunchDelaySeconds passed after it ran
   * out: a failure long after the last one starts the backoff over, instead of at the maximum.
   */
  private forgetOldBackoffs(now: number): void {
    for (const [appId, b] of this.backoffs) {
      const max = (this.runSpec(appId).def?.maxLaunchDelaySeconds ?? 0) * 1000;
      if (now > b.until + max) this.backoffs.delete(appId);
    }
  }

  private retryKills(now: number): void {
    for (const [taskId, at] of this.killSentAt) {
      const inst = this.instances.get(taskId);
      if (inst === undefined || !inst.killing) {
        this.killSentAt.delete(taskId);
        continue;
      }
      if (now - at >= KILL_RETRY_MS && inst.unreachableSince === undefined) {
        this.killSentAt.set(taskId, now);
        this.send({ type: 'KILL', kill: { task_id: { value: taskId }, agent_id: { value: inst.agentId } } });
      }
    }
  }

  private async onOffers(offers: Offer[]): Promise<void> {
    this.lastOffersAt = this.now();
    for (const o of offers) this.agents.set(o.agent_id.value, { agentId: o.agent_id.value, hostname: o.hostname, attributes: offerAttributes(o) });
    this.pass();
    const remaining = new Map<string, PlacementOffer & { role: string }>(
      offers.map((o) => [o.id.value, { id: o.id.value, agentId: o.agent_id.value, hostname: o.hostname, attributes: offerAttributes(o), resources: Resources.fromJSON(o.resources), role: o.allocation_info.role }]),
    );
    const launches = new Map<string, TaskInfo[]>();
    const created: Instance[] = [];
    const now = this.now();
    // Apps held by a deployment first, then the others, each in id order.
    const order = [...this.needs.keys()].sort((a, b) => Number(this.deploymentOf(b) !== undefined) - Number(this.deploymentOf(a) !== undefined) || (a < b ? -1 : 1));
    for (const appId of order) {
      const wanted = this.needs.get(appId) ?? 0;
      const spec = this.runSpec(appId);
      const def = spec.def;
      if (def === undefined || wanted <= 0) continue;
      const stats = this.offerStats.get(appId) ?? { processed: 0, unused: 0 };
      stats.processed += remaining.size;
      const running = this.instancesOf(appId)
        .filter((i) => isAlive(i) && !i.killing)
        .map((i) => this.agents.get(i.agentId) ?? { agentId: i.agentId, hostname: i.host, attributes: {} });
      const placements = planPlacements({ app: placementApp(def), wanted, offers: [...remaining.values()], running, seed: this.seed++ });
      stats.unused += remaining.size - new Set(placements.map((p) => p.offerId)).size;
      this.offerStats.set(appId, stats);
      const version = this.versionOf(appId, spec);
      for (const p of placements) {
        const offer = remaining.get(p.offerId)!;
        const taskId = newTaskId(appId, randomUUID());
        const info = buildTaskInfo(def, { taskId, agentId: p.agentId, host: offer.hostname, version, resources: p.resources, allocationRole: offer.role, ports: p.ports });
        const inst: Instance = {
          taskId,
          appId,
          version,
          configVersion: spec.configVersion,
          agentId: p.agentId,
          host: offer.hostname,
          ports: p.ports,
          servicePorts: def.portDefinitions.map((d) => d.port),
          state: 'TASK_STAGING',
          stagedAt: now,
          hasHealthCheck: def.healthChecks.length > 0,
          ready: def.readinessChecks.length === 0,
          killing: false,
        };
        created.push(inst);
        this.addInstance(inst);
        offer.resources = offer.resources.subtract(p.resources);
        const list = launches.get(p.offerId) ?? [];
        list.push(info);
        launches.set(p.offerId, list);
      }
      const left = wanted - placements.length;
      if (left > 0) this.needs.set(appId, left);
      else this.needs.delete(appId);
    }
    const stillNeeded = this.needs.size > 0;
    const unused = offers.filter((o) => !launches.has(o.id.value)).map((o) => o.id);
    if (unused.length > 0) this.send({ type: 'DECLINE', decline: { offer_ids: unused, filters: { refuse_seconds: stillNeeded ? DECLINE_BUSY_SECONDS : DECLINE_IDLE_SECONDS } } });
    if (created.length === 0) return;
    try {
      await this.persist(created.map((i) => ({ type: 'INSTANCE_SAVED', instance: { taskId: i.taskId, appId: i.appId, doc: i } })));
    } catch (e) {
      this.log(`apps framework: instances not stored, not launched: ${String(e)}`);
      for (const i of created) this.removeInstance(i.taskId);
      this.send({ type: 'DECLINE', decline: { offer_ids: [...launches.keys()].map((value) => ({ value })), filters: { refuse_seconds: 1 } } });
      return;
    }
    for (const [offerId, taskInfos] of launches) {
      this.send({
        type: 'ACCEPT',
        accept: { offer_ids: [{ value: offerId }], operations: [{ type: 'LAUNCH', launch: { task_infos: taskInfos } }], filters: { refuse_seconds: stillNeeded ? 0 : DECLINE_BUSY_SECONDS } },
      });
    }
    this.schedulePass();
  }

  // -------------------------------------------------------------------------------------------
  // The reconcile pass
  // -------------------------------------------------------------------------------------------

  private schedulePass(): void {
    if (this.passScheduled || this.stopped) return;
    this.passScheduled = true;
    setImmediate(() => {
      this.passScheduled = false;
      if (!this.stopped) this.pass();
    });
  }

  /** One pass: deployments forward, every app reconciled, kills sent, needs kept, offers revived or suppressed. */
  private pass(): void {
    const now = this.now();
    this.advanceDeployments(now);
    this.expungeUnreachable(now);
    this.reconcileUnconfirmed(now);
    const needs = new Map<string, number>();
    const ids = new Set<string>([...this.apps.keys(), ...this.byApp.keys()]);
    for (const run of this.deploymentRuns.values()) for (const a of run.plan.affectedApps) ids.add(a);
    for (const appId of ids) {
      const spec = this.runSpec(appId);
      let result: ReturnType<typeof reconcileApp>;
      try {
        result = reconcileApp({ spec: spec.def, configVersion: spec.configVersion, instances: this.instancesOf(appId), now });
      } catch (e) {
        // A definition the reconciler cannot work with is a bug upstream; it must not stop the
        // other apps (nor, in slipway up, the master that shares this process).
        this.log(`apps framework: cannot reconcile ${appId}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      for (const k of result.kill) this.killInstance(k.taskId, k.reason);
      if (result.launch > 0) {
        if (!this.queueSince.has(appId)) this.queueSince.set(appId, now);
        const b = this.backoffs.get(appId);
        if (b === undefined || b.until <= now) needs.set(appId, result.launch);
      } else {
        this.queueSince.delete(appId);
        this.offerStats.delete(appId);
      }
    }
    this.forgetOldBackoffs(now);
    this.retryKills(now);
    this.needs = needs;
    let total = 0;
    for (const n of needs.values()) total += n;
    // REVIVE when needs appear or grow, and again while needs wait without offers (a REVIVE can
    // be lost, or overtaken by an earlier SUPPRESS on the way).
    const starved = total > 0 && now - this.lastOffersAt >= REVIVE_RETRY_MS && now - this.lastReviveAt >= REVIVE_RETRY_MS;
    if (total > 0 && (this.suppressed || total > this.lastNeedTotal || starved)) {
      this.lastReviveAt = now;
      // REVIVE also clears the filters of declined offers, so new needs are met at once.
      this.suppressed = false;
      this.send({ type: 'REVIVE', revive: { roles: [this.role] } });
    } else if (total === 0 && !this.suppressed && this.session?.subscription !== undefined) {
      this.suppressed = true;
      this.send({ type: 'SUPPRESS', suppress: { roles: [this.role] } });
    }
    this.lastNeedTotal = total;
  }

  /** Unreachable instances past expungeAfterSeconds, or killed while unreachable, are forgotten (killed if they return). */
  private expungeUnreachable(now: number): void {
    for (const inst of [...this.instances.values()]) {
      if (inst.unreachableSince === undefined) continue;
      const def = this.runSpec(inst.appId).def;
      const strategy = def?.unreachableStrategy ?? { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 };
      const expire = strategy !== 'disabled' && now >= inst.unreachableSince + strategy.expungeAfterSeconds * 1000;
      if (!inst.killing && !expire) continue;
      if (!inst.killing) this.send({ type: 'KILL', kill: { task_id: { value: inst.taskId }, agent_id: { value: inst.agentId } } });
      this.removeInstance(inst.taskId);
      void this.persist([{ type: 'INSTANCE_REMOVED', taskId: inst.taskId }]).catch(() => undefined);
      this.publish('instance_changed_event', { instanceId: inst.taskId, condition: 'Gone', runSpecId: inst.appId, agentId: inst.agentId, host: inst.host, runSpecVersion: inst.version });
    }
  }

  private advanceDeployments(now: number): void {
    for (const run of [...this.deploymentRuns.values()]) {
      let moved = false;
      while (!run.done && run.currentActions().every((a) => this.actionDone(run, a.app, a.action))) {
        const step = run.plan.steps[run.currentStep]!;
        this.publish('deployment_step_success', { plan: this.planJson(run), currentStep: { actions: step.actions } });
        run.currentStep++;
        moved = true;
      }
      if (run.done) {
        this.removeRun(run);
        void this.persist([{ type: 'DEPLOYMENT_REMOVED', id: run.id }]).catch(() => undefined);
        this.publish('deployment_success', { id: run.id, plan: this.planJson(run) });
        this.log(`deployment ${run.id} done in ${now - run.startedAt} ms`);
      } else if (moved) {
        void this.persist([{ type: 'DEPLOYMENT_SAVED', deployment: { id: run.id, doc: run.toDoc() } }]).catch(() => undefined);
        this.publish('deployment_info', { plan: this.planJson(run), currentStep: { actions: run.currentActions() } });
      }
    }
  }

  private actionDone(run: DeploymentRun, appId: string, action: string): boolean {
    const now = this.now();
    const spec = run.runSpec(appId);
    const alive = this.instancesOf(appId).filter((i) => isAlive(i) && !(i.killing && i.unreachableSince !== undefined) && !(spec.def !== undefined && isInactive(i, spec.def.unreachableStrategy, now)));
    switch (action) {
      case 'StartApplication':
        return true;
      case 'StopApplication':
        return alive.length === 0;
      default: {
        const def = spec.def;
        if (def === undefined) return alive.length === 0;
        return alive.length === def.instances && alive.every((i) => !i.killing && i.configVersion === spec.configVersion && isHealthy(i) && i.ready);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Instances
  // -------------------------------------------------------------------------------------------

  private addInstance(inst: Instance): void {
    this.instances.set(inst.taskId, inst);
    let m = this.byApp.get(inst.appId);
    if (m === undefined) this.byApp.set(inst.appId, (m = new Map()));
    m.set(inst.taskId, inst);
  }

  private removeInstance(taskId: string): void {
    const inst = this.instances.get(taskId);
    if (inst === undefined) return;
    this.instances.delete(taskId);
    this.unconfirmed.delete(taskId);
    this.lastHeard.delete(taskId);
    this.killSentAt.delete(taskId);
    const m = this.byApp.get(inst.appId);
    m?.delete(taskId);
    if (m?.size === 0) this.byApp.delete(inst.appId);
    const r = this.readiness.get(taskId);
    if (r !== undefined) clearTimeout(r.timer);
    this.readiness.delete(taskId);
  }

  instancesOf(appId: string): Instance[] {
    return [...(this.byApp.get(appId)?.values() ?? [])];
  }

  private killInstance(taskId: string, reason: string): void {
    const inst = this.instances.get(taskId);
    if (inst === undefined || inst.killing) return;
    inst.killing = true;
    this.killSentAt.set(taskId, this.now());
    this.log(`apps framework: killing ${taskId}: ${reason}`);
    void this.persist([{ type: 'INSTANCE_SAVED', instance: { taskId, appId: inst.appId, doc: inst } }]).catch(() => undefined);
    const grace = this.runSpec(inst.appId).def?.taskKillGracePeriodSeconds ?? this.apps.get(inst.appId)?.def.taskKillGracePeriodSeconds;
    this.send({
      type: 'KILL',
      kill: { task_id: { value: taskId }, agent_id: { value: inst.agentId }, ...(grace !== undefined ? { kill_policy: { grace_period: { nanoseconds: Math.round(grace * 1e9) } } } : {}) },
    });
  }

  /** Polls the readiness check of a running instance until it is ready (Marathon runs these itself). */
  private startReadiness(inst: Instance): void {
    if (this.readiness.has(inst.taskId)) return;
    const def = this.runSpec(inst.appId).def ?? this.apps.get(inst.appId)?.def;
    const check = def?.readinessChecks[0];
    if (def === undefined || check === undefined) {
      inst.ready = true;
      return;
    }
    const portIndex = def.portDefinitions.findIndex((p) => p.name === check.portName);
    const port = inst.ports[portIndex];
    const state: ReadinessState = { results: new Map() };
    this.readiness.set(inst.taskId, state);
    const gone = () => this.stopped || this.instances.get(inst.taskId) !== inst;
    const run = async () => {
      if (gone()) return;
      const result = port === undefined ? { ready: false, error: `no port named ${check.portName}` } : await probeReadiness(check, inst.host, port);
      // The instance may have ended (or the framework stopped) during the probe: a late result
      // must not write a removed instance back into the store.
      if (gone()) return;
      state.results.set(check.name, { name: check.name, taskId: inst.taskId, ready: result.ready, ...(result.lastResponse !== undefined ? { lastResponse: result.lastResponse } : {}) });
      if (result.ready) {
        inst.ready = true;
        this.readiness.delete(inst.taskId);
        void this.persist([{ type: 'INSTANCE_SAVED', instance: { taskId: inst.taskId, appId: inst.appId, doc: inst } }]).catch(() => undefined);
        this.schedulePass();
        return;
      }
      state.timer = setTimeout(() => void run(), check.intervalSeconds * 1000);
      state.timer.unref();
    };
    void run();
  }

  // -------------------------------------------------------------------------------------------
  // Run specs and versions
  // -------------------------------------------------------------------------------------------

  deploymentOf(appId: string): DeploymentRun | undefined {
    return this.runOfApp.get(appId);
  }

  private addRun(run: DeploymentRun): void {
    this.deploymentRuns.set(run.id, run);
    for (const app of run.plan.affectedApps) this.runOfApp.set(app, run);
  }

  private removeRun(run: DeploymentRun): void {
    this.deploymentRuns.delete(run.id);
    for (const app of run.plan.affectedApps) if (this.runOfApp.get(app) === run) this.runOfApp.delete(app);
  }

  private runSpec(appId: string): RunSpec {
    const run = this.deploymentOf(appId);
    if (run !== undefined) return run.runSpec(appId);
    const app = this.apps.get(appId);
    return app === undefined ? { def: undefined, configVersion: '' } : { def: app.def, configVersion: app.info.lastConfigChangeAt };
  }

  /** The version string of what a run spec runs (the deployment's target version, or the declared one). */
  private versionOf(appId: string, spec: RunSpec): string {
    const run = this.deploymentOf(appId);
    for (const v of [run?.target.get(appId), run?.original.get(appId)]) {
      if (v !== undefined && v.info.lastConfigChangeAt === spec.configVersion) return v.info.version;
    }
    return this.apps.get(appId)?.info.version ?? spec.configVersion;
  }

  /** A fresh version timestamp, strictly later than every one given before. */
  private newVersion(): string {
    const t = Math.max(this.now(), this.lastVersion + 1);
    this.lastVersion = t;
    return new Date(t).toISOString();
  }

  // -------------------------------------------------------------------------------------------
  // Operations (the REST API's verbs)
  // -------------------------------------------------------------------------------------------

  listApps(): VersionedApp[] {
    return [...this.apps.values()].sort((a, b) => (a.def.id < b.def.id ? -1 : 1));
  }

  getApp(appId: string): VersionedApp {
    const app = this.apps.get(appId);
    if (app === undefined) throw new AppNotFound(appId);
    return app;
  }

  hasApp(appId: string): boolean {
    return this.apps.has(appId);
  }

  appVersions(appId: string): StoredAppJson[] {
    this.getApp(appId);
    return this.versions.get(appId) ?? [];
  }

  deployments(): DeploymentRun[] {
    return [...this.deploymentRuns.values()];
  }

  readinessResults(appId: string): ReadinessCheckResultJson[] {
    return this.instancesOf(appId).flatMap((i) => [...(this.readiness.get(i.taskId)?.results.values() ?? [])]);
  }

  lastTaskFailure(appId: string): TaskFailure | undefined {
    return this.failures.get(appId);
  }

  hasInstance(taskId: string): boolean {
    return this.instances.has(taskId);
  }

  allInstances(): Instance[] {
    return [...this.instances.values()];
  }

  queue(): QueueEntry[] {
    const now = this.now();
    const out: QueueEntry[] = [];
    for (const [appId, since] of this.queueSince) {
      const spec = this.runSpec(appId);
      const app = this.apps.get(appId);
      if (spec.def === undefined || app === undefined) continue;
      const r = reconcileApp({ spec: spec.def, configVersion: spec.configVersion, instances: this.instancesOf(appId), now });
      if (r.launch <= 0) continue;
      const stats = this.offerStats.get(appId) ?? { processed: 0, unused: 0 };
      out.push({ app, count: r.launch, since, delayUntil: this.backoffs.get(appId)?.until ?? 0, processedOffers: stats.processed, unusedOffers: stats.unused });
    }
    return out;
  }

  /** DELETE /v2/queue/{app}/delay: launch at once and start the backoff over. */
  resetDelay(appId: string): void {
    this.getApp(appId);
    this.backoffs.delete(appId);
    this.schedulePass();
  }

  /**
   * Deploys a new set of declared apps (the whole root group after a change): plans the
   * deployment from the current apps to `target`, checks that no running deployment holds an
   * affected app (or cancels those with `force`), gives changed apps a new version, stores the
   * apps and the deployment, and lets the reconciler run it. Ports declared 0 get their service
   * ports first (service-ports.ts). `restart` names apps to roll even if
   * their definition is unchanged (POST /v2/apps/{id}/restart).
   */
  async deploy(declaredTarget: ReadonlyMap<string, AppDefinition>, opts: { force?: boolean; restart?: readonly string[] } = {}): Promise<{ deploymentId: string; version: string; plan: DeploymentPlan }> {
    const version = this.newVersion();
    const original = new Map([...this.apps].map(([id, v]) => [id, v.def] as const));
    const target = assignServicePorts(original, declaredTarget);
    const plan = planDeployment(original, target, { id: randomUUID(), version });
    for (const id of opts.restart ?? []) {
      if (plan.affectedApps.includes(id) || !target.has(id)) continue;
      plan.steps.push({ actions: [{ action: 'RestartApplication', app: id }] });
      plan.affectedApps = [...plan.affectedApps, id].sort();
    }
    const holders = new Set<DeploymentRun>();
    for (const id of plan.affectedApps) {
      const run = this.deploymentOf(id);
      if (run !== undefined) holders.add(run);
    }
    if (holders.size > 0 && opts.force !== true) throw new AppLocked([...holders].map((r) => r.id));

    const changes: AppsChange[] = [];
    for (const run of holders) {
      // Forced: the old deployment stops where it is, without rollback; its apps' declared
      // definitions stand and the reconciler converges them.
      this.removeRun(run);
      changes.push({ type: 'DEPLOYMENT_REMOVED', id: run.id });
      this.publish('deployment_failed', { id: run.id, plan: this.planJson(run), reason: `cancelled by the forced deployment ${plan.id}` });
    }
    const originalVersioned = new Map<string, VersionedApp>();
    const targetVersioned = new Map<string, VersionedApp>();
    const restarts = new Set(opts.restart ?? []);
    for (const id of plan.affectedApps) {
      const before = this.apps.get(id);
      if (before !== undefined) originalVersioned.set(id, before);
      const def = target.get(id);
      if (def === undefined) continue;
      const scaleOnly = before !== undefined && !restarts.has(id) && jsonEqual({ ...before.def, instances: 0 }, { ...def, instances: 0 });
      const info: AppVersionInfo = scaleOnly
        ? { version, lastScalingAt: version, lastConfigChangeAt: before.info.lastConfigChangeAt }
        : { version, lastScalingAt: version, lastConfigChangeAt: version };
      targetVersioned.set(id, { def, info });
    }
    const run = new DeploymentRun(
      { ...plan, original: new Map([...originalVersioned].map(([k, v]) => [k, v.def])), target: new Map([...targetVersioned].map(([k, v]) => [k, v.def])) },
      originalVersioned,
      targetVersioned,
      this.now(),
    );
    for (const id of plan.affectedApps) {
      const next = targetVersioned.get(id);
      if (next === undefined) {
        this.apps.delete(id);
        this.versions.delete(id);
        this.backoffs.delete(id);
        this.failures.delete(id);
        changes.push({ type: 'APP_REMOVED', appId: id });
        continue;
      }
      const prevConfig = this.apps.get(id)?.info.lastConfigChangeAt;
      if (prevConfig !== next.info.lastConfigChangeAt) this.backoffs.delete(id);
      this.apps.set(id, next);
      const stored = storedApp(next);
      const list = [...(this.versions.get(id) ?? []), stored].slice(-MAX_VERSIONS_PER_APP);
      this.versions.set(id, list);
      changes.push({ type: 'APP_SAVED', app: stored });
    }
    this.addRun(run);
    changes.push({ type: 'DEPLOYMENT_SAVED', deployment: { id: run.id, doc: run.toDoc() } });
    await this.persist(changes);
    for (const [id, v] of targetVersioned) {
      // Marathon publishes one per app a request changed; the request itself is the routes' (no client address here).
      this.publish('api_post_event', { clientIp: '', uri: `/v2/apps${id}`, appDefinition: storedApp(v) });
    }
    this.publish('group_change_success', { groupId: '/', version });
    this.publish('deployment_info', { plan: this.planJson(run), currentStep: { actions: run.currentActions() } });
    this.schedulePass();
    return { deploymentId: run.id, version, plan: run.plan };
  }

  /** The declared apps as a map, for building a deploy target. */
  declared(): Map<string, AppDefinition> {
    return new Map([...this.apps].map(([id, v]) => [id, v.def] as const));
  }

  /**
   * DELETE /v2/deployments/{id}: without `force`, a new deployment that takes the affected apps
   * back to their definitions before it (Marathon's rollback); with `force`, the deployment just
   * stops (apps keep their new definitions and are converged without a deployment).
   */
  async cancelDeployment(id: string, force: boolean): Promise<{ deploymentId: string; version: string } | undefined> {
    const run = this.deploymentRuns.get(id);
    if (run === undefined) throw new DeploymentNotFound(id);
    if (force) {
      this.removeRun(run);
      await this.persist([{ type: 'DEPLOYMENT_REMOVED', id }]);
      this.publish('deployment_failed', { id, plan: this.planJson(run), reason: 'stopped' });
      this.schedulePass();
      return undefined;
    }
    // The rollback is a forced deployment: it cancels this one in the same store batch, so a
    // crash cannot leave the apps on the new definition without a deployment.
    const target = this.declared();
    for (const appId of run.plan.affectedApps) {
      const before = run.original.get(appId);
      if (before === undefined) target.delete(appId);
      else target.set(appId, before.def);
    }
    const { deploymentId, version } = await this.deploy(target, { force: true });
    return { deploymentId, version };
  }

  /**
   * Kills instances by task id (DELETE /v2/apps/{id}/tasks..., /v2/tasks/delete). With `scale`,
   * the apps' instance counts drop by the number killed (a new deployment); without, the
   * reconciler replaces them. `wipe` also forgets them at once (Marathon's wipe).
   */
  async killTasks(taskIds: readonly string[], opts: { scale?: boolean; wipe?: boolean; force?: boolean } = {}): Promise<{ instances: Instance[]; deployment?: { deploymentId: string; version: string } }> {
    const found = [...new Set(taskIds)].map((t) => {
      const inst = this.instances.get(t);
      if (inst === undefined) throw new TaskNotFoundInApp(t);
      return inst;
    });
    let deployment: { deploymentId: string; version: string } | undefined;
    if (opts.scale === true && opts.force !== true) {
      // The scale-down is a deployment: refuse it (409) before killing anything, as Marathon
      // does, rather than kill the tasks and then find the apps locked (they would be replaced).
      const holders = new Set<string>();
      for (const i of found) {
        const run = this.deploymentOf(i.appId);
        if (run !== undefined && !i.killing) holders.add(run.id);
      }
      if (holders.size > 0) throw new AppLocked([...holders]);
    }
    if (opts.scale === true) {
      const target = this.declared();
      const byAppCount = new Map<string, number>();
      for (const i of found) if (!i.killing) byAppCount.set(i.appId, (byAppCount.get(i.appId) ?? 0) + 1);
      for (const [appId, n] of byAppCount) {
        const def = target.get(appId);
        if (def !== undefined) target.set(appId, { ...def, instances: Math.max(0, def.instances - n) });
      }
      // Mark first, so the scale-down does not pick other instances.
      for (const i of found) this.killInstance(i.taskId, 'killed through the API (scale)');
      const d = await this.deploy(target, { force: opts.force === true });
      deployment = { deploymentId: d.deploymentId, version: d.version };
    } else {
      for (const i of found) this.killInstance(i.taskId, 'killed through the API');
    }
    if (opts.wipe === true) {
      for (const i of found) this.removeInstance(i.taskId);
      await this.persist(found.map((i) => ({ type: 'INSTANCE_REMOVED', taskId: i.taskId })));
    }
    await this.flushWrites();
    this.schedulePass();
    return { instances: found, ...(deployment !== undefined ? { deployment } : {}) };
  }

  private planJson(run: DeploymentRun): unknown {
    const json = run.toJSON();
    return { id: json.id, version: json.version, original: { id: '/' }, target: { id: '/' }, steps: json.steps };
  }

  private publish(eventType: string, fields: Record<string, unknown>): void {
    this.options.events?.publish({ eventType, timestamp: new Date(this.now()).toISOString(), ...fields });
  }
}


function placementApp(def: AppDefinition): PlacementApp {
  const fixed = def.requirePorts && def.portDefinitions.every((p) => p.port !== 0) ? def.portDefinitions.map((p) => p.port) : undefined;
  return {
    id: def.id,
    cpus: def.cpus,
    mem: def.mem,
    disk: def.disk,
    ports: def.portDefinitions.length,
    ...(fixed !== undefined ? { requirePorts: fixed } : {}),
    constraints: def.constraints,
    ...(def.acceptedResourceRoles !== undefined ? { acceptedResourceRoles: def.acceptedResourceRoles } : {}),
  };
}


/** Marathon's instance condition names for a Mesos task state. */
export function marathonCondition(state: TaskState): string {
  const names: Record<TaskState, string> = {
    TASK_STAGING: 'Staging',
    TASK_STARTING: 'Starting',
    TASK_RUNNING: 'Running',
    TASK_KILLING: 'Killing',
    TASK_FINISHED: 'Finished',
    TASK_FAILED: 'Failed',
    TASK_KILLED: 'Killed',
    TASK_ERROR: 'Error',
    TASK_LOST: 'Gone',
    TASK_DROPPED: 'Dropped',
    TASK_UNREACHABLE: 'Unreachable',
    TASK_GONE: 'Gone',
    TASK_GONE_BY_OPERATOR: 'GoneByOperator',
    TASK_UNKNOWN: 'Unknown',
  };
  return names[state];
}

