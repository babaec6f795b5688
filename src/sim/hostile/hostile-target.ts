import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../free-port.ts';
import { killProcessesUnder, processesUnder } from '../sandbox-processes.ts';
import type { LoopReport, MonitorReply, MonitorRequest, ServedRoutes } from './monitor-messages.ts';

/**
 * The target of the hostile-input suite: `slipway up` as a user starts it (its own process, the
 * process containerizer, a fresh data dir), with loop-monitor-preload.ts loaded into it, plus a
 * canary: a running app whose task must be the same task, still running, after every attack
 * ("running tasks were not disturbed"). `close()` stops the server and kills what it left
 * running (tasks outlive `slipway up` by design).
 */

const BIN = fileURLToPath(new URL('../../../bin/slipway.js', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./loop-monitor-preload.ts', import.meta.url));

export interface CanaryState {
  appId: string;
  taskId: string;
  agentId: string;
}

export interface TargetState {
  loop: LoopReport;
  servers: ServedRoutes[];
  rssBytes: number;
}

export class HostileTarget {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: MonitorReply) => void>();
  private exited: string | undefined;
  canary: CanaryState | undefined;

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly dataDir: string,
    readonly logFile: string,
  ) {
    child.on('message', (raw) => {
      const reply = raw as MonitorReply;
      this.waiting.get(reply.id)?.(reply);
      this.waiting.delete(reply.id);
    });
    child.on('exit', (code, signal) => {
      this.exited = `exited with ${signal ?? `code ${code}`}`;
      for (const w of this.waiting.values()) w({ type: 'reset', id: -1 });
      this.waiting.clear();
    });
  }

  static async start(): Promise<HostileTarget> {
    const dataDir = mkdtempSync(join(tmpdir(), 'slipway-hostile-'));
    const port = await freePort();
    const logFile = join(dataDir, 'up.log');
    const log = createWriteStream(logFile, { flags: 'a' });
    const tsx = import.meta.resolve('tsx');
    const child = spawn(process.execPath, ['--import', tsx, '--import', PRELOAD, BIN, 'up', '--port', String(port), '--data-dir', join(dataDir, 'data'), '--containerizers', 'process'], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const target = new HostileTarget(child, `http://127.0.0.1:${port}`, dataDir, logFile);
    try {
      await target.waitFor('the server to answer /health and its agent to be active', async () => {
        const r = await fetch(`${target.url}/api/v1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"GET_AGENTS"}' });
        if (r.status !== 200) return false;
        const body = (await r.json()) as { get_agents?: { agents?: { active?: boolean }[] } };
        return (body.get_agents?.agents ?? []).some((a) => a.active === true);
      }, 60_000);
      await target.startCanary();
    } catch (e) {
      await target.close();
      throw e;
    }
    return target;
  }

  /** Why the server is gone, when it is: a crash is the worst finding of all. */
  get exitReason(): string | undefined {
    return this.exited;
  }

  async state(): Promise<TargetState> {
    const reply = await this.ask({ type: 'state', id: this.nextId++ });
    if (reply.type !== 'state') throw new Error(`the server ${this.exited ?? 'did not answer its monitor'}`);
    return { loop: reply.loop, servers: reply.servers, rssBytes: reply.rssBytes };
  }

  async resetLoop(): Promise<void> {
    await this.ask({ type: 'reset', id: this.nextId++ });
  }

  private ask(request: MonitorRequest): Promise<MonitorReply> {
    if (this.exited !== undefined || !this.child.connected) return Promise.resolve({ type: 'reset', id: -1 });
    return new Promise((resolve) => {
      this.waiting.set(request.id, resolve);
      this.child.send(request);
    });
  }

  private async startCanary(): Promise<void> {
    // An id nobody guesses, so that no generated request names it by chance.
    const appId = `/canary-${Math.random().toString(36).slice(2, 10)}`;
    const created = await fetch(`${this.url}/v2/apps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: appId, cmd: 'sleep 3600', instances: 1, cpus: 0.1, mem: 32 }),
    });
    if (created.status !== 201) throw new Error(`the canary app was refused: ${created.status} ${await created.text()}`);
    const task = await this.waitFor('the canary task to run', async () => {
      const r = await fetch(`${this.url}/v2/apps${appId}/tasks`);
      const body = (await r.json()) as { tasks?: { id: string; state: string; slaveId: string }[] };
      return body.tasks?.find((t) => t.state === 'TASK_RUNNING');
    }, 30_000);
    this.canary = { appId, taskId: task.id, agentId: task.slaveId };
  }

  /**
   * What is wrong with the canary, or undefined when its task is the same task, RUNNING, on the
   * same active agent, and its process lives.
   */
  async canaryProblem(): Promise<string | undefined> {
    const c = this.canary;
    if (c === undefined) return 'no canary was started';
    if (this.exited !== undefined) return `the server ${this.exited}`;
    try {
      const r = await fetch(`${this.url}/v2/apps${c.appId}/tasks`, { signal: AbortSignal.timeout(10_000) });
      if (r.status !== 200) return `GET the canary's tasks answered ${r.status}`;
      const tasks = ((await r.json()) as { tasks: { id: string; state: string }[] }).tasks;
      if (tasks.length !== 1 || tasks[0]!.id !== c.taskId) return `the canary's tasks are now ${JSON.stringify(tasks.map((t) => t.id))}, not [${c.taskId}]`;
      if (tasks[0]!.state !== 'TASK_RUNNING') return `the canary task is ${tasks[0]!.state}`;
      const agents = await fetch(`${this.url}/api/v1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"GET_AGENTS"}' });
      const list = ((await agents.json()) as { get_agents: { agents: { agent_info: { id: { value: string } }; active: boolean }[] } }).get_agents.agents;
      if (!list.some((a) => a.agent_info.id.value === c.agentId && a.active)) return `the canary's agent ${c.agentId} is no longer active`;
      if (!processesUnder(join(this.dataDir, 'data')).some((p) => p.comm === 'sleep')) return "the canary's process is gone";
    } catch (e) {
      return `the server did not answer about the canary: ${(e as Error).message}`;
    }
    return undefined;
  }

  /** The end of the server's log, for a failure message. */
  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async close(): Promise<void> {
    const child = this.child;
    if (this.exited === undefined) {
      if (child.connected) child.disconnect();
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
    }
    killProcessesUnder(join(this.dataDir, 'data'));
    // SLIPWAY_KEEP_HOSTILE=1 keeps the server's data dir and log, to find what a finding did.
    if (process.env['SLIPWAY_KEEP_HOSTILE'] === '1') console.error(`kept ${this.dataDir}`);
    else rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 3 });
  }

  private async waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited !== undefined) throw new Error(`the server ${this.exited} while waiting for ${what}:\n${this.logTail()}`);
      const v = await fn().catch(() => undefined);
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
