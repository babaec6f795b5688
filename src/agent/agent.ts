import { chmodSync, chownSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, sep } from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { Resources } from '../core/resources.ts';
import { isTerminal, type TaskState, type TaskStatusReason } from '../core/task-state.ts';
import { newUuidBase64 } from '../core/uuid.ts';
import { privateDirSync, restrictTreeSync, TRAVERSE_ONLY_DIR_MODE, writePrivateFileSync } from '../lib/private-files.ts';
import type { AgentTask, MasterToAgent } from '../protocol/agent.ts';
import type { Attribute, FrameworkID, FrameworkInfo, KillPolicy, TaskInfo } from '../protocol/mesos.ts';
import { unhonouredTaskField } from '../protocol/task-support.ts';
import type { ContainerExit, ContainerRef, Containerizer, ContainerizerInfo, Recovered } from './containerizer.ts';
import { fetchUris } from './fetcher.ts';
import { HealthChecker } from './health-checker.ts';
import { MasterLink } from './master-link.ts';
import { pathSegment } from './path-segment.ts';
import { safeReaddir } from './safe-readdir.ts';
import { StatusUpdateManager } from './status-update-manager.ts';
import { readTaskCheckpoint, type TaskCheckpoint } from './task-checkpoint.ts';
import { taskEnvironment } from './task-environment.ts';
import { deliverSecrets, removeSecretFiles, sandboxSecretFiles, type DeliveredSecrets } from './task-secret-files.ts';
import { chownTree, TaskUsers, unsearchableOnTheWay, validUserName, type TaskUser } from './task-user.ts';
import { WorkDirLock } from './work-dir-lock.ts';

/**
 * The agent daemon: registers with the master over one long-lived stream, runs the tasks it is
 * told to launch in a containerizer, watches them (exit, health checks), reports their states
 * through the status update manager, and finds its tasks again after a restart.
 *
 * Task lifecycle on the agent:
 *
 *   LAUNCH ──► STARTING ──fetch URIs──► launch ok──► RUNNING ──exit 0──► FINISHED
 *                 │           │                         │ └──exit ≠ 0──► FAILED
 *                 │           │                         └──KILL / health failures──► (KILLING) ──► KILLED
 *                 │           ├──a URI failed──► FAILED (REASON_CONTAINER_LAUNCH_FAILED)
 *                 │           └──KILL──► KILLED (REASON_TASK_KILLED_DURING_LAUNCH)
 *                 └──launch failed──► FAILED (REASON_CONTAINER_LAUNCH_FAILED)
 *
 * On disk, under the work dir: `agent_id`; `meta/tasks/<fw>/<task>/task.json` (framework, task,
 * container ref, kill asked for) and `meta/updates/...` (the update streams); `sandboxes/<fw>/<task>/`
 * (the task's files, kept after it ends). `meta/` is 0700 (checkpoints hold the tasks' environments);
 * `sandboxes/` and its framework dirs are 0711 (a task's user may pass, not list); each sandbox is
 * 0700, owned by the task's user. Each id is a `pathSegment` there (never the id itself:
 * ids come over the wire), and the ids are read back from the files, never from the names.
 *
 * Nothing a message holds may end the agent process: every launch, kill and watch runs under a
 * catch that reports what it can (a launch that threw is TASK_FAILED) and logs the rest.
 */

export interface AgentOptions {
  masterUrl: string;
  /** The join token it registers with (`slipway agent --join-token FILE`). */
  token?: string;
  /** What an HTTPS master's certificate must chain to (`slipway agent --ca FILE`). */
  ca?: Buffer;
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
  /** A download of a task's URIs that receives nothing for this long fails the task. Default 60 s. */
  fetchStallTimeoutMs?: number;
  /**
   * stop() tells the master this is a planned restart (RESTARTING), so that it waits longer
   * (its agentRestartGraceMs) before it reports the tasks here unreachable. Default true: a stop
   * leaves the tasks running for the next agent process. False for an agent that will not come
   * back (drain it first, then stop it).
   */
  announceRestartOnStop?: boolean;
  /**
   * The user a task without `command.user` runs as, when the agent runs as root (Marathon's
   * `--mesos_user`, Mesos's `--switch_user`). Default `nobody`; root only when named here. An
   * agent that is not root runs every task as itself, and ignores this (it says so at start).
   */
  defaultUser?: string;
  log?: (line: string) => void;
}

/** The default task user of an agent that runs as root. */
export const DEFAULT_TASK_USER = 'nobody';

interface AgentTaskRecord {
  framework: FrameworkInfo & { id: FrameworkID };
  info: TaskInfo;
  state: TaskState;
  containerizer: Containerizer | undefined;
  sandbox: string;
  /** The directory of its checkpoint (found there by recovery, or `taskMetaDir`). */
  metaDir: string;
  ref: ContainerRef | undefined;
  killRequested: boolean;
  /** The grace period of the kill asked for: a restarted agent kills again with it. */
  killGraceMs: number | undefined;
  health: HealthChecker | undefined;
  healthy: boolean | undefined;
  /** The message of a kill the agent itself decided (health check failures, framework shut down). */
  killReason: string | undefined;
  /** The reason TASK_KILLED carries for such a kill. */
  killStatusReason: TaskStatusReason | undefined;
  /** Its framework was shut down: it sends no more updates and is forgotten once it ended. */
  frameworkShutDown: boolean;
  /** Stops the fetch of its URIs while one runs (a kill, the agent stopping). */
  fetching: AbortController | undefined;
  /** The user it runs as (root agents only; resolved at launch, checkpointed for health checks). */
  user: TaskUser | undefined;
}

