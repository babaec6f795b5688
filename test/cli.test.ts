import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

/** Runs the installed command as a user would; resolves with exit code and output. */
async function slipway(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

describe('slipway command', () => {
  it('prints its help', async () => {
    const r = await slipway('--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: slipway/);
    assert.match(r.stdout, /bench/);
  });

  it('runs the scheduler benchmark and prints one JSON object with --json', async () => {
    const r = await slipway('bench', 'scheduler', '--agents', '300', '--frameworks', '3', '--tasks', '3000', '--json');
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const key of ['agents', 'frameworks', 'tasks', 'placed', 'seconds', 'placementsPerSecond', 'offerCycleP50Ms', 'offerCycleP99Ms', 'heapBytesPerAgent', 'heapBytesPerTask', 'shares']) {
      assert.ok(key in result, `missing ${key}`);
    }
    assert.equal(result['placed'], 3000);
    assert.equal(result['agents'], 300);
    assert.deepEqual(Object.keys(result['shares'] as object).sort(), ['role1', 'role2', 'role3']);
  });

  it('refuses a bad option with a message that names it', async () => {
    const r = await slipway('bench', 'scheduler', '--agents', 'zero');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--agents must be a positive integer, got 'zero'/);
  });

  it('says where it looked when CI does not answer, and which option `ci build` takes instead of --master', async () => {
    // A port nothing listens on: bind one, note it, close it.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const jobs = await slipway('ci', 'jobs', '--server', `http://127.0.0.1:${port}`);
    assert.equal(jobs.code, 1);
    assert.match(jobs.stderr, new RegExp(`cannot reach CI at http://127.0.0.1:${port} \\(connect ECONNREFUSED.*Give its URL with --server`));
    const build = await slipway('ci', 'build', 'hello', '--master', `http://127.0.0.1:${port}`);
    assert.equal(build.code, 1);
    assert.match(build.stderr, /`slipway ci build` talks to CI, not to the master: give CI's URL with --server/);
  });
});
