import { SystemClock } from '../../core/clock.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFile, mkdir, readdir, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Resources } from '../../core/resources.ts';
import { isTerminal } from '../../core/task-state.ts';
import type { DistributiveOmit } from '../../core/distributive-omit.ts';
import type { Offer, TaskInfo, TaskStatus } from '../../protocol/mesos.ts';
import { FrameworkSession } from '../kit/framework-session.ts';
import { offerAttributes } from '../kit/offer-attributes.ts';
import type { Event, FrameworkCall } from '../../protocol/scheduler.ts';
import type { SchedulerTransport } from '../../protocol/scheduler-transport.ts';
import { buildKey, isFinished, type Build, type BuildCause } from './build.ts';
import type { CiChange, CiStore } from './ci-store.ts';
import { planExecutorPool, type PoolExecutor, type WaitReason } from './executor-pool.ts';
import { executorContainer, type ExecutorProgramFor } from './executor-task.ts';
import { EXECUTOR_HEARTBEAT_SECONDS, MISSED_HEARTBEATS, type ExecutorToServer, type ServerToExecutor } from './executor-protocol.ts';
import { writeMirror } from './git/config-mirror.ts';
import { readFileAt, resolveRef } from './git/git-source.ts';
import { DEFAULT_EXECUTOR_LABEL, DEFAULT_PIPELINE_FILE, defaultExecutorSpec, type ExecutorConstraint, type ExecutorSpec, type JobDefinition } from './job-definition.ts';
import { parsePipeline } from './pipeline/parse-pipeline.ts';
import type { BuildEvent, Pipeline } from './pipeline/pipeline.ts';
import { TriggerRunner, type TriggerStatus, type WebhookOutcome } from './triggers/trigger-runner.ts';
import type { Headers } from './triggers/webhook-request.ts';

/** One executor: a task CI launched on an agent, and (once it said HELLO) its stream. */
export interface ExecutorRecord {
  id: string;
  label: string;
  /** Given to the task at launch; an executor proves with it that CI launched it. */
  token: string;
  taskId: string;
  agentId: string;
  hostname: string;
  state: PoolExecutor['state'];
  launchedAt: number;
  idleSince?: number;
  /** The build it runs (a build key). */
  build?: string;
}

/** The executor's end of its stream, as the HTTP layer gives it to CI. */
export interface ExecutorConnection {
  send(message: ServerToExecutor): void;
  close(): void;
}

export interface CiFrameworkOptions {
  transport: SchedulerTransport;
  store: CiStore;
  /** Logs, artifacts and scratch checkouts live here. */
  dataDir: string;
  /** How an executor task runs `slipway ci-executor --server ... --id ... --token ...` (executor-task.ts). */
  executorProgram: ExecutorProgramFor;
  role?: string;
  /**
   * A git repository (URL or path) that mirrors the jobs and executor specs: written and pushed
   * after every change (`slipway ci import --from` restores them into a fresh server).
   */
  mirrorRepo?: string;
  now?: () => number;
  log?: (line: string) => void;
}


const TICK_MS = 1000;
/** An executor that has not said HELLO this long after its launch is given up. */
const HELLO_TIMEOUT_MS = 60_000;
/** After a restart, how long running builds wait for their executor to come back. */
const RECONNECT_GRACE_MS = 30_000;
/** An executor asked to SHUTDOWN that still runs after this long is killed. */
const SHUTDOWN_GRACE_MS = 30_000;
const DECLINE_IDLE_SECONDS = 120;
/** Executors of a label failing to start this many times in a row end its waiting builds. */
const MAX_LAUNCH_FAILURES = 5;
const DECLINE_BUSY_SECONDS = 5;
/**
 * How long an agent's last offer counts as capacity on its way when spreading executors: the
 * master offers agents one by one as their resources come back (after an ACCEPT, a DECLINE, a
 * task's end), so one batch of offers rarely shows every agent.
 */
const OFFER_MEMORY_MS = 5_000;

/**
 * CI as a framework of the cluster. Builds wait in a queue (stored); the pure pool planner
 * decides which idle executor takes which build, how many executors to start per label and
 * which idle ones to stop; executors are tasks started from fitting offers, spread over the
 * agents, and connect back over their stream (executor-protocol.ts).
 *
 * Durability: jobs, specs, builds, executors and trigger states are written before they are
 * acted on. After a restart, running builds wait RECONNECT_GRACE_MS for their executor (which
 * reconnects by itself and says what it runs); a build whose executor is gone ends in `error`
 * with the reason; executor tasks CI does not know are killed (implicit reconciliation).
 */
