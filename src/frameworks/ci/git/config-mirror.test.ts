import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readMirror, writeMirror } from './config-mirror.ts';

// A real bare repository as the mirror's remote.
describe('the git mirror of CI configuration', () => {
  let dir: string;
  let remote: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-mirror-'));
    remote = join(dir, 'remote.git');
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', remote]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes jobs and executor specs, commits only changes, removes deleted ones, and reads them back', async () => {
    const a = { name: 'a', repo: '/r/a', concurrency: 1 };
    const b = { name: 'b', repo: '/r/b', concurrency: 2 };
    const spec = { label: 'default', cpus: 1, mem: 512 };
    const first = await writeMirror(remote, join(dir, 'w1'), { jobs: new Map([['a', a], ['b', b]]), executors: new Map([['default', spec]]) }, 'two jobs');
    assert.match(first ?? '', /^[0-9a-f]{40}$/);
    assert.equal(await writeMirror(remote, join(dir, 'w2'), { jobs: new Map([['a', a], ['b', b]]), executors: new Map([['default', spec]]) }, 'same'), undefined, 'no change, no commit');
    const third = await writeMirror(remote, join(dir, 'w3'), { jobs: new Map([['b', { ...b, concurrency: 3 }]]), executors: new Map([['default', spec]]) }, 'a removed, b changed');
    assert.ok(third !== undefined && third !== first);
    const log = execFileSync('git', ['--git-dir', remote, 'log', '--format=%s', 'main']).toString().trim().split('\n');
    assert.deepEqual(log, ['a removed, b changed', 'two jobs']);

    const back = await readMirror(remote, join(dir, 'r'));
    assert.deepEqual([...back.jobs.keys()], ['b']);
    assert.deepEqual(back.jobs.get('b'), { ...b, concurrency: 3 });
    assert.deepEqual(back.executors.get('default'), spec);
  });

  it('reads an empty configuration from a repository that has none yet', async () => {
    const empty = join(dir, 'empty.git');
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', empty]);
    const back = await readMirror(empty, join(dir, 'r2'));
    assert.equal(back.jobs.size, 0);
    assert.equal(back.executors.size, 0);
  });
});
