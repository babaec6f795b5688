import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ManualClock, SystemClock } from '../core/clock.ts';
import type { Clock } from '../core/clock.ts';
import type { HealthCheck } from '../protocol/mesos.ts';
import { HealthChecker, InvalidHealthCheck } from './health-checker.ts';

// Time is a ManualClock almost everywhere: the test moves it to when a check is due, then waits
// (with a deadline) for the probe's real I/O against real servers and processes on 127.0.0.1.

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Harness {
  clock: ManualClock;
  checker: HealthChecker;
  health: Array<[boolean, string]>;
  kills: string[];
  /** Moves the clock by `ms` (when the next check is due) and waits for that check to finish. */
  check(ms: number): Promise<void>;
}

function harness(
  t: TestContext,
  check: HealthCheck,
  extra: { sandbox?: string; env?: Record<string, string>; startedAt?: number; clock?: ManualClock } = {},
): Harness {
  const clock = extra.clock ?? new ManualClock(0);
  const health: Array<[boolean, string]> = [];
  const kills: string[] = [];
  const checker = new HealthChecker(check, {
    clock,
    sandbox: extra.sandbox ?? os.tmpdir(),
    env: extra.env ?? {},
    startedAt: extra.startedAt ?? clock.now(),
    onHealthChanged: (healthy, message) => health.push([healthy, message]),
    onFailureThreshold: (message) => kills.push(message),
  });
  t.after(() => checker.stop());
  return {
    clock,
    checker,
    health,
    kills,
    async check(ms: number) {
      const before = checker.status().checks;
      clock.advance(ms);
      await waitFor(() => checker.status().checks > before, `check #${before + 1} to finish`);
    },
  };
}

