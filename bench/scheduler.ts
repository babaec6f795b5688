import v8 from 'node:v8';
import vm from 'node:vm';
import { percentile } from '../src/core/percentile.ts';
import { SimCluster } from '../src/sim/sim-cluster.ts';

/**
 * `slipway bench scheduler`: the master core at scale on simulated agents and frameworks.
 *
 * Agents of 8 cpus, 32768 mem and ports 31000-32000; frameworks in roles of weights 1, 1, 2
 * (then 1, 1, 2, ... for more), each with an equal part of the tasks, accepting greedily. Runs
 * until every task is RUNNING (as the frameworks see it: the update reached them and was
 * acknowledged) and measures:
 * - placements per second and seconds to place all: wall time from the first subscription to the
 *   last RUNNING update;
 * - offer-cycle latency: wall time of each allocation pass (the allocator's decisions, the offers
 *   made and handed to the frameworks' streams), as Mesos's `allocation_run_ms`;
 * - heap bytes per agent and per task, after a full GC, over the whole process (master, allocator
 *   and the simulators' own state, so an upper bound for the master alone).
 */

export interface SchedulerBenchOptions {
  agents: number;
  frameworks: number;
  tasks: number;
  taskCpus: number;
  taskMem: number;
  seed?: number;
}

export interface SchedulerBenchResult {
  agents: number;
  frameworks: number;
  tasks: number;
  placed: number;
  seconds: number;
  placementsPerSecond: number;
  offerCycles: number;
  offerCycleP50Ms: number;
  offerCycleP99Ms: number;
  offerCycleMaxMs: number;
  registerAgentsSeconds: number;
  heapBytesPerAgent: number;
  heapBytesPerTask: number;
  shares: Record<string, number>;
  weights: Record<string, number>;
}

function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function heapUsed(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

export function runSchedulerBench(o: SchedulerBenchOptions, progress?: (line: string) => void): SchedulerBenchResult {
  const gc = gcFunction();
  const cycles: number[] = [];
  const base = heapUsed(gc);
  const cluster = new SimCluster({ onAllocation: (ms, offers) => offers > 0 && cycles.push(ms), ...(o.seed !== undefined ? { seed: o.seed } : {}) });

  const t0 = performance.now();
  for (let i = 0; i < o.agents; i++) cluster.addAgent('cpus:8;mem:32768;ports:[31000-32000]', { hostname: `agent-${i}` });
  cluster.settle();
  const registerAgentsSeconds = (performance.now() - t0) / 1000;
  const withAgents = heapUsed(gc);
  cycles.length = 0;

  const weights: Record<string, number> = {};
  const per = Math.floor(o.tasks / o.frameworks);
  const start = performance.now();
  for (let i = 0; i < o.frameworks; i++) {
    const role = `role${i + 1}`;
    weights[role] = i % 3 === 2 ? 2 : 1;
    cluster.master.setWeight(role, weights[role]!);
    const tasks = i === o.frameworks - 1 ? o.tasks - per * (o.frameworks - 1) : per;
    cluster.addFramework({ name: `framework${i + 1}`, roles: [role], tasks, taskCpus: o.taskCpus, taskMem: o.taskMem });
  }
  let lastReport = start;
  const deadline = start + 10 * 60_000;
  for (;;) {
    cluster.settle();
    const placed = cluster.frameworks.reduce((n, f) => n + f.running, 0);
    if (cluster.frameworks.every((f) => f.done())) break;
    const now = performance.now();
    if (now > deadline) throw new Error(`bench: only ${placed} of ${o.tasks} tasks running after 10 minutes`);
    if (progress !== undefined && now - lastReport > 1000) {
      lastReport = now;
      progress(`  ${placed}/${o.tasks} tasks running (${((now - start) / 1000).toFixed(1)} s)`);
    }
    // Nothing moves until the next batch allocation: let simulated time reach it.
    cluster.clock.advance(Math.max(0, (cluster.clock.nextDue() ?? cluster.clock.now()) - cluster.clock.now()));
  }
  const seconds = (performance.now() - start) / 1000;
  const placed = cluster.frameworks.reduce((n, f) => n + f.running, 0);
  const withTasks = heapUsed(gc);
  const sorted = cycles.slice().sort((a, b) => a - b);
  const shares: Record<string, number> = {};
  for (const r of cluster.master.roles()) if (r.name !== '*') shares[r.name] = Number(r.share.toFixed(4));
  // Keep the cluster alive until the heap was measured.
  if (cluster.master.offerCount() < 0) throw new Error('unreachable');
  return {
    agents: o.agents,
    frameworks: o.frameworks,
    tasks: o.tasks,
    placed,
    seconds: Number(seconds.toFixed(3)),
    placementsPerSecond: Math.round(placed / seconds),
    offerCycles: cycles.length,
    offerCycleP50Ms: Number(percentile(sorted, 50).toFixed(2)),
    offerCycleP99Ms: Number(percentile(sorted, 99).toFixed(2)),
    offerCycleMaxMs: Number((sorted[sorted.length - 1] ?? 0).toFixed(2)),
    registerAgentsSeconds: Number(registerAgentsSeconds.toFixed(3)),
    heapBytesPerAgent: Math.round((withAgents - base) / o.agents),
    heapBytesPerTask: Math.round((withTasks - withAgents) / Math.max(1, placed)),
    shares,
    weights,
  };
}

export function formatSchedulerBench(r: SchedulerBenchResult): string {
  return [
    `scheduler benchmark: ${r.agents} agents, ${r.frameworks} frameworks, ${r.tasks} tasks`,
    `  placed                ${r.placed} tasks in ${r.seconds.toFixed(2)} s`,
    `  placements per second ${r.placementsPerSecond}`,
    `  offer cycle           p50 ${r.offerCycleP50Ms} ms, p99 ${r.offerCycleP99Ms} ms, max ${r.offerCycleMaxMs} ms (${r.offerCycles} cycles)`,
    `  agents registered in  ${r.registerAgentsSeconds.toFixed(2)} s`,
    `  heap per agent        ${r.heapBytesPerAgent} bytes`,
    `  heap per task         ${r.heapBytesPerTask} bytes`,
    `  dominant shares       ${Object.entries(r.shares).map(([role, s]) => `${role} (weight ${r.weights[role] ?? 1}) ${s}`).join(', ')}`,
  ].join('\n');
}
