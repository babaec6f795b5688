import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../core/clock.ts';
import { InvalidResources } from '../core/errors.ts';
import { invalidIdReason } from '../core/ids.ts';
import { Resources } from '../core/resources.ts';
import { isTerminal, type TaskState, type TaskStatusReason } from '../core/task-state.ts';
import type { AgentToMaster, MasterToAgent } from '../protocol/agent.ts';
import type { Attribute, FrameworkInfo, KillPolicy, Offer, Resource, TaskInfo, TaskStatus } from '../protocol/mesos.ts';
import { readAccept } from '../protocol/read-accept.ts';
import { unhonouredTaskField } from '../protocol/task-support.ts';
import { secretUses } from '../protocol/task-secrets.ts';
import type { AcceptCall, Event, FrameworkCall, SubscribeCall } from '../protocol/scheduler.ts';
import { Allocator, type Allocation, type RoleInfo } from './allocator.ts';
import { AgentCredentialMismatch, AgentGone, AgentNotFound, FrameworkNotSubscribed, FrameworkRemoved, InvalidRequest } from './errors.ts';
import type { AgentMaintenance, MasterChange, StoredAgent, StoredState } from './master-store.ts';

/**
 * The master: agents, frameworks, offers and tasks, and the rules between them (Mesos's master).
 * Pure logic: no sockets, no files. Transports hand it calls and agent messages and give it a
 * connection to answer on; time comes from the injected Clock. The allocator decides who is
 * offered what; the master turns its plan into offers and keeps the books.
 *
 * Framework lifecycle:
 *
 *   SUBSCRIBE ──► CONNECTED ──stream drops──► DISCONNECTED ──failover_timeout──► REMOVED
 *                   ▲  │ ▲                        │                               ▲
 *                   │  │ └──── SUBSCRIBE (same id) ┘                               │
 *                   │  └──────────────────── TEARDOWN ─────────────────────────────┘
 *                   └── SUBSCRIBE (same id) from a new stream: failover, the old stream gets ERROR
 *
 * A removed framework's tasks are killed and its id can never subscribe again.
 */

export interface FrameworkConnection {
  send(event: Event): void;
  /** Ends the stream (after an ERROR event, a failover or a teardown). */
  close(): void;
}

export interface AgentConnection {
  send(message: MasterToAgent): void;
  close(): void;
}

export interface MasterOptions {
  clock: Clock;
  /** Prefix of every id the master makes. Random when not given. */
  masterId?: string;
  hostname?: string;
  port?: number;
  version?: string;
  /** Batch allocation period (Mesos `--allocation_interval`). Default 1000 ms. */
  allocationIntervalMs?: number;
  /** Heartbeats to frameworks. Default 15 s. */
  heartbeatIntervalSeconds?: number;
  /** Filter of a DECLINE or of the unused part of an ACCEPT without `filters`. Default 5 s. */
  defaultRefuseSeconds?: number;
  /** Terminal tasks kept per framework for the state endpoints. Default 1000. */
  maxCompletedTasksPerFramework?: number;
  /** Seed of the allocator's random choices. */
  seed?: number;
  minAllocatable?: Record<string, number>[];
  /**
   * Told after every allocation pass: its duration in ms (the time its slices ran, not the time
   * between them), the offers made, and its longest slice in ms. For metrics and benchmarks.
   */
  onAllocation?: (durationMs: number, offers: number, longestSliceMs: number) => void;
  /** A slice of an allocation pass runs at most about this long before the rest is deferred. Default 20 ms. */
  allocationSliceMs?: number;
  /**
   * Runs the next slice of a pass later. Default: a 0 ms timer of the clock (on the system
   * clock, after pending I/O). The scheduler bench gives `setImmediate`, to run its simulated
   * cluster on the real event loop.
   */
  defer?: (run: () => void) => void;
  /** Keep a journal of changes for a store (`drainChanges`). Off: nothing is kept. */
  journal?: boolean;
  /**
   * The value of a secret of the secret store by name, for a LAUNCH (undefined: no such secret).
   * Absent: tasks that reference secrets are refused.
   */
  resolveSecret?: (name: string) => string | undefined;
  /** An agent whose stream dropped is marked unreachable unless it is back within this. Default 5 s. */
  agentReconnectGraceMs?: number;
  /** Agents heartbeat this often; 3 missed in a row make the agent unreachable. Default 5 s. */
  agentHeartbeatIntervalMs?: number;
  /** After a master restart, agents known from the store have this long to reregister. Default 60 s. */
  agentReregisterTimeoutMs?: number;
  /**
   * An agent that announced a planned restart (RESTARTING) has this long to register again
   * before it is unreachable, instead of `agentReconnectGraceMs`. Default 120 s.
   */
  agentRestartGraceMs?: number;
}

/** Mesos's DrainInfo (master.proto): DRAINING until every task of the agent ended and was acknowledged. */
export interface DrainInfo {
  state: 'DRAINING' | 'DRAINED';
  /** Upper bound of the kill grace period of the agent's tasks, in ms. */
  maxGracePeriodMs: number | undefined;
  /** Remove the agent for good (as removeAgent) once drained. */
  markGone: boolean;
}

export interface Task {
  readonly id: string;
  readonly frameworkId: string;
  readonly agentId: string;
  readonly role: string;
  readonly resources: Resources;
  readonly info: TaskInfo;
  state: TaskState;
  /** The latest status the master knows, as sent to the framework. */
  status: TaskStatus | undefined;
  /** Set once the task's resources went back to the allocator. */
  freed: boolean;
  /** A kill asked while the agent was unreachable, to send when it comes back. */
  killPending: boolean;
}

/** An outstanding offer: the allocator's Allocation, given an id (the same object, to spare one per offer). */
interface OfferRecord extends Allocation {
  id: string;
}

interface FrameworkRecord {
  readonly id: string;
  readonly idObj: { value: string };
  info: FrameworkInfo & { id: { value: string } };
  roles: string[];
  partitionAware: boolean;
  conn: FrameworkConnection | undefined;
  tasks: Map<string, Task>;
  /**
   * How many offers it holds. Not a set of them: adding 50,000 offers to sets costs a pass more
   * than the rare walks over `Master.offers` that need a framework's offers (failover, removal).
   */
  offerCount: number;
  completed: Task[];
  registeredAt: number;
  disconnectedAt: number | undefined;
  failoverTimer: Timer | undefined;
}

/** RECOVERED: known from the store after a master restart, not yet reregistered. */
type AgentState = 'ACTIVE' | 'UNREACHABLE' | 'RECOVERED';

interface AgentRecord {
  readonly id: string;
  readonly idObj: { value: string };
  hostname: string;
  attributes: Attribute[];
  total: Resources;
  state: AgentState;
  conn: AgentConnection | undefined;
  tasks: Set<Task>;
  /** Outstanding offers on the agent: an array, as there are few (and a Set per agent costs more). */
  offers: OfferRecord[];
  registeredAt: number;
  unreachableAt: number | undefined;
  lastHeartbeatAt: number;
  /** Where the agent serves sandbox files. */
  url: string | undefined;
  containerizers: { kind: string; limits: { enforced: boolean; reason?: string } }[];
  /** Runs out the grace period of a dropped stream, or the reregistration timeout after recovery. */
  graceTimer: Timer | undefined;
  /** Deactivated by the operator (DEACTIVATE_AGENT, DRAIN_AGENT): no offers until REACTIVATE_AGENT. */
  deactivated: boolean;
  /** The credential its id is bound to (registerAgent). */
  credential: string | undefined;
  drain: DrainInfo | undefined;
  /** When the agent announced a planned restart (RESTARTING); cleared by its next REGISTER. */
  restartAnnouncedAt: number | undefined;
  /** When its stream dropped, while it is away within its grace. */
  disconnectedAt: number | undefined;
  /** A drained check is due (it runs on its own turn: it may remove the agent). */
  drainCheck: Timer | undefined;
}

/** Agents per call to the allocator within a slice: small enough to stop close to the slice's time. */
const SLICE_AGENTS = 500;

const ROLE_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9_.\-/]*$/;

/** The agent's kill grace for a task without a kill policy (AgentOptions.defaultKillGraceMs's default). */
const DEFAULT_KILL_GRACE_NS = 3e9;

/** One shared empty list for agents that report no containerizers (the simulator's 50,000). */
const NONE: AgentRecord['containerizers'] = Object.freeze([]) as unknown as AgentRecord['containerizers'];

export class Master {
  readonly id: string;
  private readonly clock: Clock;
  private readonly options: Required<Omit<MasterOptions, 'resolveSecret' | 'onAllocation' | 'minAllocatable' | 'seed' | 'masterId' | 'clock' | 'journal' | 'defer'>> & Pick<MasterOptions, 'resolveSecret'>;
  private readonly defer: (run: () => void) => void;
  /** `<master id>-O`: offer ids are this and a number. */
  private readonly offerIdPrefix: string;
  /** The allocation pass under way: its agents (shuffled) and how far it got. */
  private pass: { ids: string[]; next: number; busyMs: number; longestSliceMs: number; offers: number } | undefined;
  private readonly onAllocation: MasterOptions['onAllocation'];
  private readonly journal: MasterChange[] | undefined;
  readonly allocator: Allocator;

