import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { SystemClock, type Clock } from '../core/clock.ts';

/**
 * The limits every HTTP server of Slipway applies to its clients (issue 11, finding 4: with
 * Fastify's defaults a client sending one body byte every 10 s held its connection for ever, and
 * enough of them took every file descriptor, with nothing logged).
 *
 * Contract:
 * - A request's head must arrive within `headersTimeoutMs`, and its body within `requestTimeoutMs`
 *   of the head; else the connection is closed (with a 408 when no answer was begun). A body that
 *   still arrives at `minBodyBytesPerSecond` or more (averaged since the head) may take longer,
 *   up to `maxRequestMs` in all (an executor uploading a large artifact), so that a timeout sized
 *   for a trickle does not cut a large upload.
 * - A connection on which the client owes bytes (a request begun and not complete, or nothing at
 *   all yet) and sends none for `idleTimeoutMs` is closed. A connection between two requests is
 *   closed after `keepAliveTimeoutMs`, and after `maxRequestsPerSocket` requests.
 * - Long-lived answers are never cut by these: once a request is complete, the server owes the
 *   bytes, so neither the request timeouts (which stop at the request's end) nor the idle timeout
 *   (which spares a connection whose response is still being written: the scheduler's SUBSCRIBE
 *   stream, /v2/events, a log follow, a slow handler) apply. WebSocket streams are upgraded out of
 *   HTTP; `ws` turns the socket's timeout off.
 * - At most `maxConnections` connections at once; those past it are closed as they come, and the
 *   server says so in its log, at most once per `LIMIT_LOG_WINDOW_MS` (with how many were refused
 *   since), timed by `clock`.
 */
export interface HttpServerLimits {
  requestTimeoutMs: number;
  /** The rate at which a body may take longer than requestTimeoutMs. */
  minBodyBytesPerSecond: number;
  /** No request, however fast, takes longer (head and body). */
  maxRequestMs: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxRequestsPerSocket: number;
  maxConnections: number;
  /** What times the log of refused connections (tests drive it). */
  clock: Clock;
}

/** How often a server at its connection limit says so in its log. */
export const LIMIT_LOG_WINDOW_MS = 10_000;

/** The share of file descriptors of a process's main server (master, `slipway apps`, `slipway ci`). */
export const MAIN_SERVER_SHARE = 0.7;
/** The share of the agent's files server (it serves operators and the UI browsing sandboxes). */
export const FILES_SERVER_SHARE = 0.2;

/** The file descriptors a server leaves for everything else (databases, logs, pipes of tasks, outgoing calls). */
const RESERVED_FDS = 256;

/** The process's soft limit on open files (Linux: /proc/self/limits), or 1024 where it cannot be read. */
export function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return 1 << 20;
    const n = soft !== undefined ? Number(soft) : NaN;
    return Number.isSafeInteger(n) && n > 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

/**
 * The defaults: 30 s for a body slower than 256 KiB/s, an hour for any request, 15 s for its head and for silence while the client
 * owes bytes, 10 s between requests, 1000 requests a connection, and `share` of the file
 * descriptors left after RESERVED_FDS (at least 32). One process may run two servers (`slipway
 * up`: the master's and the agent's files server): their shares must add up to at most 1.
 */
export function httpServerLimits(overrides: Partial<HttpServerLimits> = {}, share = MAIN_SERVER_SHARE): HttpServerLimits {
  const requestTimeoutMs = overrides.requestTimeoutMs ?? 30_000;
  return {
    requestTimeoutMs,
    minBodyBytesPerSecond: overrides.minBodyBytesPerSecond ?? 256 * 1024,
    maxRequestMs: Math.max(overrides.maxRequestMs ?? 60 * 60_000, requestTimeoutMs),
    // Node refuses a head timeout longer than the request's.
    headersTimeoutMs: Math.min(overrides.headersTimeoutMs ?? 15_000, requestTimeoutMs),
    idleTimeoutMs: overrides.idleTimeoutMs ?? 15_000,
    keepAliveTimeoutMs: overrides.keepAliveTimeoutMs ?? 10_000,
    maxRequestsPerSocket: overrides.maxRequestsPerSocket ?? 1000,
    maxConnections: overrides.maxConnections ?? Math.max(32, Math.floor((openFileLimit() - RESERVED_FDS) * share)),
    clock: overrides.clock ?? new SystemClock(),
  };
}

/** How often Node looks for requests past their timeouts: a tenth of the shortest, between 50 ms and 1 s. */
function checkingIntervalMs(l: HttpServerLimits): number {
  return Math.max(50, Math.min(1000, Math.floor(Math.min(l.requestTimeoutMs, l.headersTimeoutMs) / 10)));
}

/**
 * The largest request body a route takes unless it says otherwise (artifacts stream past it):
 * 4 MiB holds a bulk of 1,000 Marathon apps or a Mesos ACCEPT of hundreds of tasks, and parses in
 * ~25 ms here (16 MiB took 70-130 ms, past the 100 ms event-loop budget of issue 11).
 */
export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;

/** The largest message of the agents' and executors' WebSocket streams (ws's default is 100 MiB). */
export const WEBSOCKET_MAX_PAYLOAD = 8 * 1024 * 1024;

/**
 * Options for `Fastify(...)`, the limits included: `serverFactory` makes the Node server with
 * them (guardHttpServer), so that a server is limited from its construction on, whoever builds it.
 * `bodyLimit` is the largest request body a route takes unless it says otherwise.
 */
