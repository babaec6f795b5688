import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { up } from '../src/server/up.ts';
import type { Offer, TaskInfo } from '../src/protocol/mesos.ts';
import { SchedulerClient } from '../src/sdk/scheduler-client.ts';
import { ensureBusyboxImage } from '../test/support/busybox-image.ts';

/**
 * `slipway bench launch`: task launch latency through the real HTTP scheduler API and a real
 * agent (master and agent of `slipway up`, in this process, talking HTTP over 127.0.0.1).
 *
 * A framework subscribes and launches `tasks` tasks, one ACCEPT per task, each as soon as an
 * offer arrives (the unused part of an accepted offer comes back at once). Per task it measures
 * the time from sending its ACCEPT to receiving its TASK_RUNNING; "all running" is the time from
 * the first ACCEPT to the last TASK_RUNNING. The baseline starts the same number of processes
 * (spawn, until each is spawned) or containers (engine API create + start, until each runs)
 * directly, back to back, with the same command.
 */

export interface LaunchBenchOptions {
  tasks: number;
  containerizer: 'process' | 'docker';
}

export interface LaunchBenchResult {
  tasks: number;
  containerizer: string;
  acceptToRunningP50Ms: number;
  acceptToRunningP99Ms: number;
  allRunningSeconds: number;
  baselineSeconds: number;
  ratio: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

export async function runLaunchBench(o: LaunchBenchOptions, progress?: (line: string) => void): Promise<LaunchBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-launch-'));
  const docker = new Docker();
  let image: string | undefined;
  if (o.containerizer === 'docker') image = await ensureBusyboxImage(docker);
  const cluster = await up({ host: '127.0.0.1', port: 0, dataDir: dir, containerizers: [o.containerizer], resources: `cpus:${o.tasks};mem:${o.tasks * 64};ports:[31000-32000]` });
  const fw = new SchedulerClient(cluster.master.url);
  try {
    await fw.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'bench', name: 'launch-bench', roles: ['*'] } } });
    const acceptedAt = new Map<string, number>();
    const runningAt = new Map<string, number>();
    const used = new Set<string>();
    let next = 0;
    let first = 0;
    const deadline = Date.now() + 10 * 60_000;
    while (runningAt.size < o.tasks) {
      if (Date.now() > deadline) throw new Error(`bench: only ${runningAt.size} of ${o.tasks} tasks running after 10 minutes`);
      for (const e of fw.updates()) {
        if (e.state === 'TASK_RUNNING' && !runningAt.has(e.task_id.value)) runningAt.set(e.task_id.value, performance.now());
        if (e.state === 'TASK_FAILED' || e.state === 'TASK_ERROR') throw new Error(`bench: task ${e.task_id.value} ${e.state}: ${e.message}`);
      }
      void fw.ackAll();
      const offer: Offer | undefined = next < o.tasks ? fw.offers().find((x) => !used.has(x.id.value)) : undefined;
      if (offer === undefined) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      used.add(offer.id.value);
      const id = `t${next++}`;
      const info: TaskInfo = {
        name: id,
        task_id: { value: id },
        agent_id: offer.agent_id,
        resources: [
          { name: 'cpus', type: 'SCALAR', scalar: { value: 0.01 } },
          { name: 'mem', type: 'SCALAR', scalar: { value: 16 } },
        ],
        command: { value: 'exec sleep 600' },
        ...(image !== undefined ? { container: { type: 'DOCKER', docker: { image, network: 'HOST' } } } : {}),
      };
      const t = performance.now();
      if (first === 0) first = t;
      acceptedAt.set(id, t);
      void fw.call({ type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [info] } }], filters: { refuse_seconds: 0 } } });
      if (next % 50 === 0) progress?.(`  ${next}/${o.tasks} launched, ${runningAt.size} running`);
    }
    const allRunningSeconds = (Math.max(...runningAt.values()) - first) / 1000;
    const latencies = [...runningAt].map(([id, t]) => t - acceptedAt.get(id)!).sort((a, b) => a - b);

    // Stop the tasks before the baseline, so both run on an equally loaded machine.
    for (const id of runningAt.keys()) await fw.call({ type: 'KILL', kill: { task_id: { value: id } } });
    const start = performance.now();
    await fw.waitFor(() => fw.updates().filter((u) => u.state === 'TASK_KILLED').length >= o.tasks || undefined, 'all tasks killed', 120_000).catch(() => undefined);
    progress?.(`  tasks stopped in ${((performance.now() - start) / 1000).toFixed(1)} s; baseline next`);

    const baselineSeconds = o.containerizer === 'docker' ? await dockerBaseline(docker, image!, o.tasks) : await processBaseline(o.tasks, dir);
    return {
      tasks: o.tasks,
      containerizer: o.containerizer,
      acceptToRunningP50Ms: Number(percentile(latencies, 50).toFixed(2)),
      acceptToRunningP99Ms: Number(percentile(latencies, 99).toFixed(2)),
      allRunningSeconds: Number(allRunningSeconds.toFixed(3)),
      baselineSeconds: Number(baselineSeconds.toFixed(3)),
      ratio: Number((allRunningSeconds / baselineSeconds).toFixed(2)),
    };
  } finally {
    fw.close();
    await cluster.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function processBaseline(n: number, dir: string): Promise<number> {
  const start = performance.now();
  const children = [];
  for (let i = 0; i < n; i++) {
    const child = spawn('sh', ['-c', 'exec sleep 600'], { cwd: dir, detached: true, stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
    children.push(child);
  }
  const seconds = (performance.now() - start) / 1000;
  for (const c of children) c.kill('SIGKILL');
  return seconds;
}

async function dockerBaseline(docker: Docker, image: string, n: number): Promise<number> {
  const start = performance.now();
  const containers = [];
  for (let i = 0; i < n; i++) {
    const c = await docker.createContainer({ Image: image, Cmd: ['sh', '-c', 'exec sleep 600'], HostConfig: { NetworkMode: 'host' }, Labels: { 'slipway.bench': 'baseline' } });
    await c.start();
    containers.push(c);
  }
  const seconds = (performance.now() - start) / 1000;
  await Promise.all(containers.map((c) => c.remove({ force: true })));
  return seconds;
}

export function formatLaunchBench(r: LaunchBenchResult): string {
  return [
    `launch benchmark: ${r.tasks} ${r.containerizer} tasks through the HTTP scheduler API and a real agent`,
    `  ACCEPT to RUNNING   p50 ${r.acceptToRunningP50Ms} ms, p99 ${r.acceptToRunningP99Ms} ms`,
    `  all running in      ${r.allRunningSeconds} s`,
    `  baseline            ${r.baselineSeconds} s (${r.containerizer === 'docker' ? 'engine API create + start' : 'spawn'}, back to back)`,
    `  ratio               ${r.ratio}`,
  ].join('\n');
}