export class Agent {
  agentId: string | undefined;
  private readonly tasks = new Map<string, AgentTaskRecord>();
  /** LAUNCHes received and not yet started, in arrival order (see launch()). */
  private readonly pendingLaunches = new Map<string, { framework: FrameworkInfo & { id: FrameworkID }; info: TaskInfo; secrets: Record<string, string> }>();
  private readonly updates: StatusUpdateManager;
  private readonly link: MasterLink;
  private readonly metaDir: string;
  private stopped = false;
  /** The work dir's lock, from start() to stop(). */
  private lock: WorkDirLock | undefined;
  /** Whether this process may run tasks as other users (it is root). */
  private readonly root = process.getuid?.() === 0;
  private readonly users = new TaskUsers();
  /** Users already told they cannot reach the sandboxes by path (logged once each). */
  private readonly toldUnreachable = new Set<number>();

  constructor(private readonly options: AgentOptions) {
    this.metaDir = join(options.workDir, 'meta');
    // The work dir and `sandboxes` are traverse-only (0711): a task running as another user (the
    // app's `user`) reaches its own sandbox by path, and lists nothing. Everything else is the
    // agent's own: `meta` (checkpoints, status updates: tasks' commands and environments) 0700,
    // its files 0600, whatever the umask.
    privateDirSync(options.workDir, TRAVERSE_ONLY_DIR_MODE);
    privateDirSync(join(this.metaDir, 'tasks'));
    privateDirSync(join(options.workDir, 'sandboxes'), TRAVERSE_ONLY_DIR_MODE);
    // What an older version left with the umask's modes (a few files per task).
    restrictTreeSync(this.metaDir);
    restrictTreeSync(join(options.workDir, 'agent_id'));
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
      onMessage: (m) => {
        try {
          this.handle(m);
        } catch (e) {
          this.log(`a ${String(m.type)} message from the master failed: ${errorMessage(e)}`);
        }
      },
      clock: options.clock,
      log: (line) => this.log(line),
      ...(options.token !== undefined ? { token: options.token } : {}),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    });
  }

  /**
   * Recovers what a previous agent process left, kills the containers of this agent that no task
   * knows (orphans), then connects to the master.
   */
  async start(): Promise<void> {
    // First of all: a second agent on this work dir would take over the same agent id and the
    // two would close each other's stream for ever (WorkDirLocked names the holder's pid).
    this.lock = WorkDirLock.acquire(this.options.workDir, (line) => this.log(line));
    try {
      await this.checkDefaultUser();
      this.updates.recover();
      await this.recoverTasks();
      await this.killOrphans();
      this.link.start();
    } catch (e) {
      this.lock.release();
      throw e;
    }
  }

  /** Says at start what tasks without a user will run as, and what will not work for them. */
  private async checkDefaultUser(): Promise<void> {
    const wanted = this.options.defaultUser;
    if (!this.root) {
      const own = agentUser();
      if (wanted !== undefined && wanted !== own) this.log(`this agent runs as ${own}, not root: every task runs as ${own}; the default task user ${JSON.stringify(wanted)} is ignored`);
      return;
    }
    const name = wanted ?? DEFAULT_TASK_USER;
    let user: TaskUser | undefined;
    try {
      user = await this.users.resolve(name);
    } catch (e) {
      this.log(`the default task user ${JSON.stringify(name)} cannot be looked up: ${errorMessage(e)}`);
      return;
    }
    if (user === undefined) {
      this.log(`the default task user ${JSON.stringify(name)} does not exist on this host: tasks that name no user will fail (TASK_ERROR)`);
      return;
    }
    this.log(`tasks that name no user run as ${user.name} (uid ${user.uid})`);
    this.warnIfUnreachable(user);
  }

  /** Once per user: the sandboxes' path has a directory that user may not search. */
  private warnIfUnreachable(user: TaskUser): void {
    if (this.toldUnreachable.has(user.uid)) return;
    const blocked = unsearchableOnTheWay(join(this.options.workDir, 'sandboxes'), user);
    if (blocked === undefined) return;
    this.toldUnreachable.add(user.uid);
    this.log(
      `tasks of user ${user.name} cannot reach their sandbox by its path: ${blocked} may not be searched by that user. They run in it (their working directory), but $MESOS_SANDBOX and absolute paths into it fail; give the agent a work dir whose parent directories others may search (chmod o+x), e.g. /var/lib/slipway`,
    );
  }

  /**
   * The user a task runs as: `{ user }` (undefined: as the agent itself) or the TASK_ERROR
   * message. A root agent runs it as `command.user`, else as its default user, resolved on this
   * host (an unknown user fails the task, naming it); an agent that is not root runs tasks as
   * itself, and refuses a process task that names another user (it cannot switch).
   */
  private async taskUser(info: TaskInfo, docker: boolean): Promise<{ user: TaskUser | undefined } | { problem: string }> {
    const asked = info.command?.user;
    const taskId = info.task_id.value;
    if (!this.root) {
      if (asked === undefined || docker) return { user: undefined };
      const own = agentUser();
      return asked === own ? { user: undefined } : { problem: `task ${taskId}: command.user: this agent runs as ${own}, not root, and runs process tasks as ${own}, not as ${JSON.stringify(asked)}` };
    }
    const name = asked ?? this.options.defaultUser ?? DEFAULT_TASK_USER;
    const what = asked !== undefined ? 'command.user' : "the agent's default task user (slipway agent --default-user)";
    if (!validUserName(name)) return { problem: `task ${taskId}: ${what}: ${JSON.stringify(name)} is not a valid user name` };
    const user = await this.users.resolve(name);
    if (user === undefined) return { problem: `task ${taskId}: ${what}: no user ${JSON.stringify(name)} on this agent (${this.options.hostname})` };
    return { user };
  }

  /**
   * The sandbox belongs to the task's user, 0700: other tasks cannot read it; the agent (root)
   * and its files server still can. The framework's directory above it may be passed, not listed.
   */
  private prepareSandbox(t: AgentTaskRecord): void {
    chmodSync(join(t.sandbox, '..'), 0o711);
    chmodSync(t.sandbox, 0o700);
    const user = t.user;
    if (user === undefined) return;
    const st = statSync(t.sandbox);
    if (st.uid !== user.uid || st.gid !== user.gid) chownSync(t.sandbox, user.uid, user.gid);
    if (user.uid !== 0) this.warnIfUnreachable(user);
  }

  async stop(): Promise<void> {
    if (this.options.announceRestartOnStop !== false) this.announceRestart();
    this.stopped = true;
    for (const t of this.tasks.values()) {
      t.health?.stop();
      t.fetching?.abort();
    }
    this.updates.stop();
    this.link.stop();
    for (const c of this.options.containerizers) c.release();
    this.lock?.release();
  }

  /**
   * Tells the master that this agent is about to restart on purpose (RESTARTING, the agent
   * contract): it launches nothing more here and gives the agent its restart grace once the
   * stream drops. Answers whether the message went out (it needs a registered stream).
   */
  announceRestart(): boolean {
    const sent = this.link.send({ type: 'RESTARTING' });
    if (sent) this.log('told the master this is a planned restart');
    return sent;
  }

  /** Containerizers and whether they enforce limits, for the agent's state. */
  containerizerInfo(): ContainerizerInfo[] {
    return this.options.containerizers.map((c) => c.info());
  }

  /**
   * The sandbox of a task of this agent, for the files server. Contract: only a directory inside
   * `<work dir>/sandboxes/` (once links are resolved) is ever answered, so the agent's own state
   * (agent_id, checkpoints, update streams, its lock) is never served, whatever a checkpoint names
   * as a task's sandbox.
   */
  sandboxOf(frameworkId: string, taskId: string): { dir: string; ended: boolean; secretFiles: readonly string[] } | undefined {
    const t = this.tasks.get(key(frameworkId, taskId));
    if (t !== undefined) return this.isSandbox(t.sandbox) ? { dir: t.sandbox, ended: isTerminal(t.state), secretFiles: sandboxSecretFiles(t.info) } : undefined;
    const dir = this.sandboxDir(frameworkId, taskId);
    try {
      readdirSync(dir);
      return this.isSandbox(dir) ? { dir, ended: true, secretFiles: [] } : undefined;
    } catch {
      return undefined;
    }
  }

  private isSandbox(dir: string): boolean {
    try {
      const root = realpathSync(join(this.options.workDir, 'sandboxes'));
      return realpathSync(dir).startsWith(root + sep);
    } catch {
      return false;
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
          writePrivateFileSync(join(this.options.workDir, 'agent_id'), this.agentId + '\n');
        }
        this.link.startHeartbeats(m.heartbeat_interval_seconds * 1000);
        this.updates.resendAll();
        this.log(`registered with the master as ${this.agentId}`);
        return;
      case 'LAUNCH':
        this.launch(m.framework, m.task, m.secrets ?? {});
        return;
      case 'KILL':
        this.kill(m.framework_id.value, m.task_id.value, m.kill_policy, m.reason);
        return;
      case 'ACKNOWLEDGE':
        this.updates.acknowledge(m.framework_id.value, m.task_id.value, m.uuid);
        this.forgetIfDone(m.framework_id.value, m.task_id.value);
        return;
      case 'SHUTDOWN_FRAMEWORK':
        this.shutdownFramework(m.framework_id.value);
        return;
      case 'HEARTBEAT':
        return;
      case 'ERROR':
        this.log(`the master refused this agent: ${m.message}`);
        return;
    }
  }

  /**
   * Launches a task; whatever goes wrong is reported TASK_FAILED, never thrown.
   *
   * Launches wait in `pendingLaunches` and start one per turn of the event loop: the synchronous
   * part of a launch (sandbox, checkpoint, fork, cgroups) takes about 7 ms, and an app scaled to
   * 60 instances used to arrive as 60 LAUNCH messages handled in one go, holding the loop of
   * `slipway up` for 420 ms (issue 11's hostile-input suite). A KILL or a framework shutdown for a
   * pending task starts its launch at once first, so that they act on it exactly as before.
   */
  private launch(framework: FrameworkInfo & { id: FrameworkID }, info: TaskInfo, secrets: Record<string, string>): void {
    const k = key(framework.id.value, info.task_id.value);
    this.pendingLaunches.delete(k); // A resent LAUNCH keeps the newest, in its new place.
    this.pendingLaunches.set(k, { framework, info, secrets });
    if (this.pendingLaunches.size === 1) setImmediate(() => this.startPendingLaunches());
  }

  private startPendingLaunches(): void {
    const first = this.pendingLaunches.keys().next();
    if (first.done === true) return;
    this.startLaunch(first.value);
    if (this.pendingLaunches.size > 0) setImmediate(() => this.startPendingLaunches());
  }

  private startLaunch(k: string): void {
    const pending = this.pendingLaunches.get(k);
    if (pending === undefined) return;
    this.pendingLaunches.delete(k);
    if (this.stopped) return;
    const { framework, info, secrets } = pending;
    this.launchTask(framework, info, secrets).catch((e: unknown) => this.launchFailed(framework, info, e));
  }

  /** `secrets`: the values of the secrets the task references, from the LAUNCH (memory only). */
  private async launchTask(framework: FrameworkInfo & { id: FrameworkID }, info: TaskInfo, secrets: Readonly<Record<string, string>>): Promise<void> {
    const fwId = framework.id.value;
    const taskId = info.task_id.value;
    const k = key(fwId, taskId);
    const existing = this.tasks.get(k);
    if (existing !== undefined) {
      if (!isTerminal(existing.state)) return; // A duplicate LAUNCH (master resent after a failover).
      // The id is reused for a new task on this agent: the master is done with the old one, so
      // are its updates not yet acknowledged (sent after the new task's, they would end it).
      this.log(`task ${taskId} of framework ${fwId} is launched again: its earlier run (${existing.state}) is forgotten`);
      this.updates.dropTask(fwId, taskId);
      this.forget(existing);
    }
    const sandbox = this.sandboxDir(fwId, taskId);
    const wantsDocker = info.container?.type === 'DOCKER';
    const containerizer = this.options.containerizers.find((c) => c.kind === (wantsDocker ? 'docker' : 'process'));
    const t: AgentTaskRecord = {
      framework,
      info,
      state: 'TASK_STAGING',
      containerizer,
      sandbox,
      metaDir: this.taskMetaDir(fwId, taskId),
      ref: undefined,
      killRequested: false,
      killGraceMs: undefined,
      health: undefined,
      healthy: undefined,
      killReason: undefined,
      killStatusReason: undefined,
      frameworkShutDown: false,
      fetching: undefined,
      user: undefined,
    };
    // Known before anything can fail, so that a failure is reported for this task.
    this.tasks.set(k, t);
    // Each sandbox 0700: the task's, no other task's (its framework's dir is traverse-only).
    privateDirSync(dirname(sandbox), TRAVERSE_ONLY_DIR_MODE);
    privateDirSync(sandbox);
    this.checkpoint(t);
    // TASK_STARTING is optional in Mesos's lifecycle: it is sent only when a launch takes a while
    // (an image pull), so that a fast launch reaches RUNNING without waiting for the framework to
    // acknowledge STARTING first (updates of a task go out one at a time).
    const starting = this.options.clock.setTimer(STARTING_AFTER_MS, () => {
      try {
        if (t.state === 'TASK_STAGING') this.transition(t, 'TASK_STARTING', undefined, undefined);
      } catch (e) {
        this.log(`task ${taskId}: TASK_STARTING not recorded: ${errorMessage(e)}`);
      }
    });
    try {
      // What the containerizer would ignore is refused, not run as if it had not been asked for
      // (the master checks the same before a LAUNCH; this is for a master of another version).
      const unhonoured = unhonouredTaskField(info);
      if (unhonoured !== undefined) {
        this.transition(t, 'TASK_ERROR', unhonoured, 'REASON_TASK_INVALID');
        return;
      }
      const who = await this.taskUser(info, wantsDocker);
      if ('problem' in who) {
        this.transition(t, 'TASK_ERROR', who.problem, 'REASON_TASK_INVALID');
        return;
      }
      t.user = who.user;
      if (containerizer === undefined) {
        this.transition(t, 'TASK_FAILED', `this agent has no ${wantsDocker ? 'docker' : 'process'} containerizer`, 'REASON_CONTAINER_LAUNCH_FAILED');
        return;
      }
      this.prepareSandbox(t);
      let delivered: DeliveredSecrets;
      try {
        delivered = await deliverSecrets({ info, secrets, sandbox, secretsDir: this.secretsDir(t), user: t.user });
      } catch (e) {
        starting.cancel();
        this.transition(t, 'TASK_FAILED', `Failed to hand over the task's secrets: ${errorMessage(e)}`, 'REASON_CONTAINER_LAUNCH_FAILED');
        return;
      }
      const env = taskEnvironment({ info, frameworkId: fwId, agentId: this.agentId ?? '', hostname: this.options.hostname, sandbox, docker: wantsDocker, secretEnv: delivered.env, ...homeOf(t) });
      if (!(await this.fetchUris(t))) {
        starting.cancel();
        return;
      }
      // The fetcher ran as the agent: what it wrote is the task's.
      if (t.user !== undefined && (info.command?.uris ?? []).length > 0) chownTree(sandbox, t.user, process.getuid?.() ?? 0);
      let ref: ContainerRef;
      try {
        const container = wantsDocker && delivered.container !== undefined
          ? { ...delivered.container, volumes: [...(delivered.container.volumes ?? []), { host_path: sandbox, container_path: '/mnt/mesos/sandbox', mode: 'RW' as const }] }
          : delivered.container;
        ref = await containerizer.launch({
          frameworkId: fwId,
          taskId,
          agentId: this.agentId ?? '',
          sandbox,
          metaDir: join(t.metaDir, 'container'),
          ...(t.user !== undefined ? { user: t.user } : {}),
          command: info.command,
          container,
          env,
          cpus: scalar(info, 'cpus'),
          memMb: scalar(info, 'mem'),
          ports: env['PORTS'] === undefined || env['PORTS'] === '' ? [] : env['PORTS'].split(',').map(Number),
        });
      } catch (e) {
        starting.cancel();
        this.transition(t, 'TASK_FAILED', `Failed to launch: ${errorMessage(e)}`, 'REASON_CONTAINER_LAUNCH_FAILED');
        return;
      }
      starting.cancel();
      t.ref = ref;
      // At once: whatever happens next, a restarted agent finds the container.
      this.checkpoint(t);
      this.watch(t);
      if (t.killRequested) {
        // Killed while it was starting: stop it now that there is something to stop.
        await this.signal(t);
      } else {
        this.transition(t, 'TASK_RUNNING', undefined, undefined);
        this.startHealthChecks(t, env);
      }
    } finally {
      starting.cancel();
    }
  }

  /**
   * Fetches the task's `command.uris` into its sandbox (both containerizers: a docker task sees
   * them at /mnt/mesos/sandbox). False when the task must not be launched: a URI failed (TASK_FAILED),
   * it was killed meanwhile (TASK_KILLED), or the agent stops (its restart reports the task).
   */
  private async fetchUris(t: AgentTaskRecord): Promise<boolean> {
    const uris = t.info.command?.uris ?? [];
    if (uris.length === 0) return true;
    const taskId = t.info.task_id.value;
    const abort = new AbortController();
    t.fetching = abort;
    let failure: string | undefined;
    try {
      const fetched = await fetchUris(uris, {
        sandbox: t.sandbox,
        signal: abort.signal,
        ...(this.options.fetchStallTimeoutMs !== undefined ? { stallTimeoutMs: this.options.fetchStallTimeoutMs } : {}),
      });
      this.log(`task ${taskId}: fetched ${fetched.map((f) => `${f.uri}${f.extracted ? ' (extracted)' : ''}`).join(', ')}`);
    } catch (e) {
      failure = errorMessage(e);
    } finally {
      t.fetching = undefined;
    }
    if (this.stopped) {
      // Left in STAGING / STARTING: the restarted agent reports it (REASON_AGENT_RESTARTED).
      this.log(`task ${taskId}: not launched, the agent stops`);
      return false;
    }
    if (t.killRequested) {
      this.transition(t, 'TASK_KILLED', t.killReason ?? 'Killed while its URIs were being fetched', t.killStatusReason ?? 'REASON_TASK_KILLED_DURING_LAUNCH');
      return false;
    }
    if (failure !== undefined) {
      this.log(`task ${taskId}: ${failure}`);
      this.transition(t, 'TASK_FAILED', failure, 'REASON_CONTAINER_LAUNCH_FAILED');
      return false;
    }
    return true;
  }

  /** Something threw while launching: the task is failed (and its container, if any, stopped). */
  private launchFailed(framework: FrameworkInfo & { id: FrameworkID }, info: TaskInfo, e: unknown): void {
    const message = `Failed to launch: ${errorMessage(e)}`;
    try {
      const taskId = info.task_id.value;
      const t = this.tasks.get(key(framework.id.value, taskId));
      if (t !== undefined && t.info !== info) {
        this.log(`task ${taskId}: ${message}`); // Another launch of the same id owns the record.
        return;
      }
      if (t === undefined) {
        // It failed before the agent had a record of it: the master still hears of it.
        this.log(`task ${taskId}: ${message}`);
        const status = { task_id: { value: taskId }, state: 'TASK_FAILED' as const, source: 'SOURCE_AGENT' as const, message, reason: 'REASON_CONTAINER_LAUNCH_FAILED' as const, uuid: newUuidBase64(), timestamp: this.options.clock.now() / 1000 };
        this.updates.update(framework.id.value, status, 'TASK_FAILED', true);
        return;
      }
      this.log(`task ${info.task_id.value}: ${message}`);
      if (isTerminal(t.state)) return;
      t.health?.stop();
      if (t.ref !== undefined && t.containerizer !== undefined) {
        const { ref, containerizer } = t;
        this.background(containerizer.kill(ref, 0), `stopping the container of task ${info.task_id.value}`);
      }
      this.transition(t, 'TASK_FAILED', message, 'REASON_CONTAINER_LAUNCH_FAILED');
    } catch (e2) {
      this.log(`${message}; and that could not be reported: ${errorMessage(e2)}`);
    }
  }

  /** Waits for the task's container to end, then reports how it ended. */
  private watch(t: AgentTaskRecord): void {
    const { containerizer, ref } = t;
    if (containerizer === undefined || ref === undefined) return;
    this.background(
      containerizer.wait(ref).then((exit) => this.ended(t, exit)),
      `task ${t.info.task_id.value}`,
    );
  }

  private ended(t: AgentTaskRecord, exit: ContainerExit): void {
    t.health?.stop();
    if (isTerminal(t.state) || this.stopped) return;
    if (t.killRequested) this.transition(t, 'TASK_KILLED', t.killReason ?? exit.message, t.killStatusReason);
    else if (exit.exitCode === 0) this.transition(t, 'TASK_FINISHED', exit.message, undefined);
    else this.transition(t, 'TASK_FAILED', exit.message, exit.oomKilled ? 'REASON_CONTAINER_LIMITATION_MEMORY' : 'REASON_COMMAND_EXECUTOR_FAILED');
  }

  /** Kills a task; never throws (a failure is logged, and reported when the task is known). */
  private kill(frameworkId: string, taskId: string, policy: KillPolicy | undefined, reason: { message: string; status: TaskStatusReason } | undefined): void {
    this.startLaunch(key(frameworkId, taskId));
    this.killTask(frameworkId, taskId, policy, reason).catch((e: unknown) => this.log(`task ${taskId}: kill failed: ${errorMessage(e)}`));
  }

  private async killTask(frameworkId: string, taskId: string, policy: KillPolicy | undefined, reason: { message: string; status: TaskStatusReason } | undefined): Promise<void> {
    const t = this.tasks.get(key(frameworkId, taskId));
    if (t === undefined) {
      // Unknown here: the master must hear that it is gone, reliably like any update.
      const status = { task_id: { value: taskId }, state: 'TASK_LOST' as const, source: 'SOURCE_AGENT' as const, message: 'Task is not known to the agent', uuid: newUuidBase64(), timestamp: this.options.clock.now() / 1000 };
      this.updates.update(frameworkId, status, 'TASK_LOST', true);
      return;
    }
    if (isTerminal(t.state)) return;
    if (!t.killRequested) {
      t.killRequested = true;
      t.killGraceMs = this.graceMs(policy, t);
      if (reason !== undefined) {
        t.killReason = reason.message;
        t.killStatusReason = reason.status;
      }
      t.health?.stop();
      // Still fetching its URIs: the fetch stops and the task is reported killed without running.
      t.fetching?.abort();
      // Checkpointed before any signal: an agent restarted in between kills it again.
      if (t.ref !== undefined && (t.framework.capabilities ?? []).some((c) => c.type === 'TASK_KILLING_STATE')) this.transition(t, 'TASK_KILLING', reason?.message, undefined);
      else this.checkpoint(t);
    }
    // Still launching: launch() kills it once there is something to kill. A KILL repeated
    // after a kill that failed (the engine did not answer) signals again.
    await this.signal(t);
  }

  /** Sends the kill to the task's container. A failure is reported: the task may still run. */
  private async signal(t: AgentTaskRecord): Promise<void> {
    if (t.ref === undefined || t.containerizer === undefined) return;
    try {
      await t.containerizer.kill(t.ref, t.killGraceMs ?? this.graceMs(undefined, t));
    } catch (e) {
      this.log(`task ${t.info.task_id.value}: kill failed: ${errorMessage(e)}`);
      if (!isTerminal(t.state)) this.transition(t, t.state, `Failed to kill the task: ${errorMessage(e)}`, undefined);
    }
  }

  private graceMs(policy: KillPolicy | undefined, t: AgentTaskRecord): number {
    const ns = policy?.grace_period?.nanoseconds ?? t.info.kill_policy?.grace_period?.nanoseconds;
    return typeof ns === 'number' && Number.isFinite(ns) && ns >= 0 ? ns / 1e6 : (this.options.defaultKillGraceMs ?? 3000);
  }

  /**
   * The master removed the framework: its tasks are killed, its updates dropped (nobody would
   * acknowledge them), and its tasks forgotten, checkpoints included, once they ended.
   */
  private shutdownFramework(frameworkId: string): void {
    for (const [k, p] of [...this.pendingLaunches]) if (p.framework.id.value === frameworkId) this.startLaunch(k);
    this.updates.dropFramework(frameworkId);
    for (const t of [...this.tasks.values()]) {
      if (t.framework.id.value !== frameworkId) continue;
      try {
        t.frameworkShutDown = true;
        if (isTerminal(t.state)) {
          this.forget(t);
          continue;
        }
        this.checkpoint(t);
        this.kill(frameworkId, t.info.task_id.value, undefined, { message: 'Framework shut down', status: 'REASON_FRAMEWORK_REMOVED' });
      } catch (e) {
        this.log(`task ${t.info.task_id.value}: framework shutdown: ${errorMessage(e)}`);
      }
    }
  }

  private startHealthChecks(t: AgentTaskRecord, env: Record<string, string>): void {
    const check = t.info.health_check;
    if (check === undefined) return;
    try {
      t.health = new HealthChecker(check, {
        clock: this.options.clock,
        sandbox: t.sandbox,
        // COMMAND checks run as the task's user, as the task does.
        ...(t.user !== undefined ? { user: t.user } : {}),
        env,
        startedAt: this.options.clock.now(),
        onHealthChanged: (healthy, message) => {
          t.healthy = healthy;
          try {
            if (!isTerminal(t.state) && !t.killRequested) this.transition(t, t.state, message, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
          } catch (e) {
            this.log(`task ${t.info.task_id.value}: health update not recorded: ${errorMessage(e)}`);
          }
        },
        onFailureThreshold: (message) => this.kill(t.framework.id.value, t.info.task_id.value, undefined, { message, status: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' }),
      });
      t.health.start();
    } catch (e) {
      this.log(`task ${t.info.task_id.value}: health check not started: ${errorMessage(e)}`);
    }
  }

  /** Records a state and sends its update reliably. */
  private transition(t: AgentTaskRecord, state: TaskState, message: string | undefined, reason: TaskStatusReason | undefined): void {
    t.state = state;
    // Its secrets' files go with it (its sandbox stays, for its logs).
    if (isTerminal(state)) void removeSecretFiles(t.info, t.sandbox, this.secretsDir(t), t.user, (line) => this.log(line));
    if (t.frameworkShutDown) {
      // Nobody would acknowledge an update: none is sent, and the task is forgotten once it ended.
      if (isTerminal(state)) this.forget(t);
      else this.checkpoint(t);
      return;
    }
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
    // The update first, then the task's checkpoint: recovery takes a task's state from its update
    // stream when the stream has one, so a crash between the two writes loses no state; the other
    // way round, a state checkpointed but never appended would never be reported.
    this.updates.update(t.framework.id.value, status, state, isTerminal(state));
    this.checkpoint(t);
  }

  /** Forgets an ended task once its last update was acknowledged (its sandbox stays). */
  private forgetIfDone(frameworkId: string, taskId: string): void {
    const t = this.tasks.get(key(frameworkId, taskId));
    if (t === undefined || !isTerminal(t.state) || this.updates.pending(frameworkId, taskId) > 0) return;
    this.forget(t);
  }

  /** Drops a task's record and its checkpoint (its sandbox stays). */
  private forget(t: AgentTaskRecord): void {
    t.health?.stop();
    const k = key(t.framework.id.value, t.info.task_id.value);
    if (this.tasks.get(k) === t) this.tasks.delete(k);
    this.metaDirs.delete(t.metaDir);
    rmSync(t.metaDir, { recursive: true, force: true });
  }

  /** Where the files of a task's secrets mounted at absolute paths are kept: its meta dir (removed with it). */
  private secretsDir(t: AgentTaskRecord): string {
    return join(t.metaDir, 'secrets');
  }

  private taskMetaDir(frameworkId: string, taskId: string): string {
    return join(this.metaDir, 'tasks', pathSegment(frameworkId), pathSegment(taskId));
  }

  private sandboxDir(frameworkId: string, taskId: string): string {
    return join(this.options.workDir, 'sandboxes', pathSegment(frameworkId), pathSegment(taskId));
  }

  /** Task meta dirs known to exist, so that a checkpoint costs one write and one rename. */
  private readonly metaDirs = new Set<string>();

  private checkpoint(t: AgentTaskRecord): void {
    const dir = t.metaDir;
    if (!this.metaDirs.has(dir)) {
      privateDirSync(dir);
      this.metaDirs.add(dir);
    }
    const data: TaskCheckpoint = {
      framework: t.framework,
      info: t.info,
      sandbox: t.sandbox,
      ...(t.containerizer !== undefined ? { containerizer: t.containerizer.kind } : {}),
      ...(t.ref !== undefined ? { ref: t.ref } : {}),
      state: t.state,
      killRequested: t.killRequested,
      ...(t.killGraceMs !== undefined ? { killGraceMs: t.killGraceMs } : {}),
      ...(t.killReason !== undefined ? { killReason: t.killReason } : {}),
      ...(t.killStatusReason !== undefined ? { killStatusReason: t.killStatusReason } : {}),
      ...(t.frameworkShutDown ? { frameworkShutDown: true } : {}),
      ...(t.user !== undefined ? { user: t.user } : {}),
    };
    // 0600: a checkpoint holds the task's command and environment (its secrets, a CI executor's token).
    writePrivateFileSync(join(dir, 'task.json.tmp'), JSON.stringify(data));
    // Rename is atomic: a crash leaves the old checkpoint or the new one, never half of one.
    renameSync(join(dir, 'task.json.tmp'), join(dir, 'task.json'));
  }

  /**
   * Finds the tasks of a previous agent process: still running ones are watched again (and
   * killed again when a kill was asked for), ended ones reported.
   */
  private async recoverTasks(): Promise<void> {
    const latest = new Map(this.updates.latestStates().map((s) => [key(s.frameworkId, s.taskId), s.latest]));
    const byContainerizer = new Map<Containerizer, AgentTaskRecord[]>();
    for (const fw of safeReaddir(join(this.metaDir, 'tasks'))) {
      for (const task of safeReaddir(join(this.metaDir, 'tasks', fw))) {
        const metaDir = join(this.metaDir, 'tasks', fw, task);
        let data: TaskCheckpoint;
        try {
          data = readTaskCheckpoint(JSON.parse(readFileSync(join(metaDir, 'task.json'), 'utf8')), metaDir);
        } catch (e) {
          this.log(`task checkpoint ${metaDir} skipped: ${errorMessage(e)}`);
          continue;
        }
        const k = key(data.framework.id.value, data.info.task_id.value);
        if (this.tasks.has(k)) {
          this.log(`task checkpoint ${metaDir} skipped: another checkpoint has the same task`);
          continue;
        }
        const containerizer = this.options.containerizers.find((c) => c.kind === data.containerizer);
        const t: AgentTaskRecord = {
          framework: data.framework,
          info: data.info,
          // The update stream is at least as new as the checkpoint (it is written first).
          state: latest.get(k) ?? data.state,
          containerizer,
          sandbox: data.sandbox,
          metaDir,
          ref: data.ref,
          killRequested: data.killRequested ?? false,
          killGraceMs: data.killGraceMs,
          health: undefined,
          healthy: undefined,
          killReason: data.killReason,
          killStatusReason: data.killStatusReason,
          frameworkShutDown: data.frameworkShutDown ?? false,
          fetching: undefined,
          user: data.user,
        };
        // A shutdown checkpointed before its kill was: the kill is asked for all the same.
        if (t.frameworkShutDown) t.killRequested = true;
        this.metaDirs.add(metaDir);
        this.tasks.set(k, t);
        try {
          if (isTerminal(t.state)) {
            if (t.frameworkShutDown) this.forget(t);
            continue;
          }
          if (t.ref === undefined || containerizer === undefined) {
            if (t.killRequested) this.transition(t, 'TASK_KILLED', t.killReason ?? 'Killed while it was being launched', t.killStatusReason ?? 'REASON_TASK_KILLED_DURING_LAUNCH');
            else this.transition(t, 'TASK_FAILED', 'The agent restarted while the task was being launched', 'REASON_AGENT_RESTARTED');
            continue;
          }
        } catch (e) {
          this.log(`task ${t.info.task_id.value}: not recovered: ${errorMessage(e)}`);
          continue;
        }
        const list = byContainerizer.get(containerizer) ?? [];
        list.push(t);
        byContainerizer.set(containerizer, list);
      }
    }
    for (const [containerizer, list] of byContainerizer) {
      let results: Recovered[];
      try {
        results = await containerizer.recover(list.map((t) => t.ref!));
      } catch (e) {
        // wait() finds out how each of them is doing.
        this.log(`the ${containerizer.kind} containerizer could not recover its containers: ${errorMessage(e)}`);
        results = list.map(() => ({ running: true }));
      }
      list.forEach((t, i) => {
        const r = results[i] ?? { running: true };
        try {
          if (!r.running) {
            this.ended(t, r.exit);
          } else if (t.killRequested) {
            // The previous agent process was killing it: this one finishes the job.
            this.log(`recovered task ${t.info.task_id.value}, which was being killed: killing it again`);
            this.watch(t);
            this.background(this.signal(t), `killing task ${t.info.task_id.value}`);
          } else {
            this.log(`recovered running task ${t.info.task_id.value}`);
            const env = taskEnvironment({ info: t.info, frameworkId: t.framework.id.value, agentId: this.agentId ?? '', hostname: this.options.hostname, sandbox: t.sandbox, docker: containerizer.kind === 'docker', ...homeOf(t) });
            this.startHealthChecks(t, env);
            this.watch(t);
          }
        } catch (e) {
          this.log(`task ${t.info.task_id.value}: not recovered: ${errorMessage(e)}`);
        }
      });
    }
  }

  /**
   * Kills the containers of this agent that no task knows (a launch cut short by a crash, a task
   * forgotten while its container ran). Only with a known agent id (a new work dir has none),
   * and before the agent connects: no launch can race the listing. An engine that does not
   * answer in ORPHANS_TIMEOUT_MS is given up on, and what it answers later is ignored.
   */
  private async killOrphans(): Promise<void> {
    const agentId = this.agentId;
    if (agentId === undefined) return;
    let open = true;
    const sweep = async () => {
      for (const containerizer of this.options.containerizers) {
        if (containerizer.orphans === undefined) continue;
        const known = [...this.tasks.values()].flatMap((t) => (t.ref !== undefined && t.ref.kind === containerizer.kind ? [t.ref] : []));
        let orphans: ContainerRef[];
        try {
          orphans = await containerizer.orphans(agentId, known);
        } catch (e) {
          this.log(`the ${containerizer.kind} containerizer could not list orphan containers: ${errorMessage(e)}`);
          continue;
        }
        if (!open) return;
        for (const ref of orphans) {
          this.log(`killing orphan container ${describeRef(ref)}: no task of this agent knows it`);
          this.background(containerizer.kill(ref, this.options.defaultKillGraceMs ?? 3000), `killing orphan container ${describeRef(ref)}`);
        }
      }
    };
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = this.options.clock.setTimer(ORPHANS_TIMEOUT_MS, () => {
        this.log(`orphan containers not looked for: no answer in ${ORPHANS_TIMEOUT_MS} ms`);
        resolve();
      });
    });
    try {
      await Promise.race([sweep(), timeout]);
    } finally {
      open = false;
      timer?.cancel();
    }
  }

  /** Runs work nobody awaits: a failure is logged, never an unhandled rejection. */
  private background(work: Promise<unknown>, what: string): void {
    work.catch((e: unknown) => this.log(`${what}: ${errorMessage(e)}`));
  }

  private log(line: string): void {
    this.options.log?.(line);
  }
}

