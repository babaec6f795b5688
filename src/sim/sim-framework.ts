import { isTerminal } from '../core/task-state.ts';
import type { Offer, Resource, TaskInfo } from '../protocol/mesos.ts';
import type { Event, FrameworkCall, SubscribeCall } from '../protocol/scheduler.ts';

/**
 * A simulated framework that accepts offers greedily: it packs as many of its tasks into each
 * offer as fit, declines what it cannot use (with a long filter once it has nothing left to
 * launch), SUPPRESSes when it needs nothing and acknowledges every update. It speaks only the
 * scheduler API (events in, calls out), as any framework must.
 *
 * Events are queued by `receive` and handled in `drain()`, so the harness decides when the
 * framework runs and the master is never re-entered from inside its own call.
 */

export interface SimFrameworkOptions {
  name: string;
  roles?: string[];
  /** How many tasks to launch; Infinity for a framework that always wants more. */
  tasks: number;
  taskCpus: number;
  taskMem: number;
  /** Run time of each task on the simulated agent; undefined: until killed. */
  taskDurationMs?: number;
  partitionAware?: boolean;
  /** Asks for TASK_KILLING before TASK_KILLED (Mesos's TASK_KILLING_STATE capability). */
  taskKillingState?: boolean;
  failoverTimeoutSeconds?: number;
  /** Filter for declined offers while it still has tasks to launch. */
  refuseSeconds?: number;
  /** Filter for declined offers once it has nothing to launch. */
  idleRefuseSeconds?: number;
}

export type FrameworkOutbox = (framework: SimFramework, call: FrameworkCall) => void;

export class SimFramework {
  frameworkId: string | undefined;
  launched = 0;
  running = 0;
  finished = 0;
  failed = 0;
  offersReceived = 0;
  offersDeclined = 0;
  rescinded = 0;
  suppressed = false;
  readonly events: Event[] = [];
  /** Keep every event in `events` (tests); off in benchmarks. */
  record = false;
  private inbox: Event[] = [];
  private readonly taskResources: Resource[];
  private readonly command = { value: 'sleep 3600' };
  private readonly durationLabel: TaskInfo['labels'];

  constructor(
    readonly options: SimFrameworkOptions,
    private readonly outbox: FrameworkOutbox,
    private readonly wake: (framework: SimFramework) => void,
  ) {
    this.taskResources = [
      { name: 'cpus', type: 'SCALAR', scalar: { value: options.taskCpus } },
      { name: 'mem', type: 'SCALAR', scalar: { value: options.taskMem } },
    ];
    this.durationLabel = options.taskDurationMs === undefined ? undefined : { labels: [{ key: 'sim.duration_ms', value: String(options.taskDurationMs) }] };
  }

  subscribeCall(): SubscribeCall {
    const o = this.options;
    return {
      type: 'SUBSCRIBE',
      subscribe: {
        framework_info: {
          user: 'sim',
          name: o.name,
          roles: o.roles ?? ['*'],
          failover_timeout: o.failoverTimeoutSeconds ?? 0,
          capabilities: [
            { type: 'MULTI_ROLE' },
            ...(o.partitionAware ? [{ type: 'PARTITION_AWARE' as const }] : []),
            ...(o.taskKillingState ? [{ type: 'TASK_KILLING_STATE' as const }] : []),
          ],
          ...(this.frameworkId !== undefined ? { id: { value: this.frameworkId } } : {}),
        },
      },
      ...(this.frameworkId !== undefined ? { framework_id: { value: this.frameworkId } } : {}),
    };
  }

  /** The framework's side of its subscription stream. */
  receive(event: Event): void {
    this.inbox.push(event);
    this.wake(this);
  }

  drain(): number {
    const batch = this.inbox;
    this.inbox = [];
    for (const e of batch) this.handle(e);
    return batch.length;
  }

  /** Whether every task it was asked to launch is running (or done). */
  done(): boolean {
    return this.launched >= this.options.tasks && this.running + this.finished + this.failed >= this.options.tasks;
  }

  private handle(e: Event): void {
    if (this.record) this.events.push(e);
    switch (e.type) {
      case 'SUBSCRIBED':
        this.frameworkId = e.subscribed.framework_id.value;
        return;
      case 'OFFERS':
        for (const offer of e.offers.offers) this.onOffer(offer);
        return;
      case 'RESCIND':
        this.rescinded++;
        return;
      case 'UPDATE': {
        const s = e.update.status;
        if (s.uuid !== undefined && s.agent_id !== undefined) {
          if (s.state === 'TASK_RUNNING') this.running++;
          else if (isTerminal(s.state)) {
            if (s.state === 'TASK_FINISHED') this.finished++;
            else this.failed++;
            this.running = Math.max(0, this.running - 1);
          }
          this.call({ type: 'ACKNOWLEDGE', framework_id: this.fid(), acknowledge: { agent_id: s.agent_id, task_id: s.task_id, uuid: s.uuid } });
        }
        return;
      }
      default:
        return;
    }
  }

  private onOffer(offer: Offer): void {
    this.offersReceived++;
    let cpus = 0;
    let mem = 0;
    for (const r of offer.resources) {
      if (r.name === 'cpus') cpus += r.scalar?.value ?? 0;
      else if (r.name === 'mem') mem += r.scalar?.value ?? 0;
    }
    // Count in thousandths, as the master does, so that packing never overshoots by a rounding.
    const fit = Math.min(Math.floor(Math.round(cpus * 1000) / Math.round(this.options.taskCpus * 1000)), Math.floor(Math.round(mem * 1000) / Math.round(this.options.taskMem * 1000)));
    const n = Math.min(fit, this.options.tasks - this.launched);
    if (n <= 0) {
      this.offersDeclined++;
      const idle = this.launched >= this.options.tasks;
      this.call({
        type: 'DECLINE',
        framework_id: this.fid(),
        decline: { offer_ids: [offer.id], filters: { refuse_seconds: idle ? (this.options.idleRefuseSeconds ?? 3600) : (this.options.refuseSeconds ?? 5) } },
      });
      if (idle && !this.suppressed) {
        this.suppressed = true;
        this.call({ type: 'SUPPRESS', framework_id: this.fid() });
      }
      return;
    }
    const tasks: TaskInfo[] = [];
    for (let i = 0; i < n; i++) {
      const id = `${this.options.name}-${this.launched++}`;
      tasks.push({
        name: id,
        task_id: { value: id },
        agent_id: offer.agent_id,
        resources: this.taskResources,
        command: this.command,
        ...(this.durationLabel !== undefined ? { labels: this.durationLabel } : {}),
      });
    }
    this.call({ type: 'ACCEPT', framework_id: this.fid(), accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: tasks } }] } });
    if (this.launched >= this.options.tasks && !this.suppressed) {
      this.suppressed = true;
      this.call({ type: 'SUPPRESS', framework_id: this.fid() });
    }
  }

  private call(c: FrameworkCall): void {
    this.outbox(this, c);
  }

  private fid(): { value: string } {
    return { value: this.frameworkId! };
  }
}