  private readonly frameworks = new Map<string, FrameworkRecord>();
  private readonly removedFrameworks = new Set<string>();
  private readonly agents = new Map<string, AgentRecord>();
  private readonly goneAgents = new Set<string>();
  /**
   * Outstanding offers by the number in their id (`<master id>-O<n>`): a number key spares
   * hashing 50,000 new strings a pass.
   */
  private readonly offers = new Map<number, OfferRecord>();
  /**
   * Parsed task resources by the identity of their JSON array. In-process frameworks launch many
   * tasks with one shared array; calls are immutable once made, so one parse serves them all.
   */
  private readonly parsedResources = new WeakMap<object, Resources>();
  /**
   * Agents' totals by their text form. Machines of a cluster are mostly alike; sharing one value
   * saves memory per agent, and the offers of a fresh agent reuse its cached JSON.
   */
  private readonly internedTotals = new Map<string, Resources>();
  private readonly allocationInfos = new Map<string, { role: string }>();
  private nextFramework = 0;
  private nextAgent = 0;
  private nextOffer = 0;

  /** Agents with freed resources waiting for the next "soon" allocation; `all` for every agent. */
  private dirty = new Set<string>();
  private dirtyAll = false;
  private soonTimer: Timer | undefined;
  private batchTimer: Timer | undefined;
  private heartbeatTimer: Timer | undefined;
  private livenessTimer: Timer | undefined;
  private running = false;
  /** Set while the store refuses the journal: no offers are made, `/health` says why. */
  private storeTrouble: string | undefined;
  /** Changes journaled so far, and of those, how many are durable (the server says). */
  private journaled = 0;
  private durable = 0;
  /** ACKNOWLEDGEs to agents held until the journal up to `at` is durable. */
  private readonly heldAcks: { at: number; send: () => void }[] = [];

