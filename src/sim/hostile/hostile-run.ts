import { request as httpRequest, Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import WebSocket from 'ws';
import { requestArb, type HostileRequest, type Route } from './hostile-requests.ts';
import type { HostileTarget } from './hostile-target.ts';
import { runAuthorization } from '../bench-token.ts';

/**
 * The hostile-input suite's driver: it attacks every route of every server of a HostileTarget
 * (the routes the servers registered, read from inside the process), then the agent and
 * executor WebSocket streams, then holds slow connections open, and reports what it saw.
 *
 * What counts as a finding, per request: no answer within `stallMs` (a stalled server), a 5xx,
 * a 4xx whose body says nothing, a connection dropped without an answer. Per run: the server
 * gone, the canary task disturbed, the event loop blocked longer than the caller's bound
 * (checked by the caller; the report says how long and what was in flight).
 */

export interface HostileRunOptions {
  /** Seconds of HTTP requests (the WebSocket and slow-connection parts come on top). */
  seconds: number;
  seed: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Heavy bodies too (arrays of a million elements, 10 MB ids): the long run. */
  heavy: boolean;
  /** A request not answered in this time is a stall. */
  stallMs: number;
  /**
   * After the run, the requests in flight during each loop block longer than this are sent
   * again one at a time, to name which one blocked the loop (reported as `culprits`).
   */
  replayAboveMs: number;
  /** Slow connections held open (one body byte a second) in the slow part. */
  slowConnections: number;
  slowSeconds: number;
  progress?: (line: string) => void;
}

export interface Finding {
  what: string;
  method: string;
  path: string;
  kind: string;
  /** The request's headers, when it sent any beyond the content type (some findings need them). */
  headers?: string;
  status?: number;
  excerpt?: string;
}

export interface LoopBlock {
  maxMs: number;
  /** The requests in flight while the loop was blocked that long (route and kind). */
  during: string[];
}

export interface HostileReport {
  seed: number;
  seconds: number;
  requests: number;
  routes: number;
  routesHit: number;
  /** Routes never sent a request because every one drawn was held back (destroysEverything). */
  routesHeldBack: string[];
  byStatus: Record<string, number>;
  findings: Finding[];
  findingCount: number;
  loopMaxMs: number;
  loopP99Ms: number;
  worstBlocks: LoopBlock[];
  /** Requests replayed alone after the run, each with the loop block it caused (worst first). */
  culprits: { request: string; loopMaxMs: number; ms: number; status: number | string }[];
  rssMaxBytes: number;
  webSocket: { connections: number; messages: number; findings: number };
  slow: { connections: number; pingsDuring: number; pingMaxMs: number; closedByServer: number; findings: number };
  canary: string | undefined;
  serverExit: string | undefined;
}

const MAX_FINDINGS_KEPT = 50;
const READ_CAP_BYTES = 256 * 1024;
/** A streaming answer (SUBSCRIBE, events, follow) is read this long after its headers, then dropped. */
const STREAM_READ_MS = 1_000;

export async function runHostile(target: HostileTarget, o: HostileRunOptions): Promise<HostileReport> {
  const progress = o.progress ?? (() => {});
  const first = await target.state();
  const routes: { port: number; route: Route }[] = first.servers.flatMap((s) => s.routes.map((route) => ({ port: s.port, route })));
  const findings: Finding[] = [];
  let findingCount = 0;
  const note = (f: Finding) => {
    findingCount++;
    if (findings.length < MAX_FINDINGS_KEPT) findings.push(f);
  };
  const byStatus: Record<string, number> = {};
  const hit = new Set<string>();
  const heldBack = new Set<string>();
  const inFlight = new Map<string, { port: number; request: HostileRequest }>();
  // Every request that was in flight at some time since the watcher's last look: a request that
  // blocked the loop has often been answered by the time the watcher's question gets through.
  let window = new Map<string, { port: number; request: HostileRequest }>();
  const worstBlocks: (LoopBlock & { requests: { port: number; request: HostileRequest }[] })[] = [];
  let rssMax = first.rssBytes;
  let loopMax = 0;
  let loopP99 = 0;
  let requests = 0;

  await target.resetLoop();
  // Watch the loop while requests run: when its maximum grows, note what was in flight.
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const s = await target.state().catch(() => undefined);
      if (s === undefined) break;
      rssMax = Math.max(rssMax, s.rssBytes);
      loopP99 = Math.max(loopP99, s.loop.p99Ms);
      const seen = new Map([...window, ...inFlight]);
      window = new Map();
      if (s.loop.maxMs > loopMax) {
        loopMax = s.loop.maxMs;
        worstBlocks.push({ maxMs: Math.round(s.loop.maxMs), during: [...seen.keys()].slice(0, 8), requests: [...seen.values()] });
        worstBlocks.sort((a, b) => b.maxMs - a.maxMs);
        worstBlocks.length = Math.min(worstBlocks.length, 5);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();

  // Every route first, in order, then routes at random. Requests are drawn 16 at a time per
  // route (fast-check draws its first values small; later ones grow).
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  const drawn = new Map<number, HostileRequest[]>();
  const rounds = new Map<number, number>();
  const draw = (i: number): { port: number; request: HostileRequest } => {
    let pending = drawn.get(i);
    if (pending === undefined || pending.length === 0) {
      const round = (rounds.get(i) ?? 0) + 1;
      rounds.set(i, round);
      pending = fc.sample(requestArb(routes[i]!.route, o.heavy), { seed: o.seed + i * 100_003 + round, numRuns: 16 });
      drawn.set(i, pending);
    }
    return { port: routes[i]!.port, request: pending.shift()! };
  };
  const queue = routes.map((_, i) => draw(i));
  let batch = 0;
  const refill = () => {
    batch++;
    for (const pick of fc.sample(fc.nat({ max: routes.length - 1 }), { seed: o.seed * 7919 + batch, numRuns: 64 })) queue.push(draw(pick));
  };
  const deadline = Date.now() + o.seconds * 1000;
  let lastProgress = Date.now();
  const worker = async () => {
    while (Date.now() < deadline && target.exitReason === undefined) {
      if (queue.length === 0) refill();
      const next = queue.shift()!;
      if (destroysEverything(next.request)) {
        heldBack.add(`${next.request.method} ${next.request.route.url}`);
        continue;
      }
      const label = `${next.request.method} ${next.request.route.url} (${next.request.kind})`;
      inFlight.set(label, next);
      window.set(label, next);
      const outcome = await send(next.port, next.request, agent, o.stallMs);
      inFlight.delete(label);
      requests++;
      hit.add(`${next.port} ${next.request.method} ${next.request.route.url}`);
      const key = outcome.status === undefined ? outcome.error ?? 'no answer' : `${Math.floor(outcome.status / 100)}xx`;
      byStatus[key] = (byStatus[key] ?? 0) + 1;
      const finding = judge(outcome, next.request.method);
      if (finding !== undefined) note({ what: finding, method: next.request.method, path: next.request.path.slice(0, 200), kind: next.request.kind, ...(Object.keys(next.request.headers).some((h) => h !== 'content-type') ? { headers: JSON.stringify(next.request.headers).slice(0, 300) } : {}), ...(outcome.status !== undefined ? { status: outcome.status } : {}), ...(outcome.excerpt !== undefined ? { excerpt: outcome.excerpt } : {}) });
      if (Date.now() - lastProgress > 5_000) {
        lastProgress = Date.now();
        progress(`  ${requests} requests, ${hit.size}/${routes.length} routes, ${findingCount} findings, loop max ${Math.round(loopMax)} ms`);
      }
    }
  };
  progress(`HTTP: ${routes.length} routes on ${first.servers.length} servers, ${o.seconds} s, ${o.concurrency} at once, seed ${o.seed}`);
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  agent.destroy();

  progress('WebSocket streams: malformed messages to the agent and executor streams');
  const masterPort = new URL(target.url).port;
  const ws = await attackWebSockets(Number(masterPort), o.seed, inFlight, window, note);
  progress(`slow connections: ${o.slowConnections} sending one body byte a second for ${o.slowSeconds} s`);
  const slow = await slowConnections(Number(masterPort), o, note);

  watching = false;
  await watcher;
  const last = await target.state().catch(() => undefined);
  if (last !== undefined) {
    loopMax = Math.max(loopMax, last.loop.maxMs);
    rssMax = Math.max(rssMax, last.rssBytes);
  }
  const culprits = await replayBlocks(target, worstBlocks.filter((b) => b.maxMs > o.replayAboveMs), o.stallMs, progress);
  const canary = await target.canaryProblem();
  return {
    seed: o.seed,
    seconds: o.seconds,
    requests,
    routes: routes.length,
    routesHit: hit.size,
    routesHeldBack: [...heldBack].filter((k) => ![...hit].some((h) => h.endsWith(` ${k}`))),
    byStatus,
    findings,
    findingCount,
    loopMaxMs: Math.round(loopMax * 10) / 10,
    loopP99Ms: Math.round(loopP99 * 10) / 10,
    worstBlocks: worstBlocks.map(({ maxMs, during }) => ({ maxMs, during })),
    culprits,
    rssMaxBytes: rssMax,
    webSocket: ws,
    slow,
    canary,
    serverExit: target.exitReason,
  };
}

/** Sends the requests of the given blocks again, alone, each after a reset of the loop's histogram. */
async function replayBlocks(target: HostileTarget, blocks: { requests: { port: number; request: HostileRequest }[] }[], stallMs: number, progress: (line: string) => void): Promise<HostileReport['culprits']> {
  const seen = new Set<HostileRequest>();
  const out: HostileReport['culprits'] = [];
  const agent = new Agent({ keepAlive: false });
  // Requests with a body first, the kinds that carry the most work (arrays, nesting, long ids) ahead.
  const weight = (r: HostileRequest) => (r.body === undefined ? 0 : /array|nesting|characters/.test(r.kind) ? 2 : 1);
  const candidates = blocks.flatMap((b) => b.requests).sort((a, b) => weight(b.request) - weight(a.request));
  for (const { port, request } of candidates) {
    if (seen.has(request) || seen.size >= 12 || request.kind === 'WebSocket messages' || target.exitReason !== undefined) continue;
    seen.add(request);
    await target.resetLoop();
    const outcome = await send(port, request, agent, stallMs);
    // Let the loop finish what the request left (a reply written after the answer, a pass).
    await new Promise((r) => setTimeout(r, 100));
    const state = await target.state().catch(() => undefined);
    out.push({ request: `${request.method} ${request.route.url} (${request.kind})`, loopMaxMs: Math.round(state?.loop.maxMs ?? -1), ms: outcome.ms, status: outcome.status ?? outcome.error ?? '?' });
  }
  agent.destroy();
  if (out.length > 0) progress(`replayed ${out.length} request(s) of the worst loop blocks alone`);
  return out.sort((a, b) => b.loopMaxMs - a.loopMaxMs);
}

interface Outcome {
  sentBytes: number;
  status?: number;
  error?: string;
  excerpt?: string;
  bodyBytes: number;
  ms: number;
}

/** Bodies above this may be refused by closing the connection (after a 413), as servers do. */
const CLOSE_REFUSAL_BYTES = 1024 * 1024;

function judge(o: Outcome, method: string): string | undefined {
  if (o.error?.startsWith('not sent') === true) return undefined;
  // Node's parser refused an answer to HEAD that carried a body: Fastify's answer to a request
  // line it cannot take (414, 431) comes with a JSON body whatever the method. Its GET twin is
  // judged on the answer itself.
  if (method === 'HEAD' && o.error === 'HPE_INVALID_CONSTANT') return undefined;
  if ((o.error === 'EPIPE' || o.error === 'ECONNRESET') && o.sentBytes > CLOSE_REFUSAL_BYTES) return undefined;
  if (o.error === 'stalled') return 'no answer in time (stalled)';
  if (o.status === undefined) return `no answer: ${o.error}`;
  if (o.status >= 500) return `answered ${o.status}`;
  // HEAD answers carry no body by definition: their GET twin is checked for the message.
  if (o.status >= 400 && method !== 'HEAD' && (o.excerpt ?? '').trim().length < 3) return `answered ${o.status} with no message`;
  return undefined;
}

/**
 * Requests that, without authentication (issue 12), may rightly destroy every app, the canary's
 * too: Marathon's DELETE and PUT of the root group. Not sent: the canary must stay to tell
 * whether anything else disturbed running tasks.
 */
export function destroysEverything(r: HostileRequest): boolean {
  if (!r.route.url.startsWith('/v2/groups') || (r.method !== 'DELETE' && r.method !== 'PUT')) return false;
  const rest = r.path.split('?')[0]!.slice('/v2/groups'.length);
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return false;
  }
  // Resolved as Marathon resolves a path id: `.` stays, `..` climbs (`/x/..` is the root too).
  const resolved: string[] = [];
  for (const s of decoded.split('/')) {
    if (s === '..') resolved.pop();
    else if (s !== '' && s !== '.') resolved.push(s);
  }
  return resolved.length === 0;
}

function send(port: number, r: HostileRequest, agent: Agent, stallMs: number): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const body = r.body?.();
    const sentBytes = body?.length ?? 0;
    let complete = false;
    const finish = (o: Omit<Outcome, 'ms' | 'sentBytes'>) => {
      if (done) return;
      done = true;
      clearTimeout(stall);
      // A response read to its end leaves its kept-alive socket to the agent, which may already
      // have handed it to the next request: destroying this request then would reset that one.
      // Streams, stalls and errors are cut.
      if (!complete) req.destroy();
      resolve({ ...o, sentBytes, ms: Date.now() - started });
    };
    // As an authenticated client (the run's admin token; src/sim/bench-token.ts): the handlers
    // behind the gate are what is under attack. A request that names its own Authorization keeps it.
    const headers: Record<string, string | number> = { authorization: runAuthorization(), ...r.headers };
    if (body !== undefined) headers['content-length'] = body.length;
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({ host: '127.0.0.1', port, method: r.method, path: r.path, headers, agent });
    } catch (e) {
      // Node's client refused to send it (a character it does not allow): nothing reached the server.
      resolve({ error: `not sent: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, bodyBytes: 0, sentBytes, ms: 0 });
      return;
    }
    const stall = setTimeout(() => finish({ error: 'stalled', bodyBytes: 0 }), stallMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      // A kept-alive socket that the server closed just before it was reused (its idle timeout):
      // the request never reached the server. Sent again on a new connection, as clients do.
      if (req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE') && !done) {
        done = true;
        clearTimeout(stall);
        resolve(send(port, r, new Agent({ keepAlive: false }), stallMs));
        return;
      }
      finish({ error: e.code ?? e.message, bodyBytes: 0 });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      const status = res.statusCode ?? 0;
      const end = () => finish({ status, bodyBytes: bytes, excerpt: Buffer.concat(chunks).toString('utf8', 0, Math.min(bytes, 300)) });
      // Streams (SUBSCRIBE, events, follow) never end: their headers are the answer.
      const streamTimer = setTimeout(end, STREAM_READ_MS);
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (chunks.reduce((n, x) => n + x.length, 0) < 4096) chunks.push(c);
        if (bytes > READ_CAP_BYTES) end();
      });
      res.on('end', () => {
        clearTimeout(streamTimer);
        complete = true;
        end();
      });
      res.on('error', () => end());
      res.on('close', () => clearTimeout(streamTimer));
    });
    req.end(body);
  });
}

/**
 * Malformed messages on the agent stream (`/api/v1/agent`) and the CI executor stream: each
 * connection sends a few and is closed. A finding: the server not answering the upgrade, or gone.
 */
async function attackWebSockets(port: number, seed: number, inFlight: Map<string, unknown>, window: Map<string, unknown>, note: (f: Finding) => void): Promise<HostileReport['webSocket']> {
  const messages = fc.sample(
    fc.oneof(
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.constantFrom(
        '{"type":"REGISTER"}',
        '{"type":"REGISTER","agent_info":{"hostname":"x","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]}}',
        '{"type":"REGISTER","agent_info":{"hostname":"","resources":"x"},"agent_id":{"value":"../../x"}}',
        '{"type":"STATUS_UPDATE","framework_id":{"value":"x"},"status":{"task_id":{"value":"x"},"state":"TASK_RUNNING","uuid":"x"}}',
        '{"type":"HEARTBEAT"}',
        '{"type":"HELLO","executor":"x","token":"x"}',
        '{"type":"STEP_LOG","build":1,"step":-1,"text":"x"}',
        '{',
        '',
        'null',
        '[]',
        '{"type":{"toString":1}}',
        '['.repeat(100_000) + ']'.repeat(100_000),
        JSON.stringify({ type: 'REGISTER', agent_info: { hostname: 'h'.repeat(1_000_000) } }),
      ),
    ),
    { seed, numRuns: 120 },
  );
  const paths = ['/api/v1/agent', '/ci/v1/executor-stream'];
  let connections = 0;
  let sent = 0;
  let problems = 0;
  for (let c = 0; c < 20; c++) {
    const path = paths[c % paths.length]!;
    const batch = messages.slice((c * 6) % messages.length, ((c * 6) % messages.length) + 6);
    const label = `WebSocket ${path}`;
    const entry = { port, request: { route: { method: 'GET', url: path }, method: 'GET', path, headers: {}, body: undefined, kind: 'WebSocket messages' } };
    inFlight.set(label, entry);
    window.set(label, entry);
    const outcome = await new Promise<string | undefined>((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { maxPayload: 16 * 1024 * 1024, headers: { authorization: runAuthorization() } });
      const timer = setTimeout(() => {
        socket.terminate();
        resolve(undefined);
      }, 2_000);
      socket.on('open', () => {
        connections++;
        for (const m of batch) {
          socket.send(c % 5 === 4 ? Buffer.from([0xff, 0x00, 0xfe, ...Buffer.from(m)]) : m);
          sent++;
        }
      });
      socket.on('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        resolve(res.statusCode !== undefined && res.statusCode >= 500 ? `the upgrade answered ${res.statusCode}` : undefined);
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
    inFlight.delete(label);
    if (outcome !== undefined) {
      problems++;
      note({ what: outcome, method: 'GET', path, kind: 'WebSocket messages' });
    }
  }
  return { connections, messages: sent, findings: problems };
}

/**
 * Connections that send a request's headers and then one body byte a second: while they are
 * open, other clients must still be served (a ping answered within 2 s). Reports how many the
 * server closed on its own (its body timeout) before the part ended.
 */
async function slowConnections(port: number, o: HostileRunOptions, note: (f: Finding) => void): Promise<HostileReport['slow']> {
  const sockets: Socket[] = [];
  let closedByServer = 0;
  for (let i = 0; i < o.slowConnections; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => closedByServer++);
    s.write(`POST /v2/apps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    sockets.push(s);
  }
  const drip = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write(' ');
  }, 1_000);
  let pings = 0;
  let pingMax = 0;
  let problems = 0;
  const end = Date.now() + o.slowSeconds * 1000;
  while (Date.now() < end) {
    const t0 = Date.now();
    const ok = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status === 200).catch(() => false);
    pings++;
    pingMax = Math.max(pingMax, Date.now() - t0);
    if (!ok) {
      problems++;
      note({ what: 'a ping was not answered within 2 s while slow connections were open', method: 'GET', path: '/ping', kind: 'slow connections' });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  clearInterval(drip);
  const closedBeforeEnd = closedByServer;
  for (const s of sockets) s.destroy();
  return { connections: o.slowConnections, pingsDuring: pings, pingMaxMs: pingMax, closedByServer: closedBeforeEnd, findings: problems };
}
