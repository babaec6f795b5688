import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { percentile } from '../src/core/percentile.ts';
import type { Offer, TaskInfo } from '../src/protocol/mesos.ts';
import { SchedulerClient } from '../src/sdk/scheduler-client.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';

/**
 * `slipway bench launch`: task launch latency through the real HTTP scheduler API and a real
 * agent: `slipway up` (master and agent) runs as its own process, and this process is the
 * framework, talking HTTP over 127.0.0.1.
 *
 * The framework launches `tasks` tasks, one ACCEPT per task, one at a time: the next ACCEPT goes
 * out when the previous task is RUNNING and an offer is there (the unused part of an accepted offer
 * comes back at once). Per task it measures the time from sending its ACCEPT to receiving its
 * TASK_RUNNING; "all running" is the time from the first ACCEPT to the last TASK_RUNNING. The
 * baseline starts the same number of processes (spawn, until each is spawned) or containers
 * (engine API create + start, until each runs) directly, one after the other, with the same
 * command.
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

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

export async function runLaunchBench(o: LaunchBenchOptions, progress?: (line: string) => void): Promise<LaunchBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-launch-'));
  const docker = new Docker();
  let image: string | undefined;
  if (o.containerizer === 'docker') image = await ensureBusyboxImage(docker);
  // `slipway up` in a process of its own, as a user runs it; this process is only the framework.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [BIN, 'up', '--port', String(port), '--data-dir', dir, '--containerizers', o.containerizer, '--resources', `cpus:${o.tasks};mem:${o.tasks * 64};ports:[31000-32000]`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const fw = new SchedulerClient(url);
  try {
    await waitFor(async () => (await fetch(`${url}/health`).then((r) => r.ok, () => false)) || undefined, `slipway up at ${url} (${stderr})`);
    await fw.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'bench', name: 'launch-bench', roles: ['*'] } } });
    const acceptedAt = new Map<string, number>();
    const runningAt = new Map<string, number>();
    const used = new Set<string>();
    const offers: Offer[] = [];
    let next = 0;
    let first = 0;
    let seen = 0;
    const deadline = Date.now() + 10 * 60_000;
    while (runningAt.size < o.tasks) {
      if (Date.now() > deadline) throw new Error(`bench: only ${runningAt.size} of ${o.tasks} tasks running after 10 minutes`);
      // Only the events that arrived since the last look: the loop must not cost what it measures.
      for (; seen < fw.events.length; seen++) {
        const ev = fw.events[seen]!;
        if (ev.type === 'OFFERS') offers.push(...ev.offers.offers);
        else if (ev.type === 'RESCIND') used.add(ev.rescind.offer_id.value);
        else if (ev.type === 'UPDATE') {
          const e = ev.update.status;
          if (e.state === 'TASK_RUNNING' && !runningAt.has(e.task_id.value)) runningAt.set(e.task_id.value, performance.now());
          if (e.state === 'TASK_FAILED' || e.state === 'TASK_ERROR') throw new Error(`bench: task ${e.task_id.value} ${e.state}: ${e.message}`);
        }
      }
      while (offers.length > 0 && used.has(offers[0]!.id.value)) offers.shift();
      // One launch in flight at a time: the latency of a launch, not of a queue of launches.
      const offer = next < o.tasks && next === runningAt.size ? offers.shift() : undefined;
      if (offer === undefined) {
        await new Promise((r) => setTimeout(r, 0));
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
      if (next % 50 === 0) progress?.(`  ${next}/${o.tasks} launched`);
    }
    const allRunningSeconds = (Math.max(...runningAt.values()) - first) / 1000;
    const latencies = [...runningAt].map(([id, t]) => t - acceptedAt.get(id)!).sort((a, b) => a - b);

    // Stop the tasks before the baseline, so both run on an equally loaded machine.
    await fw.call({ type: 'TEARDOWN' });
    await waitFor(async () => {
      const state = (await (await fetch(`${url}/master/state`)).json()) as { tasks: unknown[] };
      return state.tasks.length === 0 || undefined;
    }, 'the tasks to stop');
    if (image !== undefined) {
      // The containers stop and are removed in the background (their grace period): wait until
      // the engine is idle again, or the baseline would share it with their removal.
      await waitFor(async () => ((await docker.listContainers({ all: true, filters: { label: [`slipway.framework_id=${fw.frameworkId}`] } })).length === 0 ? true : undefined), 'the containers to be removed', 180_000);
    }
    progress?.('  tasks stopped; baseline next');

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
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
    if (image !== undefined) {
      for (const c of await docker.listContainers({ all: true, filters: { label: ['slipway.task_id'] } })) {
        if (c.Labels['slipway.framework_id'] === fw.frameworkId) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitFor<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
    server.on('error', reject);
  });
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
