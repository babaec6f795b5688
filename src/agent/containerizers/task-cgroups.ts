import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * cpu and memory limits for the process containerizer, through Linux control groups.
 *
 * Each task gets its own cgroup under `<agent's own cgroup>/slipway/<name>` (or under the
 * `parent` given to `detect`). The task's first process joins it by writing its own pid into
 * `cgroup.procs` before it runs the command, so every process of the task is inside from the
 * start (see the wrapper in process-containerizer.ts). Nesting under the agent's own cgroup keeps
 * tasks inside whatever limits and accounting the host gave the agent.
 *
 * Both unified (v2) and legacy (v1: separate `memory` and `cpu` hierarchies) layouts are
 * supported: v2 is preferred; v1 is what hosts in hybrid mode (and docker's cgroupfs driver on
 * them) use. `detect` tries it for real once (creates a probe cgroup, sets limits, moves a
 * short-lived process in) and says what was missing when it cannot.
 *
 * cpu, as Mesos does by default: CPU shares, a relative weight that only matters when the CPU is
 * contended (v1 `cpu.shares` = cpus × 1024, at least 2; v2 `cpu.weight`, the same converted). A
 * hard ceiling by CFS quota (v1 `cpu.cfs_quota_us`, v2 `cpu.max`) is added only with `cfsQuota`
 * (Mesos's `--cgroups_enable_cfs`): a small quota (cpus 0.01 → 1 ms per 100 ms) throttles the
 * task's own start-up and makes it slow to launch.
 *
 * Contracts: nothing here throws. A launch never fails because of cgroups; it runs unlimited and
 * `status` says so.
 */

/** The cgroup directories of one task; plain JSON, checkpointed in the task's sandbox. */
export interface TaskCgroupSet {
  version: 1 | 2;
  /** Every directory the task joined (v2: one; v1: the memory one and the cpu one). */
  dirs: string[];
  /** The directory whose counters tell an OOM kill. */
  memoryDir: string;
  memMb: number;
}

export interface TaskCgroupLimits {
  cpus: number;
  memMb: number;
}

export interface CgroupStatus {
  enforced: boolean;
  reason?: string;
}

/** How cpu is limited: by shares only (relative weight under contention), or also by a CFS quota (a ceiling). */
export type CpuLimitMode = 'shares' | 'cfs-quota';

const PERIOD_US = 100_000;
const MIN_QUOTA_US = 1_000;
/** Mesos's CPU_SHARES_PER_CPU and MIN_CPU_SHARES (the kernel's own minimum on v1). */
const SHARES_PER_CPU = 1024;
const MIN_SHARES = 2;
/** cgroup v1 shares range [2, 262144] onto v2 weights [1, 10000] (the conversion runc and systemd use). */
const MAX_SHARES = 262_144;

/** cgroup v1 `cpu.shares` (and docker's `CpuShares`) for `cpus`: cpus × 1024, at least 2. */
export function cpuShares(cpus: number): number {
  return Math.max(MIN_SHARES, Math.round(cpus * SHARES_PER_CPU));
}

/** cgroup v2 `cpu.weight` for `cpus`: the shares converted with `1 + ((shares - 2) * 9999) / 262142`, in 1..10000. */
export function cpuWeight(cpus: number): number {
  const shares = cpuShares(cpus);
  return Math.min(10_000, Math.max(1, Math.round(1 + ((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES))));
}

/** One way to place a task: where its cgroups go and how limits are written. */
interface Layout {
  version: 1 | 2;
  /** Directories under which task cgroups are made; the same one on v2. */
  memoryParent: string;
  cpuParent: string;
}

export class TaskCgroups {
  private constructor(
    private readonly layout: Layout | undefined,
    readonly status: CgroupStatus,
    /** How task cgroups limit cpu (when limits are enforced at all). */
    readonly cpu: CpuLimitMode = 'shares',
  ) {}

  /** Limits are not applied; `reason` says why (for info().limits). */
  static disabled(reason: string): TaskCgroups {
    return new TaskCgroups(undefined, { enforced: false, reason });
  }

  /**
   * Finds a usable cgroup layout on this host, trying v2 then v1. `parent` is a path relative to
   * the root of each hierarchy (e.g. 'slipway'); by default the agent's own cgroup + '/slipway'.
   * `cfsQuota` adds a CFS quota (cpus × the period) to the cpu shares every task gets.
   */
  static detect(options: { parent?: string; cfsQuota?: boolean } = {}): TaskCgroups {
    const cpu: CpuLimitMode = options.cfsQuota === true ? 'cfs-quota' : 'shares';
    if (process.platform !== 'linux') return TaskCgroups.disabled(`cgroups are Linux only (platform ${process.platform})`);
    let mounts: Mount[];
    let own: Map<string, string>;
    try {
      mounts = readMounts();
      own = readOwnCgroups();
    } catch (e) {
      return TaskCgroups.disabled(`cannot read /proc/self/mountinfo or /proc/self/cgroup: ${errorText(e)}`);
    }
    const reasons: string[] = [];
    const v2 = detectV2(mounts, own, options.parent, cpu, reasons);
    if (v2 !== undefined) return new TaskCgroups(v2, { enforced: true }, cpu);
    const v1 = detectV1(mounts, own, options.parent, cpu, reasons);
    if (v1 !== undefined) return new TaskCgroups(v1, { enforced: true }, cpu);
    return TaskCgroups.disabled(reasons.join('; '));
  }

  /**
   * Creates the task's cgroup(s) with its limits. Undefined when limits are not enforced or when
   * creating them failed (the task then runs unlimited).
   */
  create(name: string, limits: TaskCgroupLimits): TaskCgroupSet | undefined {
    const layout = this.layout;
    if (layout === undefined) return undefined;
    const memoryDir = join(layout.memoryParent, name);
    const cpuDir = join(layout.cpuParent, name);
    const dirs = memoryDir === cpuDir ? [memoryDir] : [memoryDir, cpuDir];
    try {
      for (const dir of dirs) mkdirSync(dir, { recursive: true });
      writeLimits(layout.version, memoryDir, cpuDir, limits, this.cpu);
      return { version: layout.version, dirs, memoryDir, memMb: limits.memMb };
    } catch {
      for (const dir of dirs) tryRmdir(dir);
      return undefined;
    }
  }

  /** The files a task's first process writes its pid into to join its cgroups. */
  static procsFiles(set: TaskCgroupSet | undefined): string[] {
    return set === undefined ? [] : set.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  /** Whether the kernel's OOM killer killed a process of the task. */
  static async oomKilled(set: TaskCgroupSet | undefined): Promise<boolean> {
    if (set === undefined) return false;
    const file = set.version === 2 ? 'memory.events' : 'memory.oom_control';
    try {
      const text = await readFile(join(set.memoryDir, file), 'utf8');
      const m = /^oom_kill (\d+)$/m.exec(text);
      return m !== null && Number(m[1]) > 0;
    } catch {
      return false;
    }
  }

  /**
   * Kills what is left in the task's cgroups (processes that left its process group) and removes
   * them. Called once the task's main process ended.
   */
  static async remove(set: TaskCgroupSet | undefined): Promise<void> {
    if (set === undefined) return;
    for (const dir of set.dirs) {
      for (let attempt = 0; attempt < 20; attempt++) {
        await killMembers(dir);
        try {
          await rmdir(dir);
          break;
        } catch (e) {
          if (errno(e) === 'ENOENT') break;
          // EBUSY: members are still exiting.
          await delay(25);
        }
      }
    }
  }
}

interface Mount {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function readMounts(): Mount[] {
  const mounts: Mount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    mounts.push({ root: unescapeMount(l[3] ?? ''), mountPoint: unescapeMount(l[4] ?? ''), fsType: r[0] ?? '', superOptions: (r[2] ?? '').split(',') });
  }
  return mounts;
}

/** /proc/self/cgroup: controller name (or '' for v2) → our path in that hierarchy. */
function readOwnCgroups(): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m === null) continue;
    const controllers = m[1] ?? '';
    const path = m[2] ?? '/';
    if (controllers === '') own.set('', path);
    for (const c of controllers.split(',')) if (c !== '') own.set(c, path);
  }
  return own;
}

