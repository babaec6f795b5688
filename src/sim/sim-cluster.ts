import { ManualClock } from '../core/clock.ts';
import { Resources } from '../core/resources.ts';
import { Master, type MasterOptions } from '../master/master.ts';
import type { MasterToAgent } from '../protocol/agent.ts';
import type { Attribute } from '../protocol/mesos.ts';
import type { Event } from '../protocol/scheduler.ts';
import { SimAgent } from './sim-agent.ts';
import { SimFramework, type SimFrameworkOptions } from './sim-framework.ts';

/**
 * A whole cluster in one process on simulated time: a real Master, simulated agents and
 * simulated frameworks, wired through the same calls and messages the network transports carry.
 * `settle()` runs everything that is ready until nothing moves; `advance(ms)` moves the clock.
 * Used by the master's scale tests and by `slipway bench scheduler`.
 */
export class SimCluster {
  readonly clock: ManualClock;
  readonly master: Master;
  readonly agents: SimAgent[] = [];
  readonly frameworks: SimFramework[] = [];
  private readonly busyAgents = new Set<SimAgent>();
  private readonly busyFrameworks = new Set<SimFramework>();
  private readonly conns = new Map<SimFramework, { send: (e: Event) => void; close: () => void }>();
  private readonly agentConns = new Map<SimAgent, { send: (m: MasterToAgent) => void; close: () => void }>();

  constructor(options: Partial<Omit<MasterOptions, 'clock'>> = {}, clock = new ManualClock()) {
    this.clock = clock;
    this.master = new Master({ masterId: 'sim', ...options, clock });
    this.master.start();
  }

  /** Adds and registers an agent, e.g. `addAgent('cpus:8;mem:32768;ports:[31000-32000]')`. */
  addAgent(resources: string, options: { hostname?: string; attributes?: Attribute[]; taskDurationMs?: number; retryMs?: number } = {}): SimAgent {
    const agent = new SimAgent(
      {
        hostname: options.hostname ?? `sim-${this.agents.length}`,
        resources: Resources.parse(resources).toJSON(),
        clock: this.clock,
        ...(options.attributes !== undefined ? { attributes: options.attributes } : {}),
        ...(options.taskDurationMs !== undefined ? { taskDurationMs: options.taskDurationMs } : {}),
        ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
      },
      (a, message) => {
        if (message.type === 'REGISTER') {
          const conn = { send: (m: MasterToAgent) => a.receive(m), close: () => undefined };
          this.agentConns.set(a, conn);
          this.master.registerAgent(message, conn);
        }
        else if (a.agentId !== undefined) this.master.agentMessage(a.agentId, message);
      },
      (a) => this.busyAgents.add(a),
    );
    this.agents.push(agent);
    agent.register();
    return agent;
  }

  /**
   * The agent's machine is lost (crash, partition): its stream drops, the master starts its
   * reconnect grace, nothing goes in or out; its tasks keep "running" until it registers again.
   */
  loseAgent(agent: SimAgent): void {
    const conn = this.agentConns.get(agent);
    agent.disconnect();
    if (conn !== undefined && agent.agentId !== undefined) this.master.agentDisconnected(agent.agentId, conn);
    this.agentConns.delete(agent);
  }

  /** Adds a framework and subscribes it. */
  addFramework(options: SimFrameworkOptions): SimFramework {
    const fw = new SimFramework(options, (_f, call) => this.master.call(call), (f) => this.busyFrameworks.add(f));
    this.frameworks.push(fw);
    this.subscribe(fw);
    return fw;
  }

  /** Subscribes (or resubscribes, with its id) a framework on a new stream. */
  subscribe(fw: SimFramework): void {
    const conn = { send: (e: Event) => fw.receive(e), close: () => this.conns.delete(fw) };
    this.conns.set(fw, conn);
    const id = this.master.subscribe(fw.subscribeCall(), conn);
    fw.frameworkId = id;
  }

  /** Drops a framework's stream, as when its process dies. */
  disconnect(fw: SimFramework): void {
    const conn = this.conns.get(fw);
    if (conn !== undefined && fw.frameworkId !== undefined) this.master.disconnect(fw.frameworkId, conn);
    this.conns.delete(fw);
  }

  /** Runs what is due now and every queued message, until nothing moves. Returns the messages handled. */
  settle(): number {
    let total = 0;
    for (;;) {
      this.clock.advance(0);
      let n = 0;
      for (const f of this.busyFrameworks) {
        this.busyFrameworks.delete(f);
        n += f.drain();
      }
      for (const a of this.busyAgents) {
        this.busyAgents.delete(a);
        n += a.drain();
      }
      total += n;
      if (n === 0 && this.busyAgents.size === 0 && this.busyFrameworks.size === 0) {
        const due = this.clock.nextDue();
        if (due === undefined || due > this.clock.now()) return total;
      }
    }
  }

  /** Moves simulated time forward in steps of at most `stepMs`, settling after each. */
  advance(ms: number, stepMs = 100): void {
    const end = this.clock.now() + ms;
    this.settle();
    while (this.clock.now() < end) {
      const due = this.clock.nextDue();
      const next = Math.min(end, this.clock.now() + stepMs, due === undefined ? end : Math.max(due, this.clock.now()));
      this.clock.advance(next - this.clock.now());
      this.settle();
    }
  }
}
