import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, fchownSync, fstatSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { CommandInfo } from '../../protocol/mesos.ts';
import type { Containerizer, ContainerizerInfo, ContainerExit, ContainerRef, LaunchSpec, Recovered } from '../containerizer.ts';
import { findSetpriv, switchUserArgv, type TaskUser } from '../task-user.ts';
import { exitFromSignal, exitFromStatus, unknownExit } from './container-exit.ts';
import { ContainerLaunchFailed } from './container-launch-failed.ts';
import { TaskCgroups } from './task-cgroups.ts';
import type { CpuLimitMode, TaskCgroupSet } from './task-cgroups.ts';
import { writePrivateFileSync } from '../../lib/private-files.ts';

type ProcessRef = Extract<ContainerRef, { kind: 'process' }>;

/**
 * Where the containerizer keeps its files about a task when the launch names no `metaDir`: in
 * the sandbox, so that a later agent process can read them.
 */
const META_DIR = '.slipway';
/** Written by the wrapper: the command's exit status, as a decimal number. */
const STATUS_FILE = 'exit_status';
/** Written by kill(): the last signal the agent sent to the task's process group. */
const KILL_FILE = 'kill_signal';
/** The task's cgroups (TaskCgroupSet JSON, or null). */
const CGROUPS_FILE = 'cgroups.json';

/**
 * The task's first process, a POSIX shell. It joins the task's cgroups (so that every process of
 * the task is limited from the start), runs the command as its child, and writes the command's
 * exit status into the sandbox: the agent may be gone (kill -9, upgrade) when the task ends, and
 * the next agent process reads the status there.
 *
 * `trap : TERM INT HUP` makes the wrapper survive the SIGTERM that kill() sends to the whole
 * process group, long enough to record the status. A trapped (not ignored) signal is reset to its
 * default in the command, so the command gets SIGTERM as if it ran alone; the shell runs the trap
 * only once the foreground command has ended, so `$?` is the command's status. SIGKILL kills the
 * wrapper too; kill() then leaves a note (KILL_FILE) saying so.
 *
 * Arguments: $1 the status file, then the cgroup.procs files to join, then `--`, then the argv.
 */
const WRAPPER = [
  'status_file=$1; shift',
  'while [ "$1" != -- ]; do { echo $$ > "$1"; } 2>/dev/null; shift; done; shift',
  'trap : TERM INT HUP',
  '"$@"',
  'status=$?',
  // 0600 whatever the agent's umask (the task keeps its own umask: the subshell's is not its).
  '(umask 077; echo "$status" > "$status_file")',
  'exit "$status"',
].join('\n');

export interface ProcessContainerizerOptions {
  /**
   * Where limits come from; by default `TaskCgroups.detect({ cfsQuota })` (probes this host
   * once). A given instance carries its own cpu mode, and `cfsQuota` is then not used.
   */
  cgroups?: TaskCgroups;
  /**
   * Also cap cpu with a CFS quota (cpus × 100 ms per 100 ms), as Mesos's `--cgroups_enable_cfs`.
   * Default false: cpu shares only (a weight under contention), because a small quota throttles
   * the task's own start-up.
   */
  cfsQuota?: boolean;
  /** How often wait() looks at a recovered process (not a child of this agent process). */
  pollIntervalMs?: number;
  /** The setpriv program that runs a task as its user; default: looked up on this host. */
  setpriv?: string;
}

interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs a task as a plain process group on this host, under `sh -c` (or the program itself with
 * `shell: false`), in its sandbox, with the environment the agent computed. Containers outlive
 * the agent process: stdout and stderr go to files, not pipes, and the child is detached.
 */
export class ProcessContainerizer implements Containerizer {
  readonly kind = 'process' as const;
  readonly #cgroups: TaskCgroups;
  readonly #pollIntervalMs: number;
  /** setpriv, looked up at the first task that runs as another user. */
  #setpriv: string | undefined;
  /** Set by release(): waits no longer keep the process alive. */
  #released = false;
  /** Tasks this agent process started: their exit comes from the child's 'exit' event. */
  readonly #children = new Map<number, { child: ChildProcess; exited: Promise<ChildExit> }>();
  /** Tasks found ended (by recover or wait), so that a later wait() answers the same. */
  readonly #ended = new Map<string, ContainerExit>();