/** An HTTP server on 127.0.0.1 with a free port, closed after the test. */
async function serve(t: TestContext, handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

/** A server whose status the test sets before each check. */
async function statusServer(t: TestContext): Promise<{ port: number; status: { code: number } }> {
  const status = { code: 200 };
  const port = await serve(t, (_req, res) => {
    res.statusCode = status.code;
    res.end();
  });
  return { port, status };
}

/** A port on 127.0.0.1 where nothing listens (taken, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function sandbox(t: TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-health-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Whether `pid` still runs. A zombie counts as gone: it runs no more, only waits for a reaper. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Fast timings: checks every 100 ms of clock time, no grace unless a test asks for one. */
const FAST = { delay_seconds: 1, interval_seconds: 0.1, timeout_seconds: 0.5, grace_period_seconds: 0 } as const;

describe('HealthChecker', () => {
  describe('HTTP checks', () => {
    it('reports healthy when the task answers 200', async (t) => {
      const seen: string[] = [];
      const port = await serve(t, (req, res) => {
        seen.push(`${req.method} ${req.url}`);
        res.end('ok');
      });
      const h = harness(t, { type: 'HTTP', ...FAST, http: { port, path: '/health' } });
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(seen, ['GET /health']);
      assert.equal(h.health.length, 1);
      assert.equal(h.health[0]![0], true);
    });

    it('reports healthy on a 302 without following the redirect', async (t) => {
      const seen: string[] = [];
      const port = await serve(t, (req, res) => {
        seen.push(req.url ?? '');
        if (req.url === '/') res.writeHead(302, { location: '/broken' }).end();
        else res.writeHead(500).end();
      });
      const h = harness(t, { type: 'HTTP', ...FAST, http: { port } });
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true]);
      assert.deepEqual(seen, ['/']);
    });

    it('reports unhealthy when the task answers 500', async (t) => {
      const { port, status } = await statusServer(t);
      status.code = 500;
      const h = harness(t, { type: 'HTTP', ...FAST, http: { port } });
      h.checker.start();
      await h.check(1000);
      assert.equal(h.health.length, 1);
      assert.equal(h.health[0]![0], false);
      assert.match(h.health[0]![1], /500/);
    });

    it('reports unhealthy when nothing listens on the port', async (t) => {
      const port = await freePort();
      const h = harness(t, { type: 'HTTP', ...FAST, http: { port } });
      h.checker.start();
      await h.check(1000);
      assert.equal(h.health.length, 1);
      assert.equal(h.health[0]![0], false);
      assert.match(h.health[0]![1], /ECONNREFUSED/);
    });

    it('fails a check that gets no answer within the timeout, and drops the connection', async (t) => {
      let requests = 0;
      let closed = 0;
      const port = await serve(t, (req) => {
        requests++;
        req.socket.on('close', () => closed++);
      });
      const h = harness(t, { type: 'HTTP', ...FAST, timeout_seconds: 0.2, http: { port } });
      h.checker.start();
      h.clock.advance(1000);
      await waitFor(() => requests === 1, 'the request to reach the server');
      assert.equal(h.checker.status().checks, 0, 'a check without an answer is still in flight');
      await h.check(200);
      assert.deepEqual(h.health, [[false, 'HTTP health check timed out after 0.2s']]);
      await waitFor(() => closed === 1, 'the checker to drop the connection');
    });
  });

  describe('TCP checks', () => {
    it('reports healthy when a connection is established', async (t) => {
      let connections = 0;
      const server = net.createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const { port } = server.address() as net.AddressInfo;
      const h = harness(t, { type: 'TCP', ...FAST, tcp: { port } });
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true]);
      await waitFor(() => connections === 1, 'the server to see the connection');
    });

    it('reports unhealthy when the connection is refused', async (t) => {
      const port = await freePort();
      const h = harness(t, { type: 'TCP', ...FAST, tcp: { port } });
      h.checker.start();
      await h.check(1000);
      assert.equal(h.health.length, 1);
      assert.equal(h.health[0]![0], false);
      assert.match(h.health[0]![1], /ECONNREFUSED/);
    });
  });

  describe('COMMAND checks', () => {
    it('runs the command in the sandbox with the task environment, healthy on exit 0 only', async (t) => {
      const dir = sandbox(t);
      const h = harness(
        t,
        { type: 'COMMAND', ...FAST, command: { value: 'test -f "$MARKER"' } },
        { sandbox: dir, env: { MARKER: 'marker' } },
      );
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(h.health, [[false, 'COMMAND health check failed: exited with status 1']]);
      writeFileSync(path.join(dir, 'marker'), '');
      await h.check(100);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [false, true]);
    });

    it('adds the check command\'s own variables to the task environment', async (t) => {
      const h = harness(
        t,
        {
          type: 'COMMAND',
          ...FAST,
          command: { value: 'test "$A$B" = task-check', environment: { variables: [{ name: 'B', value: '-check' }] } },
        },
        { env: { A: 'task', B: 'overridden' } },
      );
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true]);
    });

    it('runs value with arguments as argv, without a shell, when shell is false', async (t) => {
      const dir = sandbox(t);
      writeFileSync(path.join(dir, 'marker'), '');
      const h = harness(
        t,
        { type: 'COMMAND', ...FAST, command: { shell: false, value: 'test', arguments: ['test', '-f', 'marker'] } },
        { sandbox: dir },
      );
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true]);
    });

    it('kills the whole process group of a command that outlives the timeout', async (t) => {
      const dir = sandbox(t);
      const pidFile = path.join(dir, 'sleep.pid');
      // The sleep is a grandchild of the checker: only a process-group kill reaches it.
      const h = harness(
        t,
        { type: 'COMMAND', ...FAST, timeout_seconds: 0.2, command: { value: 'sleep 5 & echo $! > sleep.pid; wait' } },
        { sandbox: dir },
      );
      h.checker.start();
      h.clock.advance(1000);
      await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 'the command to start');
      const pid = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(running(pid));
      await h.check(200);
      assert.deepEqual(h.health, [[false, 'COMMAND health check timed out after 0.2s']]);
      await waitFor(() => !running(pid), `sleep (pid ${pid}) to be killed`);
    });

    it('fails a check whose program cannot be run', async (t) => {
      const h = harness(t, { type: 'COMMAND', ...FAST, command: { shell: false, value: '/nonexistent/probe' } });
      h.checker.start();
      await h.check(1000);
      assert.equal(h.health.length, 1);
      assert.equal(h.health[0]![0], false);
      assert.match(h.health[0]![1], /ENOENT/);
    });
  });

  describe('scheduling and reporting', () => {
    it('runs the first check after delay_seconds and the next ones interval_seconds after each ends', async (t) => {
      let requests = 0;
      const port = await serve(t, (_req, res) => {
        requests++;
        res.end();
      });
      const h = harness(t, { type: 'HTTP', http: { port } }); // Mesos defaults: delay 15 s, interval 10 s
      h.checker.start();
      h.clock.advance(14_999);
      assert.equal(h.checker.status().checks, 0);
      await h.check(1);
      assert.equal(requests, 1);
      h.clock.advance(9_999);
      assert.equal(requests, 1);
      await h.check(1);
      assert.equal(requests, 2);
    });

    it('reports health on the first result and then only when it changes', async (t) => {
      const { port, status } = await statusServer(t);
      const h = harness(t, { type: 'HTTP', ...FAST, consecutive_failures: 10, http: { port } });
      h.checker.start();
      await h.check(1000);
      await h.check(100);
      status.code = 500;
      await h.check(100);
      await h.check(100);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true, false]);
      status.code = 200;
      await h.check(100);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true, false, true]);
      assert.equal(h.checker.status().checks, 5);
    });

    it('ignores failures within the grace period until the first success, and counts every failure after it', async (t) => {
      const { port, status } = await statusServer(t);
      status.code = 500;
      const h = harness(t, { type: 'HTTP', ...FAST, grace_period_seconds: 5, consecutive_failures: 2, http: { port } });
      h.checker.start();
      await h.check(1000);
      await h.check(100);
      await h.check(100);
      assert.equal(h.health.length, 0, 'failures in the grace period are not reported');
      assert.equal(h.checker.status().consecutiveFailures, 0);
      status.code = 200;
      await h.check(100);
      status.code = 500;
      await h.check(100); // still within 5 s of the start, but after a success: it counts
      assert.deepEqual(h.health.map(([healthy]) => healthy), [true, false]);
      assert.deepEqual(h.kills, []);
      await h.check(100);
      assert.equal(h.kills.length, 1);
    });

    it('counts failures once the grace period is over, even without a success', async (t) => {
      const port = await freePort();
      const h = harness(t, { type: 'TCP', ...FAST, grace_period_seconds: 1.5, tcp: { port } });
      h.checker.start();
      await h.check(1000); // at 1.0 s
      await h.check(500); // at 1.5 s: the grace period includes its end
      assert.equal(h.health.length, 0);
      await h.check(100); // at 1.6 s
      assert.deepEqual(h.health.map(([healthy]) => healthy), [false]);
      assert.equal(h.checker.status().consecutiveFailures, 1);
    });

    it('measures the grace period from the task start, not from the checker start', async (t) => {
      const port = await freePort();
      const clock = new ManualClock(10_000);
      const h = harness(t, { type: 'TCP', ...FAST, grace_period_seconds: 5, tcp: { port } }, { clock, startedAt: 0 });
      h.checker.start();
      await h.check(1000);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [false]);
    });

    it('asks for the kill after consecutive_failures failures in a row, not before, then stops checking', async (t) => {
      const { port, status } = await statusServer(t);
      const h = harness(t, { type: 'HTTP', ...FAST, consecutive_failures: 3, http: { port } });
      status.code = 500;
      h.checker.start();
      await h.check(1000);
      await h.check(100);
      status.code = 200; // a success resets the count
      await h.check(100);
      status.code = 500;
      await h.check(100);
      await h.check(100);
      assert.deepEqual(h.kills, []);
      assert.equal(h.checker.status().consecutiveFailures, 2);
      await h.check(100);
      assert.equal(h.kills.length, 1);
      assert.match(h.kills[0]!, /^Task killed after 3 consecutive health check failures/);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [false, true, false]);
      assert.equal(h.clock.pending(), 0, 'no check is scheduled after the threshold');
    });

    it('never asks for a kill when consecutive_failures is 0', async (t) => {
      const port = await freePort();
      const h = harness(t, { type: 'TCP', ...FAST, consecutive_failures: 0, tcp: { port } });
      h.checker.start();
      await h.check(1000);
      for (let i = 0; i < 9; i++) await h.check(100);
      assert.equal(h.checker.status().consecutiveFailures, 10);
      assert.deepEqual(h.kills, []);
      assert.deepEqual(h.health.map(([healthy]) => healthy), [false]);
    });

    it('runs on the system clock too', async (t) => {
      let connections = 0;
      const server = net.createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const { port } = server.address() as net.AddressInfo;
      const clock: Clock = new SystemClock();
      const health: boolean[] = [];
      const checker = new HealthChecker(
        { type: 'TCP', delay_seconds: 0, interval_seconds: 0.02, timeout_seconds: 1, tcp: { port } },
        {
          clock,
          sandbox: os.tmpdir(),
          env: {},
          startedAt: clock.now(),
          onHealthChanged: (healthy) => health.push(healthy),
          onFailureThreshold: () => assert.fail('no kill expected'),
        },
      );
      t.after(() => checker.stop());
      checker.start();
      await waitFor(() => checker.status().checks >= 3, 'three checks');
      assert.deepEqual(health, [true]);
      assert.ok(connections >= 3);
    });
  });

  describe('stop()', () => {
    it('aborts a command in flight and silences every callback', async (t) => {
      const dir = sandbox(t);
      const pidFile = path.join(dir, 'sleep.pid');
      const h = harness(
        t,
        { type: 'COMMAND', ...FAST, consecutive_failures: 1, command: { value: 'sleep 5 & echo $! > sleep.pid; wait' } },
        { sandbox: dir },
      );
      h.checker.start();
      h.clock.advance(1000);
      await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 'the command to start');
      const pid = Number(readFileSync(pidFile, 'utf8'));
      h.checker.stop();
      await waitFor(() => !running(pid), `sleep (pid ${pid}) to be killed`);
      assert.equal(h.clock.pending(), 0);
      h.clock.advance(60_000);
      // Give the killed command's exit a moment to reach the checker, had it still listened.
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(h.health, []);
      assert.deepEqual(h.kills, []);
      assert.equal(h.checker.status().checks, 0);
    });

    it('aborts an HTTP request in flight', async (t) => {
      let requests = 0;
      let closed = 0;
      const port = await serve(t, (req) => {
        requests++;
        req.socket.on('close', () => closed++);
      });
      const h = harness(t, { type: 'HTTP', ...FAST, http: { port } });
      h.checker.start();
      h.clock.advance(1000);
      await waitFor(() => requests === 1, 'the request to reach the server');
      h.checker.stop();
      await waitFor(() => closed === 1, 'the connection to close');
      h.clock.advance(60_000);
      assert.deepEqual(h.health, []);
      assert.equal(h.checker.status().checks, 0);
    });

    it('cancels the scheduled checks', async (t) => {
      const port = await freePort();
      const h = harness(t, { type: 'TCP', ...FAST, tcp: { port } });
      h.checker.start();
      await h.check(1000);
      h.checker.stop();
      assert.equal(h.clock.pending(), 0);
      h.clock.advance(60_000);
      assert.equal(h.checker.status().checks, 1);
      assert.equal(h.health.length, 1);
    });
  });

  describe('validation', () => {
    const options = {
      clock: new ManualClock(0),
      sandbox: os.tmpdir(),
      env: {},
      startedAt: 0,
      onHealthChanged: () => undefined,
      onFailureThreshold: () => undefined,
    };
    const invalid: Array<[string, HealthCheck, RegExp]> = [
      ['an HTTP check without http.port', { type: 'HTTP' }, /http\.port/],
      ['a TCP check without tcp.port', { type: 'TCP', http: { port: 80 } }, /tcp\.port/],
      ['a COMMAND check without command.value', { type: 'COMMAND', command: { shell: true } }, /command\.value/],
      ['an HTTP check with an ftp scheme', { type: 'HTTP', http: { port: 80, scheme: 'ftp' } }, /scheme/],
      ['an HTTP check whose path lacks the leading slash', { type: 'HTTP', http: { port: 80, path: 'health' } }, /path/],
      ['a negative interval', { type: 'TCP', interval_seconds: -1, tcp: { port: 80 } }, /interval_seconds/],
    ];
    for (const [what, check, message] of invalid) {
      it(`rejects ${what}`, () => {
        assert.throws(
          () => new HealthChecker(check, options),
          (err: unknown) => err instanceof InvalidHealthCheck && err.code === 'INVALID_HEALTH_CHECK' && message.test(err.message),
        );
      });
    }
  });
});
