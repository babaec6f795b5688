import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Real Slipway processes for `slipway bench apps`, started with the `slipway` command as a user
 * would (or, for the master with the services framework in it, with bench/apps-server-main.ts,
 * which wires them as `slipway up` does, without its agent), each logging to a file in the
 * benchmark's temp dir. `close()` stops them all and then kills whatever task processes are left
 * under the temp dir (an agent killed with -9 leaves its tasks running, as it should) and removes
 * their cgroups.
 */

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const SERVER_MAIN = fileURLToPath(new URL('./apps-server-main.ts', import.meta.url));

export interface ClusterOptions {
  dir: string;
  agents: number;
  /** Resources of each agent, without ports (each agent gets its own range: they share one host). */
  agentResources: string;
  /** `embedded`: master and services framework in one process (`slipway up`'s wiring); `separate`: `slipway master` + `slipway apps`. */
  topology: 'embedded' | 'separate';
  log?: (line: string) => void;
}

export class BenchProcess {
  child: ChildProcess | undefined;
  constructor(
    readonly name: string,
    readonly argv: string[],
    readonly logFile: string,
  ) {}

  start(): void {
    const fd = openSync(this.logFile, 'a');
    try {
      this.child = spawn(process.execPath, this.argv, { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
  }

  get alive(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** kill -9, as a crash; resolves once the process is gone. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (c === undefined || !this.alive) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGKILL');
    await exited;
  }

  /** Ctrl-C, then kill -9 after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const c = this.child;
    if (c === undefined || !this.alive) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGINT');
    const timer = setTimeout(() => {
      this.forced = true;
      c.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Set when stop() had to kill -9 it after the grace period. */
  forced = false;

  logTail(lines = 15): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

export class RealCluster {
  readonly masterUrl: string;
  /** Where Marathon's API is served. */
  readonly appsUrl: string;
  readonly servers: BenchProcess[] = [];
  readonly agents: BenchProcess[] = [];

  private constructor(
    readonly options: ClusterOptions,
    masterUrl: string,
    appsUrl: string,
  ) {
    this.masterUrl = masterUrl;
    this.appsUrl = appsUrl;
  }

  /** Starts the master and the services framework, then the agents; resolves when every agent is active. */
  static async start(o: ClusterOptions): Promise<RealCluster> {
    const masterPort = await freePort();
    const masterUrl = `http://127.0.0.1:${masterPort}`;
    let appsUrl = masterUrl;
    const servers: BenchProcess[] = [];
    if (o.topology === 'embedded') {
      servers.push(new BenchProcess('server', ['--import', 'tsx', SERVER_MAIN, String(masterPort), join(o.dir, 'server')], join(o.dir, 'server.log')));
    } else {
      const appsPort = await freePort();
      appsUrl = `http://127.0.0.1:${appsPort}`;
      servers.push(new BenchProcess('master', [BIN, 'master', '--port', String(masterPort), '--data-dir', join(o.dir, 'master')], join(o.dir, 'master.log')));
      servers.push(new BenchProcess('apps', [BIN, 'apps', '--master', masterUrl, '--port', String(appsPort), '--data-dir', join(o.dir, 'apps')], join(o.dir, 'apps.log')));
    }
    const cluster = new RealCluster(o, masterUrl, appsUrl);
    cluster.servers.push(...servers);
    try {
      servers[0]!.start();
      await waitFor(async () => ((await fetch(`${masterUrl}/health`)).ok ? true : undefined), `the master at ${masterUrl}`, 60_000, () => cluster.failedProcess());
      if (servers[1] !== undefined) servers[1].start();
      await waitFor(async () => ((await fetch(`${appsUrl}/v2/info`)).ok ? true : undefined), `the services framework at ${appsUrl}`, 60_000, () => cluster.failedProcess());
      // The agents share this host: disjoint port ranges below the kernel's ephemeral ports.
      const span = Math.min(5000, Math.floor(22_000 / o.agents));
      for (let i = 0; i < o.agents; i++) {
        const low = 10_000 + i * span;
        const resources = `${o.agentResources};ports:[${low}-${low + span - 1}]`;
        const name = `agent-${i}`;
        cluster.agents.push(
          new BenchProcess(name, [BIN, 'agent', '--master', masterUrl, '--work-dir', join(o.dir, name), '--resources', resources, '--containerizers', 'process', '--hostname', name], join(o.dir, `${name}.log`)),
        );
      }
      for (const a of cluster.agents) a.start();
      await cluster.waitForAgents(o.agents);
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  /** Hostname -> agent id of the active agents, once `n` are active. */
  async waitForAgents(n: number, timeoutMs = 60_000): Promise<Map<string, string>> {
    return waitFor(
      async () => {
        const agents = await this.activeAgents();
        return agents.size === n ? agents : undefined;
      },
      `${n} active agents`,
      timeoutMs,
      () => this.failedProcess(),
    );
  }

  async activeAgents(): Promise<Map<string, string>> {
    const r = await fetch(`${this.masterUrl}/api/v1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'GET_AGENTS' }) });
    const body = (await r.json()) as { get_agents: { agents: { agent_info: { id: { value: string }; hostname: string }; active: boolean }[] } };
    return new Map(body.get_agents.agents.filter((a) => a.active).map((a) => [a.agent_info.hostname, a.agent_info.id.value]));
  }

  /** Tasks the master knows as running (not unreachable, not completed). */
  async masterTasks(): Promise<number> {
    const r = await fetch(`${this.masterUrl}/master/state`);
    return ((await r.json()) as { tasks: unknown[] }).tasks.length;
  }

  /** A message naming a server process that died, with the end of its log. */
  failedProcess(): string | undefined {
    for (const p of this.servers) {
      if (p.child !== undefined && !p.alive) return `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.logTail()}`;
    }
    return undefined;
  }

  /** Stops every process (Ctrl-C, then -9), then the task processes left behind. */
  async close(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
    // The services framework first (separate topology), then the master.
    for (const s of [...this.servers].reverse()) await s.stop();
    for (const p of [...this.agents, ...this.servers]) if (p.forced) this.options.log?.(`  ${p.name} did not stop within 5 s of SIGINT: killed with -9`);
    await killTaskProcesses(this.options.dir);
    removeTaskCgroups(this.options.dir);
  }
}

/**
 * Kills every process whose working directory is under `dir` (the tasks' sandboxes), by process
 * group first (tasks are process-group leaders), then one by one. Linux: reads /proc.
 */
export async function killTaskProcesses(dir: string): Promise<number> {
  if (!existsSync('/proc')) return 0;
  let killed = 0;
  for (let round = 0; round < 5; round++) {
    const found: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid) continue;
      let cwd: string;
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        continue;
      }
      if (cwd === dir || cwd.startsWith(`${dir}/`)) found.push(pid);
    }
    if (found.length === 0) break;
    for (const pid of found) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Not a group leader (a child of the task's shell), or gone already.
      }
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // Gone already.
      }
    }
    // Let the kernel reap them before looking again.
    await new Promise((r) => setTimeout(r, 100));
  }
  return killed;
}

/** Removes the cgroups named in the sandboxes' `.slipway/cgroups.json` (left by tasks whose agent was killed). */
export function removeTaskCgroups(dir: string): void {
  const visit = (d: string, depth: number) => {
    if (depth > 8) return;
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const path = join(d, e.name);
      if (e.name === '.slipway') {
        try {
          const set = JSON.parse(readFileSync(join(path, 'cgroups.json'), 'utf8')) as { dirs?: string[] } | null;
          for (const cg of set?.dirs ?? []) {
            try {
              rmdirSync(cg);
            } catch {
              // Removed by its agent already, or still busy.
            }
          }
        } catch {
          // No cgroups for this task.
        }
      } else visit(path, depth + 1);
    }
  };
  visit(dir, 0);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Polls `fn` (its errors count as "not yet") until it gives a value; fails after `timeoutMs`, or at once when `failed` names a reason. */
export async function waitFor<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs: number, failed?: () => string | undefined, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    const f = failed?.();
    if (f !== undefined) throw new Error(`bench: ${f}`);
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
    server.on('error', reject);
  });
}
