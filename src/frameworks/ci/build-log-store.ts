import { appendFile, chmod, readdir, truncate } from 'node:fs/promises';
import { PRIVATE_FILE_MODE, privateDir } from '../../lib/private-files.ts';
import { join } from 'node:path';
import { buildKey } from './build.ts';

/** A piece of a build's log: its step, its bytes, and the byte offsets of its end in the whole log and in its step's log. */
export interface LogPiece {
  step: string;
  bytes: Buffer;
  end: number;
  stepEnd: number;
}
export type LogListener = (piece: LogPiece | undefined) => void;

/** The sizes the store holds for a build's log (`Build.logBytes`): what is known to be written. */
export interface StoredLogSizes {
  whole: number;
  steps: Record<string, number>;
}

/**
 * Build logs: one file per step and one for the whole build, under `<dir>/<job>/<n>/`, the
 * directories 0700 and the files 0600 whatever the umask (a log may quote what a build printed).
 *
 * Contract:
 * - `append` writes a piece to the step's and the build's files, after every piece of that build
 *   appended before; it resolves once both are written. `stored` is what the store holds as
 *   written (the sizes stored with the last report applied): the first append of a build in this
 *   process cuts the files back to it, since bytes beyond it were written by a process that died
 *   before storing them, and their reports come again. So each line is in the log exactly once.
 * - `follow` gets every piece appended from then on (with its end offsets, so that a reader of
 *   the file so far skips what it has) and `undefined` once `ended` was called and every piece
 *   before was written.
 * - `written` resolves once every piece appended so far is in its files.
 */
export class BuildLogStore {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly listeners = new Map<string, Set<LogListener>>();
  /** Bytes in each build's whole log, and in each of its steps' (`key\0step`), once known in this process. */
  private readonly sizes = new Map<string, number>();

  constructor(
    private readonly dir: string,
    private readonly log: (line: string) => void,
  ) {}

  path(job: string, number: number, step?: string): string {
    return join(this.dir, job, String(number), step === undefined ? 'build.log' : `step-${step}.log`);
  }

  append(job: string, number: number, step: string, text: string, stored: StoredLogSizes): Promise<void> {
    const key = buildKey(job, number);
    const next = (this.chains.get(key) ?? Promise.resolve()).then(async () => {
      const dir = join(this.dir, job, String(number));
      await privateDir(dir);
      const stepKey = `${key}\u0000${step}`;
      if (!this.sizes.has(key)) {
        await truncate(this.path(job, number), stored.whole).catch(() => undefined);
        await chmod(this.path(job, number), PRIVATE_FILE_MODE).catch(() => undefined);
        for (const f of await readdir(dir)) {
          const m = /^step-(.+)\.log$/.exec(f);
          if (m === null) continue;
          await truncate(join(dir, f), stored.steps[m[1]!] ?? 0).catch(() => undefined);
          await chmod(join(dir, f), PRIVATE_FILE_MODE).catch(() => undefined);
        }
        this.sizes.set(key, stored.whole);
        for (const [name, n] of Object.entries(stored.steps)) this.sizes.set(`${key}\u0000${name}`, n);
      }
      const size = this.sizes.get(key) ?? 0;
      const stepSize = this.sizes.get(stepKey) ?? 0;
      const bytes = Buffer.from(text);
      await appendFile(this.path(job, number, step), bytes, { mode: PRIVATE_FILE_MODE });
      await appendFile(this.path(job, number), bytes, { mode: PRIVATE_FILE_MODE });
      this.sizes.set(key, size + bytes.length);
      this.sizes.set(stepKey, stepSize + bytes.length);
      for (const l of this.listeners.get(key) ?? []) l({ step, bytes, end: size + bytes.length, stepEnd: stepSize + bytes.length });
    });
    // The chain goes on after a failed append; the caller sees the failure.
    this.chains.set(
      key,
      next.catch((e: unknown) => this.log(`ci: log of ${key} not written: ${e instanceof Error ? e.message : String(e)}`)),
    );
    return next;
  }

  follow(job: string, number: number, listener: LogListener): () => void {
    const key = buildKey(job, number);
    const set = this.listeners.get(key) ?? new Set();
    set.add(listener);
    this.listeners.set(key, set);
    return () => set.delete(listener);
  }

  written(job: string, number: number): Promise<void> {
    return this.chains.get(buildKey(job, number)) ?? Promise.resolve();
  }

  /**
   * What this process knows of the build's log sizes is forgotten: pieces were written whose
   * reports were not stored, so the next append cuts the files back to the stored sizes first.
   */
  forget(job: string, number: number): void {
    const key = buildKey(job, number);
    for (const k of [...this.sizes.keys()]) if (k === key || k.startsWith(`${key}\u0000`)) this.sizes.delete(k);
  }

  /** The build ended: followers get the end once every piece before it is written. */
  ended(job: string, number: number): void {
    const key = buildKey(job, number);
    void this.written(job, number).then(() => {
      for (const l of this.listeners.get(key) ?? []) l(undefined);
      this.listeners.delete(key);
      this.chains.delete(key);
      this.forget(job, number);
    });
  }
}
