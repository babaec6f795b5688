import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ManualClock } from '../src/core/clock.ts';
import { startAgentServer, type AgentServer } from '../src/server/agent-server.ts';
import { startAppsServer, type AppsServer } from '../src/server/apps-server.ts';
import { startCiServer } from '../src/server/ci-server.ts';
import { up, type Up } from '../src/server/up.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';
import { runAuthorization } from '../src/sim/bench-token.ts';

// Issue 11, finding 4: every HTTP server of Slipway (the master's, which `slipway up` also serves
// Marathon's and CI's APIs on; `slipway apps`; `slipway ci`; the agent's files server) cuts a
// client that sends its request too slowly, or nothing at all, and refuses connections past its
// limit with a log line, while the long-lived streams (the scheduler's SUBSCRIBE, Marathon's
// /v2/events, the WebSocket streams) outlive every one of these timeouts. The limits are small
// here so that the test takes seconds; the defaults are in src/lib/http-server-limits.ts.

const LIMITS = { requestTimeoutMs: 1500, headersTimeoutMs: 1000, idleTimeoutMs: 800, keepAliveTimeoutMs: 800, minBodyBytesPerSecond: 100_000 };
/** Generous: the limits plus Node's connection check (a tenth of the request timeout) and a loaded machine. */
const CUT_WITHIN_MS = 10_000;

/** A raw TCP client on `url`; `closed` resolves once the server closed the connection, with what it sent. */
function rawClient(url: string): { socket: Socket; connected: Promise<void>; closed: Promise<string>; received: () => string } {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(text)));
  const connected = new Promise<void>((resolve) => socket.on('connect', () => resolve()));
  return { socket, connected, closed, received: () => text };
}

/** Sends `head`, then one byte of a 1000-byte body every 100 ms (never idle, never done). */
function trickleBody(url: string, head: string): { closed: Promise<string>; stop(): void } {
  const c = rawClient(url);
  c.socket.write(`${head}\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`);
  const timer = setInterval(() => c.socket.write(' '), 100);
  void c.closed.then(() => clearInterval(timer));
  return { closed: c.closed, stop: () => (clearInterval(timer), c.socket.destroy()) };
}

