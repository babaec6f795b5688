import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder, processesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';
import { runAuthorization } from '../src/sim/bench-token.ts';

// Issue 11 (hardening), CI's findings, on `slipway up` over real HTTP: artifact uploads checked
// before their body is read and streamed to disk with a limit (6), build numbers parsed strictly
// (7), the step a killed executor was running reported as it was (10), and user patterns that
// cannot stall the event loop (2).

/** The artifact limit of this test's server: large enough to see whether an upload is held in memory. */
const MAX_ARTIFACT_BYTES = 256 * 1024 * 1024;

/** A body of `total` bytes made as it is read (the sender holds 1 MiB at a time). */
function generatedBody(total: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(1024 * 1024).fill(0x61);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) controller.close();
      else {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        controller.enqueue(n === chunk.length ? chunk : chunk.subarray(0, n));
      }
    },
  });
}

/** Every file under `dir`, relative. */
function filesUnder(dir: string, rel = ''): string[] {
  let out: string[] = [];
  for (const e of (() => {
    try {
      return readdirSync(join(dir, rel), { withFileTypes: true });
    } catch {
      return [];
    }
  })()) {
    const path = rel === '' ? e.name : `${rel}/${e.name}`;
    out = e.isDirectory() ? [...out, ...filesUnder(dir, path)] : [...out, path];
  }
  return out;
}

/** Sends a request head (and no body) on a raw connection: the status line the server answers with, if it answers in `ms`. */
async function headOnly(url: string, head: string, ms: number): Promise<string | undefined> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  socket.write(head);
  try {
    return await waitUntil(() => /^HTTP\/1\.1 \d+ [^\r]*/.exec(text)?.[0], `an answer to ${head.split('\r')[0]}`, ms).catch(() => undefined);
  } finally {
    socket.destroy();
  }
}

