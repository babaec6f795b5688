import { monitorEventLoopDelay } from 'node:perf_hooks';
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
 * - offer-cycle latency: the time each allocation pass runs (the allocator's decisions, the offers
 *   made and handed to the frameworks' streams), as Mesos's `allocation_run_ms`; a pass runs in
 *   slices (MasterOptions.allocationSliceMs) with the event loop free between them, and the time
 *   between slices is not counted;
 * - how long a pass holds the event loop: its longest slice, and the event loop's delay measured
 *   with perf_hooks.monitorEventLoopDelay (10 ms resolution; a sample is the time between two of
 *   its ticks, so at least 10 ms) while passes are under way. The master defers each slice to the
 *   bench, which runs them one per turn of the real event loop before the simulated agents and
 *   frameworks handle the pass's offers (their own work is synchronous and not part of the figure);
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
  /**
   * The master's allocationSliceMs (default 20). A large value (1e9) runs every pass in one
   * slice, as before passes were split: the whole cost of a pass over every agent, with no chance
   * for the frameworks to answer (and suppress) in between.
   */
  sliceMs?: number;
}

export interface SchedulerBenchResult {
  agents: number;
  frameworks: number;
  tasks: number;
  sliceMs: number;
  placed: number;
  seconds: number;
  placementsPerSecond: number;
  offerCycles: number;
  offerCycleP50Ms: number;
  offerCycleP99Ms: number;
  offerCycleMaxMs: number;
  /** The longest slice of any pass: the longest the master held the event loop with a pass. */
  offerSliceMaxMs: number;
  /** Event loop delay while passes were under way (monitorEventLoopDelay), p99 and max. */
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  registerAgentsSeconds: number;
  heapBytesPerAgent: number;
  heapBytesPerTask: number;
  shares: Record<string, number>;
  weights: Record<string, number>;
}

/** Resolution of the event loop delay histogram. */
const LOOP_DELAY_RESOLUTION_MS = 10;

function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function heapUsed(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

export async function runSchedulerBench(o: SchedulerBenchOptions, progress?: (line: string) => void): Promise<SchedulerBenchResult> {
  const gc = gcFunction();
  const cycles: number[] = [];
  let longestSlice = 0;
  /** Slices of a pass the master deferred, run by the bench on the real event loop (yieldUntilPassDone). */
  const slices: (() => void)[] = [];
  const base = heapUsed(gc);
  const cluster = new SimCluster({
    onAllocation: (ms, offers, slice) => {
      if (offers === 0) return;
      cycles.push(ms);
      longestSlice = Math.max(longestSlice, slice);
    },
    defer: (run) => void slices.push(run),
    ...(o.sliceMs !== undefined ? { allocationSliceMs: o.sliceMs } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
  });
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  const histogramTicks = () => new Promise<void>((resolve) => setTimeout(resolve, 2 * LOOP_DELAY_RESOLUTION_MS + 1));
  /**
   * Runs the slices the master deferred, each after a 0 ms timer (a turn of the event loop), with the
   * histogram on: it ticks twice before the first slice (its first tick only starts the count)
   * and twice after the last, so that every slice is measured.
   */
  const yieldUntilPassDone = async () => {
    if (slices.length === 0) return;
    loopDelay.enable();
    await histogramTicks();
    while (slices.length > 0) {
      slices.shift()!();
      // A 0 ms timer between slices, as the master's default `defer` on the system clock: the
      // event loop goes round (timers, I/O) between two slices.
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
    }
    await histogramTicks();
    loopDelay.disable();
  };
  const t0 = performance.now();
  for (let i = 0; i < o.agents; i++) cluster.addAgent('cpus:8;mem:32768;ports:[31000-32000]', { hostname: `agent-${i}` });
  cluster.settle();
  await yieldUntilPassDone();
  const registerAgentsSeconds = (performance.now() - t0) / 1000;
  const withAgents = heapUsed(gc);
  cycles.length = 0;
  longestSlice = 0;
  loopDelay.reset();

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
    if (slices.length > 0) {
      await yieldUntilPassDone();
      continue;
    }
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
    sliceMs: o.sliceMs ?? 20,
    placed,
    seconds: Number(seconds.toFixed(3)),
    placementsPerSecond: Math.round(placed / seconds),
    offerCycles: cycles.length,
    offerCycleP50Ms: Number(percentile(sorted, 50).toFixed(2)),
    offerCycleP99Ms: Number(percentile(sorted, 99).toFixed(2)),
    offerCycleMaxMs: Number((sorted[sorted.length - 1] ?? 0).toFixed(2)),
    offerSliceMaxMs: Number(longestSlice.toFixed(2)),
    // The histogram is in nanoseconds; with no sample (no pass was deferred), 0.
    eventLoopDelayP99Ms: loopDelay.count === 0 ? 0 : Number((loopDelay.percentile(99) / 1e6).toFixed(2)),
    eventLoopDelayMaxMs: loopDelay.count === 0 ? 0 : Number((loopDelay.max / 1e6).toFixed(2)),
    registerAgentsSeconds: Number(registerAgentsSeconds.toFixed(3)),
    heapBytesPerAgent: Math.round((withAgents - base) / o.agents),
    heapBytesPerTask: Math.round((withTasks - withAgents) / Math.max(1, placed)),
    shares,
    weights,
  };
}

export function formatSchedulerBench(r: SchedulerBenchResult): string {
  return [
    `scheduler benchmark: ${r.agents} agents, ${r.frameworks} frameworks, ${r.tasks} tasks, passes in slices of ${r.sliceMs} ms`,
    `  placed                ${r.placed} tasks in ${r.seconds.toFixed(2)} s`,
    `  placements per second ${r.placementsPerSecond}`,
    `  offer cycle           p50 ${r.offerCycleP50Ms} ms, p99 ${r.offerCycleP99Ms} ms, max ${r.offerCycleMaxMs} ms (${r.offerCycles} cycles)`,
    `  event loop held       longest slice of a pass ${r.offerSliceMaxMs} ms; loop delay during passes p99 ${r.eventLoopDelayP99Ms} ms, max ${r.eventLoopDelayMaxMs} ms`,
    `  agents registered in  ${r.registerAgentsSeconds.toFixed(2)} s`,
    `  heap per agent        ${r.heapBytesPerAgent} bytes`,
    `  heap per task         ${r.heapBytesPerTask} bytes`,
    `  dominant shares       ${Object.entries(r.shares).map(([role, s]) => `${role} (weight ${r.weights[role] ?? 1}) ${s}`).join(', ')}`,
  ].join('\n');
}
