import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CiClient } from '../src/sdk/ci-client.ts';
import { findTaskSandbox } from '../src/sim/find-task-sandbox.ts';
import { BenchProcess, freePort, killTaskProcesses, removeTaskCgroups, waitFor } from './apps-cluster.ts';

/**
 * The real cluster of `slipway bench ci`: one server process (a master with CI in it, wired as
 * `slipway up` wires them: bench/ci-server-main.ts) and `agents` agents (`slipway agent`,
 * process containerizer, and docker when asked, hostnames agent-0, agent-1, ...), each a process of its own logging to
 * a file in the benchmark's temp dir. CI's executors are tasks of those agents: `node
 * bin/slipway.js ci-executor` processes in the agents' sandboxes. `close()` stops everything,
 * then kills whatever task processes are left under the temp dir and removes their cgroups.
 */

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const SERVER_MAIN = fileURLToPath(new URL('./ci-server-main.ts', import.meta.url));

export interface CiClusterOptions {
  dir: string;
  agents: number;
  /** Resources of each agent, without ports (each agent gets its own range: they share one host). */
  agentResources: string;
  /** The agents' `--containerizers`; default `process`. */
  containerizers?: string;
  log?: (line: string) => void;
}

export class CiCluster {
  readonly server: BenchProcess;
  readonly agents: BenchProcess[] = [];

  private constructor(
    readonly options: CiClusterOptions,
    readonly url: string,
    port: number,
  ) {
    this.server = new BenchProcess('server', ['--import', 'tsx', SERVER_MAIN, String(port), join(options.dir, 'server')], join(options.dir, 'server.log'));
  }

  /** Starts the server (master + CI), then the agents; resolves when every agent is active. */
  static async start(o: CiClusterOptions): Promise<CiCluster> {
    const port = await freePort();
    const cluster = new CiCluster(o, `http://127.0.0.1:${port}`, port);
    try {
      cluster.server.start();
      await waitFor(async () => ((await new CiClient(cluster.url).jobs()) !== undefined ? true : undefined), `the server at ${cluster.url}`, 60_000, () => cluster.failedProcess());
      const span = Math.min(1000, Math.floor(22_000 / o.agents));
      for (let i = 0; i < o.agents; i++) {
        const low = 10_000 + i * span;
        const name = `agent-${i}`;
        const resources = `${o.agentResources};ports:[${low}-${low + span - 1}]`;
        cluster.agents.push(
          new BenchProcess(name, [BIN, 'agent', '--master', cluster.url, '--work-dir', cluster.agentDir(i), '--resources', resources, '--containerizers', o.containerizers ?? 'process', '--hostname', name], join(o.dir, `${name}.log`)),
        );
      }
      for (const a of cluster.agents) a.start();
      await waitFor(
        async () => {
          const r = await fetch(`${cluster.url}/api/v1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'GET_AGENTS' }) });
          const body = (await r.json()) as { get_agents: { agents: { active: boolean }[] } };
          return body.get_agents.agents.filter((a) => a.active).length === o.agents ? true : undefined;
        },
        `${o.agents} active agents`,
        60_000,
        () => cluster.failedProcess(),
      );
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  agentDir(index: number): string {
    return join(this.options.dir, `agent-${index}`);
  }

  /** The sandbox of a task, on whichever agent ran it (undefined if none has it). */
  sandboxOf(taskId: string): string | undefined {
    return findTaskSandbox(
      Array.from({ length: this.options.agents }, (_, i) => this.agentDir(i)),
      taskId,
    );
  }

  /** A message naming a process that died, with the end of its log. */
  failedProcess(): string | undefined {
    const s = this.server;
    if (s.child !== undefined && !s.alive) return `${s.name} exited (${s.child.exitCode ?? s.child.signalCode}):\n${s.logTail()}`;
    for (const a of this.agents) if (a.child !== undefined && !a.alive) return `${a.name} exited (${a.child.exitCode ?? a.child.signalCode}):\n${a.logTail()}`;
    return undefined;
  }

  /** Stops every process (Ctrl-C, then -9), then the task processes left behind. */
  async close(): Promise<void> {
    // The server first: CI tells its executors nothing on the way out, and the agents, stopped
    // next, leave their tasks running (as agents do), which killTaskProcesses ends below.
    await this.server.stop();
    await Promise.all(this.agents.map((a) => a.stop()));
    for (const p of [this.server, ...this.agents]) if (p.forced) this.options.log?.(`  ${p.name} did not stop within 5 s of SIGINT: killed with -9`);
    await killTaskProcesses(this.options.dir);
    removeTaskCgroups(this.options.dir);
  }
}
