import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { Resources } from '../core/resources.ts';
import { isTerminal, type TaskState, type TaskStatusReason } from '../core/task-state.ts';
import { newUuidBase64 } from '../core/uuid.ts';
import type { AgentTask, MasterToAgent } from '../protocol/agent.ts';
import type { Attribute, FrameworkID, FrameworkInfo, KillPolicy, TaskInfo } from '../protocol/mesos.ts';
import type { ContainerExit, ContainerRef, Containerizer, ContainerizerInfo } from './containerizer.ts';
import { HealthChecker } from './health-checker.ts';
import { MasterLink } from './master-link.ts';
import { StatusUpdateManager } from './status-update-manager.ts';
import { taskEnvironment } from './task-environment.ts';

/**
 * The agent daemon: registers with the master over one long-lived stream, runs the tasks it is
 * told to launch in a containerizer, watches them (exit, health checks), reports their states
 * through the status update manager, and finds its tasks again after a restart.
 *
 * Task lifecycle on the agent:
 *
 *   LAUNCH ──► STARTING ──launch ok──► RUNNING ──exit 0──► FINISHED
 *                 │                       │ └──exit ≠ 0──► FAILED
 *                 │                       └──KILL / health failures──► (KILLING) ──► KILLED
 *                 └──launch failed──► FAILED (REASON_CONTAINER_LAUNCH_FAILED)
 *
 * On disk, under the work dir: `agent_id`; `meta/tasks/<fw>/<task>/task.json` (framework, task,
 * container ref) and `meta/updates/...` (the update streams); `sandboxes/<fw>/<task>/` (the
 * task's files, kept after it ends).
 */

export interface AgentOptions {
  masterUrl: string;
  workDir: string;
  hostname: string;
  /** Where this agent's files server can be reached, e.g. http://127.0.0.1:5051. */
  url?: string;
  resources: Resources;
  attributes: Attribute[];
  containerizers: Containerizer[];
  clock: Clock;
  /** First resend of an unacknowledged update. Default 10 s. */
  statusRetryMs?: number;
  /** Default grace period between SIGTERM and SIGKILL when a task has no kill policy. Default 3 s. */
  defaultKillGraceMs?: number;
  log?: (line: string) => void;
}

interface AgentTaskRecord {
  framework: FrameworkInfo & { id: FrameworkID };
  info: TaskInfo;
  state: TaskState;
  containerizer: Containerizer | undefined;
  sandbox: string;
  ref: ContainerRef | undefined;
  killRequested: boolean;
  health: HealthChecker | undefined;
  healthy: boolean | undefined;
  /** The message of a kill that health checks asked for. */
  killReason: string | undefined;
}

export class Agent {
  agentId: string | undefined;
  private readonly tasks = new Map<string, AgentTaskRecord>();
  private readonly updates: StatusUpdateManager;
  private readonly link: MasterLink;
  private readonly metaDir: string;
  private stopped = false;

  constructor(private readonly options: AgentOptions) {
    this.metaDir = join(options.workDir, 'meta');
    mkdirSync(join(this.metaDir, 'tasks'), { recursive: true });
    mkdirSync(join(options.workDir, 'sandboxes'), { recursive: true });
    try {
      this.agentId = readFileSync(join(options.workDir, 'agent_id'), 'utf8').trim() || undefined;
    } catch {
      this.agentId = undefined;
    }
    this.updates = new StatusUpdateManager({
      dir: join(this.metaDir, 'updates'),
      clock: options.clock,
      ...(options.statusRetryMs !== undefined ? { retryMs: options.statusRetryMs } : {}),
      send: (frameworkId, status, latest) =>
        this.agentId !== undefined && this.link.send({ type: 'STATUS_UPDATE', framework_id: { value: frameworkId }, status: { ...status, agent_id: { value: this.agentId } }, latest_state: latest }),
    });
    this.link = new MasterLink({
      masterUrl: options.masterUrl,
      register: () => this.registerMessage(),
      onMessage: (m) => this.handle(m),
      clock: options.clock,
      log: (line) => this.log(line),
    });
  }