function detectV2(mounts: Mount[], own: Map<string, string>, parent: string | undefined, cpuMode: CpuLimitMode, reasons: string[]): Layout | undefined {
  const mount = mounts.find((m) => m.fsType === 'cgroup2');
  if (mount === undefined) {
    reasons.push('cgroup v2: not mounted');
    return undefined;
  }
  const available = readWords(join(mount.mountPoint, 'cgroup.controllers'));
  const missing = ['cpu', 'memory'].filter((c) => !available.includes(c));
  if (missing.length > 0) {
    reasons.push(`cgroup v2 at ${mount.mountPoint}: no ${missing.join(', ')} controller in cgroup.controllers (hybrid or v1 host)`);
    return undefined;
  }
  const ownDir = join(mount.mountPoint, relativeTo(own.get('') ?? '/', mount.root));
  const parentDir = parent === undefined ? join(ownDir, 'slipway') : join(mount.mountPoint, parent);
  try {
    // Controllers must be enabled on every level down to the parent of task cgroups. A non-root
    // cgroup with processes in it cannot enable them (no internal processes): the agent then
    // needs a delegated cgroup (give `parent`).
    enableControllers(mount.mountPoint, parentDir);
  } catch (e) {
    reasons.push(`cgroup v2: cannot enable cpu and memory controllers down to ${parentDir}: ${errorText(e)}`);
    return undefined;
  }
  const layout: Layout = { version: 2, memoryParent: parentDir, cpuParent: parentDir };
  const problem = probe(layout, cpuMode);
  if (problem !== undefined) {
    reasons.push(`cgroup v2: ${problem}`);
    return undefined;
  }
  return layout;
}