export class CiFramework {
  readonly jobs = new Map<string, JobDefinition>();
  readonly specs = new Map<string, ExecutorSpec>();
  readonly builds = new Map<string, Build>();
  readonly executors = new Map<string, ExecutorRecord>();
  private readonly lastNumbers = new Map<string, number>();
  /** Labels whose spec was PUT (the built-in `default` is not mirrored unless it was). */
  private readonly storedSpecs = new Set<string>();
  private mirrorChain: Promise<void> = Promise.resolve();
  private readonly connections = new Map<string, ExecutorConnection>();
  /** When each executor's stream last carried anything, and when a stream was lost (memory only). */
  private readonly lastHeard = new Map<string, number>();
  /** Each agent's attributes, as its offers show them (for executor constraints). */
  private readonly agentAttributes = new Map<string, Record<string, string>>();
  /** Each agent's latest offer, less what CI took from it (memory only): see OFFER_MEMORY_MS. */
  private readonly lastOffers = new Map<string, { at: number; hostname: string; left: Resources; role: string }>();
  /** Per build, the highest report sequence number stored with its log (what may be acknowledged). */
  private readonly durableSeq = new Map<string, number>();
  private readonly disconnectedAt = new Map<string, number>();
  private readonly reasons = new Map<string, WaitReason>();
  private readonly logListeners = new Map<string, Set<LogListener>>();
  /** Bytes in each build's whole log so far (known once a piece was appended in this process). */
  private readonly logSizes = new Map<string, number>();
  private needs = new Map<string, number>();
  /** Executors of a label that ended before connecting, in a row (memory only). */
  private readonly launchFailures = new Map<string, { count: number; until: number; message: string }>();
  /** Created by start(), with the stored framework id. */
  private session: FrameworkSession | undefined;
  private suppressed = false;
  private lastNeedTotal = 0;
  private stopped = false;
  private passScheduled = false;
  private tick: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly role: string;
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly options: CiFrameworkOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
    this.role = options.role ?? '*';
    this.triggers = this.createTriggers();
  }

  async start(): Promise<void> {
    const state = await this.options.store.load();
    for (const j of state.jobs) this.jobs.set(j.name, j.doc as JobDefinition);
    for (const s of state.executorSpecs) {
      this.specs.set(s.label, s.doc as ExecutorSpec);
      this.storedSpecs.add(s.label);
    }
    // The `default` label exists out of the box.
    if (!this.specs.has(DEFAULT_EXECUTOR_LABEL)) this.specs.set(DEFAULT_EXECUTOR_LABEL, defaultExecutorSpec());
    for (const e of state.executors) this.executors.set(e.id, { ...(e.doc as ExecutorRecord), state: (e.doc as ExecutorRecord).state === 'stopping' ? 'stopping' : 'launching' });
    for (const b of state.builds) {
      const doc = b.doc as Build;
      this.builds.set(buildKey(b.job, b.number), doc);
      this.durableSeq.set(buildKey(b.job, b.number), doc.seq);
    }
    for (const [job, n] of state.lastNumbers) this.lastNumbers.set(job, n);
    this.triggers.load(state.triggerStates);
    this.startedAt = this.now();
    await mkdir(join(this.options.dataDir, 'logs'), { recursive: true });
    const connected = new Promise<void>((resolve) => (this.onceConnected = resolve));
    this.session = new FrameworkSession({
      transport: this.options.transport,
      clock: new SystemClock(),
      name: 'slipway-ci',
      role: this.role,
      failoverTimeoutSeconds: 7 * 24 * 3600,
      capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }],
      ...(state.frameworkId !== undefined ? { frameworkId: state.frameworkId } : {}),
      onFrameworkId: (id) => void this.persist([{ type: 'FRAMEWORK_ID', frameworkId: id }]).catch(() => undefined),
      onSubscribed: () => this.onSubscribed(),
      onEvent: (e) => this.onEvent(e),
      log: this.log,
    });
    void this.session.connect();
    this.tick = setInterval(() => this.schedulePass(), TICK_MS);
    this.tick.unref();
    await connected;
    this.triggers.start();
  }

  private onceConnected: (() => void) | undefined;

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tick);
    this.session?.close();
    for (const c of this.connections.values()) c.close();
    await this.triggers.stop();
    await this.writes.catch(() => undefined);
    await this.mirrorChain;
  }

  // -------------------------------------------------------------------------------------------
  // The master
  // -------------------------------------------------------------------------------------------

  /** Subscribed (again): reconcile the executors' tasks, explicitly then implicitly, then a pass. */
  private onSubscribed(): void {
    this.suppressed = false;
    const tasks = [...this.executors.values()].map((e) => ({ task_id: { value: e.taskId }, agent_id: { value: e.agentId } }));
    if (tasks.length > 0) this.send({ type: 'RECONCILE', reconcile: { tasks } });
    this.send({ type: 'RECONCILE', reconcile: { tasks: [] } });
    this.onceConnected?.();
    this.onceConnected = undefined;
    this.schedulePass();
  }

  private send(call: DistributiveOmit<FrameworkCall, 'framework_id'>): void {
    this.session?.send(call);
  }

  private onEvent(e: Event): void {
    if (e.type === 'OFFERS') void this.onOffers(e.offers.offers);
    else if (e.type === 'UPDATE') this.onUpdate(e.update.status);
  }

  private onUpdate(status: TaskStatus): void {
    const ack = () => {
      if (status.uuid !== undefined && status.agent_id !== undefined) this.send({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid } });
    };
    const executor = [...this.executors.values()].find((x) => x.taskId === status.task_id.value);
    if (executor === undefined) {
      if (!isTerminal(status.state) && status.state !== 'TASK_UNREACHABLE') {
        this.log(`ci framework: killing unknown task ${status.task_id.value}`);
        this.send({ type: 'KILL', kill: { task_id: status.task_id, ...(status.agent_id !== undefined ? { agent_id: status.agent_id } : {}) } });
      }
      ack();
      return;
    }
    if (!isTerminal(status.state) && status.state !== 'TASK_UNREACHABLE') {
      ack();
      return;
    }
    // The executor's task ended (or its agent is lost): the executor is gone, and so is its build.
    const why = `its executor ${executor.id} on ${executor.hostname} ended: ${status.state}${status.message !== undefined ? ` (${status.message})` : ''}`;
    if (executor.state === 'launching' && !this.connections.has(executor.id)) this.launchFailed(executor.label, `${status.state}${status.message !== undefined ? `: ${status.message}` : ''}`);
    this.removeExecutor(executor, why);
    if (status.state === 'TASK_UNREACHABLE') this.send({ type: 'KILL', kill: { task_id: status.task_id, agent_id: { value: executor.agentId } } });
    this.writes.then(ack, ack);
  }

  /**
   * An executor ended before it ever connected (it cannot start there: too little memory, a
   * broken command...): the Jenkins plugin's "agents that never come online". Launches of the
   * label back off (1 s doubling to 60 s); after MAX_LAUNCH_FAILURES in a row, the builds waiting
   * for the label end in `error` with the reason instead of waiting for ever.
   */
  private launchFailed(label: string, message: string): void {
    const prev = this.launchFailures.get(label);
    const count = (prev?.count ?? 0) + 1;
    const delay = Math.min(60_000, 1000 * 2 ** (count - 1));
    this.launchFailures.set(label, { count, until: this.now() + delay, message });
    this.log(`ci framework: an executor of label ${label} ended before connecting (${count} in a row): ${message}`);
    if (count < MAX_LAUNCH_FAILURES) return;
    const changes: CiChange[] = [];
    for (const b of this.builds.values()) {
      if (b.status !== 'queued' || b.label !== label) continue;
      this.finishBuild(b, 'error', `no executor of label ${label} could start: ${count} failed in a row, the last with ${message}`);
      changes.push(this.buildChange(b));
    }
    if (changes.length > 0) void this.persist(changes);
  }

  private removeExecutor(executor: ExecutorRecord, why: string): void {
    this.executors.delete(executor.id);
    this.connections.get(executor.id)?.close();
    this.connections.delete(executor.id);
    this.lastHeard.delete(executor.id);
    this.disconnectedAt.delete(executor.id);
    const changes: CiChange[] = [{ type: 'EXECUTOR_REMOVED', id: executor.id }];
    const build = executor.build !== undefined ? this.builds.get(executor.build) : undefined;
    if (build !== undefined && !isFinished(build)) {
      this.finishBuild(build, build.cancelRequested === true ? 'cancelled' : 'error', `the build stopped because ${why}`);
      changes.push(this.buildChange(build));
    }
    void this.persist(changes);
    this.schedulePass();
  }

  // -------------------------------------------------------------------------------------------
  // Offers: executors from fitting offers, spread over the agents
  // -------------------------------------------------------------------------------------------

  private async onOffers(offers: Offer[]): Promise<void> {
    const now = this.now();
    for (const o of offers) {
      this.agentAttributes.set(o.agent_id.value, offerAttributes(o));
      this.lastOffers.set(o.agent_id.value, { at: now, hostname: o.hostname, left: Resources.fromJSON(o.resources), role: o.allocation_info.role });
    }
    this.pass();
    const perAgent = new Map<string, number>();
    for (const e of this.executors.values()) perAgent.set(e.agentId, (perAgent.get(e.agentId) ?? 0) + 1);
    const left = new Map(offers.map((o) => [o.id.value, Resources.fromJSON(o.resources)] as const));
    const launches = new Map<string, TaskInfo[]>();
    const created: ExecutorRecord[] = [];
    for (const [label, count] of this.needs) {
      const spec = this.specs.get(label);
      if (spec === undefined) continue;
      for (let k = 0; k < count; k++) {
        const ofLabel = [...this.executors.values()].filter((x) => x.label === label);
        const placed = ofLabel.map((x) => ({ hostname: x.hostname, attributes: this.agentAttributes.get(x.agentId) ?? {} }));
        // Spread over batches of offers too: an agent takes no more than an even share of the
        // label's executors (those there and those still needed) over the agents whose latest
        // offer could hold one, whether or not that offer is in this batch.
        const able = [...this.lastOffers].filter(
          ([agentId, l]) => now - l.at <= OFFER_MEMORY_MS && fit(l.left, spec, l.role) !== undefined && meetsConstraints(spec.constraints, { hostname: l.hostname, attributes: this.agentAttributes.get(agentId) ?? {} }, placed),
        ).length;
        const share = Math.ceil((ofLabel.length + count - k) / Math.max(1, able));
        const ofLabelOn = (agentId: string) => ofLabel.filter((x) => x.agentId === agentId).length;
        // The agent with the fewest executors first: builds spread over the machines.
        const candidates = offers
          .filter((o) => ofLabelOn(o.agent_id.value) < share && meetsConstraints(spec.constraints, { hostname: o.hostname, attributes: offerAttributes(o) }, placed))
          .map((o) => ({ o, take: fit(left.get(o.id.value)!, spec, o.allocation_info.role) }))
          .filter((c) => c.take !== undefined)
          .sort((a, b) => (perAgent.get(a.o.agent_id.value) ?? 0) - (perAgent.get(b.o.agent_id.value) ?? 0));
        const best = candidates[0];
        if (best === undefined || best.take === undefined) break;
        const id = randomUUID();
        const token = randomBytes(16).toString('hex');
        const taskId = `ci-executor-${label}-${id}`;
        const record: ExecutorRecord = { id, label, token, taskId, agentId: best.o.agent_id.value, hostname: best.o.hostname, state: 'launching', launchedAt: this.now() };
        created.push(record);
        this.executors.set(id, record);
        perAgent.set(record.agentId, (perAgent.get(record.agentId) ?? 0) + 1);
        left.set(best.o.id.value, left.get(best.o.id.value)!.subtract(best.take));
        const last = this.lastOffers.get(record.agentId);
        if (last !== undefined) last.left = left.get(best.o.id.value)!;
        const program = this.options.executorProgram({ id, token, label, containerizer: spec.containerizer });
        const container = executorContainer(spec, program);
        const info: TaskInfo = {
          name: `ci executor ${label}`,
          task_id: { value: taskId },
          agent_id: best.o.agent_id,
          resources: best.take.toJSON(best.o.allocation_info.role),
          command: program.command,
          ...(container !== undefined ? { container } : {}),
          labels: { labels: [{ key: 'slipway.ci.executor', value: label }] },
        };
        launches.set(best.o.id.value, [...(launches.get(best.o.id.value) ?? []), info]);
      }
    }
    const unused = offers.filter((o) => !launches.has(o.id.value)).map((o) => o.id);
    const stillNeeded = [...this.needs.values()].reduce((a, b) => a + b, 0) > created.length;
    if (unused.length > 0) this.send({ type: 'DECLINE', decline: { offer_ids: unused, filters: { refuse_seconds: stillNeeded ? DECLINE_BUSY_SECONDS : DECLINE_IDLE_SECONDS } } });
    if (created.length === 0) return;
    await this.persist(created.map((e) => ({ type: 'EXECUTOR_SAVED', id: e.id, doc: e })));
    for (const [offerId, taskInfos] of launches) {
      // No filter on what is left of the offer: offered again at once, it may take the next
      // executor of a build that came meanwhile (or is declined with the usual filters).
      this.send({ type: 'ACCEPT', accept: { offer_ids: [{ value: offerId }], operations: [{ type: 'LAUNCH', launch: { task_infos: taskInfos } }], filters: { refuse_seconds: 0 } } });
    }
    this.log(`ci framework: launching ${created.length} executor(s): ${created.map((e) => `${e.label} on ${e.hostname}`).join(', ')}`);
  }

  // -------------------------------------------------------------------------------------------
  // The pass: the pool plan, applied
  // -------------------------------------------------------------------------------------------

  schedulePass(): void {
    if (this.passScheduled || this.stopped) return;
    this.passScheduled = true;
    setImmediate(() => {
      this.passScheduled = false;
      if (!this.stopped) this.pass();
    });
  }

  private pass(): void {
    const now = this.now();
    this.expireExecutors(now);
    const waiting = [...this.builds.values()].filter((b) => b.status === 'queued');
    const runningPerJob = new Map<string, number>();
    for (const b of this.builds.values()) if (b.status === 'running') runningPerJob.set(b.job, (runningPerJob.get(b.job) ?? 0) + 1);
    const plan = planExecutorPool({
      waiting: waiting.map((b) => ({ key: buildKey(b.job, b.number), job: b.job, label: b.label, queuedAt: b.queuedAt })),
      runningPerJob,
      concurrency: new Map([...this.jobs].map(([name, j]) => [name, j.concurrency] as const)),
      // After a restart executors wait to reconnect as `launching`; one with a build is busy, not coming capacity.
      executors: [...this.executors.values()].map((e) => ({ id: e.id, label: e.label, state: e.state === 'launching' && e.build !== undefined ? 'busy' : e.state, ...(e.idleSince !== undefined ? { idleSince: e.idleSince } : {}) })),
      specs: new Map([...this.specs].map(([label, s]) => [label, { maxExecutors: s.maxExecutors, idleTerminationSeconds: s.idleTerminationSeconds }] as const)),
      now,
    });
    this.reasons.clear();
    for (const [k, r] of plan.reasons) this.reasons.set(k, r);
    for (const [key, executorId] of plan.assign) this.dispatch(key, executorId, now);
    for (const id of plan.stop) {
      const e = this.executors.get(id);
      if (e === undefined) continue;
      e.state = 'stopping';
      e.idleSince = now;
      this.connections.get(id)?.send({ type: 'SHUTDOWN' });
      void this.persist([{ type: 'EXECUTOR_SAVED', id, doc: e }]);
      this.log(`ci framework: executor ${id} (${e.label}) idle past its time: shutting it down`);
    }
    // Labels whose executors keep failing to start wait out their backoff (no launch loop).
    for (const [label, f] of this.launchFailures) {
      if (now >= f.until || !plan.launch.has(label)) continue;
      plan.launch.delete(label);
      const message = `executors of label ${label} fail to start (${f.count} in a row, last: ${f.message}); next try in ${Math.ceil((f.until - now) / 1000)} s`;
      for (const [key, r] of this.reasons) if (r.kind === 'waiting-for-offer' && this.builds.get(key)?.label === label) this.reasons.set(key, { kind: 'waiting-for-offer', message });
    }
    this.needs = plan.launch;
    const total = [...plan.launch.values()].reduce((a, b) => a + b, 0);
    if (total > 0 && (this.suppressed || total > this.lastNeedTotal)) {
      this.suppressed = false;
      this.send({ type: 'REVIVE', revive: { roles: [this.role] } });
    } else if (total === 0 && !this.suppressed && this.session?.subscription !== undefined) {
      this.suppressed = true;
      this.send({ type: 'SUPPRESS', suppress: { roles: [this.role] } });
    }
    this.lastNeedTotal = total;
  }

  /** Executors that never said HELLO, never came back after a restart, or ignore SHUTDOWN. */
  private expireExecutors(now: number): void {
    for (const e of [...this.executors.values()]) {
      // A stream silent for 3 heartbeats is taken for dead (a hung or partitioned executor);
      // an executor without a stream for longer than the grace is given up, with its build.
      const conn = this.connections.get(e.id);
      if (conn !== undefined && now - (this.lastHeard.get(e.id) ?? now) > MISSED_HEARTBEATS * EXECUTOR_HEARTBEAT_SECONDS * 1000) {
        this.log(`ci framework: executor ${e.id} silent for ${MISSED_HEARTBEATS} heartbeats: closing its stream`);
        this.connections.delete(e.id);
        this.disconnectedAt.set(e.id, now);
        conn.close();
      }
      const lostAt = this.disconnectedAt.get(e.id);
      if (lostAt !== undefined && !this.connections.has(e.id) && (e.state === 'idle' || e.state === 'busy') && now - lostAt > RECONNECT_GRACE_MS) {
        this.send({ type: 'KILL', kill: { task_id: { value: e.taskId }, agent_id: { value: e.agentId } } });
        this.removeExecutor(e, `its stream was lost ${Math.round((now - lostAt) / 1000)} s ago and it did not come back`);
        continue;
      }
      const connected = this.connections.has(e.id);
      const helloLate = e.state === 'launching' && !connected && now - Math.max(e.launchedAt, this.startedAt) > (e.build !== undefined ? RECONNECT_GRACE_MS : HELLO_TIMEOUT_MS);
      const shutdownLate = e.state === 'stopping' && now - (e.idleSince ?? now) > SHUTDOWN_GRACE_MS;
      if (!helloLate && !shutdownLate) continue;
      this.send({ type: 'KILL', kill: { task_id: { value: e.taskId }, agent_id: { value: e.agentId } } });
      this.removeExecutor(e, helloLate ? `it did not connect to CI within ${Math.round((now - Math.max(e.launchedAt, this.startedAt)) / 1000)} s` : 'it did not shut down');
    }
  }

  private dispatch(key: string, executorId: string, now: number): void {
    const build = this.builds.get(key);
    const executor = this.executors.get(executorId);
    const conn = this.connections.get(executorId);
    if (build === undefined || executor === undefined || conn === undefined || build.pipeline === undefined) return;
    const job = this.jobs.get(build.job);
    build.status = 'running';
    build.startedAt = now;
    build.executorId = executorId;
    build.agentId = executor.agentId;
    build.hostname = executor.hostname;
    executor.state = 'busy';
    executor.build = key;
    delete executor.idleSince;
    const pipeline = build.pipeline;
    void this.persist([this.buildChange(build), { type: 'EXECUTOR_SAVED', id: executorId, doc: executor }]).then(() => {
      conn.send({
        type: 'BUILD',
        build: {
          job: build.job,
          number: build.number,
          repo: build.repo,
          commit: build.commit ?? '',
          ...(build.branch !== undefined ? { branch: build.branch } : {}),
          ...(build.tag !== undefined ? { tag: build.tag } : {}),
          event: build.event,
          pipeline,
          env: { ...(job?.env ?? {}) },
        },
      });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Executors' streams
  // -------------------------------------------------------------------------------------------

  /**
   * An executor said HELLO over a new stream. Answers WELCOME (and from then on its messages go
   * to `executorMessage`), or ERROR and closes for an executor CI did not launch.
   */
  executorConnected(hello: Extract<ExecutorToServer, { type: 'HELLO' }>, token: string, conn: ExecutorConnection): boolean {
    const e = this.executors.get(hello.executorId);
    if (e === undefined || e.token !== token) {
      conn.send({ type: 'ERROR', message: `unknown executor ${hello.executorId} (or wrong token): CI did not launch it` });
      conn.close();
      return false;
    }
    this.connections.get(e.id)?.close();
    this.connections.set(e.id, conn);
    this.disconnectedAt.delete(e.id);
    this.lastHeard.set(e.id, this.now());
    this.launchFailures.delete(e.label);
    conn.send({ type: 'WELCOME', heartbeatIntervalSeconds: EXECUTOR_HEARTBEAT_SECONDS });
    const running = hello.running !== undefined ? buildKey(hello.running.job, hello.running.number) : undefined;
    if (e.build !== undefined && running !== e.build) {
      // It came back without the build CI thought it ran (it restarted): that build is lost.
      const build = this.builds.get(e.build);
      if (build !== undefined && !isFinished(build)) {
        this.finishBuild(build, 'error', `executor ${e.id} came back without it (restarted?)`);
        void this.persist([this.buildChange(build)]);
      }
      delete e.build;
    }
    if (e.state !== 'stopping') e.state = e.build !== undefined ? 'busy' : 'idle';
    if (e.state === 'idle') e.idleSince = this.now();
    if (e.state === 'stopping') conn.send({ type: 'SHUTDOWN' });
    void this.persist([{ type: 'EXECUTOR_SAVED', id: e.id, doc: e }]);
    this.schedulePass();
    return true;
  }

  executorDisconnected(executorId: string, conn: ExecutorConnection): void {
    if (this.connections.get(executorId) !== conn) return;
    this.connections.delete(executorId);
    this.disconnectedAt.set(executorId, this.now());
  }

  /** Any frame from an executor (heartbeats included): it is alive. */
  executorHeard(executorId: string): void {
    this.lastHeard.set(executorId, this.now());
  }

  executorMessage(executorId: string, m: ExecutorToServer): void {
    const e = this.executors.get(executorId);
    if (e === undefined || m.type === 'HELLO' || m.type === 'HEARTBEAT') return;
    const key = buildKey(m.job, m.number);
    const build = this.builds.get(key);
    const conn = this.connections.get(executorId);
    if (build === undefined || e.build !== key) {
      // Not a build CI keeps (its job was deleted meanwhile): nothing to store, but the executor
      // that ran it is free again when it is done.
      if (m.type === 'BUILD_DONE' && e.build === key) {
        delete e.build;
        if (e.state === 'busy') e.state = 'idle';
        e.idleSince = this.now();
        void this.persist([{ type: 'EXECUTOR_SAVED', id: e.id, doc: e }]);
        this.schedulePass();
      }
      conn?.send({ type: 'ACK', job: m.job, number: m.number, seq: m.seq });
      return;
    }
    if (m.seq <= build.seq) {
      // Seen already; acknowledge only what is durable (in the log file and the store), not what
      // memory has applied: the executor drops what is acknowledged.
      conn?.send({ type: 'ACK', job: m.job, number: m.number, seq: this.durableSeq.get(key) ?? 0 });
      return;
    }
    build.seq = m.seq;
    switch (m.type) {
      case 'STEP_STARTED': {
        const step = build.steps.find((s) => s.name === m.step);
        if (step !== undefined) Object.assign(step, { status: 'running', startedAt: m.at });
        break;
      }
      case 'LOG': {
        const stored = build.logBytes ?? { whole: 0, steps: {} };
        const n = Buffer.byteLength(m.text);
        this.appendLog(build, m.step, m.text, stored);
        build.logBytes = { whole: stored.whole + n, steps: { ...stored.steps, [m.step]: (stored.steps[m.step] ?? 0) + n } };
        break;
      }
      case 'STEP_FINISHED': {
        const step = build.steps.find((s) => s.name === m.step);
        if (step !== undefined) {
          Object.assign(step, { status: m.status, finishedAt: m.at, ...(m.exitCode !== undefined ? { exitCode: m.exitCode } : {}), ...(m.error !== undefined ? { error: m.error } : {}) });
          if (step.startedAt !== undefined) step.durationMs = m.at - step.startedAt;
        }
        break;
      }
      case 'BUILD_DONE':
        build.artifacts = m.artifacts;
        this.finishBuild(build, m.status, m.error);
        e.state = e.state === 'stopping' ? 'stopping' : 'idle';
        e.idleSince = this.now();
        delete e.build;
        break;
    }
    // The state as of this report, stored only once every log piece up to it is in the log file,
    // then acknowledged: a crash in between makes the executor send it again, so no log line is
    // lost (a line may be written twice if the crash falls between the file and the store).
    const changes = JSON.parse(JSON.stringify([this.buildChange(build), ...(m.type === 'BUILD_DONE' ? [{ type: 'EXECUTOR_SAVED', id: e.id, doc: e }] : [])])) as CiChange[];
    const seq = m.seq;
    const logged = this.logWrites.get(key) ?? Promise.resolve();
    void logged
      .then(() => this.persist(changes))
      .then(() => {
        this.durableSeq.set(key, Math.max(this.durableSeq.get(key) ?? 0, seq));
        conn?.send({ type: 'ACK', job: m.job, number: m.number, seq });
      })
      .catch(() => undefined);
    if (m.type === 'BUILD_DONE') this.schedulePass();
  }

  private finishBuild(build: Build, status: Build['status'], error?: string): void {
    build.status = status;
    build.finishedAt = this.now();
    if (error !== undefined) build.error = error;
    for (const s of build.steps) if (s.status === 'pending' || s.status === 'running') s.status = status === 'cancelled' ? 'cancelled' : 'skipped';
    // Followers of the log get its end once every piece before it is written.
    const key = buildKey(build.job, build.number);
    const end = () => {
      for (const l of this.logListeners.get(key) ?? []) l(undefined);
      this.logListeners.delete(key);
      this.logWrites.delete(key);
      for (const k of [...this.logSizes.keys()]) if (k === key || k.startsWith(`${key}\u0000`)) this.logSizes.delete(k);
    };
    const pending = this.logWrites.get(key);
    if (pending !== undefined) void pending.then(end);
    else end();
  }

  // -------------------------------------------------------------------------------------------
  // Logs: one file per step and one for the whole build, under the data dir
  // -------------------------------------------------------------------------------------------

  private readonly logWrites = new Map<string, Promise<void>>();

  logPath(job: string, number: number, step?: string): string {
    return join(this.options.dataDir, 'logs', job, String(number), step === undefined ? 'build.log' : `step-${step}.log`);
  }

  /**
   * Appends a piece to the build's and the step's log files. `stored` is what the store holds as
   * written (the sizes stored with the last report applied): the first append of a build in this
   * process cuts the files back to it, since bytes beyond it were written by a process that died
   * before storing them, and their reports come again. Each line is in the log exactly once.
   */
  private appendLog(build: Build, step: string, text: string, stored: { whole: number; steps: Record<string, number> }): void {
    const key = buildKey(build.job, build.number);
    const prev = this.logWrites.get(key) ?? Promise.resolve();
    const next = prev.then(async () => {
      const dir = join(this.options.dataDir, 'logs', build.job, String(build.number));
      await mkdir(dir, { recursive: true });
      const whole = this.logPath(build.job, build.number);
      const own = this.logPath(build.job, build.number, step);
      const stepKey = `${key}\u0000${step}`;
      if (!this.logSizes.has(key)) {
        await truncate(whole, stored.whole).catch(() => undefined);
        for (const f of await readdir(dir)) {
          const m = /^step-(.+)\.log$/.exec(f);
          if (m !== null) await truncate(join(dir, f), stored.steps[m[1]!] ?? 0).catch(() => undefined);
        }
        this.logSizes.set(key, stored.whole);
        for (const [name, n] of Object.entries(stored.steps)) this.logSizes.set(`${key}\u0000${name}`, n);
      }
      const size = this.logSizes.get(key) ?? 0;
      const stepSize = this.logSizes.get(stepKey) ?? 0;
      const bytes = Buffer.from(text);
      await appendFile(own, bytes);
      await appendFile(whole, bytes);
      this.logSizes.set(key, size + bytes.length);
      this.logSizes.set(stepKey, stepSize + bytes.length);
      for (const l of this.logListeners.get(key) ?? []) l({ step, bytes, end: size + bytes.length, stepEnd: stepSize + bytes.length });
    });
    this.logWrites.set(key, next.catch((e: unknown) => this.log(`ci framework: log of ${key} not written: ${String(e)}`)));
  }

  /**
   * Follows a build's log: `listener(piece)` for each piece appended from now on (with the byte
   * offset of its end in the whole log, so a reader of the file so far can skip what it has),
   * `listener(undefined)` once the build ended and every piece was written.
   */
  followLog(job: string, number: number, listener: LogListener): () => void {
    const key = buildKey(job, number);
    const set = this.logListeners.get(key) ?? new Set();
    set.add(listener);
    this.logListeners.set(key, set);
    return () => set.delete(listener);
  }

  // -------------------------------------------------------------------------------------------
  // Operations (the REST API's verbs)
  // -------------------------------------------------------------------------------------------

  async putJob(job: JobDefinition): Promise<boolean> {
    const created = !this.jobs.has(job.name);
    this.jobs.set(job.name, job);
    await this.persist([{ type: 'JOB_SAVED', name: job.name, doc: job }]);
    this.triggers.jobSaved(job, created);
    this.mirror(`${created ? 'add' : 'change'} job ${job.name}`);
    return created;
  }

  async deleteJob(name: string): Promise<boolean> {
    if (!this.jobs.delete(name)) return false;
    this.triggers.jobRemoved(name);
    for (const [key, b] of this.builds) {
      if (b.job !== name) continue;
      if (b.status === 'running') this.cancelRunning(b);
      this.builds.delete(key);
    }
    await this.persist([{ type: 'JOB_REMOVED', name }]);
    this.mirror(`remove job ${name}`);
    this.schedulePass();
    return true;
  }

  async putExecutorSpec(label: string, spec: ExecutorSpec): Promise<boolean> {
    const created = !this.specs.has(label);
    this.specs.set(label, spec);
    await this.persist([{ type: 'EXECUTOR_SPEC_SAVED', label, doc: spec }]);
    this.storedSpecs.add(label);
    this.mirror(`${created ? 'add' : 'change'} executor spec ${label}`);
    this.schedulePass();
    return created;
  }

  /**
   * Writes the configuration to the mirror repository, after the store (the store is the truth;
   * a failed push is logged and the next change pushes everything again). Serialized.
   */
  private mirror(message: string): void {
    const repo = this.options.mirrorRepo;
    if (repo === undefined) return;
    const config = {
      jobs: new Map([...this.jobs].map(([name, j]) => [name, j] as const)),
      executors: new Map([...this.specs].filter(([label]) => this.storedSpecs.has(label))),
    };
    this.mirrorChain = this.mirrorChain
      .then(() => writeMirror(repo, join(this.options.dataDir, 'mirror'), config, message))
      .then(
        (commit) => commit !== undefined && this.log(`ci: configuration mirrored to ${repo} (${commit.slice(0, 12)}: ${message})`),
        (e: unknown) => this.log(`ci: mirror to ${repo} failed: ${e instanceof Error ? e.message : String(e)}`),
      )
      .then(() => undefined);
  }

  /** Resolves once the mirror writes asked so far are done (for tests and shutdown). */
  mirrored(): Promise<void> {
    return this.mirrorChain;
  }

  /**
   * Queues a build of `job`: resolves the commit (the given one, the tag, or the branch's head),
   * reads the pipeline (inline, or the pipeline file at that commit) and its executor label. A
   * pipeline that cannot be read makes a build in `error` saying why. `alsoWrite` goes into the
   * build's own store write (a trigger's state: what it marks as built is durable with the build).
   */
  async trigger(jobName: string, opts: { cause: BuildCause; event: BuildEvent; commit?: string; branch?: string; tag?: string; pipeline?: Pipeline; alsoWrite?: CiChange[] }): Promise<Build> {
    const job = this.jobs.get(jobName);
    if (job === undefined) throw new Error(`no job ${jobName}`);
    const number = (this.lastNumbers.get(jobName) ?? 0) + 1;
    this.lastNumbers.set(jobName, number);
    const branch = opts.branch ?? (opts.tag === undefined ? job.branch : undefined);
    const build: Build = {
      job: jobName,
      number,
      status: 'queued',
      cause: opts.cause,
      event: opts.event,
      repo: job.repo,
      ...(branch !== undefined ? { branch } : {}),
      ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
      label: job.executor ?? DEFAULT_EXECUTOR_LABEL,
      steps: [],
      queuedAt: this.now(),
      artifacts: [],
      seq: 0,
    };
    try {
      const commit = opts.commit ?? (await resolveRef(job.repo, { ...(opts.tag !== undefined ? { tag: opts.tag } : {}), ...(branch !== undefined ? { branch } : {}) }));
      if (commit === undefined) throw new Error(`${opts.tag !== undefined ? `tag ${opts.tag}` : `branch ${branch ?? 'HEAD'}`} not found in ${job.repo}`);
      build.commit = commit;
      let pipeline = opts.pipeline;
      if (pipeline === undefined && job.pipeline !== undefined) pipeline = parsePipeline(job.pipeline);
      if (pipeline === undefined) {
        const scratch = join(this.options.dataDir, 'scratch', `${jobName}-${number}`);
        const file = job.pipelineFile ?? DEFAULT_PIPELINE_FILE;
        const text = await readFileAt(job.repo, commit, file, scratch);
        if (text === undefined) throw new Error(`no ${file} at commit ${commit.slice(0, 12)} of ${job.repo}`);
        pipeline = parsePipeline(text);
      }
      build.pipeline = pipeline;
      // The job's label wins over the pipeline's (the operator's setting over the repository's).
      build.label = job.executor ?? pipeline.executor ?? DEFAULT_EXECUTOR_LABEL;
      build.steps = pipeline.steps.map((s) => ({ name: s.name, status: 'pending' }));
    } catch (e) {
      build.status = 'error';
      build.finishedAt = this.now();
      build.error = e instanceof Error ? e.message : String(e);
    }
    await rm(join(this.options.dataDir, 'scratch', `${jobName}-${number}`), { recursive: true, force: true }).catch(() => undefined);
    this.builds.set(buildKey(jobName, number), build);
    await this.persist([this.buildChange(build), ...(opts.alsoWrite ?? [])]);
    this.log(`ci: ${jobName} #${number} ${build.status} (${opts.cause.description})`);
    this.schedulePass();
    return build;
  }

  async rebuild(jobName: string, number: number): Promise<Build> {
    const old = await this.getBuild(jobName, number);
    if (old === undefined) throw new Error(`no build ${jobName} #${number}`);
    return this.trigger(jobName, {
      cause: { kind: 'rebuild', description: `rebuild of #${number}` },
      event: old.event,
      ...(old.commit !== undefined ? { commit: old.commit } : {}),
      ...(old.branch !== undefined ? { branch: old.branch } : {}),
      ...(old.tag !== undefined ? { tag: old.tag } : {}),
      ...(old.pipeline !== undefined ? { pipeline: old.pipeline } : {}),
    });
  }

  /** Cancels a queued build at once, a running one through its executor. False if it had ended. */
  async cancel(jobName: string, number: number): Promise<boolean> {
    const build = this.builds.get(buildKey(jobName, number));
    if (build === undefined || isFinished(build)) return false;
    if (build.status === 'queued') {
      this.finishBuild(build, 'cancelled', 'cancelled while queued');
    } else {
      this.cancelRunning(build);
    }
    await this.persist([this.buildChange(build)]);
    this.schedulePass();
    return true;
  }

  private cancelRunning(build: Build): void {
    build.cancelRequested = true;
    const conn = build.executorId !== undefined ? this.connections.get(build.executorId) : undefined;
    conn?.send({ type: 'CANCEL', job: build.job, number: build.number });
  }

  async getBuild(job: string, number: number): Promise<Build | undefined> {
    const b = this.builds.get(buildKey(job, number));
    if (b !== undefined) return b;
    const [stored] = await this.options.store.builds(job, { limit: 1, before: number + 1 });
    return stored !== undefined && stored.number === number ? (stored.doc as Build) : undefined;
  }

  async listBuilds(job: string, limit: number, before?: number): Promise<Build[]> {
    const stored = await this.options.store.builds(job, { limit, ...(before !== undefined ? { before } : {}) });
    // Memory wins: it may be ahead of the store by the writes in flight.
    return stored.map((s) => this.builds.get(buildKey(s.job, s.number)) ?? (s.doc as Build));
  }

  /** The queue: queued builds, oldest first, each with why it waits. */
  queue(): { build: Build; why: string }[] {
    return [...this.builds.values()]
      .filter((b) => b.status === 'queued')
      .sort((a, b) => a.queuedAt - b.queuedAt)
      .map((b) => ({ build: b, why: this.reasons.get(buildKey(b.job, b.number))?.message ?? 'waiting for the next scheduling pass' }));
  }

  lastNumber(job: string): number {
    return this.lastNumbers.get(job) ?? 0;
  }

  // -------------------------------------------------------------------------------------------
  // Triggers: git polling, webhooks, cron (triggers/, see its README.md)
  // -------------------------------------------------------------------------------------------

  /** Polls, cron and webhooks, sharing each job's trigger state (TRIGGER_STATE_SAVED). */
  private readonly triggers: TriggerRunner;

  private createTriggers(): TriggerRunner {
    return new TriggerRunner({
      jobs: () => this.jobs.values(),
      job: (name) => this.jobs.get(name),
      trigger: (job, opts) => this.trigger(job, opts),
      write: (changes) => this.persist(changes),
      now: () => this.now(),
      log: (line) => this.log(line),
    });
  }

  /** `POST /ci/v1/hooks/{job}`: see TriggerRunner.webhook for what it checks and throws. */
  webhook(job: string, call: { headers: Headers; body: Buffer }): Promise<WebhookOutcome> {
    return this.triggers.webhook(job, call);
  }

  /** What a job's triggers have seen and when they look next (`GET /ci/v1/jobs/{name}/triggers`). */
  triggerStatus(job: JobDefinition): TriggerStatus {
    return this.triggers.status(job);
  }

  // -------------------------------------------------------------------------------------------
  // For Jenkins's remote API (http/jenkins-routes.ts)
  // -------------------------------------------------------------------------------------------

  /** Why a queued build waits, with the kind of reason (Jenkins tells blocked from buildable items); undefined if it does not wait. */
  waitReason(job: string, number: number): WaitReason | undefined {
    return this.reasons.get(buildKey(job, number));
  }

  /**
   * Resolves once every piece of the build's log received so far is in its files. A build is
   * marked finished as soon as its executor says so, while the last pieces may still be on their
   * way to disk: a reader that saw it finished waits for this before it calls the log complete.
   */
  logWritten(job: string, number: number): Promise<void> {
    return this.logWrites.get(buildKey(job, number)) ?? Promise.resolve();
  }

  // -------------------------------------------------------------------------------------------

  private buildChange(build: Build): CiChange {
    return { type: 'BUILD_SAVED', build: { job: build.job, number: build.number, finished: isFinished(build), doc: build } };
  }

  /** Writes in order; each caller waits for its own batch. A failed write is logged and rethrown. */
  private persist(changes: CiChange[]): Promise<void> {
    const snapshot = JSON.parse(JSON.stringify(changes)) as CiChange[];
    const p = this.writes.then(() => this.options.store.write(snapshot));
    this.writes = p.catch((e: unknown) => this.log(`ci store write failed: ${e instanceof Error ? e.message : String(e)}`));
    return p;
  }
}


/** A piece of a build's log: its step, its bytes, and the byte offsets of its end in the whole log and in its step's log. */
export interface LogPiece {
  step: string;
  bytes: Buffer;
  end: number;
  stepEnd: number;
}
export type LogListener = (piece: LogPiece | undefined) => void;

interface Place {
  hostname: string;
  attributes: Record<string, string>;
}


/**
 * Whether an executor of a label may start at `at`, given where the label's executors are (the
 * spec's constraints, Marathon's meanings: job-definition.ts). An agent without the attribute
 * passes only UNLIKE.
 */
export function meetsConstraints(constraints: readonly ExecutorConstraint[], at: Place, existing: readonly Place[]): boolean {
  const valueOf = (field: string, p: Place) => (field === 'hostname' ? p.hostname : p.attributes[field]);
  for (const c of constraints) {
    const v = valueOf(c.field, at);
    if (c.operator === 'UNLIKE') {
      if (v !== undefined && new RegExp(`^(?:${c.value ?? ''})$`).test(v)) return false;
      continue;
    }
    if (v === undefined) return false;
    const same = existing.filter((e) => valueOf(c.field, e) === v).length;
    if (c.operator === 'IS' && v !== c.value) return false;
    if (c.operator === 'LIKE' && !new RegExp(`^(?:${c.value ?? ''})$`).test(v)) return false;
    if (c.operator === 'UNIQUE' && same > 0) return false;
    if (c.operator === 'MAX_PER' && same >= Number(c.value)) return false;
  }
  return true;
}

/** The resources of an executor of `spec` taken from what is left of an offer, or undefined if they do not fit. */
function fit(left: Resources, spec: ExecutorSpec, role: string): Resources | undefined {
  const wanted = { cpus: spec.cpus, mem: spec.mem, ...(spec.disk > 0 ? { disk: spec.disk } : {}) };
  for (const r of role === '*' ? ['*'] : [role, '*']) {
    const take = Resources.scalars(wanted, r);
    if (left.contains(take)) return take;
  }
  return undefined;
}