/** A launch that takes longer than this is reported TASK_STARTING while it goes on. */
const STARTING_AFTER_MS = 100;
/** How long start() waits for the containerizers to list orphan containers. */
const ORPHANS_TIMEOUT_MS = 10_000;

function key(frameworkId: string, taskId: string): string {
  return `${frameworkId}\u0000${taskId}`;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function describeRef(ref: ContainerRef): string {
  return ref.kind === 'docker' ? `${ref.name || ref.containerId.slice(0, 12)} (docker)` : `pid ${ref.pid} (process)`;
}

/**
 * HOME of a task that runs as another user than the agent: its home directory when there is
 * one, else its sandbox (nobody's home is /nonexistent; the agent's own HOME is not theirs).
 */
function homeOf(t: AgentTaskRecord): { home?: string } {
  const user = t.user;
  if (user === undefined || user.uid === (process.getuid?.() ?? 0)) return {};
  try {
    if (statSync(user.home).isDirectory()) return { home: user.home };
  } catch {
    // No such directory.
  }
  return { home: t.sandbox };
}

function agentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '?');
  }
}

function scalar(info: TaskInfo, name: string): number {
  let sum = 0;
  for (const r of info.resources) if (r.name === name && r.scalar !== undefined) sum += r.scalar.value;
  return sum;
}

