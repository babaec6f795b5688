import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitUntil } from './wait.ts';

export { freePort } from '../../src/sim/free-port.ts';

/**
 * Real Slipway processes for end-to-end tests: a master and agents started with the `slipway`
 * command as a user would, each logging to a file in the test's temp dir (printed when a test
 * fails to help debugging).
 */

const BIN = fileURLToPath(new URL('../../bin/slipway.js', import.meta.url));

/**
 * A temp dir for a test, 0711 (mkdtemp makes it 0700): the agents' work dirs are inside it, and
 * their tasks run as nobody (the agents' default user, as root), who must pass through it to
 * reach their sandboxes ($MESOS_SANDBOX), without being able to list it.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `slipway-${prefix}-`));
  chmodSync(dir, 0o711);
  return dir;
}

export class SlipwayProcess {
  child: ChildProcess | undefined;
  constructor(
    readonly name: string,
    readonly args: string[],
    readonly logFile: string,
    /** The environment of the process (default: this one's, with the test run's token). */
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  start(): void {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.child = spawn(process.execPath, [BIN, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    this.child.stdout!.pipe(log);
    this.child.stderr!.pipe(log);
  }

  /** kill -9: no cleanup, as a crash. Resolves when the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** Ctrl-C; resolves with the exit code. */
  async interrupt(): Promise<number | null> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return child?.exitCode ?? null;
    return new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.kill('SIGINT');
    });
  }
}

export async function operator(masterUrl: string, type: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const response = await fetch(new URL('/api/v1', masterUrl), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type, ...extra }) });
  if (response.status !== 200) throw new Error(`${type} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

interface AgentsAnswer {
  get_agents: { agents: { agent_info: { id: { value: string }; hostname: string }; active: boolean }[] };
}

/** Waits until `n` agents are active; returns hostname -> agent id. */
export async function activeAgents(masterUrl: string, n: number, timeoutMs = 20_000): Promise<Map<string, string>> {
  return waitUntil(
    async () => {
      try {
        const answer = (await operator(masterUrl, 'GET_AGENTS')) as unknown as AgentsAnswer;
        const active = answer.get_agents.agents.filter((a) => a.active);
        return active.length === n ? new Map(active.map((a) => [a.agent_info.hostname, a.agent_info.id.value])) : undefined;
      } catch {
        return undefined;
      }
    },
    `${n} active agents`,
    timeoutMs,
  );
}

export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(
    async () => {
      try {
        return (await fetch(url)).ok;
      } catch {
        return false;
      }
    },
    `${url} to answer`,
    timeoutMs,
  );
}

/**
 * Tears a framework down so that the agents kill its tasks, and waits (best effort: a teardown
 * must not fail a test's cleanup) until the master lists no task.
 */
export async function tearDownFramework(fw: { call(call: { type: 'TEARDOWN' }): Promise<unknown> }, masterUrl: string): Promise<void> {
  await fw.call({ type: 'TEARDOWN' }).catch(() => undefined);
  await waitUntil(async () => {
    const t = (await operator(masterUrl, 'GET_TASKS').catch(() => undefined)) as { get_tasks: { tasks: unknown[] } } | undefined;
    return t !== undefined && t.get_tasks.tasks.length === 0;
  }, 'all tasks gone').catch(() => undefined);
}
