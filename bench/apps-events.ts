import http, { type ClientRequest, type IncomingMessage } from 'node:http';

/**
 * The benchmark's view of an app: it follows Marathon's event stream (`GET /v2/events`, Server-
 * Sent Events) as a Marathon client would, and keeps the state of each instance from
 * `status_update_event`, `health_status_changed_event` and `instance_changed_event` (`Gone`, an
 * unreachable instance expunged). Each event is stamped with `performance.now()` when it arrives,
 * so phases are timed from the events themselves, not from a polling interval.
 */

export interface MarathonStreamEvent {
  eventType: string;
  /** performance.now() when the event arrived. */
  at: number;
  data: Record<string, unknown>;
}

/**
 * Follows `${url}/v2/events` until closed. Parses `event:`/`data:` records separated by a blank
 * line. On node:http with a connection of its own, destroyed by close(): an aborted fetch() leaves
 * its connection open (undici keeps it), which holds up the server's shutdown.
 */
export class EventStream {
  private readonly listeners = new Set<(e: MarathonStreamEvent) => void>();
  private ended: string | undefined;
  private closed = false;

  private constructor(private readonly request: ClientRequest) {}

  static async open(url: string): Promise<EventStream> {
    const request = http.get(`${url}/v2/events`, { agent: false, headers: { accept: 'text/event-stream' } });
    const stream = new EventStream(request);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      request.once('response', resolve);
      request.once('error', reject);
    });
    if (response.statusCode !== 200) {
      request.destroy();
      throw new Error(`GET /v2/events answered ${response.statusCode}`);
    }
    stream.read(response);
    return stream;
  }

  /** Why the stream ended early, if it did (a benchmark must not wait on a dead stream). */
  get failure(): string | undefined {
    return this.ended;
  }

  on(listener: (e: MarathonStreamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.request.destroy();
  }

  private read(response: IncomingMessage): void {
    response.setEncoding('utf8');
    let buffer = '';
    response.on('data', (chunk: string) => {
      buffer += chunk;
      const at = performance.now();
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const record = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let eventType = 'message';
        let data = '';
        for (const line of record.split('\n')) {
          if (line.startsWith('event:')) eventType = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trimStart();
        }
        if (data === '') continue; // A keep-alive line break.
        const e = { eventType, at, data: JSON.parse(data) as Record<string, unknown> };
        for (const l of this.listeners) l(e);
      }
    });
    const ended = (why: string) => {
      if (!this.closed) this.ended ??= why;
    };
    response.on('end', () => ended('the server ended the event stream'));
    response.on('error', (e) => ended(`the event stream failed: ${e.message}`));
    this.request.on('error', (e) => ended(`the event stream failed: ${e.message}`));
  }
}

export interface TrackedInstance {
  state: string;
  agentId: string;
  version: string;
  /** From health_status_changed_event; undefined until the first one. */
  alive: boolean | undefined;
}

/**
 * The instances of one app as the event stream tells them. `running` counts TASK_RUNNING ones;
 * `healthy` those that are also alive by their health check (every RUNNING one when the app has
 * no health check: pass `healthChecked: false`).
 */
export class AppTracker {
  readonly instances = new Map<string, TrackedInstance>();
  private readonly waiters = new Set<{ test: () => boolean; resolve: (at: number) => void }>();
  private readonly watchers = new Set<(at: number) => void>();
  private readonly off: () => void;
  /** performance.now() of the last event of this app. */
  lastEventAt = 0;

  constructor(
    private readonly stream: EventStream,
    readonly appId: string,
    private readonly healthChecked: boolean,
  ) {
    this.off = stream.on((e) => this.handle(e));
  }

  running(): number {
    let n = 0;
    for (const i of this.instances.values()) if (i.state === 'TASK_RUNNING') n++;
    return n;
  }

  healthy(version?: string): number {
    let n = 0;
    for (const i of this.instances.values()) if (this.isHealthy(i) && (version === undefined || i.version === version)) n++;
    return n;
  }

  /** RUNNING instances per agent id. */
  runningByAgent(): Map<string, number> {
    const out = new Map<string, number>();
    for (const i of this.instances.values()) if (i.state === 'TASK_RUNNING') out.set(i.agentId, (out.get(i.agentId) ?? 0) + 1);
    return out;
  }

  /** Resolves with the arrival time of the event after which `test` holds (at once if it holds now). */
  until(test: () => boolean, what: string, timeoutMs: number, progress?: () => string, report?: (line: string) => void): Promise<number> {
    if (test()) return Promise.resolve(performance.now());
    return new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const waiter = {
        test,
        resolve: (at: number) => {
          clearInterval(ticker);
          this.waiters.delete(waiter);
          resolve(at);
        },
      };
      const ticker = setInterval(() => {
        const failure = this.stream.failure;
        if (failure !== undefined || performance.now() - started > timeoutMs) {
          clearInterval(ticker);
          this.waiters.delete(waiter);
          reject(new Error(`bench: ${failure ?? `timed out after ${Math.round(timeoutMs / 1000)} s`} waiting for ${what}${progress !== undefined ? ` (${progress()})` : ''}`));
          return;
        }
        if (report !== undefined && progress !== undefined) report(`  ${progress()} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
      }, 1000);
      this.waiters.add(waiter);
    });
  }

  /** Calls `fn` after every event of this app (e.g. to record a minimum). */
  watch(fn: (at: number) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  close(): void {
    this.off();
  }

  private isHealthy(i: TrackedInstance): boolean {
    return i.state === 'TASK_RUNNING' && (!this.healthChecked || i.alive === true);
  }

  private handle(e: MarathonStreamEvent): void {
    const d = e.data;
    const appId = (d['appId'] ?? d['runSpecId']) as string | undefined;
    if (appId !== this.appId) return;
    switch (e.eventType) {
      case 'status_update_event': {
        const taskId = d['taskId'] as string;
        const state = d['taskStatus'] as string;
        if (TERMINAL.has(state)) this.instances.delete(taskId);
        else {
          const prev = this.instances.get(taskId);
          this.instances.set(taskId, { state, agentId: d['slaveId'] as string, version: d['version'] as string, alive: prev?.alive });
        }
        break;
      }
      case 'health_status_changed_event': {
        const inst = this.instances.get(d['instanceId'] as string);
        if (inst !== undefined) inst.alive = d['alive'] as boolean;
        break;
      }
      case 'instance_changed_event':
        if (d['condition'] === 'Gone') this.instances.delete(d['instanceId'] as string);
        break;
      default:
        return;
    }
    this.lastEventAt = e.at;
    for (const w of this.watchers) w(e.at);
    for (const w of [...this.waiters]) if (w.test()) w.resolve(e.at);
  }
}

const TERMINAL = new Set(['TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_ERROR', 'TASK_LOST', 'TASK_DROPPED', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN']);
