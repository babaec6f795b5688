import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SlipwayError } from '../core/errors.ts';

/** Another live agent holds the work dir. HTTP 409 (the agent process exits with the message). */
export class WorkDirLocked extends SlipwayError {
  readonly code = 'WORK_DIR_LOCKED';
  readonly status = 409;
}

/** The lock file, in the work dir. */
export const LOCK_FILE = 'agent.lock';

/**
 * One agent per work dir (issue 11 §9: two agents on one dir took each other's master stream, as
 * the same agent id, 245 times in 30 s, and said nothing). The agent takes `<work dir>/agent.lock`
 * before it reads anything there, and gives it back when it stops.
 *
 * Contract:
 * - The lock file holds the holder's pid and its start time (/proc/<pid>/stat field 22), written
 *   whole before the file appears: it is made aside and hard-linked into place, which fails with
 *   EEXIST when a lock is there (O_EXCL semantics, and no reader ever sees a half-written lock).
 * - A lock whose pid does not run (or runs with another start time: a recycled pid) is stale, left
 *   by a crash (kill -9): it is removed and taken. A live holder, this process included, is
 *   refused with WorkDirLocked naming its pid.
 * - Two agents that find the same stale lock at once: one of them may remove the other's fresh
 *   lock in the instant between reading and removing it. A crash followed by two agents started
 *   within microseconds of each other is the only way there; the removal re-reads the lock first
 *   to keep that window to the two system calls.
 */
export class WorkDirLock {
  private released = false;

  private constructor(
    readonly path: string,
    private readonly content: string,
  ) {}

  static acquire(workDir: string, log: (line: string) => void = () => undefined): WorkDirLock {
    const path = join(workDir, LOCK_FILE);
    const content = `${process.pid}\n${startTimeOf(process.pid) ?? ''}\n`;
    const aside = `${path}.${process.pid}.${Date.now()}`;
    const fd = openSync(aside, 'wx', 0o600);
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          linkSync(aside, path);
          return new WorkDirLock(path, content);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const held = readLock(path);
        if (held === undefined) continue; // Removed meanwhile: try again.
        if (isRunning(held.pid, held.startTime)) {
          throw new WorkDirLocked(
            `the work dir ${workDir} is in use by another agent (pid ${held.pid}, lock ${path}): stop that agent first, or give this one its own --work-dir`,
          );
        }
        log(`removing the stale lock ${path} of agent pid ${held.pid}, which no longer runs`);
        if (readLock(path)?.text === held.text) unlinkQuietly(path);
      }
      throw new WorkDirLocked(`the lock ${path} of the work dir ${workDir} keeps changing: is another agent starting on it?`);
    } finally {
      unlinkQuietly(aside);
    }
  }

  /** Gives the lock back (once), if it is still this agent's. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (readLock(this.path)?.text === this.content) unlinkQuietly(this.path);
  }
}

function readLock(path: string): { pid: number; startTime: string; text: string } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const [pidText = '', startTime = ''] = text.split('\n');
  const pid = Number(pidText);
  // Unreadable content: not written by an agent of this version; its pid cannot run.
  return { pid: Number.isSafeInteger(pid) && pid > 0 ? pid : 0, startTime, text };
}

function isRunning(pid: number, startTime: string): boolean {
  if (pid === 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process.
  }
  const now = startTimeOf(pid);
  return startTime === '' || now === undefined || now === startTime;
}

/** /proc/<pid>/stat field 22 (start time in clock ticks since boot); undefined without /proc. */
function startTimeOf(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 is the command name in parentheses and may itself hold spaces and parentheses.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}