  /** Recovers what a previous agent process left, then connects to the master. */
  async start(): Promise<void> {
    this.updates.recover();
    await this.recoverTasks();
    this.link.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tasks.values()) t.health?.stop();
    this.updates.stop();
    this.link.stop();
  }

  /** Containerizers and whether they enforce limits, for the agent's state. */
  containerizerInfo(): ContainerizerInfo[] {
    return this.options.containerizers.map((c) => c.info());
  }

  /** The sandbox of a task of this agent, for the files server. */
  sandboxOf(frameworkId: string, taskId: string): { dir: string; ended: boolean } | undefined {
    const t = this.tasks.get(key(frameworkId, taskId));
    const dir = join(this.options.workDir, 'sandboxes', safe(frameworkId), safe(taskId));
    if (t !== undefined) return { dir: t.sandbox, ended: isTerminal(t.state) };
    try {
      readdirSync(dir);
      return { dir, ended: true };
    } catch {
      return undefined;
    }
  }

  connected(): boolean {
    return this.link.isRegistered();
  }

  runningTasks(): number {
    let n = 0;
    for (const t of this.tasks.values()) if (!isTerminal(t.state)) n++;
    return n;
  }

  // ---------------------------------------------------------------------------------------------

  private registerMessage() {
    const tasks: AgentTask[] = [];
    const frameworks = new Map<string, FrameworkInfo>();
    for (const t of this.tasks.values()) {
      // Ended tasks whose last update is still unacknowledged are reported too: the master
      // keeps them until the framework has heard of their end.
      if (isTerminal(t.state) && this.updates.pending(t.framework.id.value, t.info.task_id.value) === 0) continue;
      tasks.push({ framework_id: t.framework.id, task: t.info, state: t.state });
      frameworks.set(t.framework.id.value, t.framework);
    }
    return {
      type: 'REGISTER' as const,
      ...(this.agentId !== undefined ? { agent_id: { value: this.agentId } } : {}),
      hostname: this.options.hostname,
      ...(this.options.url !== undefined ? { url: this.options.url } : {}),
      containerizers: this.containerizerInfo(),
      resources: this.options.resources.toJSON(),
      attributes: this.options.attributes,
      tasks,
      frameworks: [...frameworks.values()],
    };
  }

  private handle(m: MasterToAgent): void {
    switch (m.type) {
      case 'REGISTERED':
        if (this.agentId !== m.agent_id.value) {
          this.agentId = m.agent_id.value;
          writeFileSync(join(this.options.workDir, 'agent_id'), this.agentId + '\n');
        }
        this.link.startHeartbeats(m.heartbeat_interval_seconds * 1000);
        this.updates.resendAll();
        this.log(`registered with the master as ${this.agentId}`);
        return;
      case 'LAUNCH':
        void this.launch(m.framework, m.task);
        return;
      case 'KILL':
        void this.kill(m.framework_id.value, m.task_id.value, m.kill_policy, undefined);
        return;
      case 'ACKNOWLEDGE':
        this.updates.acknowledge(m.framework_id.value, m.task_id.value, m.uuid);
        this.forgetIfDone(m.framework_id.value, m.task_id.value);
        return;
      case 'SHUTDOWN_FRAMEWORK':
        for (const t of this.tasks.values()) {
          if (t.framework.id.value === m.framework_id.value && !isTerminal(t.state)) void this.kill(t.framework.id.value, t.info.task_id.value, undefined, 'Framework shut down');
        }
        this.updates.dropFramework(m.framework_id.value);
        return;
      case 'HEARTBEAT':
        return;
      case 'ERROR':
        this.log(`the master refused this agent: ${m.message}`);
        return;
    }
  }

  private async launch(framework: FrameworkInfo & { id: FrameworkID }, info: TaskInfo): Promise<void> {
    const fwId = framework.id.value;
    const taskId = info.task_id.value;
    const k = key(fwId, taskId);
    if (this.tasks.has(k)) return; // A duplicate LAUNCH (master resent after a failover).
    const sandbox = join(this.options.workDir, 'sandboxes', safe(fwId), safe(taskId));
    mkdirSync(sandbox, { recursive: true });
    const wantsDocker = info.container?.type === 'DOCKER';
    const containerizer = this.options.containerizers.find((c) => c.kind === (wantsDocker ? 'docker' : 'process'));
    const t: AgentTaskRecord = { framework, info, state: 'TASK_STAGING', containerizer, sandbox, ref: undefined, killRequested: false, health: undefined, healthy: undefined, killReason: undefined };
    this.tasks.set(k, t);
    this.checkpoint(t);
    // TASK_STARTING is optional in Mesos's lifecycle: it is sent only when a launch takes a while
    // (an image pull), so that a fast launch reaches RUNNING without waiting for the framework to
    // acknowledge STARTING first (updates of a task go out one at a time).
    const starting = this.options.clock.setTimer(STARTING_AFTER_MS, () => {
      if (t.state === 'TASK_STAGING') this.transition(t, 'TASK_STARTING', undefined, undefined);
    });
    if (containerizer === undefined) {
      starting.cancel();
      this.transition(t, 'TASK_FAILED', `this agent has no ${wantsDocker ? 'docker' : 'process'} containerizer`, 'REASON_CONTAINER_LAUNCH_FAILED');
      return;
    }
    const env = taskEnvironment({ info, frameworkId: fwId, agentId: this.agentId ?? '', hostname: this.options.hostname, sandbox, docker: wantsDocker });
    try {
      const container = wantsDocker && info.container !== undefined
        ? { ...info.container, volumes: [...(info.container.volumes ?? []), { host_path: sandbox, container_path: '/mnt/mesos/sandbox', mode: 'RW' as const }] }
        : info.container;
      t.ref = await containerizer.launch({
        frameworkId: fwId,
        taskId,
        agentId: this.agentId ?? '',
        sandbox,
        command: info.command,
        container,
        env,
        cpus: scalar(info, 'cpus'),
        memMb: scalar(info, 'mem'),
        ports: env['PORTS'] === undefined || env['PORTS'] === '' ? [] : env['PORTS'].split(',').map(Number),
      });
    } catch (e) {
      starting.cancel();
      this.transition(t, 'TASK_FAILED', `Failed to launch: ${(e as Error).message}`, 'REASON_CONTAINER_LAUNCH_FAILED');
      return;
    }
    starting.cancel();
    if (t.killRequested) {
      // Killed while it was starting: stop it now that there is something to stop.
      this.checkpoint(t);
      await containerizer.kill(t.ref, this.graceMs(undefined, t));
    } else {
      this.transition(t, 'TASK_RUNNING', undefined, undefined);
      this.startHealthChecks(t, env);
    }
    void this.watch(t);
  }

  private async watch(t: AgentTaskRecord): Promise<void> {
    if (t.containerizer === undefined || t.ref === undefined) return;
    const exit = await t.containerizer.wait(t.ref);
    this.ended(t, exit);
  }

  private ended(t: AgentTaskRecord, exit: ContainerExit): void {
    t.health?.stop();
    if (isTerminal(t.state) || this.stopped) return;
    if (t.killRequested) this.transition(t, 'TASK_KILLED', t.killReason ?? exit.message, t.killReason !== undefined ? 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' : undefined);
    else if (exit.exitCode === 0) this.transition(t, 'TASK_FINISHED', exit.message, undefined);
    else this.transition(t, 'TASK_FAILED', exit.message, exit.oomKilled ? 'REASON_CONTAINER_LIMITATION_MEMORY' : 'REASON_COMMAND_EXECUTOR_FAILED');
  }

  private async kill(frameworkId: string, taskId: string, policy: KillPolicy | undefined, reason: string | undefined): Promise<void> {
    const t = this.tasks.get(key(frameworkId, taskId));
    if (t === undefined) {
      // Unknown here: the master must hear that it is gone, reliably like any update.
      const status = { task_id: { value: taskId }, state: 'TASK_LOST' as const, source: 'SOURCE_AGENT' as const, message: 'Task is not known to the agent', uuid: newUuidBase64(), timestamp: this.options.clock.now() / 1000 };
      this.updates.update(frameworkId, status, 'TASK_LOST', true);
      return;
    }
    if (isTerminal(t.state) || t.killRequested) return;
    t.killRequested = true;
    if (reason !== undefined) t.killReason = reason;
    t.health?.stop();
    if (t.ref === undefined || t.containerizer === undefined) return; // Still launching: launch() kills it.
    if ((t.framework.capabilities ?? []).some((c) => c.type === 'TASK_KILLING_STATE')) this.transition(t, 'TASK_KILLING', reason, undefined);
    await t.containerizer.kill(t.ref, this.graceMs(policy, t));
  }

  private graceMs(policy: KillPolicy | undefined, t: AgentTaskRecord): number {
    const ns = policy?.grace_period?.nanoseconds ?? t.info.kill_policy?.grace_period?.nanoseconds;
    return ns === undefined ? (this.options.defaultKillGraceMs ?? 3000) : ns / 1e6;
  }

  private startHealthChecks(t: AgentTaskRecord, env: Record<string, string>): void {
    const check = t.info.health_check;
    if (check === undefined) return;
    try {
      t.health = new HealthChecker(check, {
        clock: this.options.clock,
        sandbox: t.sandbox,
        env,
        startedAt: this.options.clock.now(),
        onHealthChanged: (healthy, message) => {
          t.healthy = healthy;
          if (!isTerminal(t.state) && !t.killRequested) this.transition(t, t.state, message, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
        },
        onFailureThreshold: (message) => void this.kill(t.framework.id.value, t.info.task_id.value, undefined, message),
      });
      t.health.start();
    } catch (e) {
      this.log(`task ${t.info.task_id.value}: health check not started: ${(e as Error).message}`);
    }
  }

  /** Records a state and sends its update reliably. */
  private transition(t: AgentTaskRecord, state: TaskState, message: string | undefined, reason: TaskStatusReason | undefined): void {
    t.state = state;
    const status = {
      task_id: t.info.task_id,
      state,
      source: 'SOURCE_EXECUTOR' as const,
      uuid: newUuidBase64(),
      timestamp: this.options.clock.now() / 1000,
      ...(message !== undefined ? { message } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...(t.healthy !== undefined ? { healthy: t.healthy } : {}),
    };
    // The task's own checkpoint first: a restarted agent must know the state it reports.
    this.checkpoint(t);
    this.updates.update(t.framework.id.value, status, state, isTerminal(state));
  }

  /** Forgets an ended task once its last update was acknowledged (its sandbox stays). */
  private forgetIfDone(frameworkId: string, taskId: string): void {
    const k = key(frameworkId, taskId);
    const t = this.tasks.get(k);
    if (t === undefined || !isTerminal(t.state) || this.updates.pending(frameworkId, taskId) > 0) return;
    this.tasks.delete(k);
    this.metaDirs.delete(this.taskMetaDir(frameworkId, taskId));
    rmSync(this.taskMetaDir(frameworkId, taskId), { recursive: true, force: true });
  }

  private taskMetaDir(frameworkId: string, taskId: string): string {
    return join(this.metaDir, 'tasks', safe(frameworkId), safe(taskId));
  }

  /** Task meta dirs known to exist, so that a checkpoint costs one write and one rename. */
  private readonly metaDirs = new Set<string>();

  private checkpoint(t: AgentTaskRecord): void {
    const dir = this.taskMetaDir(t.framework.id.value, t.info.task_id.value);
    if (!this.metaDirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.metaDirs.add(dir);
    }
    const data = { framework: t.framework, info: t.info, sandbox: t.sandbox, containerizer: t.containerizer?.kind, ref: t.ref, state: t.state, killRequested: t.killRequested };
    writeFileSync(join(dir, 'task.json.tmp'), JSON.stringify(data));
    // Rename is atomic: a crash leaves the old checkpoint or the new one, never half of one.
    renameSync(join(dir, 'task.json.tmp'), join(dir, 'task.json'));
  }

  /** Finds the tasks of a previous agent process: still running ones are watched again, ended ones reported. */
  private async recoverTasks(): Promise<void> {
    const latest = new Map(this.updates.latestStates().map((s) => [key(s.frameworkId, s.taskId), s.latest]));
    const byContainerizer = new Map<Containerizer, AgentTaskRecord[]>();
    for (const fw of safeReaddir(join(this.metaDir, 'tasks'))) {
      for (const task of safeReaddir(join(this.metaDir, 'tasks', fw))) {
        let data: { framework: FrameworkInfo & { id: FrameworkID }; info: TaskInfo; sandbox: string; containerizer?: string; ref?: ContainerRef; state: TaskState; killRequested?: boolean };
        try {
          data = JSON.parse(readFileSync(join(this.metaDir, 'tasks', fw, task, 'task.json'), 'utf8')) as typeof data;
        } catch {
          continue;
        }
        const containerizer = this.options.containerizers.find((c) => c.kind === data.containerizer);
        const t: AgentTaskRecord = {
          framework: data.framework,
          info: data.info,
          state: latest.get(key(data.framework.id.value, data.info.task_id.value)) ?? data.state,
          containerizer,
          sandbox: data.sandbox,
          ref: data.ref,
          killRequested: data.killRequested ?? false,
          health: undefined,
          healthy: undefined,
          killReason: undefined,
        };
        this.tasks.set(key(t.framework.id.value, t.info.task_id.value), t);
        if (isTerminal(t.state)) continue;
        if (t.ref === undefined || containerizer === undefined) {
          this.transition(t, 'TASK_FAILED', 'The agent restarted while the task was being launched', 'REASON_AGENT_RESTARTED');
          continue;
        }
        const list = byContainerizer.get(containerizer) ?? [];
        list.push(t);
        byContainerizer.set(containerizer, list);
      }
    }
    for (const [containerizer, list] of byContainerizer) {
      const results = await containerizer.recover(list.map((t) => t.ref!));
      list.forEach((t, i) => {
        const r = results[i]!;
        if (r.running) {
          this.log(`recovered running task ${t.info.task_id.value}`);
          const env = taskEnvironment({ info: t.info, frameworkId: t.framework.id.value, agentId: this.agentId ?? '', hostname: this.options.hostname, sandbox: t.sandbox, docker: containerizer.kind === 'docker' });
          this.startHealthChecks(t, env);
          void this.watch(t);
        } else {
          this.ended(t, r.exit);
        }
      });
    }
  }

  private log(line: string): void {
    this.options.log?.(line);
  }
}

/** A launch that takes longer than this is reported TASK_STARTING while it goes on. */
const STARTING_AFTER_MS = 100;

function key(frameworkId: string, taskId: string): string {
  return `${frameworkId}\u0000${taskId}`;
}

/** A path segment from an id: ids may hold characters a file name must not. */
export function safe(id: string): string {
  return encodeURIComponent(id);
}

function scalar(info: TaskInfo, name: string): number {
  let sum = 0;
  for (const r of info.resources) if (r.name === name && r.scalar !== undefined) sum += r.scalar.value;
  return sum;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