/** A certificate and its key, PEM (`--tls-cert`, `--tls-key`): the server speaks HTTPS only. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

export function fastifyServerOptions(o: { limits?: HttpServerLimits; bodyLimit?: number; log?: (line: string) => void; tls?: TlsFiles } = {}) {
  const limits = o.limits ?? httpServerLimits();
  return {
    bodyLimit: o.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // close() must not wait for idle keep-alive sockets a client left open (an aborted fetch of
    // an event stream leaves one).
    forceCloseConnections: true,
    // Fastify's own timeout options are not given: with a serverFactory it applies none of them,
    // guardHttpServer sets them all on the server.
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
      const server = createServerWithLimits(limits, handler, o.tls);
      guardHttpServer(server, limits, o.log);
      return server;
    },
  };
}

function createServerWithLimits(limits: HttpServerLimits, handler: (req: IncomingMessage, res: ServerResponse) => void, tls?: TlsFiles): Server {
  const options = { requestTimeout: limits.maxRequestMs, headersTimeout: limits.headersTimeoutMs, keepAliveTimeout: limits.keepAliveTimeoutMs, connectionsCheckingInterval: checkingIntervalMs(limits) };
  // An https.Server is a tls.Server with http.Server's request handling and limits: the guard
  // below applies to it as is.
  if (tls !== undefined) return createHttpsServer({ ...options, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, handler) as unknown as Server;
  return createServer(options, handler);
}

interface Guard {
  limits: HttpServerLimits;
  log: (line: string) => void;
  /** The request each connection is on, while its response is not done. */
  current: WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>;
  /** Requests whose body is not all in yet: when their head came, and the connection's bytes then. */
  incoming: Set<{ req: IncomingMessage; res: ServerResponse; since: number; bytesAtHead: number }>;
  refusedSinceLog: number;
  lastLogAt: number | undefined;
  /** The interval that cuts slow bodies (checkBodies). */
  check: ReturnType<typeof setInterval> | undefined;
}

const guards = new WeakMap<Server, Guard>();

/**
 * Applies `limits` to a Node HTTP server (before it listens: Node reads the connection check's
 * interval when it starts listening), Fastify's or not (the agent's files server is built by the
 * agent). Applying again replaces the limits and the log: a composition root refines what the
 * Fastify options set with defaults.
 */
export function guardHttpServer(server: Server, limits: HttpServerLimits, log: (line: string) => void = (line) => void process.stderr.write(`${line}\n`)): void {
  // Node's own request timeout is the ceiling; the body's is checked below, rate included.
  server.requestTimeout = limits.maxRequestMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.maxConnections = limits.maxConnections;
  // A property of every http.Server since Node 18 (its types name only the constructor option);
  // read when the server starts listening.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = checkingIntervalMs(limits);
  // The idle timeout of a connection; with a 'timeout' listener Node leaves the decision to it.
  server.timeout = limits.idleTimeoutMs;
  const existing = guards.get(server);
  if (existing !== undefined) {
    existing.limits = limits;
    existing.log = log;
    clearInterval(existing.check);
    existing.check = checkBodies(existing);
    return;
  }
  const guard: Guard = { limits, log, current: new WeakMap(), incoming: new Set(), refusedSinceLog: 0, lastLogAt: undefined, check: undefined };
  guards.set(server, guard);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const entry = { req, res };
    guard.current.set(socket, entry);
    const pending = { req, res, since: Date.now(), bytesAtHead: socket.bytesRead };
    if (!req.complete) guard.incoming.add(pending);
    res.once('close', () => {
      if (guard.current.get(socket) === entry) guard.current.delete(socket);
      guard.incoming.delete(pending);
    });
  });
  guard.check = checkBodies(guard);
  server.once('close', () => clearInterval(guard.check));
  server.on('timeout', (socket: Socket) => {
    const on = guard.current.get(socket);
    // The request is in, its answer is being written: the server owes the bytes (a stream, a slow handler).
    if (on !== undefined && on.req.complete && !on.res.writableEnded) return;
    socket.destroy();
  });
  server.on('drop', () => {
    const now = guard.limits.clock.now();
    guard.refusedSinceLog++;
    if (guard.lastLogAt !== undefined && now - guard.lastLogAt < LIMIT_LOG_WINDOW_MS) return;
    const address = server.address();
    const where = typeof address === 'object' && address !== null ? `${address.address}:${address.port}` : String(address);
    const since = guard.lastLogAt === undefined ? '' : ` (${guard.refusedSinceLog} refused since the last report)`;
    guard.log(`http server ${where}: at its connection limit (${guard.limits.maxConnections} open); refusing new connections until some close${since}`);
    guard.lastLogAt = now;
    guard.refusedSinceLog = 0;
  });
}

/**
 * Cuts the requests whose body is past its timeout and slower than the minimum rate: with a 408
 * when no answer was begun. Real time, as Node's own timeouts (the clock times the log only).
 */
function checkBodies(guard: Guard): ReturnType<typeof setInterval> {
  return setInterval(() => {
    const now = Date.now();
    for (const p of guard.incoming) {
      const socket = p.req.socket;
      if (p.req.complete || socket.destroyed) {
        guard.incoming.delete(p);
        continue;
      }
      const elapsed = now - p.since;
      if (elapsed <= guard.limits.requestTimeoutMs) continue;
      const rate = (socket.bytesRead - p.bytesAtHead) / (elapsed / 1000);
      if (rate >= guard.limits.minBodyBytesPerSecond) continue;
      guard.incoming.delete(p);
      if (p.res.headersSent) socket.destroy();
      else socket.end(REQUEST_TIMEOUT_ANSWER, () => socket.destroy());
    }
  }, checkingIntervalMs(guard.limits)).unref();
}

const REQUEST_TIMEOUT_BODY = 'the request body came too slowly: cut off\n';
const REQUEST_TIMEOUT_ANSWER = `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(REQUEST_TIMEOUT_BODY)}\r\n\r\n${REQUEST_TIMEOUT_BODY}`;
