import { appendFileSync, chmodSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { PRIVATE_FILE_MODE, privateDirSync } from '../lib/private-files.ts';
import { join } from 'node:path';
import { safeReaddir } from './safe-readdir.ts';
import type { Clock, Timer } from '../core/clock.ts';
import { isTerminal, type TaskState } from '../core/task-state.ts';
import type { TaskStatus } from '../protocol/mesos.ts';
import { pathSegment } from './path-segment.ts';

/**
 * Reliable status updates, as Mesos's agent does them: every update is checkpointed to disk
 * before it is sent, sent in order per task with only the oldest unacknowledged one in flight,
 * and resent with backoff (10 s doubling to 10 min, configurable) until the framework's
 * acknowledgement comes back through the master. A restarted agent reads its streams back and
 * carries on where it stopped, so no update is lost and none overtakes another.
 *
 * On disk, per task: `<dir>/<framework>/<task>/updates.jsonl` (each id as `pathSegment`), one
 * line per event: `{"update": TaskStatus, "latest": TaskState, "framework_id": string}` or
 * `{"ack": uuid}`. The ids are read back from the records, never from the directory names. A
 * stream whose every update was acknowledged and whose task ended is deleted.
 */

export type StatusUpdate = TaskStatus & { uuid: string };

interface Stream {
  frameworkId: string;
  taskId: string;
  /** Its directory: `pathSegment`s for a new stream, whatever it was found in for a recovered one. */
  dir: string;
  pending: { status: StatusUpdate; latest: TaskState }[];
  /** When the head was last sent (clock ms); 0: not yet. */
  sentAt: number;
  /** The task's last update is terminal: the stream is deleted once everything is acknowledged. */
  ended: boolean;
}

export interface StatusUpdateManagerOptions {
  dir: string;
  clock: Clock;
  /** Sends one update to the master; answers false when there is no connection (it is resent later). */
  send: (frameworkId: string, status: StatusUpdate, latest: TaskState) => boolean;
  /** First resend interval; doubles up to 10 minutes. Default 10 s. */
  retryMs?: number;
}

export class StatusUpdateManager {
  private readonly streams = new Map<string, Stream>();
  private timer: Timer | undefined;
  private interval: number;
  private readonly baseInterval: number;

  constructor(private readonly options: StatusUpdateManagerOptions) {
    this.baseInterval = options.retryMs ?? 10_000;
    this.interval = this.baseInterval;
    privateDirSync(options.dir);
  }

  /** Reads the streams a previous agent process left. Call once, before any update. */
  recover(): void {
    for (const fw of safeReaddir(this.options.dir)) {
      for (const task of safeReaddir(join(this.options.dir, fw))) {
        const file = join(this.options.dir, fw, task, 'updates.jsonl');
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch {
          continue;
        }
        const dir = join(this.options.dir, fw, task);
        let ids: { frameworkId: string; taskId: string } | undefined;
        const pending: Stream['pending'] = [];
        for (const line of text.split('\n')) {
          if (line.trim() === '') continue;
          let record: { update?: StatusUpdate; latest?: TaskState; ack?: string; framework_id?: string };
          try {
            record = JSON.parse(line) as typeof record;
          } catch {
            continue; // A torn last line from a crash mid-write: the update was never sent.
          }
          if (typeof record.update?.task_id?.value === 'string' && record.latest !== undefined) {
            ids ??= { frameworkId: record.framework_id ?? legacyId(fw), taskId: record.update.task_id.value };
            pending.push({ status: record.update, latest: record.latest });
          } else if (record.ack !== undefined && pending[0]?.status.uuid === record.ack) pending.shift();
        }
        if (ids === undefined) continue; // Nothing but a torn line: no update was ever recorded.
        const stream: Stream = { ...ids, dir, pending, sentAt: 0, ended: isTerminalLatest(pending[pending.length - 1]?.latest) };
        this.dirs.add(dir);
        this.streams.set(key(stream.frameworkId, stream.taskId), stream);
      }
    }
  }

  /** Checkpoints and queues an update; sends it now if nothing of its task is in flight. */
  update(frameworkId: string, status: StatusUpdate, latest: TaskState, terminal: boolean): void {
    const k = key(frameworkId, status.task_id.value);
    let stream = this.streams.get(k);
    if (stream === undefined) {
      const taskId = status.task_id.value;
      stream = { frameworkId, taskId, dir: join(this.options.dir, pathSegment(frameworkId), pathSegment(taskId)), pending: [], sentAt: 0, ended: false };
      this.streams.set(k, stream);
    }
    if (terminal) stream.ended = true;
    this.append(stream, { update: status, latest, framework_id: frameworkId });
    stream.pending.push({ status, latest });
    if (stream.pending.length === 1) this.sendHead(stream);
  }

  /** The framework acknowledged `uuid`: the next update of the task goes out. Stale acks are ignored. */
  acknowledge(frameworkId: string, taskId: string, uuid: string): void {
    const stream = this.streams.get(key(frameworkId, taskId));
    if (stream === undefined || stream.pending[0]?.status.uuid !== uuid) return;
    stream.pending.shift();
    const done = stream.pending.length === 0 && stream.ended;
    if (done) {
      this.remove(stream);
      return;
    }
    this.append(stream, { ack: uuid });
    if (stream.pending.length > 0) this.sendHead(stream);
  }

  /** Sends the head of every stream (after a (re)registration with the master). */
  resendAll(): void {
    this.interval = this.baseInterval;
    for (const stream of this.streams.values()) this.sendHead(stream);
  }

  /** Drops the streams of a framework the master removed. */
  dropFramework(frameworkId: string): void {
    for (const stream of [...this.streams.values()]) {
      if (stream.frameworkId === frameworkId) this.remove(stream);
    }
  }

  /** Drops the stream of one task, sent or not (its id is being reused for a new task). */
  dropTask(frameworkId: string, taskId: string): void {
    const stream = this.streams.get(key(frameworkId, taskId));
    if (stream !== undefined) this.remove(stream);
  }

  /** Updates not yet acknowledged for a task (for the REGISTER report and tests). */
  pending(frameworkId: string, taskId: string): number {
    return this.streams.get(key(frameworkId, taskId))?.pending.length ?? 0;
  }

  /** The latest state of every task with a stream: for tasks whose container is gone. */
  latestStates(): { frameworkId: string; taskId: string; latest: TaskState }[] {
    const out: { frameworkId: string; taskId: string; latest: TaskState }[] = [];
    for (const s of this.streams.values()) {
      const last = s.pending[s.pending.length - 1];
      if (last !== undefined) out.push({ frameworkId: s.frameworkId, taskId: s.taskId, latest: last.latest });
    }
    return out;
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private sendHead(stream: Stream): void {
    const head = stream.pending[0];
    if (head === undefined) return;
    stream.sentAt = this.options.clock.now();
    this.options.send(stream.frameworkId, head.status, stream.pending[stream.pending.length - 1]!.latest);
    this.arm();
  }

  /** One timer resends every head unacknowledged for longer than the current interval. */
  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = this.options.clock.setTimer(this.interval, () => {
      this.timer = undefined;
      const now = this.options.clock.now();
      const due: Stream[] = [];
      let waiting = false;
      for (const stream of this.streams.values()) {
        if (stream.pending.length === 0) continue;
        waiting = true;
        if (now - stream.sentAt >= this.interval) due.push(stream);
      }
      // Back off before resending, so that the next round waits the doubled interval.
      this.interval = waiting ? Math.min(this.interval * 2, 600_000) : this.baseInterval;
      for (const stream of due) this.sendHead(stream);
      if (waiting) this.arm();
    });
  }

  private remove(stream: Stream): void {
    this.streams.delete(key(stream.frameworkId, stream.taskId));
    this.dirs.delete(stream.dir);
    rmSync(stream.dir, { recursive: true, force: true });
  }

  /** Stream dirs known to exist: one mkdir per task, not per update. */
  private readonly dirs = new Set<string>();

  private append(stream: Stream, record: unknown): void {
    const file = join(stream.dir, 'updates.jsonl');
    if (!this.dirs.has(stream.dir)) {
      // The agent's own (0700 dirs, 0600 files: task states and messages are not for other users).
      privateDirSync(stream.dir);
      if (existsSync(file)) chmodSync(file, PRIVATE_FILE_MODE);
      this.dirs.add(stream.dir);
    }
    appendFileSync(file, JSON.stringify(record) + '\n', { mode: PRIVATE_FILE_MODE });
  }
}

function key(frameworkId: string, taskId: string): string {
  return `${frameworkId}\u0000${taskId}`;
}

/** The framework id of a stream written before records carried it: its directory, URI-encoded. */
function legacyId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}


function isTerminalLatest(latest: TaskState | undefined): boolean {
  return latest !== undefined && isTerminal(latest);
}
