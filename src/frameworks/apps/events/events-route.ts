import type { FastifyInstance } from 'fastify';
import type { Clock, Timer } from '../../../core/clock.ts';
import { SystemClock } from '../../../core/clock.ts';
import type { MarathonEventBus } from './marathon-event-bus.ts';
import type { MarathonEvent } from './marathon-events.ts';
import { eventStreamAttached, eventStreamDetached } from './marathon-events.ts';

export interface EventsRouteOptions {
  bus: MarathonEventBus;
  /** Timestamps of `event_stream_attached`/`_detached` and the keep-alive timer. Default: the system clock. */
  clock?: Clock;
  /**
   * Milliseconds between keep-alive line breaks on an idle stream; 0 turns them off. Default
   * 10,000: Marathon's event stream (Jetty's EventSourceServlet) writes a bare line break every
   * 10 s, which keeps proxies from timing the connection out and finds clients that are gone.
   */
  keepAliveMs?: number;
}

/** Marathon's response headers for `/v2/events` (Jetty's EventSourceServlet behind Marathon). */
const SSE_HEADERS = {
  'content-type': 'text/event-stream;charset=UTF-8',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  expires: '0',
  // The stream ends only by closing the connection, and a connection that ends with it cannot
  // sit idle in keep-alive and hold up the server's close.
  connection: 'close',
};

export const DEFAULT_KEEP_ALIVE_MS = 10_000;

/**
 * On server close, how long an ended stream may take to flush before its connection is destroyed
 * (a client that does not read would otherwise hold the close up forever).
 */
const CLOSE_GRACE_MS = 1_000;

interface OpenStream {
  /** Ends the response; resolves once the connection is closed. */
  end(): Promise<void>;
  destroy(): void;
}

/**
 * `GET /v2/events`: Marathon's event stream, as Server-Sent Events.
 *
 * - The client must accept `text/event-stream`; otherwise 405, as Marathon answers (its servlet
 *   falls through to "GET not supported"), here with a Marathon error body. Marathon compared
 *   each Accept header whole; Slipway also finds the type in a list (`text/event-stream, *\/*`).
 *   `*\/*` alone is not enough, as in Marathon.
 * - `?event_type=a&event_type=b` keeps only those types; names are not checked (Marathon does not
 *   check them either); without the parameter every event is sent.
 * - Each event is `event: <eventType>\ndata: <json>\n\n`, the JSON on one line.
 * - On connect the bus gets `event_stream_attached` with the client's address, which this stream
 *   sends too unless its filter excludes it; when the stream ends (client gone, dropped as too
 *   slow, server closing) the bus gets `event_stream_detached`.
 * - An idle stream gets a bare line break every `keepAliveMs` (see EventsRouteOptions).
 * - A client that cannot keep up is dropped by the bus (see MarathonEventBus): its connection is
 *   destroyed and it should reconnect.
 * - Server close ends every open stream (in `preClose`: `onClose` would wait for them first),
 *   and destroys those that have not closed within a second.
 */
export function eventsRoute(app: FastifyInstance, options: EventsRouteOptions): void {
  const { bus } = options;
  const clock = options.clock ?? new SystemClock();
  const keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
  /** Open streams, each ended when the server closes. */
  const open = new Set<OpenStream>();

  app.addHook('preClose', async () => {
    const closed = Promise.all([...open].map((stream) => stream.end()));
    let grace: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
    clearTimeout(grace);
    for (const stream of [...open]) stream.destroy();
  });

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>('/v2/events', { exposeHeadRoute: false }, async (request, reply) => {
    if (!acceptsEventStream(request.headers.accept)) {
      return reply.code(405).send({ message: 'GET /v2/events sends Server-Sent Events only: the request must accept text/event-stream' });
    }
    const filter = eventTypeFilter(request.query.event_type);
    const remoteAddress = request.ip;

    reply.hijack();
    const raw = reply.raw;
    // Gone while hooks ran: its 'close' has passed, and would never clean up after it.
    if (raw.destroyed) return reply;
    // Headers a hook set (CORS, ...) still go out; hijacking skips onSend.
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) raw.setHeader(name, value);
    }
    raw.writeHead(200, SSE_HEADERS);
    // Send the headers now: the first event may be a long way off.
    raw.flushHeaders();

    let writable = true;
    let finished = false;
    let keepAlive: Timer | undefined;
    let drained: (() => void) | undefined;
    let markClosed!: () => void;
    const closed = new Promise<void>((resolve) => (markClosed = resolve));
    const release = () => {
      const resolve = drained;
      drained = undefined;
      resolve?.();
    };

    const unsubscribe = bus.subscribe(
      filter,
      (event) => {
        if (!writable) return;
        if (raw.write(frame(event))) return;
        // The socket is full: take nothing more from the bus until it drains (the bus queues
        // meanwhile, and drops this stream if the queue grows too long).
        return new Promise<void>((resolve) => {
          drained = resolve;
        });
      },
      { onDrop: () => stop(true) },
    );

    const stream: OpenStream = {
      end: () => {
        stop(false);
        return closed;
      },
      destroy: () => stop(true),
    };
    /** Ends the response: gracefully, or by destroying it when it cannot be flushed. */
    function stop(destroy: boolean): void {
      writable = false;
      if (destroy) raw.destroy();
      else if (!raw.writableEnded && !raw.destroyed) raw.end();
    }

    function finish(): void {
      if (finished) return;
      finished = true;
      writable = false;
      open.delete(stream);
      keepAlive?.cancel();
      unsubscribe();
      release();
      bus.publish(eventStreamDetached({ remoteAddress }, clock.now()));
      markClosed();
    }

    function beat(): void {
      if (!writable) return;
      // A full buffer already proves the connection busy, and a line break would only add to it.
      if (raw.writableLength === 0) raw.write('\n');
      keepAlive = clock.setTimer(keepAliveMs, beat);
    }

    open.add(stream);
    raw.on('drain', release);
    // After end() or destroy() a late write fails with an 'error' event: nothing to report.
    raw.on('error', (err) => request.log.debug({ err }, 'event stream error'));
    raw.on('close', finish);
    if (keepAliveMs > 0) keepAlive = clock.setTimer(keepAliveMs, beat);

    bus.publish(eventStreamAttached({ remoteAddress }, clock.now()));
    return reply;
  });
}

/** Whether an Accept header lists `text/event-stream` (parameters ignored, except `q=0`). */
export function acceptsEventStream(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    if (type !== 'text/event-stream') return false;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** The `event_type` values of a query (repeated or single); `undefined` when none, meaning all. */
export function eventTypeFilter(param: string | string[] | undefined): Set<string> | undefined {
  if (param === undefined) return undefined;
  const types = new Set(Array.isArray(param) ? param : [param]);
  return types.size > 0 ? types : undefined;
}

/** Each event is serialized once, however many streams send it. */
const frames = new WeakMap<MarathonEvent, string>();

/** The SSE frame of an event. `eventType` is one of ours, so it holds no line break. */
export function frame(event: MarathonEvent): string {
  let text = frames.get(event);
  if (text === undefined) {
    text = `event: ${event.eventType}\ndata: ${JSON.stringify(event)}\n\n`;
    frames.set(event, text);
  }
  return text;
}
