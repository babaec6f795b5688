import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE, WorkDirLock, WorkDirLocked } from '../src/agent/work-dir-lock.ts';
import { tempDir as makeTempDir } from './support/processes.ts';

/** The agent's work dir lock (issue 11 §9): one agent per work dir, stale locks of crashed agents taken over. */
describe('the work dir lock', () => {
  const dirs: string[] = [];
  const tempDir = (prefix: string) => {
    const d = makeTempDir(prefix);
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('refuses a second holder while the first runs, naming its pid, and is free again once released', () => {
    const dir = tempDir('lock');
    const first = WorkDirLock.acquire(dir);
    assert.match(readFileSync(join(dir, LOCK_FILE), 'utf8'), new RegExp(`^${process.pid}\n`));
    assert.throws(() => WorkDirLock.acquire(dir), (e: unknown) => e instanceof WorkDirLocked && e.message.includes(`pid ${process.pid}`));
    first.release();
    WorkDirLock.acquire(dir).release();
  });

  it('takes over the lock of an agent that no longer runs (kill -9), and says so', () => {
    const dir = tempDir('lock');
    // The pid of a process that has exited: a crashed agent's lock.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, LOCK_FILE), `${dead.stdout}\n12345\n`);
    const lines: string[] = [];
    const lock = WorkDirLock.acquire(dir, (l) => lines.push(l));
    assert.match(lines.join('\n'), new RegExp(`stale lock .* pid ${dead.stdout}`));
    assert.match(readFileSync(join(dir, LOCK_FILE), 'utf8'), new RegExp(`^${process.pid}\n`));
    lock.release();
  });

  it('takes over a lock whose pid runs with another start time (a recycled pid)', () => {
    const dir = tempDir('lock');
    writeFileSync(join(dir, LOCK_FILE), `${process.pid}\n1\n`);
    WorkDirLock.acquire(dir).release();
  });
});