  constructor(options: ProcessContainerizerOptions = {}) {
    this.#cgroups = options.cgroups ?? TaskCgroups.detect({ cfsQuota: options.cfsQuota ?? false });
    this.#pollIntervalMs = options.pollIntervalMs ?? 150;
    this.#setpriv = options.setpriv;
  }

  /** `limits.cpu`, when limits are enforced: shares only, or shares and a CFS quota. */
  info(): ContainerizerInfo & { limits: { cpu?: CpuLimitMode } } {
    const status = this.#cgroups.status;
    return { kind: 'process', limits: status.enforced ? { ...status, cpu: this.#cgroups.cpu } : { ...status } };
  }

  async launch(spec: LaunchSpec): Promise<ContainerRef> {
    if (spec.container?.type === 'DOCKER') {
      throw new ContainerLaunchFailed(`task ${spec.taskId} asks for a docker container (image ${spec.container.docker?.image ?? 'none'}); the process containerizer runs plain commands`);
    }
    const argv = [...this.#asUser(spec.user), ...commandArgv(spec.command)];
    // Synchronous file work on purpose: these are a few small local operations, and every await
    // on the launch path would hand the event loop to other work and add to the launch latency.
    const meta = spec.metaDir ?? join(spec.sandbox, META_DIR);
    mkdirSync(meta, { recursive: true, mode: 0o700 });
    rmSync(join(meta, STATUS_FILE), { force: true });
    rmSync(join(meta, KILL_FILE), { force: true });
    // Before the cgroups: a log that cannot be opened (a link left there) leaves nothing behind.
    const stdout = openLog(spec.sandbox, 'stdout', spec.user);
    let stderr: number;
    try {
      stderr = openLog(spec.sandbox, 'stderr', spec.user);
    } catch (e) {
      closeSync(stdout);
      throw e;
    }
    const cgroups = this.#cgroups.create(cgroupName(spec.taskId), { cpus: spec.cpus, memMb: spec.memMb });
    writePrivateFileSync(join(meta, CGROUPS_FILE), JSON.stringify(cgroups ?? null));

    const env: Record<string, string> = { ...spec.env };
    if (env['PATH'] === undefined && process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
    let child: ChildProcess;
    try {
      // The wrapper itself runs as the agent's user: it joins the cgroups (root's files) and
      // writes the status where the task cannot reach; the command runs as the task's user.
      child = spawn('/bin/sh', ['-c', WRAPPER, 'sh', join(meta, STATUS_FILE), ...TaskCgroups.procsFiles(cgroups), '--', ...argv], {
        cwd: spec.sandbox,
        env,
        // Its own session and process group: kill() signals the whole group, and the task does
        // not get the agent's terminal signals.
        detached: true,
        stdio: ['ignore', stdout, stderr],
      });
    } catch (e) {
      closeSync(stdout);
      closeSync(stderr);
      await TaskCgroups.remove(cgroups);
      throw new ContainerLaunchFailed(`cannot start the task's process: ${e instanceof Error ? e.message : String(e)}`);
    }
    // Listen before anything else is awaited: 'spawn' (or 'error') comes on the next tick.
    const spawned = once(child, 'spawn');
    const exited = new Promise<ChildExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // The child holds its own copies of the descriptors.
    closeSync(stdout);
    closeSync(stderr);
    try {
      await spawned;
    } catch (e) {
      await TaskCgroups.remove(cgroups);
      throw new ContainerLaunchFailed(`cannot start the task's process: ${e instanceof Error ? e.message : String(e)}`);
    }
    const pid = child.pid;
    if (pid === undefined) throw new ContainerLaunchFailed('cannot start the task\'s process: no pid');
    // Read before this process can reap the child: a pid is unique only together with its start time.
    const startTime = readStat(pid)?.startTime ?? '';
    // The agent process may exit while the task runs; wait() holds a reference while it waits.
    child.unref();
    this.#children.set(pid, { child, exited });
    return { kind: 'process', pid, startTime, sandbox: spec.sandbox, ...(spec.metaDir !== undefined ? { meta: spec.metaDir } : {}) };
  }

  /** The argv prefix that drops to the task's user (none for root or no user). */
  #asUser(user: TaskUser | undefined): string[] {
    if (user === undefined || user.uid === 0) return [];
    this.#setpriv ??= findSetpriv();
    if (this.#setpriv === undefined) {
      throw new ContainerLaunchFailed(`cannot run the task as user ${user.name}: setpriv (util-linux) is not installed on this agent`);
    }
    return switchUserArgv(this.#setpriv, user);
  }

  async wait(ref: ContainerRef): Promise<ContainerExit> {
    const r = processRef(ref);
    const known = this.#ended.get(refKey(r));
    if (known !== undefined) return known;
    const child = this.#children.get(r.pid);
    let childExit: ChildExit | undefined;
    if (child !== undefined) {
      if (!this.#released) child.child.ref();
      childExit = await child.exited;
      child.child.unref();
    } else {
      while (isAlive(r)) await delay(this.#pollIntervalMs);
    }
    return this.#finish(r, childExit);
  }

  release(): void {
    this.#released = true;
    for (const c of this.#children.values()) c.child.unref();
  }

  async kill(ref: ContainerRef, gracePeriodMs: number): Promise<void> {
    const r = processRef(ref);
    if (!groupMayBeOurs(r)) return;
    await note(r, 'SIGTERM');
    if (!signalGroup(r.pid, 'SIGTERM')) return;
    const deadline = Date.now() + gracePeriodMs;
    while (groupExists(r.pid) && Date.now() < deadline) {
      await delay(Math.max(1, Math.min(50, deadline - Date.now())));
    }
    if (groupExists(r.pid) && groupMayBeOurs(r)) {
      await note(r, 'SIGKILL');
      signalGroup(r.pid, 'SIGKILL');
    }
  }

  async recover(refs: ContainerRef[]): Promise<Recovered[]> {
    const result: Recovered[] = [];
    for (const ref of refs) {
      const r = processRef(ref);
      const known = this.#ended.get(refKey(r));
      if (known !== undefined) {
        result.push({ running: false, exit: known });
      } else if (this.#children.has(r.pid) || isAlive(r)) {
        result.push({ running: true });
      } else {
        result.push({ running: false, exit: await this.#finish(r, undefined) });
      }
    }
    return result;
  }

  /** The task's first process has ended: clean up after it and tell how it ended. */
  async #finish(ref: ProcessRef, childExit: ChildExit | undefined): Promise<ContainerExit> {
    const meta = metaDirOf(ref);
    // What the task left running in its process group ends with it, as a container would.
    if (groupMayBeOurs(ref)) signalGroup(ref.pid, 'SIGKILL');
    const cgroups = await readJson<TaskCgroupSet | null>(join(meta, CGROUPS_FILE));
    const oomKilled = await TaskCgroups.oomKilled(cgroups ?? undefined);
    await TaskCgroups.remove(cgroups ?? undefined);
    const extra = { oomKilled, memMb: cgroups?.memMb ?? 0 };

    const status = parseStatus(await readText(join(meta, STATUS_FILE)));
    const sentSignal = (await readText(join(meta, KILL_FILE)))?.trim();
    let exit: ContainerExit;
    if (status !== undefined) exit = exitFromStatus(status, extra);
    else if (childExit?.signal) exit = exitFromSignal(childExit.signal, extra);
    else if (childExit !== undefined && childExit.code !== null) exit = exitFromStatus(childExit.code, extra);
    // Only SIGKILL explains a missing status: the wrapper outlives SIGTERM to record it.
    else if (sentSignal === 'SIGKILL') exit = exitFromSignal('SIGKILL', extra);
    else if (oomKilled) exit = exitFromSignal('SIGKILL', extra);
    else exit = unknownExit();

    this.#children.delete(ref.pid);
    this.#ended.set(refKey(ref), exit);
    return exit;
  }
}

/**
 * The task's argv, by Mesos's rules: `shell` (default true) runs `value` under `/bin/sh -c`;
 * `shell: false` runs the program `value` with `arguments` as its argv (arguments[0] is argv[0],
 * as in execvp(value, arguments)). The wrapper cannot set argv[0] apart from the program path, so
 * argv[0] is `value`.
 */
function commandArgv(command: CommandInfo | undefined): string[] {
  const value = command?.value;
  if (value === undefined || value === '') {
    throw new ContainerLaunchFailed('the task has no command to run (command.value is empty)');
  }
  if (command?.shell !== false) return ['/bin/sh', '-c', value];
  return [value, ...(command.arguments ?? []).slice(1)];
}

function processRef(ref: ContainerRef): ProcessRef {
  if (ref.kind !== 'process') throw new Error(`the process containerizer cannot handle a ${ref.kind} container`);
  return ref;
}

function metaDirOf(ref: ProcessRef): string {
  return ref.meta ?? join(ref.sandbox, META_DIR);
}

/**
 * Opens `<sandbox>/<name>` for the task to append to, given to `user` when there is one. Not
 * through a link (O_NOFOLLOW), and only a regular file with one link: a sandbox used before by
 * a task of another user may hold a link or a hard link where the log was, and the agent would
 * append to (or hand over) the file it leads to.
 */
function openLog(sandbox: string, name: string, user: TaskUser | undefined): number {
  let fd: number;
  try {
    fd = openSync(join(sandbox, name), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
  } catch (e) {
    throw new ContainerLaunchFailed(`cannot open the task's ${name} in its sandbox: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) {
    closeSync(fd);
    throw new ContainerLaunchFailed(`the task's ${name} in its sandbox is not a plain file (a link, a directory, a FIFO?): remove it`);
  }
  if (user !== undefined && (st.uid !== user.uid || st.gid !== user.gid)) fchownSync(fd, user.uid, user.gid);
  return fd;
}

function refKey(ref: ProcessRef): string {
  return `${ref.pid}:${ref.startTime}`;
}

/** A cgroup directory name for a task: its id, made safe, plus a random part (ids may repeat across frameworks). */
function cgroupName(taskId: string): string {
  return `task-${taskId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 120)}-${randomBytes(4).toString('hex')}`;
}

interface ProcStat {
  state: string;
  startTime: string;
}

/** /proc/<pid>/stat: the state (field 3) and the start time in clock ticks since boot (field 22). */
function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 is the command name in parentheses and may itself contain spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  return state === undefined || startTime === undefined ? undefined : { state, startTime };
}

/** Whether the task's first process still runs (a zombie or a recycled pid does not count). */
function isAlive(ref: ProcessRef): boolean {
  const stat = readStat(ref.pid);
  if (stat === undefined) {
    // No /proc (not Linux): the pid alone has to do.
    return ref.startTime === '' && pidExists(ref.pid);
  }
  if (ref.startTime !== '' && stat.startTime !== ref.startTime) return false;
  return stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * Whether signalling the process group `-pid` can only reach our task. When a process with the
 * same pid but another start time exists, our group is gone (Linux never hands out a pid that is
 * still some group's id) and that group belongs to someone else.
 */
function groupMayBeOurs(ref: ProcessRef): boolean {
  const stat = readStat(ref.pid);
  return stat === undefined || ref.startTime === '' || stat.startTime === ref.startTime;
}

function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to the process group; false when the group is gone. */
function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Records the signal kill() sends, for an agent that recovers the task later. */
async function note(ref: ProcessRef, signal: string): Promise<void> {
  try {
    await mkdir(metaDirOf(ref), { recursive: true, mode: 0o700 });
    writePrivateFileSync(join(metaDirOf(ref), KILL_FILE), signal);
  } catch {
    // The sandbox is gone; the kill itself matters more than the note.
  }
}

function parseStatus(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+\s*$/.test(text)) return undefined;
  return Number(text.trim());
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  const text = await readText(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}
