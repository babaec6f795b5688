import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../core/clock.ts';
import { Resources } from '../core/resources.ts';
import { Agent } from './agent.ts';
import { buildFilesApp } from './files-app.ts';
import { pathSegment } from './path-segment.ts';

/** The files server on a sandbox made by hand: `ended` says whether its task has ended. */
async function filesOn(dir: string, ended = true): Promise<FastifyInstance> {
  return buildFilesApp({ sandboxOf: () => ({ dir, ended }) });
}

/** Rejections nobody handled while a test ran: each would end an agent process. */
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => void unhandled.push(e);

describe('the agent files server', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'files-'));
    process.on('unhandledRejection', onUnhandled);
  });
  after(() => {
    process.off('unhandledRejection', onUnhandled);
    rmSync(root, { recursive: true, force: true });
  });

  it('maps ids like .. to their own sandbox, so that they never reach the work dir or its parent', async () => {
    const work = join(root, 'work');
    const agent = new Agent({ masterUrl: 'http://127.0.0.1:1', workDir: work, hostname: 'h', resources: Resources.parse('cpus:1;mem:64'), attributes: [], containerizers: [], clock: new SystemClock() });
    writeFileSync(join(work, 'secret'), 'work dir secret');
    writeFileSync(join(root, 'secret'), 'parent secret');
    const app = await buildFilesApp(agent);
    for (const [fw, task] of [['..', '..'], ['.', '.'], ['..', 'sandboxes'], ['../..', 'x'], ['a/../..', 'b']] as const) {
      const r = await app.inject({ method: 'GET', url: `/files/read?${new URLSearchParams({ framework_id: fw, task_id: task, path: 'secret' })}` });
      assert.equal(r.statusCode, 404, `${fw} ${task}: ${r.body}`);
    }
    // A sandbox made for the id `..` is its own directory, and `..` in a path stays inside it.
    const sandbox = join(work, 'sandboxes', pathSegment('..'), pathSegment('..'));
    mkdirSync(sandbox, { recursive: true });
    writeFileSync(join(sandbox, 'stdout'), 'mine');
    const own = await app.inject({ method: 'GET', url: '/files/read?framework_id=..&task_id=..' });
    assert.equal(own.statusCode, 200, own.body);
    assert.equal(own.json<{ data: string }>().data, 'mine');
    for (const path of ['../../../secret', '../../../../secret', '/etc/passwd']) {
      const r = await app.inject({ method: 'GET', url: `/files/read?framework_id=..&task_id=..&path=${encodeURIComponent(path)}` });
      assert.equal(r.statusCode, 400, `${path}: ${r.body}`);
    }
    await app.close();
  });

  it('refuses a symbolic link out of the sandbox, and serves one that stays inside', async () => {
    const sandbox = mkdtempSync(join(root, 'sb-'));
    writeFileSync(join(root, 'outside'), 'not yours');
    writeFileSync(join(sandbox, 'stdout'), 'log');
    symlinkSync('/etc', join(sandbox, 'hostetc'));
    symlinkSync(join(root, 'outside'), join(sandbox, 'out-file'));
    symlinkSync('..', join(sandbox, 'up'));
    symlinkSync('stdout', join(sandbox, 'log-link'));
    const app = await filesOn(sandbox);
    for (const action of ['read', 'download', 'follow']) {
      for (const path of ['hostetc/passwd', 'out-file', 'up/outside']) {
        const r = await app.inject({ method: 'GET', url: `/files/${action}?framework_id=f&task_id=t&path=${path}` });
        assert.equal(r.statusCode, 400, `${action} ${path}: ${r.body}`);
        assert.doesNotMatch(r.body, /root:|not yours/);
      }
    }
    const browse = await app.inject({ method: 'GET', url: '/files/browse?framework_id=f&task_id=t&path=hostetc' });
    assert.equal(browse.statusCode, 400, browse.body);
    const inside = await app.inject({ method: 'GET', url: '/files/read?framework_id=f&task_id=t&path=log-link' });
    assert.equal(inside.statusCode, 200, inside.body);
    assert.equal(inside.json<{ data: string }>().data, 'log');
    await app.close();
  });

  it('answers 400 for a directory or a FIFO on read, download and follow, and the process survives', async () => {
    const sandbox = mkdtempSync(join(root, 'sb-'));
    mkdirSync(join(sandbox, 'sub'));
    execFileSync('mkfifo', [join(sandbox, 'pipe')]);
    for (const ended of [true, false]) {
      const app = await filesOn(sandbox, ended);
      for (const action of ['read', 'download', 'follow']) {
        for (const path of ['sub', 'pipe', '.']) {
          const r = await app.inject({ method: 'GET', url: `/files/${action}?framework_id=f&task_id=t&path=${path}` });
          assert.equal(r.statusCode, 400, `${action} ${path}: ${r.body}`);
          assert.match(r.body, /not a regular file/);
        }
      }
      await app.close();
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, []);
  });

  it('answers 404 for a missing file, and ends a follow whose file went away', async () => {
    const sandbox = mkdtempSync(join(root, 'sb-'));
    const app = await filesOn(sandbox, true);
    for (const action of ['read', 'download', 'follow']) {
      const r = await app.inject({ method: 'GET', url: `/files/${action}?framework_id=f&task_id=t&path=nothing` });
      assert.equal(r.statusCode, 404, `${action}: ${r.body}`);
    }
    await app.close();

    // A running task: follow waits for the file, streams it, and survives it being replaced by a directory.
    let ended = false;
    const live = await buildFilesApp({ sandboxOf: () => ({ dir: sandbox, ended }) });
    await live.listen({ host: '127.0.0.1', port: 0 });
    const address = live.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const responded = fetch(`http://127.0.0.1:${port}/files/follow?framework_id=f&task_id=t&path=log`);
    setTimeout(() => writeFileSync(join(sandbox, 'log'), 'first\n'), 100);
    setTimeout(() => {
      rmSync(join(sandbox, 'log'));
      mkdirSync(join(sandbox, 'log'));
    }, 400);
    setTimeout(() => (ended = true), 2000);
    const t0 = Date.now();
    const response = await responded;
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'first\n');
    assert.ok(Date.now() - t0 < 1900, 'the stream ended when the file turned into a directory, not when the task ended');
    await live.close();
    assert.deepEqual(unhandled, []);
  });

  it('answers 400 naming a query parameter given more than once', async () => {
    const sandbox = mkdtempSync(join(root, 'sb-'));
    writeFileSync(join(sandbox, 'stdout'), 'x');
    const app = await filesOn(sandbox);
    for (const [action, query, name] of [
      ['read', 'path=a&path=b', 'path'],
      ['browse', 'path=a&path=b', 'path'],
      ['download', 'framework_id=g', 'framework_id'],
      ['follow', 'task_id=u', 'task_id'],
      ['read', 'offset=1&offset=2', 'offset'],
      ['read', 'length=1&length=2', 'length'],
    ] as const) {
      const r = await app.inject({ method: 'GET', url: `/files/${action}?framework_id=f&task_id=t&${query}` });
      assert.equal(r.statusCode, 400, `${action} ${query}: ${r.body}`);
      assert.match(r.body, new RegExp(`'${name}'`));
    }
    const bad = await app.inject({ method: 'GET', url: '/files/read?framework_id=f&task_id=t&offset=&length=1e400' });
    assert.equal(bad.statusCode, 400, bad.body);
    await app.close();
  });

  it('browses a sandbox holding a dangling link and a link out of it, describing each link by itself', async () => {
    const sandbox = mkdtempSync(join(root, 'sb-'));
    writeFileSync(join(sandbox, 'stdout'), 'hello');
    symlinkSync(join(sandbox, 'gone'), join(sandbox, 'dangling'));
    symlinkSync('/etc', join(sandbox, 'hostetc'));
    symlinkSync('stdout', join(sandbox, 'log-link'));
    const app = await filesOn(sandbox);
    const r = await app.inject({ method: 'GET', url: '/files/browse?framework_id=f&task_id=t' });
    assert.equal(r.statusCode, 200, r.body);
    const entries = new Map(r.json<{ path: string; size: number; directory: boolean }[]>().map((e) => [e.path, e]));
    assert.deepEqual([...entries.keys()].sort(), ['dangling', 'hostetc', 'log-link', 'stdout']);
    assert.equal(entries.get('hostetc')!.directory, false, 'a link out of the sandbox is not followed');
    assert.equal(entries.get('log-link')!.size, 5, 'a link inside it is');
    await app.close();
  });

  it('reads at most 1 MiB per call, and -1 as the offset gives the size', async () => {
    const sandbox = mkdtempSync(join(root, 'sb-'));
    writeFileSync(join(sandbox, 'big'), Buffer.alloc(3 * 1024 * 1024, 'a'));
    const app = await filesOn(sandbox);
    const r = await app.inject({ method: 'GET', url: '/files/read?framework_id=f&task_id=t&path=big&offset=10&length=100000000000' });
    assert.equal(r.statusCode, 200);
    const body = r.json<{ data: string; offset: number }>();
    assert.equal(body.data.length, 1024 * 1024);
    assert.equal(body.offset, 10);
    const end = await app.inject({ method: 'GET', url: '/files/read?framework_id=f&task_id=t&path=big&offset=-1' });
    assert.deepEqual(end.json(), { data: '', offset: 3 * 1024 * 1024 });
    const follow = await app.inject({ method: 'GET', url: '/files/follow?framework_id=f&task_id=t&path=big&offset=1024' });
    assert.equal(follow.statusCode, 200);
    assert.equal(follow.rawPayload.length, 3 * 1024 * 1024 - 1024);
    await app.close();
  });
});
