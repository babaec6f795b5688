import { constants } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type Dockerode from 'dockerode';

type StreamName = 'stdout' | 'stderr';
const STREAMS: readonly StreamName[] = ['stdout', 'stderr'];

/** Where each stream's position is kept when the caller names no directory: in the sandbox. */
const POSITION_DIR = '.slipway';

/**
 * Copies a container's stdout and stderr from docker's log into `<sandbox>/stdout` and
 * `<sandbox>/stderr` (appended).
 *
 * Docker keeps the container's log, so the copy can resume after the agent process died: the
 * follower asks for timestamped lines and writes, after each line, that line's timestamp into
 * `<positions dir>/<stream>.position` (the containerizer's meta dir for the task, out of the
 * task's reach; by default `<sandbox>/.slipway`). A follower started later (recovery) asks docker for the
 * lines since the older of the two positions and drops, per stream, those not newer than its
 * position: no line is written twice and none is lost, including those the container printed
 * while no agent ran. (A crash between writing a line and its position repeats that one line.)
 *
 * Per stream, docker's timestamps grow in log order: each stream has one copier in the engine.
 */
export class DockerLogFollower {
  /**
   * Resolves once the log ended (the container stopped, or stop() was called) and all was
   * written. Never rejects: losing the log must not lose the task; `error` tells what happened.
   */
  readonly done: Promise<void>;
  error: Error | undefined;
  #source: NodeJS.ReadableStream | undefined;

  private constructor(run: (self: DockerLogFollower) => Promise<void>) {
    this.done = run(this).catch((e: unknown) => {
      this.error = e instanceof Error ? e : new Error(String(e));
    });
  }

  /**
   * Starts copying. `follow: true` keeps going while the container runs; `follow: false` copies
   * what the log holds now (a container that ended while no agent ran) and ends.
   */
  static start(container: Dockerode.Container, sandbox: string, follow: boolean, positionsDir?: string): DockerLogFollower {
    return new DockerLogFollower((self) => self.#run(container, sandbox, follow, positionsDir ?? join(sandbox, POSITION_DIR)));
  }

  /** Stops following (the agent shuts down); the container keeps running. */
  stop(): void {
    const source = this.#source as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
    source?.destroy?.();
  }

  async #run(container: Dockerode.Container, sandbox: string, follow: boolean, positionsDir: string): Promise<void> {
    // An orphan found by label may not say where its sandbox is: never write relative to the cwd.
    if (!isAbsolute(sandbox)) throw new Error(`no sandbox to copy the log of container ${container.id} into`);
    await mkdir(positionsDir, { recursive: true, mode: 0o700 });
    const targets = await Promise.all(STREAMS.map((name) => StreamTarget.open(sandbox, positionsDir, name)));
    try {
      const positions = targets.map((t) => t.position);
      const since = positions.some((p) => p === undefined) ? undefined : positions.reduce((a, b) => (a! < b! ? a : b));
      const options = { stdout: true, stderr: true, timestamps: true, ...(since === undefined ? {} : { since: sinceParameter(since) }) };
      const source: NodeJS.ReadableStream = follow
        ? await container.logs({ ...options, follow: true })
        : Readable.from([await container.logs({ ...options, follow: false })]);
      this.#source = source;
      const [out, err] = targets.map((t) => t.writable());
      container.modem.demuxStream(source, out, err);
      await new Promise<void>((resolve) => {
        source.once('end', resolve);
        source.once('close', resolve);
        source.once('error', () => resolve());
      });
      out!.end();
      err!.end();
      await Promise.all([finished(out!), finished(err!)]);
    } finally {
      await Promise.all(targets.map((t) => t.close()));
    }
  }
}

/** One output file and its position file. */
class StreamTarget {
  private constructor(
    private readonly file: FileHandle,
    private readonly positionFile: FileHandle,
    /** Docker timestamp, in ns since the epoch, of the last line written; undefined before any. */
    public position: bigint | undefined,
  ) {}

  static async open(sandbox: string, positionsDir: string, name: StreamName): Promise<StreamTarget> {
    const positionPath = join(positionsDir, `${name}.position`);
    let position: bigint | undefined;
    try {
      position = parseTimestamp((await readFile(positionPath, 'utf8')).trim());
    } catch {
      position = undefined;
    }
    // The container may have put a link (or a hard link) where its log was: the agent would
    // append to the file it leads to. Never through a link, and only a plain file with one link.
    const file = await open(join(sandbox, name), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
    const st = await file.stat();
    if (!st.isFile() || st.nlink !== 1) {
      await file.close();
      throw new Error(`the task's ${name} in its sandbox is not a plain file (a link, a directory, a FIFO?): its log is not copied`);
    }
    // Not O_APPEND: the position is rewritten in place (Linux ignores the offset of an append write).
    const positionFile = await open(positionPath, constants.O_RDWR | constants.O_CREAT);
    return new StreamTarget(file, positionFile, position);
  }

  /** A sink for demuxStream: each write is one log message, `<timestamp> <text>`. */
  writable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.append(chunk).then(() => callback(), callback);
      },
    });
  }

  private async append(chunk: Buffer): Promise<void> {
    const space = chunk.indexOf(0x20);
    const stamp = space > 0 ? chunk.subarray(0, space).toString('latin1') : '';
    const ns = parseTimestamp(stamp);
    if (ns === undefined) {
      // Not a timestamped message (should not happen): keep the text rather than lose it.
      await this.file.write(chunk);
      return;
    }
    if (this.position !== undefined && ns <= this.position) return;
    await this.file.write(chunk.subarray(space + 1));
    this.position = ns;
    // Fixed width, one write in place: the file always holds one whole timestamp.
    await this.positionFile.write(`${stamp.padEnd(40)}\n`, 0);
  }

  async close(): Promise<void> {
    await this.file.close();
    await this.positionFile.close();
  }
}

/**
 * Docker's log timestamps (RFC 3339 with nanoseconds, UTC: `2024-05-01T12:00:00.123456789Z`) as
 * ns since the epoch; undefined when `s` is not one.
 */
export function parseTimestamp(s: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (m === null) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** The `since` query parameter of docker's logs API: `<seconds>.<nanoseconds>`. */
function sinceParameter(ns: bigint): string {
  return `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;
}
