import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimAgent } from './sim-agent.ts';
import { SimCluster } from './sim-cluster.ts';
import { SimRunner } from './sim-runner.ts';

/** What SimHost needs of a framework: start (resolves once subscribed), stop, and its turns settled. */
export interface HostedFramework {
  start(): Promise<void>;
  stop(): Promise<void>;
  settled(): Promise<void>;
}

export interface SimHostOptions<F extends HostedFramework, S extends { close(): Promise<void> }> {
  /** How many agents, each with these resources (`cpus:4;mem:4096;...`), hostnames h0, h1, ... */
  agents: number;
  resources: string;
  /** Opens the framework's store in its data dir (the same dir again after a restart). */
  openStore(dir: string): Promise<S>;
  /** The framework on the cluster, with its store. */
  framework(cluster: SimCluster, store: S, dir: string, agents: readonly SimAgent[]): F;
  /** More to settle between clock moves (simulated executors, ...). */
  settled?(framework: F): () => Promise<void>;
}

/**
 * A real framework on a simulated cluster, for tests on simulated time: the cluster (a real
 * master core on a ManualClock, SimAgents), the framework with its real store in a temp data
 * dir, and the SimRunner that drives them. `restart` stops the framework and starts a new one on
 * the same data dir and cluster, as a restarted process would; `stop` ends it all and removes
 * the data dir.
 */
export class SimHost<F extends HostedFramework, S extends { close(): Promise<void> }> {
  private constructor(
    private readonly o: SimHostOptions<F, S>,
    readonly cluster: SimCluster,
    readonly agents: readonly SimAgent[],
    readonly dir: string,
    readonly framework: F,
    readonly store: S,
    readonly runner: SimRunner,
  ) {}

  static async start<F extends HostedFramework, S extends { close(): Promise<void> }>(o: SimHostOptions<F, S>): Promise<SimHost<F, S>> {
    const cluster = new SimCluster({ agentReconnectGraceMs: 5000 });
    const agents = Array.from({ length: o.agents }, (_, i) => cluster.addAgent(o.resources, { hostname: `h${i}` }));
    return SimHost.on(o, cluster, agents, mkdtempSync(join(tmpdir(), 'slipway-sim-')));
  }

  private static async on<F extends HostedFramework, S extends { close(): Promise<void> }>(o: SimHostOptions<F, S>, cluster: SimCluster, agents: readonly SimAgent[], dir: string): Promise<SimHost<F, S>> {
    const store = await o.openStore(dir);
    const framework = o.framework(cluster, store, dir, agents);
    const runner = new SimRunner(cluster, [() => framework.settled(), ...(o.settled !== undefined ? [o.settled(framework)] : [])]);
    const started = framework.start();
    await runner.quiesce();
    await started;
    return new SimHost(o, cluster, agents, dir, framework, store, runner);
  }

  /** The framework stops and a new one starts on the same data dir and cluster. */
  async restart(): Promise<SimHost<F, S>> {
    await this.framework.stop();
    await this.store.close();
    return SimHost.on(this.o, this.cluster, this.agents, this.dir);
  }

  async stop(): Promise<void> {
    await this.framework.stop();
    await this.store.close();
    this.cluster.master.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