function detectV1(mounts: Mount[], own: Map<string, string>, parent: string | undefined, cpuMode: CpuLimitMode, reasons: string[]): Layout | undefined {
  const memory = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes('memory'));
  const cpu = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes('cpu'));
  if (memory === undefined || cpu === undefined) {
    reasons.push(`cgroup v1: no ${[memory === undefined ? 'memory' : '', cpu === undefined ? 'cpu' : ''].filter((s) => s !== '').join(' or ')} hierarchy mounted`);
    return undefined;
  }
  const parentIn = (m: Mount, controller: string): string =>
    parent === undefined ? join(m.mountPoint, relativeTo(own.get(controller) ?? '/', m.root), 'slipway') : join(m.mountPoint, parent);
  const layout: Layout = { version: 1, memoryParent: parentIn(memory, 'memory'), cpuParent: parentIn(cpu, 'cpu') };
  const problem = probe(layout, cpuMode);
  if (problem !== undefined) {
    reasons.push(`cgroup v1: ${problem}`);
    return undefined;
  }
  return layout;
}

/** Creates a probe cgroup with the limits tasks will get and moves a short-lived shell into it; says what failed. */
function probe(layout: Layout, cpu: CpuLimitMode): string | undefined {
  const name = `probe-${process.pid}-${Date.now()}`;
  const memoryDir = join(layout.memoryParent, name);
  const cpuDir = join(layout.cpuParent, name);
  const dirs = memoryDir === cpuDir ? [memoryDir] : [memoryDir, cpuDir];
  try {
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    writeLimits(layout.version, memoryDir, cpuDir, { cpus: 1, memMb: 64 }, cpu);
    const joined = spawnSync('/bin/sh', ['-c', 'for f; do echo $$ > "$f" || exit 1; done', 'sh', ...dirs.map((d) => join(d, 'cgroup.procs'))], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5_000 });
    if (joined.status !== 0) return `cannot move a process into ${dirs.join(' and ')}: ${joined.stderr.toString().trim() || `status ${joined.status}`}`;
    return undefined;
  } catch (e) {
    return `cannot create a cgroup with limits under ${layout.memoryParent}: ${errorText(e)}`;
  } finally {
    for (const dir of dirs) tryRmdir(dir);
  }
}

function writeLimits(version: 1 | 2, memoryDir: string, cpuDir: string, limits: TaskCgroupLimits, cpu: CpuLimitMode): void {
  const bytes = Math.round(limits.memMb * 1024 * 1024);
  const quota = Math.max(MIN_QUOTA_US, Math.round(limits.cpus * PERIOD_US));
  if (version === 2) {
    if (limits.memMb > 0) {
      writeFileSync(join(memoryDir, 'memory.max'), String(bytes));
      // No swap beyond the limit, and an OOM kill takes the whole task, not a random process of it.
      tryWrite(join(memoryDir, 'memory.swap.max'), '0');
      tryWrite(join(memoryDir, 'memory.oom.group'), '1');
    }
    if (limits.cpus > 0) {
      writeFileSync(join(cpuDir, 'cpu.weight'), String(cpuWeight(limits.cpus)));
      if (cpu === 'cfs-quota') writeFileSync(join(cpuDir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    }
    return;
  }
  if (limits.memMb > 0) {
    writeFileSync(join(memoryDir, 'memory.limit_in_bytes'), String(bytes));
    // memsw exists only with swap accounting; it must be set after limit_in_bytes (memsw >= mem).
    tryWrite(join(memoryDir, 'memory.memsw.limit_in_bytes'), String(bytes));
  }
  if (limits.cpus > 0) {
    writeFileSync(join(cpuDir, 'cpu.shares'), String(cpuShares(limits.cpus)));
    if (cpu === 'cfs-quota') {
      writeFileSync(join(cpuDir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(cpuDir, 'cpu.cfs_quota_us'), String(quota));
    }
  }
}

/** Writes `+cpu +memory` into cgroup.subtree_control of every level from the root to `dir`'s parent, then creates `dir` and enables them in it. */
function enableControllers(root: string, dir: string): void {
  const rel = relativeTo(dir, root).split('/').filter((s) => s !== '');
  let current = root;
  for (let i = 0; i <= rel.length; i++) {
    if (!existsSync(current)) mkdirSync(current);
    const enabled = readWords(join(current, 'cgroup.subtree_control'));
    const wanted = ['cpu', 'memory'].filter((c) => !enabled.includes(c));
    if (wanted.length > 0) writeFileSync(join(current, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    const next = rel[i];
    if (next === undefined) break;
    current = join(current, next);
  }
}

async function killMembers(dir: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return;
  }
  for (const pid of text.split('\n').filter((s) => s !== '')) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** `path` (a cgroup path as in /proc/self/cgroup) relative to a mount's root, for nested mounts. */
function relativeTo(path: string, root: string): string {
  if (root === '/' || root === '') return path;
  if (path === root) return '/';
  return path.startsWith(`${root}/`) ? path.slice(root.length) : path;
}

function readWords(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split(/\s+/).filter((s) => s !== '');
  } catch {
    return [];
  }
}

function tryWrite(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    // Optional knob missing on this kernel.
  }
}

function tryRmdir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not created, or not empty yet; nothing more to do here.
  }
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
