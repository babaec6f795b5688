import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { sep } from 'node:path';

/**
 * The processes of tasks, found through /proc by their working directory. The process
 * containerizer starts a task in its sandbox, in a session and process group of its own, so that
 * it outlives a kill -9 of its agent: a test that kills agents (or `slipway up`) finds and ends
 * what they left this way, and counts what really runs, beyond what any API says.
 */

export interface SandboxProcess {
  pid: number;
  /** The process group: the task's wrapper shell leads it. */
  pgid: number;
  /** The program's name (`/proc/<pid>/comm`), e.g. `sleep`. */
  comm: string;
  cwd: string;
}

/** Live (not zombie) processes whose working directory is `dir` or under it. */
export function processesUnder(dir: string): SandboxProcess[] {
  const prefix = dir.endsWith(sep) ? dir : dir + sep;
  const found: SandboxProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cwd = readlinkSync(`/proc/${name}/cwd`);
      if (cwd !== dir && !cwd.startsWith(prefix)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z') continue;
      found.push({ pid: Number(name), pgid: Number(rest[2]), comm: readFileSync(`/proc/${name}/comm`, 'utf8').trim(), cwd });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** SIGKILL to the process group of every process under `dir` (a group already gone is fine). */
export function killProcessesUnder(dir: string): number {
  const groups = new Set(processesUnder(dir).map((p) => p.pgid));
  for (const pgid of groups) {
    if (pgid <= 1 || pgid === process.pid) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return groups.size;
}
