import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { EventsRouteOptions } from './events-route.ts';
import { acceptsEventStream, eventsRoute } from './events-route.ts';
import type { MarathonEventBusOptions } from './marathon-event-bus.ts';
import { MarathonEventBus } from './marathon-event-bus.ts';
import { apiPostEvent, appTerminatedEvent, deploymentInfo, deploymentStepSuccess, deploymentSuccess } from './marathon-events.ts';
import type { DeploymentPlanJson, DeploymentStepJson } from './marathon-events.ts';

// marathon-event-bus-client is CommonJS without type declarations: load it with require, typed
// by what its README documents.
interface MarathonEventBusClient extends EventEmitter {
  subscribe(): void;
  /** The eventsource EventSource underneath; closing it ends the connection without reconnecting. */
  es: { close(): void };
}
type MarathonEventBusClientCtor = new (options: {
  marathonHost: string;
  marathonPort: number;
  eventTypes: string[];
  handlers: Record<string, (name: string, data: unknown) => void>;
}) => MarathonEventBusClient;
const MarathonEventBusClient = createRequire(import.meta.url)('marathon-event-bus-client') as MarathonEventBusClientCtor;

// --- helpers ---------------------------------------------------------------------------------------

/** Polls `ready` until it holds, failing after `timeoutMs`. */
async function waitUntil(ready: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function withDeadline<T>(promise: Promise<T>, what: string, timeoutMs = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Server {
  app: FastifyInstance;
  bus: MarathonEventBus;
  base: string;
  port: number;
}

async function startServer(
  busOptions: MarathonEventBusOptions = {},
  routeOptions: Partial<EventsRouteOptions> = {},
  // After fetch aborts a request, undici opens a spare connection that sends nothing, and an
  // ordinary close waits on it until undici's 4 s keep-alive ends. Tests that are not about
  // closing cut such connections; the one about closing does not.
  forceCloseConnections = true,
): Promise<Server> {
  const bus = new MarathonEventBus(busOptions);
  const app = Fastify({ forceCloseConnections });
  eventsRoute(app, { bus, ...routeOptions });
  await app.listen({ host: '127.0.0.1', port: 0 });
  after(() => app.close());
  const address = app.server.address();
  assert.ok(typeof address === 'object' && address !== null);
  return { app, bus, base: `http://127.0.0.1:${address.port}`, port: address.port };
}

interface SseMessage {
  event: string;
  data: unknown;
}

/** Follows an SSE response with fetch: every message, and the raw text. */
class SseReader {
  readonly messages: SseMessage[] = [];
  text = '';
  /** Resolves when the server ends the stream; rejects if it breaks. */
  readonly ended: Promise<void>;
  private pending = '';
  private eventName = '';
  private data: string[] = [];

  private constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {
    const body = response.body;
    assert.ok(body !== null);
    this.ended = this.read(body.pipeThrough(new TextDecoderStream()).getReader());
    this.ended.catch(() => undefined); // observed by tests that care
  }

  static async open(url: string, headers: Record<string, string> = { accept: 'text/event-stream' }): Promise<SseReader> {
    const abort = new AbortController();
    const response = await fetch(url, { headers, signal: abort.signal });
    return new SseReader(response, abort);
  }

  /** Goes away from the client side. */
  close(): void {
    this.abort.abort();
  }

  types(): string[] {
    return this.messages.map((m) => m.event);
  }

  private async read(reader: ReadableStreamDefaultReader<string>): Promise<void> {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      this.text += value;
      this.pending += value;
      let nl: number;
      while ((nl = this.pending.indexOf('\n')) >= 0) {
        this.line(this.pending.slice(0, nl));
        this.pending = this.pending.slice(nl + 1);
      }
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.messages.push({ event: this.eventName || 'message', data: JSON.parse(this.data.join('\n')) });
      this.eventName = '';
      this.data = [];
    } else if (line.startsWith('event: ')) {
      this.eventName = line.slice('event: '.length);
    } else if (line.startsWith('data: ')) {
      this.data.push(line.slice('data: '.length));
    }
  }
}

const T0 = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
const step: DeploymentStepJson = { actions: [{ action: 'StartApplication', app: '/web' }] };
const plan: DeploymentPlanJson = {
  id: '867ed450-f6a8-4d33-9b0e-e11c5513990b',
  steps: [step, { actions: [{ action: 'ScaleApplication', app: '/web' }] }],
  version: '2024-01-02T03:04:05.678Z',
};

// --- tests -------------------------------------------------------------------------------------------

describe('GET /v2/events', () => {
  it('streams deployment events that marathon-event-bus-client receives with all their fields', async () => {
    const { bus, port } = await startServer();
    const received: Record<string, unknown[]> = {};
    const collect = (name: string, data: unknown) => void (received[name] ??= []).push(data);
    const client = new MarathonEventBusClient({
      marathonHost: '127.0.0.1',
      marathonPort: port,
      eventTypes: ['deployment_info', 'deployment_success'],
      handlers: { deployment_info: collect, deployment_success: collect },
    });
    const errors: unknown[] = [];
    client.on('error', (e: unknown) => errors.push(e));
    const subscribed = new Promise<void>((resolve) => client.once('subscribed', () => resolve()));
    client.subscribe();
    try {
      await withDeadline(subscribed, 'the client to subscribe');
      await waitUntil(() => bus.subscriberCount === 1, 'the server to subscribe the stream');

      const info = deploymentInfo({ plan, currentStep: step }, T0);
      const success = deploymentSuccess({ id: plan.id, plan }, T0 + 1000);
      bus.publish(info);
      bus.publish(success);

      await waitUntil(() => received.deployment_success !== undefined, 'deployment_success at the client');
      assert.deepEqual(received.deployment_info, [JSON.parse(JSON.stringify(info))]);
      assert.deepEqual(received.deployment_success, [
        {
          id: '867ed450-f6a8-4d33-9b0e-e11c5513990b',
          plan,
          eventType: 'deployment_success',
          timestamp: '2024-01-02T03:04:06.678Z',
        },
      ]);
      assert.deepEqual(received.deployment_info?.[0], {
        plan,
        currentStep: { actions: [{ action: 'StartApplication', app: '/web' }] },
        eventType: 'deployment_info',
        timestamp: '2024-01-02T03:04:05.678Z',
      });
      assert.deepEqual(errors, []);
    } finally {
      client.es.close();
    }
    await waitUntil(() => bus.subscriberCount === 0, 'the server to notice the client left');
  });

  it('sends only the event types named by repeated event_type parameters, unknown names allowed', async () => {
    const { bus, base } = await startServer();
    const stream = await SseReader.open(`${base}/v2/events?event_type=app_terminated_event&event_type=deployment_success&event_type=no_such_event`);
    try {
      assert.equal(stream.response.status, 200);
      await waitUntil(() => bus.subscriberCount === 1, 'the stream to subscribe');
      bus.publish(deploymentInfo({ plan, currentStep: step }, T0));
      bus.publish(appTerminatedEvent({ appId: '/old' }, T0));
      bus.publish(deploymentStepSuccess({ plan, currentStep: step }, T0));
      bus.publish(deploymentSuccess({ id: plan.id, plan }, T0));
      // The stream is ordered: once the last event is in, anything filtered wrongly would be too.
      await waitUntil(() => stream.types().includes('deployment_success'), 'deployment_success');
      assert.deepEqual(stream.types(), ['app_terminated_event', 'deployment_success']);
      assert.deepEqual(stream.messages[0]?.data, { appId: '/old', eventType: 'app_terminated_event', timestamp: '2024-01-02T03:04:05.678Z' });
    } finally {
      stream.close();
    }
  });

  it('writes each event as an event line, one data line of JSON and a blank line', async () => {
    const { bus, base } = await startServer();
    const stream = await SseReader.open(`${base}/v2/events?event_type=app_terminated_event`);
    try {
      await waitUntil(() => bus.subscriberCount === 1, 'the stream to subscribe');
      bus.publish(appTerminatedEvent({ appId: '/a' }, T0));
      await waitUntil(() => stream.messages.length === 1, 'the event');
      assert.equal(stream.text, 'event: app_terminated_event\ndata: {"appId":"/a","eventType":"app_terminated_event","timestamp":"2024-01-02T03:04:05.678Z"}\n\n');
    } finally {
      stream.close();
    }
  });

  it("answers with Marathon's headers and first sends the client its own event_stream_attached", async () => {
    const { base } = await startServer();
    const stream = await SseReader.open(`${base}/v2/events`);
    try {
      assert.equal(stream.response.status, 200);
      assert.equal(stream.response.headers.get('content-type'), 'text/event-stream;charset=UTF-8');
      assert.equal(stream.response.headers.get('cache-control'), 'no-cache, no-store, must-revalidate');
      await waitUntil(() => stream.messages.length === 1, 'event_stream_attached');
      const attached = stream.messages[0];
      assert.equal(attached?.event, 'event_stream_attached');
      assert.deepEqual(Object.keys(attached?.data as object), ['remoteAddress', 'eventType', 'timestamp']);
      assert.equal((attached?.data as { remoteAddress: string }).remoteAddress, '127.0.0.1');
    } finally {
      stream.close();
    }
  });

  it('tells other clients when a client attaches and detaches', async () => {
    const { bus, base } = await startServer();
    const watcher = await SseReader.open(`${base}/v2/events?event_type=event_stream_attached&event_type=event_stream_detached`);
    try {
      await waitUntil(() => countOf(watcher, 'event_stream_attached') === 1, "the watcher's own attach");
      const other = await SseReader.open(`${base}/v2/events?event_type=deployment_info`);
      await waitUntil(() => countOf(watcher, 'event_stream_attached') === 2, 'the other client to attach');
      assert.equal(bus.subscriberCount, 2);
      other.close();
      await waitUntil(() => countOf(watcher, 'event_stream_detached') === 1, 'the other client to detach');
      assert.equal(bus.subscriberCount, 1);
      assert.equal((watcher.messages[2]?.data as { remoteAddress: string }).remoteAddress, '127.0.0.1');
    } finally {
      watcher.close();
    }
    await waitUntil(() => bus.subscriberCount === 0, 'the watcher to be unsubscribed');
  });

  it('unsubscribes a client that disconnects', async () => {
    const { bus, base } = await startServer();
    const streams = await Promise.all([SseReader.open(`${base}/v2/events`), SseReader.open(`${base}/v2/events?event_type=x`)]);
    await waitUntil(() => bus.subscriberCount === 2, 'both streams to subscribe');
    for (const s of streams) s.close();
    await waitUntil(() => bus.subscriberCount === 0, 'the server to clean up both streams');
    // Publishing to no one is fine.
    bus.publish(appTerminatedEvent({ appId: '/a' }));
  });

  it('answers 405 to a client that does not accept text/event-stream, as Marathon does', async () => {
    const { bus, base } = await startServer();
    const variants: Record<string, string>[] = [{}, { accept: 'application/json' }, { accept: '*/*' }, { accept: 'text/event-stream;q=0' }];
    for (const headers of variants) {
      const response = await fetch(`${base}/v2/events`, { headers });
      assert.equal(response.status, 405, JSON.stringify(headers));
      assert.match(((await response.json()) as { message: string }).message, /text\/event-stream/);
    }
    assert.equal(bus.subscriberCount, 0);
  });

  it('recognises text/event-stream within an Accept list', () => {
    assert.equal(acceptsEventStream('text/event-stream'), true);
    assert.equal(acceptsEventStream('application/json, Text/Event-Stream; charset=utf-8'), true);
    assert.equal(acceptsEventStream('text/event-stream;q=0.5'), true);
    assert.equal(acceptsEventStream('text/event-stream;q=0'), false);
    assert.equal(acceptsEventStream('text/*'), false);
    assert.equal(acceptsEventStream(undefined), false);
  });

  it('keeps an idle stream alive with bare line breaks that clients ignore', async () => {
    const { base } = await startServer({}, { keepAliveMs: 10 });
    const stream = await SseReader.open(`${base}/v2/events?event_type=nothing_ever`);
    try {
      await waitUntil(() => stream.text.length >= 3, 'three keep-alive line breaks');
      assert.match(stream.text, /^\n+$/);
      assert.deepEqual(stream.messages, []);
    } finally {
      stream.close();
    }
  });

  it('drops a client that does not read, instead of queueing for it without end, and keeps one that does', async () => {
    const { bus, port, base } = await startServer({ maxQueuedPerSubscriber: 16 });
    const reading = await SseReader.open(`${base}/v2/events?event_type=api_post_event`);
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined); // the server resets it
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    try {
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write('GET /v2/events?event_type=api_post_event HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
      socket.pause(); // and never read
      await waitUntil(() => bus.subscriberCount === 2, 'both streams to subscribe');

      // One 64 KiB event per turn of the event loop, until the socket buffers of the client that
      // does not read are full and more than 16 events wait for it.
      const cmd = 'x'.repeat(64 * 1024);
      const deadline = Date.now() + 20_000;
      let published = 0;
      while (bus.subscriberCount === 2) {
        if (Date.now() > deadline) throw new Error(`still subscribed after ${published} events of 64 KiB`);
        bus.publish(apiPostEvent({ clientIp: '127.0.0.1', uri: `/v2/apps/big${published}`, appDefinition: { id: `/big${published}`, cmd } }));
        published++;
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.ok(published > 16, `dropped after only ${published} events`);

      // The reader is still there and has everything, in order.
      assert.equal(bus.subscriberCount, 1);
      await waitUntil(() => reading.messages.length === published, `all ${published} events at the reading client`, 10_000);
      assert.deepEqual(
        reading.messages.map((m) => (m.data as { uri: string }).uri),
        Array.from({ length: published }, (_, i) => `/v2/apps/big${i}`),
      );

      // The server destroyed the dropped connection: our end sees it go once we look.
      socket.resume();
      await withDeadline(closed, 'the dropped connection to close');
    } finally {
      socket.destroy();
      reading.close();
    }
  });

  it('ends open streams promptly when the server closes', async () => {
    const { app, bus, base } = await startServer({}, {}, false);
    const streams = await Promise.all([SseReader.open(`${base}/v2/events`), SseReader.open(`${base}/v2/events?event_type=deployment_info`)]);
    await waitUntil(() => bus.subscriberCount === 2, 'both streams to subscribe');
    const started = Date.now();
    try {
      await withDeadline(app.close(), 'app.close() with open event streams', 3_000);
    } catch (error) {
      app.server.closeAllConnections(); // fail, but do not hang the run
      throw error;
    }
    const took = Date.now() - started;
    assert.ok(took < 1_000, `close took ${took} ms: it should not need the grace period when clients read`);
    for (const s of streams) await withDeadline(s.ended, 'the client to see the stream end');
    assert.equal(bus.subscriberCount, 0);
  });
});

function countOf(reader: SseReader, type: string): number {
  return reader.types().filter((t) => t === type).length;
}