describe('CI hardening on `slipway up`', { timeout: 120_000 }, () => {
  let dir: string;
  let server: Up;
  let base: string;
  let executor: { pid: number; id: string; token: string };
  let follow: { socket: Socket; text: string; closed: boolean };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-hardening-'));
    const repo = createTestRepo(join(dir, 'repo'));
    repo.commit({
      '.slipway.yml': ['steps:', '  - name: work', '    commands:', '      - echo started-work', '      - sleep 600', '  - name: after', '    commands:', '      - echo never', ''].join('\n'),
    });
    server = await up({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir, 'data'),
      containerizers: ['process'],
      resources: 'cpus:4;mem:8192;disk:20000;ports:[34100-34199]',
      ciMaxArtifactBytes: MAX_ARTIFACT_BYTES,
      // CI executors as root, explicitly: they clone the test's repositories, which are root's
      // (git refuses another user's repository: "dubious ownership"); other tasks run as nobody.
      ciUser: 'root',
      // Small, so that the log follow below is seen to outlive them.
      httpLimits: { requestTimeoutMs: 1500, headersTimeoutMs: 1000, idleTimeoutMs: 800, keepAliveTimeoutMs: 800 },
    });
    base = server.master.url;
    const put = await fetch(`${base}/ci/v1/jobs/slow`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ repo: repo.path }) });
    assert.equal(put.status, 201, await put.text());
    const trig = await fetch(`${base}/ci/v1/jobs/slow/builds`, { method: 'POST' });
    assert.equal(trig.status, 201, await trig.text());
    // The step runs, and its first line is in CI's log.
    await waitUntil(async () => (await (await fetch(`${base}/ci/v1/jobs/slow/builds/1/log?step=work`)).text()).includes('started-work'), 'the step to log', 60_000);
    const found = processesUnder(dir)
      .filter((p) => p.comm === 'node')
      .map((p) => ({ pid: p.pid, argv: readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0') }))
      .find((p) => p.argv.includes('ci-executor'));
    assert.ok(found !== undefined, 'the executor process');
    // The launch token is in the task's environment as the process started (issue 12: no longer on its command line).
    const environ = readFileSync(`/proc/${found.pid}/environ`, 'utf8').split('\0');
    const token = environ.find((v) => v.startsWith('SLIPWAY_EXECUTOR_TOKEN='))?.slice('SLIPWAY_EXECUTOR_TOKEN='.length);
    assert.ok(token !== undefined, 'the launch token in the executor\'s initial environment');
    executor = { pid: found.pid, id: found.argv[found.argv.indexOf('--id') + 1] as string, token };
    // A tail of the build's log: silent while the step sleeps, until the build ends.
    const { hostname, port } = new URL(base);
    follow = { socket: connect({ host: hostname, port: Number(port) }), text: '', closed: false };
    const f = follow;
    f.socket.setEncoding('utf8');
    f.socket.on('data', (d: string) => (f.text += d));
    f.socket.on('error', () => {});
    f.socket.on('close', () => (f.closed = true));
    f.socket.write('GET /ci/v1/jobs/slow/builds/1/log?follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ' + runAuthorization() + '\r\n\r\n');
    await waitUntil(() => f.text.includes('started-work'), 'the log follow to give the first line');
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const artifactsDir = () => join(dir, 'data', 'ci', 'artifacts');
  const upload = (path: string) => `${base}/ci/v1/jobs/slow/builds/1/artifacts/${path}?executor=${encodeURIComponent(executor.id)}&token=${encodeURIComponent(executor.token)}`;

  describe('artifact uploads (finding 6)', () => {
    it('answers an upload to an unknown job or build, with a wrong token or a bad name, before its body is sent', async () => {
      const heads: [string, RegExp][] = [
        [`/ci/v1/jobs/nope/builds/1/artifacts/a.txt?executor=${executor.id}&token=${executor.token}`, /^HTTP\/1\.1 404/],
        [`/ci/v1/jobs/slow/builds/7/artifacts/a.txt?executor=${executor.id}&token=${executor.token}`, /^HTTP\/1\.1 404/],
        [`/ci/v1/jobs/slow/builds/1/artifacts/a.txt?executor=${executor.id}&token=wrong`, /^HTTP\/1\.1 403/],
        ['/ci/v1/jobs/slow/builds/1/artifacts/a.txt', /^HTTP\/1\.1 403/],
        [`/ci/v1/jobs/slow/builds/1/artifacts/..%2F..%2F..%2Fescape.txt?executor=${executor.id}&token=${executor.token}`, /^HTTP\/1\.1 400/],
        // Declared larger than the limit: refused at once.
        [`/ci/v1/jobs/slow/builds/1/artifacts/big.bin?executor=${executor.id}&token=${executor.token}`, /^HTTP\/1\.1 413/],
      ];
      for (const [path, expected] of heads) {
        // 1 GiB announced, nothing sent: an answer can only come from checks made before the body.
        const answer = await headOnly(base, `PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${runAuthorization()}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 ** 3}\r\n\r\n`, 5000);
        assert.match(answer ?? 'no answer in 5 s', expected, path);
      }
      assert.deepEqual(filesUnder(artifactsDir()), []);
    });

    it('streams a large upload to disk without holding it in memory', async () => {
      const size = 200 * 1024 * 1024;
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      try {
        const r = await fetch(upload('out/large.bin'), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: generatedBody(size), duplex: 'half' } as RequestInit);
        assert.equal(r.status, 201, await r.text());
      } finally {
        clearInterval(sampler);
      }
      assert.equal(statSync(join(artifactsDir(), 'slow', '1', 'out', 'large.bin')).size, size);
      // Client and server share this process: neither holds the body (it was buffered whole before).
      assert.ok(peak - before < 100 * 1024 * 1024, `the process grew by ${Math.round((peak - before) / 1024 / 1024)} MiB during a 200 MiB upload`);
      rmSync(join(artifactsDir(), 'slow', '1', 'out', 'large.bin'));
    });

    it('streams an upload to its file (0600), and refuses one past the limit with 413, leaving nothing of it', async () => {
      const ok = await fetch(upload('out/result.txt'), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: 'artifact-content\n' });
      assert.equal(ok.status, 201, await ok.text());
      const file = join(artifactsDir(), 'slow', '1', 'out', 'result.txt');
      assert.equal(readFileSync(file, 'utf8'), 'artifact-content\n');
      assert.equal(statSync(file).mode & 0o777, 0o600);

      // Chunked (no length said): cut when it passes the limit.
      const body = generatedBody(MAX_ARTIFACT_BYTES + 64 * 1024 * 1024);
      const big = await fetch(upload('out/big.bin'), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body, duplex: 'half' } as RequestInit).catch((e: unknown) => e as Error);
      if (big instanceof Error) throw big;
      assert.equal(big.status, 413, await big.text());
      await waitUntil(() => filesUnder(artifactsDir()).length === 1, 'nothing but the first artifact under the artifacts dir', 5000).catch(() => {
        throw new Error(`left behind: ${filesUnder(artifactsDir()).join(', ')}`);
      });
    });
  });

  describe('build numbers (finding 7)', () => {
    const bad = ['9007199254740993', '99999999999999999999', '1e3', '0x10', '01', '-1', '0', '1.0', '%201', '1%20'];

    it('answers 404 with a message on the Jenkins API for a build number that is not one, never 500', async () => {
      for (const n of bad) {
        for (const tail of ['api/json', 'consoleText', 'buildNumber', 'logText/progressiveText', 'artifact/a.txt']) {
          const r = await fetch(`${base}/jenkins/job/slow/${n}/${tail}`);
          const text = await r.text();
          assert.equal(r.status, 404, `${n}/${tail}: ${r.status} ${text}`);
          assert.ok(text.length > 0, 'a message');
        }
        const stop = await fetch(`${base}/jenkins/job/slow/${n}/stop`, { method: 'POST', redirect: 'manual' });
        assert.equal(stop.status, 404, `${n}/stop`);
      }
      for (const id of ['9007199254740993', '99999999999999999', '1e3', '-1']) {
        const r = await fetch(`${base}/jenkins/queue/item/${id}/api/json`);
        assert.equal(r.status, 404, `queue item ${id}: ${r.status} ${await r.text()}`);
      }
    });

    it('answers 400 with a message on the CI API for a build number, limit or start that is not a whole number', async () => {
      for (const n of bad) {
        for (const [method, tail] of [['GET', ''], ['GET', '/log'], ['GET', '/artifacts/a.txt'], ['POST', '/cancel'], ['POST', '/rebuild']] as const) {
          const r = await fetch(`${base}/ci/v1/jobs/slow/builds/${n}${tail}`, { method });
          const body = (await r.json()) as { code?: string; message?: string };
          assert.equal(r.status, 400, `${method} ${n}${tail}: ${r.status} ${JSON.stringify(body)}`);
          assert.ok((body.message ?? '').length > 0, 'a message');
        }
      }
      for (const q of ['limit=1e3', 'limit=0x10', 'before=9007199254740993', 'limit=', 'before=-1']) {
        const r = await fetch(`${base}/ci/v1/jobs/slow/builds?${q}`);
        assert.equal(r.status, 400, `?${q}: ${r.status} ${await r.text()}`);
      }
      const r = await fetch(`${base}/jenkins/job/slow/1/logText/progressiveText?start=1e3`);
      assert.equal(r.status, 400, await r.text());
    });
  });

  describe('patterns (finding 2)', () => {
    it('refuses an executor constraint whose regular expression can backtrack catastrophically, at once', async () => {
      for (const value of ['(a+)+b', '(a|a)*b', '(a*)*b', '(.*a){20}', '(\\w+\\s?)+$', '(a|aa)+$']) {
        const started = performance.now();
        const r = await fetch(`${base}/ci/v1/executors/risky`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ constraints: [['hostname', 'LIKE', value]] }) });
        const text = await r.text();
        assert.ok(performance.now() - started < 1000, `answered in ${performance.now() - started} ms`);
        assert.equal(r.status, 422, `${value}: ${r.status} ${text}`);
        assert.match(text, /backtrack/);
      }
      const fine = await fetch(`${base}/ci/v1/executors/fine`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ constraints: [['hostname', 'LIKE', 'build-[0-9]+\\.example\\.com|ci.*']] }) });
      assert.equal(fine.status, 201, await fine.text());
    });
  });

  describe('a killed executor (finding 10)', () => {
    it('reports the step it was running as error, "executor lost", with the log it had streamed', async () => {
      // Past the server's request and idle timeouts (a trickled body and a silent connection are
      // cut), the log follow is still open: the server owes its bytes.
      const { hostname, port } = new URL(base);
      const silent = connect({ host: hostname, port: Number(port) });
      silent.on('error', () => {});
      const trickle = connect({ host: hostname, port: Number(port) });
      trickle.on('error', () => {});
      trickle.write('PUT /ci/v1/jobs/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ' + runAuthorization() + '\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
      const drip = setInterval(() => trickle.write(' '), 100);
      try {
        let cut = 0;
        for (const s of [silent, trickle]) s.on('close', () => cut++);
        await waitUntil(() => cut === 2, 'the silent and the trickling connection to be cut', 10_000);
      } finally {
        clearInterval(drip);
      }
      assert.equal(follow.closed, false, 'the log follow outlives the timeouts');

      process.kill(executor.pid, 'SIGKILL');
      const ended = await waitUntil(
        async () => {
          const b = (await (await fetch(`${base}/ci/v1/jobs/slow/builds/1`)).json()) as { status: string; error?: string; steps: { name: string; status: string; error?: string; startedAt?: number; finishedAt?: number; durationMs?: number }[] };
          return b.status !== 'running' ? b : undefined;
        },
        'the build to end',
        30_000,
      );
      assert.equal(ended.status, 'error', JSON.stringify(ended));
      const [work, afterStep] = ended.steps;
      assert.equal(work?.name, 'work');
      assert.equal(work.status, 'error', JSON.stringify(work));
      assert.match(work.error ?? '', /^executor lost: /);
      assert.ok(work.startedAt !== undefined && work.finishedAt !== undefined && work.finishedAt >= work.startedAt, JSON.stringify(work));
      assert.equal(work.durationMs, work.finishedAt - work.startedAt);
      assert.equal(afterStep?.status, 'skipped', JSON.stringify(afterStep));
      const log = await (await fetch(`${base}/ci/v1/jobs/slow/builds/1/log?step=work`)).text();
      assert.match(log, /started-work/);
      const whole = await (await fetch(`${base}/ci/v1/jobs/slow/builds/1/log`)).text();
      assert.match(whole, /started-work/);
      // The follow ends with the build.
      await waitUntil(() => follow.closed, 'the log follow to end with the build', 10_000);
      assert.match(follow.text, /started-work/);
    });
  });
});