/** Sends a request head one byte every 100 ms, never finishing it. */
function trickleHeaders(url: string): { closed: Promise<string>; stop(): void } {
  const c = rawClient(url);
  const head = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\nX-Slow: ${'a'.repeat(10_000)}`;
  let i = 0;
  const timer = setInterval(() => c.socket.write(head[i++ % head.length] as string), 100);
  void c.closed.then(() => clearInterval(timer));
  return { closed: c.closed, stop: () => (clearInterval(timer), c.socket.destroy()) };
}

/** Connects and sends nothing. */
function silent(url: string): { connected: Promise<void>; closed: Promise<string>; stop(): void } {
  const c = rawClient(url);
  return { connected: c.connected, closed: c.closed, stop: () => c.socket.destroy() };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('HTTP servers: slow and silent clients are cut, long streams are not', { timeout: 120_000 }, () => {
  let dir: string;
  let server: Up;
  let apps: AppsServer;
  let ci: { url: string; close(): Promise<void> };
  let agent: AgentServer;
  const logs: string[] = [];
  const log = (line: string) => void logs.push(line);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-http-hardening-'));
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'up'), containerizers: ['process'], resources: 'cpus:2;mem:2048;disk:2000;ports:[35000-35009]', httpLimits: LIMITS, log });
    apps = await startAppsServer({ masterUrl: server.master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'apps'), role: 'apps2', httpLimits: LIMITS, log });
    ci = await startCiServer({ masterUrl: server.master.url, host: '127.0.0.1', port: 0, dataDir: join(dir, 'ci'), role: 'ci2', httpLimits: LIMITS, log });
    agent = await startAgentServer({ masterUrl: server.master.url, workDir: join(dir, 'agent2'), containerizers: ['process'], resources: 'cpus:1;mem:512;disk:500;ports:[35010-35019]', httpLimits: LIMITS, log });
  });

  after(async () => {
    await agent?.close();
    await ci?.close();
    await apps?.close();
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes connections whose body or headers trickle in, or that send nothing, on every server', async () => {
    const servers: [string, string, string][] = [
      ['master (slipway up)', server.master.url, 'POST /api/v1/scheduler HTTP/1.1'],
      ['Marathon on slipway up', server.master.url, 'POST /v2/apps HTTP/1.1'],
      ['CI on slipway up', server.master.url, 'PUT /ci/v1/jobs/slow HTTP/1.1'],
      ['slipway apps', apps.url, 'POST /v2/apps HTTP/1.1'],
      ['slipway ci', ci.url, 'PUT /ci/v1/jobs/slow HTTP/1.1'],
      ['agent files (slipway up)', server.agent.url, 'POST /files/browse HTTP/1.1'],
      ['agent files', agent.url, 'POST /files/browse HTTP/1.1'],
    ];
    const clients = servers.flatMap(([name, url, head]) => [
      { what: `${name}: a body sent a byte every 100 ms`, ...trickleBody(url, head) },
      { what: `${name}: headers sent a byte every 100 ms`, ...trickleHeaders(url) },
      { what: `${name}: a connection that sends nothing`, ...silent(url) },
    ]);
    try {
      const started = Date.now();
      await Promise.all(clients.map((c) => within(c.closed, CUT_WITHIN_MS, `the server to close ${c.what}`)));
      // Not cut at once either: the body trickle lives until the request timeout.
      assert.ok(Date.now() - started >= LIMITS.requestTimeoutMs - 100, `cut after ${Date.now() - started} ms`);
    } finally {
      for (const c of clients) c.stop();
    }
    // Every server still serves a client that behaves.
    for (const [name, url, path] of [
      ['master', server.master.url, '/health'],
      ['apps', apps.url, '/v2/info'],
      ['ci', ci.url, '/ci/v1/jobs'],
      ['agent files', agent.url, '/files/browse?framework_id=f&task_id=t&path=x'],
    ] as const) {
      const r = await fetch(`${url}${path}`);
      await r.arrayBuffer();
      assert.ok(r.status < 500, `${name} answers ${path}: ${r.status}`);
    }
  });

  it('lets a body that keeps coming fast take longer than the request timeout', async () => {
    // 64 KiB every 100 ms for 2.5 s: past the request timeout, well above the minimum rate.
    const chunk = `${'x'.repeat(64 * 1024)}`;
    const total = chunk.length * 25;
    const c = rawClient(server.master.url);
    c.socket.write(`PUT /ci/v1/jobs/big HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`);
    let sent = 0;
    const timer = setInterval(() => {
      c.socket.write(chunk);
      if (++sent === 25) clearInterval(timer);
    }, 100);
    try {
      // The whole body went in, and the server answered it (not JSON: a 400), not a 408.
      const status = await waitUntil(() => /^HTTP\/1\.1 (\d+)/.exec(c.received())?.[1], 'the answer to the large body', CUT_WITHIN_MS);
      assert.equal(sent, 25);
      assert.equal(status, '400', c.received().slice(0, 300));
    } finally {
      clearInterval(timer);
      c.socket.destroy();
    }
  });

  it("keeps a scheduler subscription, Marathon's event stream, a task's log follow and the WebSocket streams open past the timeouts", async () => {
    const base = server.master.url;
    // A SUBSCRIBE that gets no offers (its role suppressed): silent until the master's first heartbeat (15 s).
    const sub = rawClient(base);
    const body = JSON.stringify({
      type: 'SUBSCRIBE',
      subscribe: { framework_info: { user: 'test', name: 'hardening', roles: ['*'], capabilities: [{ type: 'MULTI_ROLE' }] }, suppressed_roles: ['*'] },
    });
    sub.socket.write(`POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const subscribed = await waitUntil(() => /"type":"SUBSCRIBED".*?"framework_id":\{"value":"([^"]+)"\}/s.exec(sub.received()) ?? undefined, 'SUBSCRIBED');
    const frameworkId = subscribed[1] as string;
    const streamId = /mesos-stream-id: (\S+)/i.exec(sub.received())?.[1] as string;
    // Marathon's event stream: silent until its keep-alive (10 s) or an event.
    const sse = rawClient(base);
    sse.socket.write('GET /v2/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ' + runAuthorization() + '\r\nAccept: text/event-stream\r\n\r\n');
    await waitUntil(() => sse.received().startsWith('HTTP/1.1 200'), 'the event stream to open');
    // CI's executor stream on `slipway up` and on `slipway ci`: opened, nothing sent.
    const sockets = [base, ci.url].map((url) => {
      const ws = new WebSocket(`${url.replace('http:', 'ws:')}/ci/v1/executor-stream?executor=nobody&token=x`);
      const frames: string[] = [];
      ws.on('message', (d) => frames.push(String(d)));
      ws.on('error', () => {});
      return { ws, frames, opened: new Promise<void>((resolve) => ws.on('open', () => resolve())) };
    });
    await Promise.all(sockets.map((s) => within(s.opened, 5000, 'a WebSocket to open')));
    // A task's stdout followed through the master, which streams it from the agent's files server:
    // silent once the task has written its line.
    const app = await fetch(`${base}/v2/apps`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id: '/tail', cmd: 'echo tail-line; sleep 1000', cpus: 0.1, mem: 16, instances: 1 }) });
    assert.equal(app.status, 201, await app.text());
    const taskId = await waitUntil(async () => {
      const tasks = ((await (await fetch(`${base}/v2/apps/tail/tasks`)).json()) as { tasks?: { id: string; state?: string }[] }).tasks ?? [];
      return tasks.find((t) => t.state === 'TASK_RUNNING')?.id;
    }, 'the task of /tail to run', 30_000);
    const appsFrameworkId = ((await (await fetch(`${base}/v2/info`)).json()) as { frameworkId: string }).frameworkId;
    const tail = rawClient(base);
    tail.socket.write(`GET /files/follow?framework_id=${appsFrameworkId}&task_id=${encodeURIComponent(taskId)}&path=stdout HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\n\r\n`);
    await waitUntil(() => tail.received().includes('tail-line'), "the follow to give the task's line", 10_000);
    let tailClosed = false;
    void tail.closed.then(() => (tailClosed = true));
    let subClosed = false;
    let sseClosed = false;
    void sub.closed.then(() => (subClosed = true));
    void sse.closed.then(() => (sseClosed = true));

    // The clock: a trickled body and a silent connection, opened now, are cut once the request
    // and idle timeouts have passed: by then every stream has been quiet for longer than both.
    const slow = trickleBody(base, 'POST /v2/apps HTTP/1.1');
    const quiet = silent(base);
    try {
      await within(Promise.all([slow.closed, quiet.closed]), CUT_WITHIN_MS, 'the slow and the silent client to be cut');
    } finally {
      slow.stop();
      quiet.stop();
    }
    assert.equal(subClosed, false, 'the SUBSCRIBE stream is open');
    assert.equal(sseClosed, false, 'the event stream is open');
    assert.equal(tailClosed, false, 'the follow of the task\'s stdout is open');
    for (const s of sockets) assert.equal(s.ws.readyState, WebSocket.OPEN, 'the executor stream is open');

    // And each still carries what comes next.
    const reconcile = JSON.stringify({ type: 'RECONCILE', framework_id: { value: frameworkId }, reconcile: { tasks: [{ task_id: { value: 'no-such-task' } }] } });
    const r = await fetch(`${base}/api/v1/scheduler`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Mesos-Stream-Id': streamId }, body: reconcile });
    assert.equal(r.status, 202, await r.text());
    await waitUntil(() => sub.received().includes('no-such-task'), 'the UPDATE of the reconciliation on the SUBSCRIBE stream');
    const post = await fetch(`${base}/v2/apps`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id: '/hardening', cmd: 'sleep 1000', cpus: 0.1, mem: 16, instances: 0 }) });
    assert.equal(post.status, 201, await post.text());
    await waitUntil(() => /api_post_event[^\n]*\n[^\n]*"\/hardening"/.test(sse.received()), 'the api_post_event of /hardening on the event stream');
    for (const s of sockets) {
      s.ws.send(JSON.stringify({ type: 'HELLO', executorId: 'somebody-else' }));
      await waitUntil(() => s.frames.some((f) => f.includes('ERROR')), "the executor stream's answer");
      s.ws.close();
    }
    sub.socket.destroy();
    sse.socket.destroy();
    tail.socket.destroy();
  });

  it('refuses connections past its limit, says so in its log once per window, and serves again once the slow ones are cut', async () => {
    const clock = new ManualClock();
    const own: string[] = [];
    const limited = await startAppsServer({
      masterUrl: server.master.url,
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir, 'apps-limited'),
      role: 'apps3',
      httpLimits: { ...LIMITS, maxConnections: 4, clock },
      log: (line) => void own.push(line),
    });
    const held: ReturnType<typeof silent>[] = [];
    try {
      for (let i = 0; i < 4; i++) held.push(silent(limited.url));
      // Connections are accepted in the order they came: these four are the ones held.
      await within(Promise.all(held.map((c) => c.connected)), 5000, 'four connections held');
      const refused = [silent(limited.url), silent(limited.url), silent(limited.url)];
      await within(Promise.all(refused.map((c) => c.closed)), 5000, 'the connections past the limit to be closed');
      await waitUntil(() => own.filter((l) => l.includes('connection limit')).length >= 1, 'the log line of the limit');
      assert.equal(own.filter((l) => l.includes('connection limit')).length, 1, own.join('\n'));
      // The next window: one more refusal is said again, with how many were refused meanwhile.
      clock.advance(60_000);
      const more = silent(limited.url);
      await within(more.closed, 5000, 'one more refused connection to be closed');
      await waitUntil(() => own.filter((l) => l.includes('connection limit')).length === 2, 'a second log line');
      // The held ones are cut by the idle timeout, and a client is served again.
      await within(Promise.all(held.map((c) => c.closed)), CUT_WITHIN_MS, 'the idle held connections to be cut');
      const r = await fetch(`${limited.url}/v2/info`);
      assert.equal(r.status, 200, await r.text());
    } finally {
      for (const c of held) c.stop();
      await limited.close();
    }
  });
});
