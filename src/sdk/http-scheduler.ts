import { SchedulerCallRefused } from '../core/errors.ts';
import { RecordIODecoder } from '../protocol/recordio.ts';
import { authHeaders, defaultToken } from './credentials.ts';
import type { Event, FrameworkCall, SubscribeCall } from '../protocol/scheduler.ts';
import type { SchedulerHandlers, SchedulerSubscription, SchedulerTransport } from '../protocol/scheduler-transport.ts';

/** Heartbeat intervals without any event after which the stream is taken for dead. */
const MISSED_HEARTBEATS = 3;

/**
 * The scheduler API over HTTP (Mesos v1, JSON): SUBSCRIBE opens a RecordIO event stream; calls are
 * POSTs that carry the stream's `Mesos-Stream-Id`. Implements the transport contract of
 * src/protocol/scheduler-transport.ts.
 */
export class HttpScheduler implements SchedulerTransport {
  /** `token` authenticates every call (its name is the framework's principal); default SLIPWAY_TOKEN. */
  constructor(
    readonly masterUrl: string,
    private readonly token: string | undefined = defaultToken(),
  ) {}

  async subscribe(call: SubscribeCall, handlers: SchedulerHandlers): Promise<SchedulerSubscription & { streamId: string }> {
    const abort = new AbortController();
    const endpoint = new URL('/api/v1/scheduler', this.masterUrl);
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders(this.token) },
      body: JSON.stringify(call),
      signal: abort.signal,
    });
    if (response.status !== 200) throw new SchedulerCallRefused(response.status, await response.text());
    const streamId = response.headers.get('mesos-stream-id') ?? '';
    let frameworkId = '';
    let closed = false;
    let subscribed!: () => void;
    let failed!: (e: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      subscribed = resolve;
      failed = reject;
    });
    const finish = (reason: string) => {
      if (closed) return;
      closed = true;
      failed(new SchedulerCallRefused(503, `the stream ended before SUBSCRIBED: ${reason}`));
      handlers.onClose(reason);
    };
    // Mesos's guidance: a framework that hears nothing (not even HEARTBEAT) for a few heartbeat
    // intervals treats the connection as dead. A half-open connection (a lost host, a partition
    // without a reset) would otherwise look subscribed for ever.
    let silentTimer: NodeJS.Timeout | undefined;
    let silenceMs = 0;
    let timedOut = false;
    const heard = () => {
      if (silenceMs === 0) return;
      clearTimeout(silentTimer);
      silentTimer = setTimeout(() => {
        timedOut = true;
        abort.abort();
      }, silenceMs);
      silentTimer.unref();
    };
    void (async () => {
      const decoder = new RecordIODecoder();
      const reader = response.body!.getReader();
      let last: Event | undefined;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          heard();
          for (const e of decoder.push(Buffer.from(value)) as Event[]) {
            last = e;
            if (e.type === 'SUBSCRIBED') {
              frameworkId = e.subscribed.framework_id.value;
              silenceMs = MISSED_HEARTBEATS * e.subscribed.heartbeat_interval_seconds * 1000;
              heard();
            }
            handlers.onEvent(e);
            if (e.type === 'SUBSCRIBED') {
              subscribed();
              // The contract: later events wait until subscribe() has resolved, so a handler can
              // already answer them (an OFFERS in the same chunk as SUBSCRIBED must be declinable).
              await new Promise((resolve) => setImmediate(resolve));
            }
          }
        }
        finish(last?.type === 'ERROR' ? last.error.message : 'the master ended the stream');
      } catch (e) {
        const silent = `no event (not even a heartbeat) for ${silenceMs / 1000} s: the connection is taken for dead`;
        finish(timedOut ? silent : abort.signal.aborted ? 'closed by the framework' : `the connection failed: ${(e as Error).message}`);
      } finally {
        clearTimeout(silentTimer);
      }
    })();
    await ready;
    const auth = authHeaders(this.token);
    return {
      frameworkId,
      streamId,
      async call(c: FrameworkCall): Promise<void> {
        const r = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Mesos-Stream-Id': streamId, ...auth }, body: JSON.stringify(c) });
        const text = await r.text();
        if (r.status !== 202) throw new SchedulerCallRefused(r.status, text);
      },
      close() {
        abort.abort();
      },
    };
  }
}