  constructor(options: MasterOptions) {
    this.clock = options.clock;
    this.id = options.masterId ?? randomUUID();
    this.options = {
      hostname: options.hostname ?? 'localhost',
      port: options.port ?? 5050,
      version: options.version ?? '0.1.0',
      allocationIntervalMs: options.allocationIntervalMs ?? 1000,
      heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 15,
      defaultRefuseSeconds: options.defaultRefuseSeconds ?? 5,
      maxCompletedTasksPerFramework: options.maxCompletedTasksPerFramework ?? 1000,
      agentReconnectGraceMs: options.agentReconnectGraceMs ?? 5000,
      agentHeartbeatIntervalMs: options.agentHeartbeatIntervalMs ?? 5000,
      agentReregisterTimeoutMs: options.agentReregisterTimeoutMs ?? 60_000,
      agentRestartGraceMs: options.agentRestartGraceMs ?? 120_000,
      allocationSliceMs: options.allocationSliceMs ?? 20,
      ...(options.resolveSecret !== undefined ? { resolveSecret: options.resolveSecret } : {}),
    };
    this.defer = options.defer ?? ((run) => void this.clock.setTimer(0, run));
    this.offerIdPrefix = `${this.id}-O`;
    this.onAllocation = options.onAllocation;
    this.journal = options.journal === true ? [] : undefined;
    this.allocator = new Allocator({
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.minAllocatable !== undefined ? { minAllocatable: options.minAllocatable } : {}),
    });
  }

  /** Starts the periodic work: batch allocation and heartbeats. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const batch = () => {
      this.dirtyAll = true;
      this.runAllocation();
      this.batchTimer = this.clock.setTimer(this.options.allocationIntervalMs, batch);
    };
    this.batchTimer = this.clock.setTimer(this.options.allocationIntervalMs, batch);
    const beat = () => {
      for (const fw of this.frameworks.values()) fw.conn?.send({ type: 'HEARTBEAT' });
      this.heartbeatTimer = this.clock.setTimer(this.options.heartbeatIntervalSeconds * 1000, beat);
    };
    this.heartbeatTimer = this.clock.setTimer(this.options.heartbeatIntervalSeconds * 1000, beat);
    // Agents that stopped heartbeating (a hung process, a half-open connection) are unreachable
    // after three missed intervals; a dropped stream is handled at once by `agentDisconnected`.
    // The master heartbeats too, so that an agent behind a silent partition notices and
    // reconnects instead of talking into a dead connection.
    const liveness = () => {
      const limit = this.clock.now() - 3 * this.options.agentHeartbeatIntervalMs;
      for (const agent of [...this.agents.values()]) {
        // Only a connected agent can miss heartbeats: one whose stream dropped is on its grace
        // timer (the reconnect grace, or the longer one of an announced restart).
        if (agent.state === 'ACTIVE' && agent.conn !== undefined && agent.lastHeartbeatAt < limit) this.markAgentUnreachable(agent.id);
        else agent.conn?.send({ type: 'HEARTBEAT' });
      }
      this.livenessTimer = this.clock.setTimer(this.options.agentHeartbeatIntervalMs, liveness);
    };
    this.livenessTimer = this.clock.setTimer(this.options.agentHeartbeatIntervalMs, liveness);
  }

  /** Stops the timers. Connections stay as they are. */
  stop(): void {
    this.running = false;
    this.pass = undefined;
    for (const t of [this.batchTimer, this.heartbeatTimer, this.soonTimer, this.livenessTimer]) t?.cancel();
    this.soonTimer = undefined;
    for (const fw of this.frameworks.values()) fw.failoverTimer?.cancel();
    for (const agent of this.agents.values()) {
      agent.graceTimer?.cancel();
      agent.drainCheck?.cancel();
    }
  }

  /** The changes made since the last call, oldest first, for the store (empty without `journal`). */
  drainChanges(): MasterChange[] {
    if (this.journal === undefined || this.journal.length === 0) return [];
    return this.journal.splice(0, this.journal.length);
  }

  /** How many changes were journaled so far (a position to hand to `journalDurable` once written). */
  journalPosition(): number {
    return this.journaled;
  }

  /**
   * The journal is durable up to `position` (journalPosition when the written batch was drained):
   * the acknowledgements held for it go to the agents. Contract: an agent drops a status update
   * once acknowledged, so the master forwards a framework's ACKNOWLEDGE only once the task state it
   * recorded from that update is in its store.
   */
  journalDurable(position: number): void {
    this.durable = Math.max(this.durable, position);
    while (this.heldAcks.length > 0 && this.heldAcks[0]!.at <= this.durable) this.heldAcks.shift()!.send();
  }

  /**
   * The store refused the journal (`reason`), or takes it again (undefined). While it refuses,
   * the master makes no offers (a launch it could not record would be lost on a restart) and
   * takes back those outstanding; `health` reports it. It never drops the journal: the server
   * keeps writing it until the store takes it.
   */
  setStoreTrouble(reason: string | undefined): void {
    const was = this.storeTrouble;
    this.storeTrouble = reason;
    if (reason !== undefined && was === undefined) {
      for (const fw of this.frameworks.values()) this.recoverOffers(fw, true);
    } else if (reason === undefined && was !== undefined) {
      this.allocateSoon();
    }
  }

  /** Whether the master works (`/health`, GET_HEALTH): not while its store refuses its journal. */
  health(): { healthy: true } | { healthy: false; reason: string } {
    return this.storeTrouble === undefined ? { healthy: true } : { healthy: false, reason: `the store refuses writes: ${this.storeTrouble}` };
  }

  /**
   * Loads what a store kept, before `start` and before any connection: frameworks come back
   * disconnected (they have their failover timeout to subscribe again), agents come back
   * RECOVERED (they have `agentReregisterTimeoutMs` to reregister, else they are unreachable) and
   * tasks come back with their last state, so reconciliation answers while agents return.
   */
  recover(state: StoredState): void {
    const now = this.clock.now();
    for (const id of state.removedFrameworks) this.removedFrameworks.add(id);
    for (const id of state.removedAgents) this.goneAgents.add(id);
    for (const [role, weight] of Object.entries(state.weights)) this.allocator.setWeight(role, weight);
    for (const [role, limits] of Object.entries(state.quotas)) this.allocator.setQuota(role, limits);
    for (const f of state.frameworks) {
      if (!this.frameworks.has(f.id)) this.addRecoveredFramework(f.id, f.info, f.registeredAt);
    }
    for (const a of state.agents) {
      let total: Resources;
      try {
        total = this.intern(Resources.fromJSON(a.resources));
      } catch {
        continue;
      }
      const agent: AgentRecord = {
        id: a.id,
        idObj: { value: a.id },
        hostname: a.hostname,
        attributes: a.attributes,
        total,
        // An agent that was unreachable stays so: its return is a return from a partition.
        state: a.unreachableAt !== undefined ? 'UNREACHABLE' : 'RECOVERED',
        conn: undefined,
        tasks: new Set(),
        offers: [],
        registeredAt: a.registeredAt,
        unreachableAt: a.unreachableAt,
        lastHeartbeatAt: now,
        url: a.url,
        containerizers: NONE,
        graceTimer: undefined,
        // What the operator set stays set (only REACTIVATE_AGENT ends it); a drain goes on when
        // the agent registers again (register).
        deactivated: a.maintenance?.deactivated === true,
        drain: a.maintenance?.drain !== undefined ? { state: a.maintenance.drain.state, maxGracePeriodMs: a.maintenance.drain.maxGracePeriodMs, markGone: a.maintenance.drain.markGone } : undefined,
        restartAnnouncedAt: undefined,
        disconnectedAt: undefined,
        drainCheck: undefined,
        credential: a.credential,
      };
      this.agents.set(a.id, agent);
      if (agent.state === 'UNREACHABLE') continue;
      agent.graceTimer = this.clock.setTimer(this.options.agentReregisterTimeoutMs, () => {
        agent.graceTimer = undefined;
        if (agent.state === 'RECOVERED') this.markAgentUnreachable(agent.id);
      });
    }
    for (const t of state.tasks) {
      const fw = this.frameworks.get(t.frameworkId);
      const agent = this.agents.get(t.agentId);
      if (fw === undefined || agent === undefined) continue;
      let resources: Resources;
      try {
        resources = Resources.fromJSON(t.info.resources);
      } catch {
        continue;
      }
      const role = t.role ?? roleOfTask(t.info, fw.roles);
      const task: Task = { id: t.taskId, frameworkId: fw.id, agentId: agent.id, role, resources, info: t.info, state: t.state, status: t.status, freed: true, killPending: false };
      fw.tasks.set(task.id, task);
      agent.tasks.add(task);
    }
  }

  /**
   * An agent's stream dropped. Unless it comes back within the grace period it is unreachable
   * (its offers rescinded, its tasks reported). Offers on it are rescinded at once: they could
   * not be launched anyway.
   */
  agentDisconnected(agentId: string, conn: AgentConnection): void {
    const agent = this.agents.get(agentId);
    if (agent === undefined || agent.conn !== conn || agent.state !== 'ACTIVE') return;
    agent.conn = undefined;
    agent.disconnectedAt = this.clock.now();
    // No offers of it while it is away: a LAUNCH could not reach it.
    this.allocator.setAgentActive(agent.id, false);
    this.rescindOffers(agent);
    agent.graceTimer?.cancel();
    if (!this.running) return;
    // A restart the agent announced is planned work (an upgrade, a reboot): its tasks run on,
    // and it gets the long grace. A lost machine said nothing and gets the short one.
    const grace = agent.restartAnnouncedAt !== undefined ? this.options.agentRestartGraceMs : this.options.agentReconnectGraceMs;
    agent.graceTimer = this.clock.setTimer(grace, () => {
      agent.graceTimer = undefined;
      if (agent.conn === undefined && agent.state === 'ACTIVE') this.markAgentUnreachable(agent.id);
    });
  }

  // =============================================================================================
  // Scheduler API

  /**
   * SUBSCRIBE: registers a new framework, or resubscribes a known one (same `framework_info.id`),
   * which keeps its tasks. Sends SUBSCRIBED on `conn` and returns the framework id.
   */
  subscribe(call: SubscribeCall, conn: FrameworkConnection): string {
    const info = call.subscribe.framework_info;
    const roles = rolesOf(info);
    const partitionAware = (info.capabilities ?? []).some((c) => c.type === 'PARTITION_AWARE');
    const suppressed = call.subscribe.suppressed_roles ?? [];
    for (const r of suppressed) if (!roles.includes(r)) throw new InvalidRequest(`suppressed role '${r}' is not one of the framework's roles`);
    const now = this.clock.now();
    const requested = info.id?.value;
    const badId = requested === undefined ? undefined : invalidIdReason(requested);
    if (badId !== undefined) throw new InvalidRequest(`framework_info.id ${badId}`);
    if (requested !== undefined && this.removedFrameworks.has(requested)) {
      throw new FrameworkRemoved(`framework ${requested} has been removed and cannot subscribe again`);
    }
    let fw = requested === undefined ? undefined : this.frameworks.get(requested);
    if (fw !== undefined) {
      // Failover or reconnection: the old stream (if any) is replaced, offers are made anew.
      if (fw.conn !== undefined && fw.conn !== conn) {
        fw.conn.send({ type: 'ERROR', error: { message: 'Framework failed over' } });
        fw.conn.close();
      }
      fw.failoverTimer?.cancel();
      fw.failoverTimer = undefined;
      this.recoverOffers(fw, false);
      fw.info = { ...info, id: fw.idObj };
      fw.partitionAware = partitionAware;
      if (!sameRoles(fw.roles, roles)) {
        fw.roles = roles;
        this.allocator.setFrameworkRoles(fw.id, roles);
      }
      fw.conn = conn;
      fw.disconnectedAt = undefined;
      this.allocator.setFrameworkActive(fw.id, true);
      this.allocator.revive(fw.id);
      if (suppressed.length > 0) this.allocator.suppress(fw.id, suppressed);
    } else {
      const id = requested ?? this.newFrameworkId();
      fw = {
        id,
        idObj: { value: id },
        info: { ...info, id: { value: id } },
        roles,
        partitionAware,
        conn,
        tasks: new Map(),
        offerCount: 0,
        completed: [],
        registeredAt: now,
        disconnectedAt: undefined,
        failoverTimer: undefined,
      };
      this.frameworks.set(id, fw);
      this.allocator.addFramework(id, roles, suppressed);
    }
    this.record({ type: 'FRAMEWORK_SAVED', framework: { id: fw.id, info: fw.info, registeredAt: fw.registeredAt } });
    conn.send({
      type: 'SUBSCRIBED',
      subscribed: {
        framework_id: fw.idObj,
        heartbeat_interval_seconds: this.options.heartbeatIntervalSeconds,
        master_info: { id: this.id, hostname: this.options.hostname, port: this.options.port, version: this.options.version },
      },
    });
    this.allocateSoon();
    return fw.id;
  }

  /** Any call but SUBSCRIBE, from the framework's subscribed stream. */
  call(call: FrameworkCall): void {
    const fw = this.frameworks.get(call.framework_id.value);
    if (fw === undefined || fw.conn === undefined) {
      throw new FrameworkNotSubscribed(`framework ${call.framework_id.value} is not subscribed`);
    }
    switch (call.type) {
      case 'TEARDOWN':
        this.removeFramework(fw, 'Framework torn down');
        return;
      case 'ACCEPT':
        this.accept(fw, call);
        return;
      case 'DECLINE':
        for (const offerId of call.decline.offer_ids) {
          const offer = this.offerById(offerId.value);
          if (offer === undefined || offer.frameworkId !== fw.id) continue; // Mesos ignores unknown offers here.
          this.removeOffer(offer);
          this.allocator.recover(fw.id, offer.agentId, offer.role, offer.resources, this.clock.now(), call.decline.filters?.refuse_seconds ?? this.options.defaultRefuseSeconds);
          this.allocateSoon(offer.agentId);
        }
        return;
      case 'REVIVE':
        this.checkRoles(fw, call.revive?.roles);
        this.allocator.revive(fw.id, call.revive?.roles);
        this.allocateSoon();
        return;
      case 'SUPPRESS':
        this.checkRoles(fw, call.suppress?.roles);
        this.allocator.suppress(fw.id, call.suppress?.roles);
        return;
      case 'KILL':
        this.kill(fw, call.kill.task_id.value, call.kill.agent_id?.value, call.kill.kill_policy);
        return;
      case 'ACKNOWLEDGE':
        this.acknowledge(fw, call.acknowledge.agent_id.value, call.acknowledge.task_id.value, call.acknowledge.uuid);
        return;
      case 'RECONCILE':
        this.reconcile(fw, call.reconcile.tasks ?? []);
        return;
    }
  }

  /**
   * The framework's stream dropped. The framework keeps its tasks for `failover_timeout` seconds
   * (Mesos's default 0: removed at once), gets no offers meanwhile, and its offers go back.
   */
  disconnect(frameworkId: string, conn: FrameworkConnection): void {
    const fw = this.frameworks.get(frameworkId);
    if (fw === undefined || fw.conn !== conn) return;
    fw.conn = undefined;
    fw.disconnectedAt = this.clock.now();
    this.allocator.setFrameworkActive(fw.id, false);
    this.recoverOffers(fw, false);
    this.startFailoverTimer(fw);
  }

  // =============================================================================================
  // Agents

  /**
   * REGISTER from an agent: a new agent, or one that comes back (with `agent_id`) after a restart,
   * a partition or a master failover. Reconciles the tasks it reports with those the master knows.
   */
  /**
   * `credential` names what the agent authenticated with (the HTTP layer gives its token's id): an
   * agent id is bound to the credential of its first registration, and a REGISTER of a known id
   * with another credential is refused (AgentCredentialMismatch), so that a client cannot take
   * over a real agent's tasks by naming its id. Undefined (in-process tests) binds nothing.
   */
  registerAgent(message: Extract<AgentToMaster, { type: 'REGISTER' }>, conn: AgentConnection, credential?: string): string {
    let total: Resources;
    try {
      total = this.intern(Resources.fromJSON(message.resources));
    } catch (e) {
      if (e instanceof InvalidResources) throw new InvalidRequest(`agent resources: ${e.message}`);
      throw e;
    }
    const now = this.clock.now();
    const requested = message.agent_id?.value;
    const badId = requested === undefined ? undefined : invalidIdReason(requested);
    if (badId !== undefined) throw new InvalidRequest(`agent_id ${badId}`);
    if (requested !== undefined && this.goneAgents.has(requested)) throw new AgentGone(`agent ${requested} was removed and cannot register again`);
    let agent = requested === undefined ? undefined : this.agents.get(requested);
    if (agent !== undefined && agent.credential !== undefined && credential !== undefined && agent.credential !== credential) {
      throw new AgentCredentialMismatch(`agent ${agent.id} (${agent.hostname}) registered with another credential: refused`);
    }
    const wasUnreachable = agent?.state === 'UNREACHABLE';
    if (agent !== undefined) {
      agent.graceTimer?.cancel();
      agent.graceTimer = undefined;
      if (agent.conn !== undefined && agent.conn !== conn) agent.conn.close();
      if (agent.state === 'ACTIVE') {
        // Reregistering while still active (a quick restart): start its books afresh.
        this.rescindOffers(agent);
        for (const task of agent.tasks) this.freeTask(task);
        this.allocator.removeAgent(agent.id);
      }
      agent.conn = conn;
      agent.hostname = message.hostname;
      agent.attributes = message.attributes;
      agent.total = total;
      agent.state = 'ACTIVE';
      agent.unreachableAt = undefined;
      agent.lastHeartbeatAt = now;
      agent.url = message.url;
      agent.containerizers = message.containerizers ?? NONE;
      agent.restartAnnouncedAt = undefined;
      agent.disconnectedAt = undefined;
      agent.credential ??= credential;
    } else {
      const id = requested ?? this.newAgentId();
      agent = {
        id,
        idObj: { value: id },
        hostname: message.hostname,
        attributes: message.attributes,
        total,
        state: 'ACTIVE',
        conn,
        tasks: new Set(),
        offers: [],
        registeredAt: now,
        unreachableAt: undefined,
        lastHeartbeatAt: now,
        url: message.url,
        containerizers: message.containerizers ?? NONE,
        graceTimer: undefined,
        deactivated: false,
        drain: undefined,
        restartAnnouncedAt: undefined,
        disconnectedAt: undefined,
        drainCheck: undefined,
        credential,
      };
      this.agents.set(id, agent);
    }
    this.saveAgent(agent, message.resources);
    this.allocator.addAgent(agent.id, total);
    // Deactivated and draining agents stay so across a reconnection (only REACTIVATE_AGENT ends it).
    if (agent.deactivated) this.allocator.setAgentActive(agent.id, false);
    this.reconcileAgentTasks(agent, message, wasUnreachable);
    conn.send({ type: 'REGISTERED', agent_id: agent.idObj, heartbeat_interval_seconds: this.options.agentHeartbeatIntervalMs / 1000 });
    if (agent.drain?.state === 'DRAINING') {
      // Kills asked while it was away go out now, with their reason.
      for (const task of agent.tasks) if (!isTerminal(task.state)) this.drainKill(agent, task);
      this.scheduleDrainCheck(agent);
    }
    this.allocateSoon(agent.id);
    return agent.id;
  }

  /** A message on an agent's stream after REGISTER. */
  agentMessage(agentId: string, message: AgentToMaster): void {
    const agent = this.agents.get(agentId);
    if (agent === undefined || agent.state !== 'ACTIVE') throw new AgentNotFound(`agent ${agentId} is not registered`);
    switch (message.type) {
      case 'HEARTBEAT':
        agent.lastHeartbeatAt = this.clock.now();
        return;
      case 'STATUS_UPDATE':
        this.statusUpdate(agent, message.framework_id.value, message.status, message.latest_state);
        return;
      case 'RESTARTING':
        // It is going away on purpose: nothing more is launched there, and when its stream
        // drops it gets the restart grace (agentDisconnected).
        agent.restartAnnouncedAt = this.clock.now();
        this.allocator.setAgentActive(agent.id, false);
        this.rescindOffers(agent);
        return;
      case 'REGISTER':
        throw new InvalidRequest('REGISTER is only valid as the first message of a stream');
    }
  }

  /**
   * The agent is unreachable (its stream is gone past the grace period, or it missed its
   * heartbeats). Its offers are rescinded; its tasks are reported TASK_UNREACHABLE to
   * partition-aware frameworks (they may come back) and TASK_LOST to the others (they are gone).
   */
  markAgentUnreachable(agentId: string): void {
    const agent = this.agents.get(agentId);
    if (agent === undefined || agent.state === 'UNREACHABLE') return;
    const wasActive = agent.state === 'ACTIVE';
    agent.graceTimer?.cancel();
    agent.graceTimer = undefined;
    agent.state = 'UNREACHABLE';
    agent.unreachableAt = this.clock.now();
    this.saveAgent(agent);
    agent.conn?.close();
    agent.conn = undefined;
    this.rescindOffers(agent);
    this.sendAgentFailure(agent);
    const message = `Agent ${agent.id} (${agent.hostname}) is unreachable`;
    for (const task of [...agent.tasks]) {
      const fw = this.frameworks.get(task.frameworkId);
      this.freeTask(task);
      if (fw?.partitionAware) {
        task.state = 'TASK_UNREACHABLE';
        this.sendMasterUpdate(fw, task, 'TASK_UNREACHABLE', 'REASON_AGENT_REMOVED', message);
      } else {
        this.endTask(task, 'TASK_LOST', 'REASON_AGENT_REMOVED', message);
      }
      this.saveTask(task);
    }
    if (wasActive) this.allocator.removeAgent(agent.id);
  }

  /**
   * The operator removes an agent for good: its tasks are TASK_GONE_BY_OPERATOR (TASK_LOST to
   * frameworks that are not partition-aware) and it may never register again.
   */
  removeAgent(agentId: string): void {
    const agent = this.agents.get(agentId);
    if (agent === undefined) throw new AgentNotFound(`agent ${agentId} is not known`);
    if (agent.state === 'ACTIVE') {
      this.rescindOffers(agent);
      this.sendAgentFailure(agent);
    }
    const message = `Agent ${agent.id} (${agent.hostname}) was removed by the operator`;
    for (const task of [...agent.tasks]) {
      const fw = this.frameworks.get(task.frameworkId);
      this.freeTask(task);
      this.endTask(task, fw?.partitionAware ? 'TASK_GONE_BY_OPERATOR' : 'TASK_LOST', 'REASON_AGENT_REMOVED_BY_OPERATOR', message);
    }
    if (agent.state === 'ACTIVE') this.allocator.removeAgent(agent.id);
    agent.graceTimer?.cancel();
    agent.drainCheck?.cancel();
    agent.drain = undefined;
    agent.conn?.close();
    this.agents.delete(agent.id);
    this.goneAgents.add(agent.id);
    this.record({ type: 'AGENT_REMOVED', id: agent.id, removedAt: this.clock.now() });
  }

  /**
   * DEACTIVATE_AGENT (Mesos's manual draining, "maintenance"): the agent gets no offers (those
   * outstanding are rescinded) until REACTIVATE_AGENT; its tasks run on. Idempotent.
   */
  deactivateAgent(agentId: string): void {
    const agent = this.operatedAgent(agentId);
    agent.deactivated = true;
    this.allocator.setAgentActive(agent.id, false);
    this.rescindOffers(agent);
    this.saveAgent(agent);
  }

  /**
   * DRAIN_AGENT (Mesos's automatic node draining, docs/maintenance.md): the agent is deactivated
   * and every task on it is killed (TASK_KILLED, REASON_AGENT_DRAINING, the kill grace capped
   * at `maxGracePeriodMs`) so that frameworks place them elsewhere; an agent that is away gets
   * the kills when it registers again. DRAINING becomes DRAINED once every task of the agent
   * ended and was acknowledged; with `markGone`, the agent is then removed for good. Draining an
   * agent that drains already changes nothing.
   */
  drainAgent(agentId: string, options: { maxGracePeriodMs?: number; markGone?: boolean } = {}): void {
    const agent = this.operatedAgent(agentId);
    const max = options.maxGracePeriodMs;
    if (max !== undefined && (!(max >= 0) || !Number.isFinite(max))) throw new InvalidRequest(`max_grace_period must be a duration >= 0, got ${max} ms`);
    if (agent.drain !== undefined) return;
    this.deactivateAgent(agentId);
    agent.drain = { state: 'DRAINING', maxGracePeriodMs: max, markGone: options.markGone === true };
    this.saveAgent(agent);
    for (const task of agent.tasks) if (!isTerminal(task.state)) this.drainKill(agent, task);
    this.scheduleDrainCheck(agent);
  }

  /** REACTIVATE_AGENT: ends a deactivation or a drain; the agent is offered again. Idempotent. */
  reactivateAgent(agentId: string): void {
    const agent = this.operatedAgent(agentId);
    agent.deactivated = false;
    agent.drain = undefined;
    agent.drainCheck?.cancel();
    agent.drainCheck = undefined;
    this.saveAgent(agent);
    if (agent.state === 'ACTIVE' && agent.conn !== undefined && agent.restartAnnouncedAt === undefined) {
      this.allocator.setAgentActive(agent.id, true);
      this.allocateSoon(agent.id);
    }
  }

  // =============================================================================================
  // Operator

  setWeight(role: string, weight: number): void {
    if (!ROLE_PATTERN.test(role)) throw new InvalidRequest(`'${role}' is not a valid role`);
    if (!(weight > 0) || !Number.isFinite(weight)) throw new InvalidRequest(`weight of role '${role}' must be a positive number, got ${weight}`);
    this.allocator.setWeight(role, weight);
    this.record({ type: 'WEIGHT_SET', role, weight });
  }

  /** Sets a role's quota limit on scalars, e.g. `{cpus: 4, mem: 8192}`; `{}` removes it. */
  setQuota(role: string, limits: Record<string, number>): void {
    if (!ROLE_PATTERN.test(role)) throw new InvalidRequest(`'${role}' is not a valid role`);
    for (const [name, v] of Object.entries(limits)) {
      if (!(v >= 0) || !Number.isFinite(v)) throw new InvalidRequest(`quota of '${name}' for role '${role}' must be a number >= 0`);
    }
    this.allocator.setQuota(role, limits);
    this.record({ type: 'QUOTA_SET', role, limits });
    this.allocateSoon();
  }

  roles(): RoleInfo[] {
    return this.allocator.roleInfos();
  }

  /** Runs an allocation pass now over every agent (tests; the batch timer does it otherwise). */
  allocateNow(): void {
    this.dirtyAll = true;
    this.runAllocation(true);
  }

  // ---------------------------------------------------------------------------------------------
  // Read-only views, for the operator API and tests. They copy; callers may keep them.

  frameworkIds(): string[] {
    return [...this.frameworks.keys()];
  }

  /** The FrameworkInfo of a framework (its principal, for the HTTP layer's checks), without copying its tasks. */
  frameworkInfo(id: string): FrameworkInfo | undefined {
    return this.frameworks.get(id)?.info;
  }

  frameworkView(id: string):
    | { id: string; info: FrameworkInfo; roles: string[]; connected: boolean; tasks: Task[]; completed: Task[]; offers: number; registeredAt: number }
    | undefined {
    const fw = this.frameworks.get(id);
    if (fw === undefined) return undefined;
    return { id, info: fw.info, roles: [...fw.roles], connected: fw.conn !== undefined, tasks: [...fw.tasks.values()], completed: [...fw.completed], offers: fw.offerCount, registeredAt: fw.registeredAt };
  }

  agentIds(): string[] {
    return [...this.agents.keys()];
  }

  agentView(id: string):
    | {
        id: string;
        hostname: string;
        url: string | undefined;
        containerizers: { kind: string; limits: { enforced: boolean; reason?: string } }[];
        attributes: Attribute[];
        total: Resources;
        free: Resources | undefined;
        offered: Resources;
        used: Resources;
        state: AgentState;
        tasks: number;
        offers: number;
        registeredAt: number;
        lastHeartbeatAt: number;
        deactivated: boolean;
        drain: DrainInfo | undefined;
        /** When a planned restart was announced, and until when the agent may take to come back (while away). */
        restart: { announcedAt: number; backBy: number | undefined } | undefined;
      }
    | undefined {
    const a = this.agents.get(id);
    if (a === undefined) return undefined;
    let offered = Resources.EMPTY;
    for (const o of a.offers) offered = offered.add(o.resources);
    let used = Resources.EMPTY;
    for (const t of a.tasks) if (!isTerminal(t.state)) used = used.add(t.resources);
    return {
      id,
      hostname: a.hostname,
      url: a.url,
      containerizers: a.containerizers,
      offered,
      used,
      attributes: a.attributes,
      total: a.total,
      free: this.allocator.free(id),
      state: a.state,
      tasks: a.tasks.size,
      offers: a.offers.length,
      registeredAt: a.registeredAt,
      lastHeartbeatAt: a.lastHeartbeatAt,
      deactivated: a.deactivated,
      drain: a.drain === undefined ? undefined : { ...a.drain },
      restart:
        a.restartAnnouncedAt === undefined
          ? undefined
          : { announcedAt: a.restartAnnouncedAt, backBy: a.conn === undefined && a.state === 'ACTIVE' ? this.graceEnd(a) : undefined },
    };
  }

  /** A task the master knows, or one of the framework's completed tasks. */
  findTask(frameworkId: string, taskId: string): Task | undefined {
    const fw = this.frameworks.get(frameworkId);
    if (fw === undefined) return undefined;
    return fw.tasks.get(taskId) ?? fw.completed.findLast((t) => t.id === taskId);
  }

  /** Allocation passes run, and their total and last duration (for /metrics). */
  readonly allocationStats = { runs: 0, totalMs: 0, lastMs: 0, longestSliceMs: 0 };

  task(frameworkId: string, taskId: string): Task | undefined {
    return this.frameworks.get(frameworkId)?.tasks.get(taskId);
  }

  offerCount(): number {
    return this.offers.size;
  }

  /** Whether an allocation pass is under way (some of its slices are still to run). */
  allocating(): boolean {
    return this.pass !== undefined;
  }

  // =============================================================================================
  // Calls

  /**
   * ACCEPT. Whatever the framework sends, the offers named go back (what no task uses) and every
   * part of the call is answered on its own (issue 11 §1): a task that cannot be launched gets
   * TASK_ERROR with the reason in its `message`, and the other tasks are launched. Parts that
   * cannot be answered per task (an operation other than LAUNCH, a task info without a readable
   * task_id, bad filters) make the call refused (InvalidRequest, 400) once the rest is done, with
   * every such part named. Only `offer_ids` was checked before (parseCall).
   */
  private accept(fw: FrameworkRecord, call: AcceptCall): void {
    const now = this.clock.now();
    const read = readAccept(call.accept);
    const offers: OfferRecord[] = [];
    const invalid: string[] = [];
    for (const offerId of call.accept.offer_ids) {
      const offer = this.offerById(offerId.value);
      if (offer === undefined || offer.frameworkId !== fw.id) invalid.push(offerId.value);
      else if (!offers.includes(offer)) offers.push(offer);
    }
    const refuse = read.refuseSeconds ?? this.options.defaultRefuseSeconds;
    for (const o of offers) this.removeOffer(o);
    const giveBack = () => {
      for (const o of offers) {
        this.allocator.recover(fw.id, o.agentId, o.role, o.resources, now, refuse);
        this.allocateSoon(o.agentId);
      }
    };
    const refuseRest = () => {
      if (read.unreadable.length > 0) throw new InvalidRequest(`ACCEPT: ${read.unreadable.join('; ')} (the rest of the call was carried out; unused resources were returned)`);
    };
    if (invalid.length > 0) {
      giveBack();
      const message = `Offer ${invalid.join(', ')} is no longer valid (unknown, rescinded or used)`;
      for (const t of read.tasks) this.sendMasterUpdate(fw, t.info, fw.partitionAware ? 'TASK_DROPPED' : 'TASK_LOST', 'REASON_INVALID_OFFERS', message);
      refuseRest();
      return;
    }
    const first = offers[0]!;
    const spread = offers.find((o) => o.agentId !== first.agentId || o.role !== first.role);
    if (spread !== undefined) {
      giveBack();
      const why =
        spread.agentId !== first.agentId
          ? `the offers are on more than one agent (${first.agentId}, ${spread.agentId}); all offers of an ACCEPT must be of one agent`
          : `the offers are for more than one role (${first.role}, ${spread.role})`;
      for (const t of read.tasks) this.sendMasterUpdate(fw, t.info, 'TASK_ERROR', 'REASON_TASK_INVALID', why);
      refuseRest();
      return;
    }
    const agent = this.agents.get(first.agentId)!;
    let pool = Resources.EMPTY;
    for (const o of offers) pool = pool.add(o.resources);
    const seen = new Set<string>();
    for (const { info, problem: invalidInfo } of read.tasks) {
      const problem = invalidInfo !== undefined ? `task ${info.task_id.value}: ${invalidInfo}` : this.validateTask(fw, agent, info, seen);
      if (typeof problem === 'string') {
        this.sendMasterUpdate(fw, info, 'TASK_ERROR', 'REASON_TASK_INVALID', problem, agent.idObj);
        continue;
      }
      if (!pool.contains(problem)) {
        this.sendMasterUpdate(fw, info, 'TASK_ERROR', 'REASON_TASK_INVALID', `task ${info.task_id.value} uses resources that are not in the offers: it needs ${problem.toString()}, the offers have ${pool.toString() || 'nothing'} left`);
        continue;
      }
      const secrets = this.resolveSecrets(info);
      if (typeof secrets === 'string') {
        this.sendMasterUpdate(fw, info, 'TASK_ERROR', 'REASON_TASK_INVALID', secrets, agent.idObj);
        continue;
      }
      seen.add(info.task_id.value);
      pool = pool.subtract(problem);
      const task: Task = { id: info.task_id.value, frameworkId: fw.id, agentId: agent.id, role: first.role, resources: problem, info, state: 'TASK_STAGING', status: undefined, freed: false, killPending: false };
      fw.tasks.set(task.id, task);
      agent.tasks.add(task);
      this.saveTask(task);
      agent.conn?.send({ type: 'LAUNCH', framework: fw.info, task: info, ...(secrets !== undefined ? { secrets } : {}) });
    }
    if (!pool.isEmpty()) {
      this.allocator.recover(fw.id, agent.id, first.role, pool, now, refuse);
      this.allocateSoon(agent.id);
    }
    refuseRest();
  }

  /**
   * The values of the secrets `info` references, by name (undefined when it references none), or
   * why it cannot be launched. Who may use a secret was checked before the call reached the master
   * (the scheduler API checks the caller's `use`; the built-in frameworks check their own callers).
   */
  private resolveSecrets(info: TaskInfo): Record<string, string> | string | undefined {
    const uses = secretUses(info);
    if ('problem' in uses) return `task ${info.task_id.value}: ${uses.problem}`;
    if (uses.length === 0) return undefined;
    const values: Record<string, string> = {};
    for (const u of uses) {
      const value = this.options.resolveSecret?.(u.name);
      if (value === undefined) {
        return this.options.resolveSecret === undefined
          ? `task ${info.task_id.value} references secret '${u.name}', but this master has no secret store`
          : `task ${info.task_id.value} references secret '${u.name}', which is not in the secret store (PUT /auth/v1/secrets/${u.name})`;
      }
      values[u.name] = value;
    }
    return values;
  }

  /** The task's resources, or why it cannot be launched (TASK_ERROR's message). */
  private validateTask(fw: FrameworkRecord, agent: AgentRecord, info: TaskInfo, seen: Set<string>): Resources | string {
    const id = info.task_id.value;
    const badId = invalidIdReason(id);
    if (badId !== undefined) return `task id ${JSON.stringify(id.slice(0, 300))} ${badId}`;
    if (fw.tasks.has(id) || seen.has(id)) return `task id '${id}' is already used by a task of this framework`;
    if (info.agent_id.value !== agent.id) return `task ${id} names agent ${info.agent_id.value}, but the offers are of agent ${agent.id}`;
    if (info.executor !== undefined) return `task ${id}: custom executors are not supported; give a command or a container`;
    const unhonoured = unhonouredTaskField(info);
    if (unhonoured !== undefined) return unhonoured;
    if (info.command === undefined && info.container === undefined) return `task ${id} needs a command or a container`;
    if (info.command !== undefined && info.command.shell !== false && (info.command.value ?? '') === '' && info.container === undefined) {
      return `task ${id}: command.value is empty`;
    }
    if (info.container?.type === 'DOCKER' && info.container.docker === undefined) return `task ${id}: a DOCKER container needs container.docker.image`;
    let resources: Resources;
    try {
      resources = this.parsedResources.get(info.resources) ?? Resources.fromJSON(info.resources);
      this.parsedResources.set(info.resources, resources);
    } catch (e) {
      if (e instanceof InvalidResources) return `task ${id}: ${e.message}`;
      throw e;
    }
    if (resources.scalarMillis('cpus') <= 0 && resources.scalarMillis('mem') <= 0) return `task ${id} needs some cpus or mem`;
    return resources;
  }

  private kill(fw: FrameworkRecord, taskId: string, agentId: string | undefined, killPolicy: KillPolicy | undefined): void {
    const task = fw.tasks.get(taskId);
    if (task === undefined) {
      this.sendUnknownTaskStatus(fw, taskId, agentId);
      return;
    }
    if (isTerminal(task.state)) return; // Already over; its terminal update is on its way.
    const agent = this.agents.get(task.agentId);
    if (agent === undefined || agent.state !== 'ACTIVE' || agent.conn === undefined) {
      task.killPending = true; // Sent when the agent comes back.
      return;
    }
    const policy = killPolicy ?? task.info.kill_policy;
    agent.conn.send({ type: 'KILL', framework_id: fw.idObj, task_id: task.info.task_id, ...(policy !== undefined ? { kill_policy: policy } : {}) });
  }

  private acknowledge(fw: FrameworkRecord, agentId: string, taskId: string, uuid: string): void {
    const send = () => this.agents.get(agentId)?.conn?.send({ type: 'ACKNOWLEDGE', framework_id: fw.idObj, task_id: { value: taskId }, uuid });
    if (this.journal !== undefined && this.durable < this.journaled) this.heldAcks.push({ at: this.journaled, send });
    else send();
    const task = fw.tasks.get(taskId);
    if (task !== undefined && task.status?.uuid === uuid && isTerminal(task.status.state)) this.completeTask(task);
  }

  /** Explicit reconciliation for the listed tasks, implicit (every known task) for none. */
  private reconcile(fw: FrameworkRecord, tasks: { task_id: { value: string }; agent_id?: { value: string } | undefined }[]): void {
    if (tasks.length === 0) {
      for (const task of fw.tasks.values()) this.sendMasterUpdate(fw, task, task.state, 'REASON_RECONCILIATION', undefined);
      return;
    }
    for (const t of tasks) {
      const task = fw.tasks.get(t.task_id.value);
      if (task !== undefined) this.sendMasterUpdate(fw, task, task.state, 'REASON_RECONCILIATION', undefined);
      else this.sendUnknownTaskStatus(fw, t.task_id.value, t.agent_id?.value);
    }
  }

  /** The state of a task the master does not know, by what it knows of the agent (docs/high-availability-framework-guide.md). */
  private sendUnknownTaskStatus(fw: FrameworkRecord, taskId: string, agentId: string | undefined): void {
    // While agents known from the store have not come back, the master cannot know: Mesos sends
    // nothing then, and the framework reconciles again later.
    if (agentId !== undefined ? this.agents.get(agentId)?.state === 'RECOVERED' : this.recovering()) return;
    let state: TaskState;
    if (!fw.partitionAware) state = 'TASK_LOST';
    else if (agentId === undefined) state = 'TASK_UNKNOWN';
    else if (this.goneAgents.has(agentId)) state = 'TASK_GONE_BY_OPERATOR';
    else {
      const agent = this.agents.get(agentId);
      state = agent === undefined ? 'TASK_UNKNOWN' : agent.state === 'UNREACHABLE' ? 'TASK_UNREACHABLE' : 'TASK_GONE';
    }
    const status: TaskStatus = {
      task_id: { value: taskId },
      state,
      source: 'SOURCE_MASTER',
      reason: 'REASON_RECONCILIATION',
      message: 'Reconciliation: task is unknown to the master',
      timestamp: this.clock.now() / 1000,
      ...(agentId !== undefined ? { agent_id: { value: agentId } } : {}),
    };
    fw.conn?.send({ type: 'UPDATE', update: { status } });
  }

  // =============================================================================================
  // Status updates

  private statusUpdate(agent: AgentRecord, frameworkId: string, status: TaskStatus & { uuid: string }, latest: TaskState): void {
    const fw = this.frameworks.get(frameworkId);
    if (fw === undefined) {
      // A framework the master removed: its tasks must go.
      if (this.removedFrameworks.has(frameworkId)) agent.conn?.send({ type: 'SHUTDOWN_FRAMEWORK', framework_id: { value: frameworkId } });
      return;
    }
    const full: TaskStatus = status.agent_id === undefined ? { ...status, agent_id: agent.idObj } : status;
    const task = fw.tasks.get(status.task_id.value);
    if (task !== undefined && task.agentId === agent.id) {
      const changed = task.state !== latest || task.status?.healthy !== full.healthy;
      task.state = latest;
      task.status = full;
      if (changed) this.saveTask(task);
      if (isTerminal(latest)) this.freeTask(task);
    }
    // At-least-once: the agent resends until the framework's ACKNOWLEDGE comes back, so an update
    // to a disconnected framework is simply not delivered now.
    fw.conn?.send({ type: 'UPDATE', update: { status: full } });
  }

  /** An update the master makes itself: no uuid, so it needs no acknowledgement. */
  private sendMasterUpdate(fw: FrameworkRecord, task: Task | TaskInfo, state: TaskState, reason: TaskStatusReason, message: string | undefined, agentId?: { value: string }): void {
    const info = 'info' in task ? task.info : task;
    // A task info that failed its schema may lack a readable agent_id: the offers' agent is named.
    const named = typeof info.agent_id?.value === 'string' ? info.agent_id : agentId;
    const status: TaskStatus = {
      task_id: info.task_id,
      state,
      source: 'SOURCE_MASTER',
      reason,
      ...(named !== undefined ? { agent_id: named } : {}),
      timestamp: this.clock.now() / 1000,
      ...(message !== undefined ? { message } : {}),
    };
    if ('info' in task) {
      const healthy = task.status?.healthy;
      if (healthy !== undefined && reason === 'REASON_RECONCILIATION') status.healthy = healthy;
      if (reason !== 'REASON_RECONCILIATION') task.status = status;
    }
    fw.conn?.send({ type: 'UPDATE', update: { status } });
  }

  // =============================================================================================
  // Books

  /** Gives a task's resources back to the allocator (once). */
  private freeTask(task: Task): void {
    if (task.freed) return;
    task.freed = true;
    this.allocator.recover(task.frameworkId, task.agentId, task.role, task.resources, this.clock.now());
    this.allocateSoon(task.agentId);
  }

  /** Ends a task with a master-made terminal update and moves it to the completed tasks. */
  private endTask(task: Task, state: TaskState, reason: TaskStatusReason, message: string): void {
    const fw = this.frameworks.get(task.frameworkId);
    task.state = state;
    if (fw !== undefined) this.sendMasterUpdate(fw, task, state, reason, message);
    this.completeTask(task);
  }

  /** Removes a task whose end the framework knows (acknowledged, or reported by the master). */
  private completeTask(task: Task): void {
    this.freeTask(task);
    const fw = this.frameworks.get(task.frameworkId);
    const agent = this.agents.get(task.agentId);
    if (agent !== undefined) {
      agent.tasks.delete(task);
      if (agent.drain?.state === 'DRAINING' && agent.tasks.size === 0) this.scheduleDrainCheck(agent);
    }
    if (fw === undefined) return;
    fw.tasks.delete(task.id);
    this.record({ type: 'TASK_REMOVED', frameworkId: fw.id, taskId: task.id });
    fw.completed.push(task);
    if (fw.completed.length > this.options.maxCompletedTasksPerFramework) fw.completed.shift();
  }

  /**
   * Matches the tasks an agent reports on (re)registration with the master's books. `afterPartition`:
   * the agent was unreachable, so frameworks that are not partition-aware were told its tasks were
   * LOST; those tasks must not run on and are killed. Otherwise (a master that lost its state) the
   * reported tasks are adopted.
   */
  private reconcileAgentTasks(agent: AgentRecord, message: Extract<AgentToMaster, { type: 'REGISTER' }>, afterPartition: boolean): void {
    const reported = new Set<string>();
    const now = this.clock.now();
    for (const t of message.tasks) {
      const fwId = t.framework_id.value;
      const key = `${fwId}\u0000${t.task.task_id.value}`;
      reported.add(key);
      let fw = this.frameworks.get(fwId);
      if (fw === undefined) {
        if (this.removedFrameworks.has(fwId)) {
          agent.conn?.send({ type: 'SHUTDOWN_FRAMEWORK', framework_id: { value: fwId } });
          continue;
        }
        // A master that lost its state learns the framework from its agents; it has until its
        // failover timeout to subscribe again.
        const info = message.frameworks.find((f) => f.id?.value === fwId) ?? { name: fwId, id: { value: fwId } };
        fw = this.addRecoveredFramework(fwId, info, now);
      }
      let task = fw.tasks.get(t.task.task_id.value);
      if (task !== undefined && task.agentId !== agent.id) {
        // The id was reused on another agent while this one was away: this copy must go.
        if (!isTerminal(t.state)) agent.conn?.send({ type: 'KILL', framework_id: fw.idObj, task_id: t.task.task_id });
        continue;
      }
      if (task === undefined) {
        if (isTerminal(t.state)) continue;
        if (afterPartition && !fw.partitionAware) {
          agent.conn?.send({ type: 'KILL', framework_id: fw.idObj, task_id: t.task.task_id });
          continue;
        }
        let resources: Resources;
        try {
          resources = Resources.fromJSON(t.task.resources);
        } catch {
          continue;
        }
        task = { id: t.task.task_id.value, frameworkId: fwId, agentId: agent.id, role: roleOfTask(t.task, fw.roles), resources, info: t.task, state: t.state, status: undefined, freed: false, killPending: false };
        fw.tasks.set(task.id, task);
        this.saveTask(task);
      }
      agent.tasks.add(task);
      const wasUnreachable = task.state === 'TASK_UNREACHABLE';
      if (task.state !== t.state) {
        task.state = t.state;
        this.saveTask(task);
      }
      if (!isTerminal(t.state)) {
        task.freed = false;
        this.allocator.claim(fwId, agent.id, task.role, task.resources);
      }
      // A terminal state is left to the agent's own update stream, which delivers the older
      // unacknowledged updates first; the master must not overtake them.
      if (wasUnreachable && !isTerminal(t.state)) this.sendMasterUpdate(fw, task, t.state, 'REASON_AGENT_REREGISTERED', `Agent ${agent.id} reregistered`);
      if (task.killPending) {
        task.killPending = false;
        agent.conn?.send({ type: 'KILL', framework_id: fw.idObj, task_id: task.info.task_id });
      }
    }
    // Tasks the master placed on this agent that the agent does not have are gone.
    for (const task of [...agent.tasks]) {
      if (reported.has(`${task.frameworkId}\u0000${task.id}`)) continue;
      const fw = this.frameworks.get(task.frameworkId);
      task.freed = true; // Its resources were not claimed on the re-added agent.
      // REGISTER opens the agent's new stream, so every LAUNCH it does not report went to the
      // old stream and was lost with it: a task still STAGING never started (DROPPED).
      const gone = task.state === 'TASK_STAGING' ? 'TASK_DROPPED' : 'TASK_GONE';
      this.endTask(task, fw?.partitionAware ? gone : 'TASK_LOST', 'REASON_AGENT_RESTARTED', `Task is not on agent ${agent.id} any more`);
    }
  }

  /** The agent an operator call names: known, not removed. */
  private operatedAgent(agentId: string): AgentRecord {
    const agent = this.agents.get(agentId);
    if (agent === undefined) {
      if (this.goneAgents.has(agentId)) throw new AgentGone(`agent ${agentId} was removed`);
      throw new AgentNotFound(`agent ${agentId} is not known`);
    }
    return agent;
  }

  /** Kills a task of a draining agent, with the reason, the kill grace capped by the drain's. */
  private drainKill(agent: AgentRecord, task: Task): void {
    const fw = this.frameworks.get(task.frameworkId);
    if (fw === undefined) return;
    if (agent.conn === undefined || agent.state !== 'ACTIVE') return; // Sent when it registers again.
    const max = agent.drain?.maxGracePeriodMs;
    const own = task.info.kill_policy?.grace_period?.nanoseconds;
    // Without a policy of its own, the agent's default applies (3 s): capped like any other.
    const graceNs = max === undefined ? own : Math.min(own ?? DEFAULT_KILL_GRACE_NS, Math.round(max * 1e6));
    agent.conn.send({
      type: 'KILL',
      framework_id: fw.idObj,
      task_id: task.info.task_id,
      ...(graceNs !== undefined ? { kill_policy: { grace_period: { nanoseconds: graceNs } } } : {}),
      reason: { status: 'REASON_AGENT_DRAINING', message: `Agent ${agent.id} (${agent.hostname}) is being drained by the operator` },
    });
  }

  /**
   * Journals the agent as it is now (AGENT_SAVED): its resources (`resources`, as it reported them,
   * when given), whether it is unreachable, and what the operator set on it.
   */
  private saveAgent(agent: AgentRecord, resources: Resource[] = agent.total.toJSON()): void {
    const stored: StoredAgent = { id: agent.id, hostname: agent.hostname, resources, attributes: agent.attributes, registeredAt: agent.registeredAt };
    if (agent.url !== undefined) stored.url = agent.url;
    if (agent.unreachableAt !== undefined) stored.unreachableAt = agent.unreachableAt;
    if (agent.credential !== undefined) stored.credential = agent.credential;
    if (agent.deactivated || agent.drain !== undefined) {
      const maintenance: AgentMaintenance = { deactivated: agent.deactivated };
      if (agent.drain !== undefined) {
        maintenance.drain = { state: agent.drain.state, markGone: agent.drain.markGone };
        if (agent.drain.maxGracePeriodMs !== undefined) maintenance.drain.maxGracePeriodMs = agent.drain.maxGracePeriodMs;
      }
      stored.maintenance = maintenance;
    }
    this.record({ type: 'AGENT_SAVED', agent: stored });
  }

  /** Looks, on a turn of its own, whether a draining agent is drained (it may then be removed). */
  private scheduleDrainCheck(agent: AgentRecord): void {
    if (agent.drainCheck !== undefined) return;
    agent.drainCheck = this.clock.setTimer(0, () => {
      agent.drainCheck = undefined;
      if (this.agents.get(agent.id) !== agent || agent.drain?.state !== 'DRAINING' || agent.tasks.size > 0) return;
      agent.drain.state = 'DRAINED';
      if (agent.drain.markGone) this.removeAgent(agent.id);
      else this.saveAgent(agent);
    });
  }

  /** When the grace of an agent whose stream dropped runs out (for the state views). */
  private graceEnd(agent: AgentRecord): number | undefined {
    if (agent.restartAnnouncedAt === undefined) return undefined;
    return agent.disconnectedAt === undefined ? undefined : agent.disconnectedAt + this.options.agentRestartGraceMs;
  }

  private addRecoveredFramework(id: string, info: FrameworkInfo, now: number): FrameworkRecord {
    let roles: string[];
    try {
      roles = rolesOf(info);
    } catch {
      roles = ['*']; // Roles an agent reports must not make its registration fail, again and again.
    }
    const fw: FrameworkRecord = {
      id,
      idObj: { value: id },
      info: { ...info, id: { value: id } },
      roles,
      partitionAware: (info.capabilities ?? []).some((c) => c.type === 'PARTITION_AWARE'),
      conn: undefined,
      tasks: new Map(),
      offerCount: 0,
      completed: [],
      registeredAt: now,
      disconnectedAt: now,
      failoverTimer: undefined,
    };
    this.frameworks.set(id, fw);
    this.allocator.addFramework(id, roles);
    this.allocator.setFrameworkActive(id, false);
    // Known only from the store or from its agents: after a master restart, a framework gets at
    // least as long to come back as its agents do.
    this.startFailoverTimer(fw, this.options.agentReregisterTimeoutMs);
    this.record({ type: 'FRAMEWORK_SAVED', framework: { id, info: fw.info, registeredAt: now } });
    return fw;
  }

  private startFailoverTimer(fw: FrameworkRecord, atLeastMs = 0): void {
    fw.failoverTimer?.cancel();
    const ms = Math.max((fw.info.failover_timeout ?? 0) * 1000, atLeastMs);
    fw.failoverTimer = this.clock.setTimer(ms, () => {
      fw.failoverTimer = undefined;
      if (fw.conn === undefined && this.frameworks.get(fw.id) === fw) this.removeFramework(fw, 'Framework failover timeout');
    });
  }

  /** TEARDOWN or failover timeout: the framework's offers go back, its tasks are killed, its id is retired. */
  private removeFramework(fw: FrameworkRecord, why: string): void {
    fw.failoverTimer?.cancel();
    this.recoverOffers(fw, false);
    const agents = new Set<AgentRecord>();
    for (const task of [...fw.tasks.values()]) {
      const agent = this.agents.get(task.agentId);
      if (agent !== undefined) agents.add(agent);
      this.freeTask(task);
      task.state = 'TASK_KILLED';
      this.agents.get(task.agentId)?.tasks.delete(task);
      fw.tasks.delete(task.id);
    }
    for (const agent of agents) agent.conn?.send({ type: 'SHUTDOWN_FRAMEWORK', framework_id: fw.idObj });
    this.allocator.removeFramework(fw.id);
    this.frameworks.delete(fw.id);
    this.removedFrameworks.add(fw.id);
    this.record({ type: 'FRAMEWORK_REMOVED', id: fw.id, removedAt: this.clock.now() });
    if (fw.conn !== undefined) {
      fw.conn.send({ type: 'ERROR', error: { message: why } });
      fw.conn.close();
      fw.conn = undefined;
    }
  }

  // =============================================================================================
  // Offers

  private removeOffer(offer: OfferRecord): void {
    // Its id is one this master made: the number follows the prefix.
    this.offers.delete(Number(offer.id.slice(this.offerIdPrefix.length)));
    const fw = this.frameworks.get(offer.frameworkId);
    if (fw !== undefined) fw.offerCount--;
    const onAgent = this.agents.get(offer.agentId)?.offers;
    if (onAgent !== undefined) {
      const i = onAgent.indexOf(offer);
      if (i >= 0) onAgent.splice(i, 1);
    }
  }

  /** Takes back every offer of a framework (failover, disconnection, removal), optionally telling it. */
  private recoverOffers(fw: FrameworkRecord, rescind: boolean): void {
    const now = this.clock.now();
    if (fw.offerCount === 0) return;
    for (const offer of [...this.offers.values()].filter((o) => o.frameworkId === fw.id)) {
      this.removeOffer(offer);
      this.allocator.recover(fw.id, offer.agentId, offer.role, offer.resources, now);
      if (rescind) fw.conn?.send({ type: 'RESCIND', rescind: { offer_id: { value: offer.id } } });
      this.allocateSoon(offer.agentId);
    }
  }

  /** The number of an offer id of this master, or undefined for any other text. */
  private offerNumber(id: string): number | undefined {
    if (!id.startsWith(this.offerIdPrefix)) return undefined;
    const digits = id.slice(this.offerIdPrefix.length);
    const n = Number(digits);
    return /^(0|[1-9][0-9]*)$/.test(digits) && Number.isSafeInteger(n) ? n : undefined;
  }

  private offerById(id: string): OfferRecord | undefined {
    const n = this.offerNumber(id);
    return n === undefined ? undefined : this.offers.get(n);
  }

  private newFrameworkId(): string {
    for (;;) {
      const id = `${this.id}-${String(this.nextFramework++).padStart(4, '0')}`;
      if (!this.frameworks.has(id) && !this.removedFrameworks.has(id)) return id;
    }
  }

  private newAgentId(): string {
    for (;;) {
      const id = `${this.id}-S${this.nextAgent++}`;
      if (!this.agents.has(id) && !this.goneAgents.has(id)) return id;
    }
  }

  /** Whether agents known from the store have yet to reregister. */
  private recovering(): boolean {
    for (const a of this.agents.values()) if (a.state === 'RECOVERED') return true;
    return false;
  }

  private record(change: MasterChange): void {
    if (this.journal === undefined) return;
    this.journal.push(change);
    this.journaled++;
  }

  private saveTask(task: Task): void {
    if (this.journal === undefined || !this.frameworks.get(task.frameworkId)?.tasks.has(task.id)) return;
    this.journaled++;
    this.journal.push({ type: 'TASK_SAVED', task: { frameworkId: task.frameworkId, taskId: task.id, agentId: task.agentId, info: task.info, state: task.state, role: task.role, ...(task.status !== undefined ? { status: task.status } : {}) } });
  }

  /** FAILURE with the agent's id to every connected framework, as Mesos tells schedulers of a lost agent. */
  private sendAgentFailure(agent: AgentRecord): void {
    for (const fw of this.frameworks.values()) fw.conn?.send({ type: 'FAILURE', failure: { agent_id: agent.idObj } });
  }

  /** Takes back every offer on an agent and sends RESCIND to the frameworks that held them. */
  private rescindOffers(agent: AgentRecord): void {
    const now = this.clock.now();
    for (const offer of [...agent.offers]) {
      this.removeOffer(offer);
      this.allocator.recover(offer.frameworkId, agent.id, offer.role, offer.resources, now);
      this.frameworks.get(offer.frameworkId)?.conn?.send({ type: 'RESCIND', rescind: { offer_id: { value: offer.id } } });
    }
  }

  /** Asks for an allocation as soon as the current work is done (coalesced; after the pass under way, if any). */
  private allocateSoon(agentId?: string): void {
    if (agentId === undefined) this.dirtyAll = true;
    else if (!this.dirtyAll) this.dirty.add(agentId);
    if (this.soonTimer === undefined && this.running && this.pass === undefined) {
      this.soonTimer = this.clock.setTimer(0, () => {
        this.soonTimer = undefined;
        this.runAllocation();
      });
    }
  }

  /**
   * Starts an allocation pass over the dirty agents (every agent after the batch timer), unless
   * one is under way: what got dirty meanwhile waits for the next pass, which starts as soon as
   * this one ends. `unbounded`: the whole pass now, in one go (allocateNow, for tests).
   *
   * A pass is split into slices (issue 11 §2): agents in a seeded random order, 500 at a time,
   * until a slice has run `allocationSliceMs` (default 20 ms); each slice, the first one too,
   * runs from `defer` (a timer of 0 ms by default), so that no pass holds the event loop for
   * long, and calls, agent messages and I/O are handled between slices. Each slice sends its offers at
   * once. An agent removed or deactivated meanwhile is skipped by the allocator.
   */
  private runAllocation(unbounded = false): void {
    if (this.pass !== undefined) {
      if (unbounded) this.continuePass(true);
      return;
    }
    if (!this.dirtyAll && this.dirty.size === 0) return;
    // Left dirty: the first allocation once the store takes writes again covers them.
    if (this.storeTrouble !== undefined) return;
    if (!this.allocator.wantsOffers()) {
      // Nobody wants offers: nothing to do. A framework that comes to want them (SUBSCRIBE,
      // REVIVE) asks for a pass over every agent.
      this.dirtyAll = false;
      this.dirty = new Set();
      return;
    }
    const started = performance.now();
    const ids = this.dirtyAll ? this.allocator.agentIds() : [...this.dirty];
    this.dirtyAll = false;
    this.dirty = new Set();
    const pass = { ids: this.allocator.shuffle(ids), next: 0, busyMs: performance.now() - started, longestSliceMs: 0, offers: 0 };
    this.pass = pass;
    // Every slice runs from `defer`, the first one too: a pass starts on a turn of its own.
    if (unbounded) this.continuePass(true);
    else this.defer(() => this.pass === pass && this.continuePass());
  }

  /** Runs the next slice of the pass under way (all of it when `unbounded`). */
  private continuePass(unbounded = false): void {
    const pass = this.pass;
    if (pass === undefined) return;
    if (this.storeTrouble !== undefined) {
      // No offers while the store refuses writes: the rest of the pass waits for it (dirty again).
      for (let i = pass.next; i < pass.ids.length; i++) this.dirty.add(pass.ids[i]!);
      this.pass = undefined;
      return;
    }
    const started = performance.now();
    const now = this.clock.now();
    const byFramework = new Map<FrameworkRecord, Offer[]>();
    while (pass.next < pass.ids.length) {
      const end = Math.min(pass.next + SLICE_AGENTS, pass.ids.length);
      const allocations = this.allocator.allocate(now, pass.ids.slice(pass.next, end), true);
      pass.next = end;
      this.makeOffers(allocations, byFramework);
      pass.offers += allocations.length;
      if (!unbounded && performance.now() - started >= this.options.allocationSliceMs) break;
    }
    for (const [fw, offers] of byFramework) fw.conn?.send({ type: 'OFFERS', offers: { offers } });
    const ms = performance.now() - started;
    pass.busyMs += ms;
    pass.longestSliceMs = Math.max(pass.longestSliceMs, ms);
    if (pass.next < pass.ids.length) {
      this.defer(() => {
        if (this.pass === pass) this.continuePass();
      });
      return;
    }
    this.pass = undefined;
    this.allocationStats.runs++;
    this.allocationStats.totalMs += pass.busyMs;
    this.allocationStats.lastMs = pass.busyMs;
    this.allocationStats.longestSliceMs = Math.max(this.allocationStats.longestSliceMs, pass.longestSliceMs);
    this.onAllocation?.(pass.busyMs, pass.offers, pass.longestSliceMs);
    // What got dirty during the pass.
    if (this.dirtyAll || this.dirty.size > 0) this.allocateSoon();
  }

  /** Turns allocations into offers: recorded, and added to their framework's list in `byFramework`. */
  private makeOffers(allocations: Allocation[], byFramework: Map<FrameworkRecord, Offer[]>): void {
    let lastFw: FrameworkRecord | undefined;
    let list: Offer[] = [];
    const prefix = this.offerIdPrefix;
    for (const a of allocations) {
      const fw = lastFw !== undefined && lastFw.id === a.frameworkId ? lastFw : this.frameworks.get(a.frameworkId)!;
      if (fw !== lastFw) {
        lastFw = fw;
        list = byFramework.get(fw) ?? [];
        byFramework.set(fw, list);
      }
      const agent = this.agents.get(a.agentId)!;
      const offer = a as OfferRecord;
      const n = this.nextOffer++;
      offer.id = prefix + n;
      this.offers.set(n, offer);
      fw.offerCount++;
      agent.offers.push(offer);
      list.push({
        id: { value: offer.id },
        framework_id: fw.idObj,
        agent_id: agent.idObj,
        hostname: agent.hostname,
        resources: a.resources.toJSON(a.role),
        attributes: agent.attributes,
        allocation_info: this.allocationInfo(a.role),
      });
    }
  }

  /** One shared `{role}` per role for offers' allocation_info (events are read-only). */
  private allocationInfo(role: string): { role: string } {
    let info = this.allocationInfos.get(role);
    if (info === undefined) {
      info = Object.freeze({ role });
      this.allocationInfos.set(role, info);
    }
    return info;
  }

  private intern(r: Resources): Resources {
    const key = r.toString();
    const known = this.internedTotals.get(key);
    if (known !== undefined) return known;
    if (this.internedTotals.size < 10_000) this.internedTotals.set(key, r);
    return r;
  }

  private checkRoles(fw: FrameworkRecord, roles: readonly string[] | undefined): void {
    for (const r of roles ?? []) if (!fw.roles.includes(r)) throw new InvalidRequest(`role '${r}' is not one of the framework's roles (${fw.roles.join(', ')})`);
  }
}

/** Whether `role` is a role name Slipway accepts (`*` is not one: it means unreserved). */
export function isValidRole(role: string): boolean {
  return ROLE_PATTERN.test(role);
}

function rolesOf(info: FrameworkInfo): string[] {
  const roles = info.roles !== undefined && info.roles.length > 0 ? info.roles : [info.role ?? '*'];
  for (const r of roles) if (r !== '*' && !ROLE_PATTERN.test(r)) throw new InvalidRequest(`'${r}' is not a valid role`);
  if (new Set(roles).size !== roles.length) throw new InvalidRequest('framework_info.roles has duplicates');
  return [...roles];
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r) => b.includes(r));
}

/** The role a reported task's resources were allocated to (its `allocation_info`, else the framework's first role). */
function roleOfTask(info: TaskInfo, roles: readonly string[]): string {
  return info.resources.find((r) => r.allocation_info !== undefined)?.allocation_info?.role ?? roles[0] ?? '*';
}
