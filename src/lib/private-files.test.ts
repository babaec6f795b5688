import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { privateDir, privateDirSync, restrictTree, writePrivateFile, writePrivateFileSync } from './private-files.ts';

const modeOf = (p: string) => statSync(p).mode & 0o777;

/** Runs `f` under umask 0: what it makes must not depend on a strict umask of the caller. */
async function withOpenUmask<T>(f: () => T | Promise<T>): Promise<T> {
  const before = process.umask(0);
  try {
    return await f();
  } finally {
    process.umask(before);
  }
}

describe('private files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-private-'));
  chmodSync(dir, 0o755);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes every directory it creates 0700, and tightens one that exists, whatever the umask', async () => {
    await withOpenUmask(() => privateDir(join(dir, 'a', 'b', 'c')));
    for (const p of ['a', 'a/b', 'a/b/c']) assert.equal(modeOf(join(dir, p)), 0o700, p);
    assert.equal(modeOf(dir), 0o755, 'the existing parent is not touched');
    mkdirSync(join(dir, 'open'), { mode: 0o777 });
    chmodSync(join(dir, 'open'), 0o777);
    privateDirSync(join(dir, 'open'));
    assert.equal(modeOf(join(dir, 'open')), 0o700);
    await withOpenUmask(() => privateDirSync(join(dir, 'x', 'y'), 0o711));
    assert.equal(modeOf(join(dir, 'x')), 0o711);
    assert.equal(modeOf(join(dir, 'x', 'y')), 0o711);
  });

  it('writes files 0600, new or not, whatever the umask', async () => {
    const f = join(dir, 'f');
    writeFileSync(f, 'old', { mode: 0o644 });
    chmodSync(f, 0o644);
    await withOpenUmask(() => writePrivateFile(f, 'new'));
    assert.equal(modeOf(f), 0o600);
    await withOpenUmask(() => writePrivateFileSync(join(dir, 'g'), 'x'));
    assert.equal(modeOf(join(dir, 'g')), 0o600);
  });

  it('takes group and other bits off a whole tree, keeping the owner\'s, and leaves links alone', async () => {
    const t = join(dir, 'tree');
    mkdirSync(join(t, 'sub'), { recursive: true });
    writeFileSync(join(t, 'sub', 'run.sh'), '#!/bin/sh\n');
    chmodSync(join(t, 'sub', 'run.sh'), 0o755);
    writeFileSync(join(t, 'object'), 'x');
    chmodSync(join(t, 'object'), 0o444);
    chmodSync(join(t, 'sub'), 0o775);
    symlinkSync('/etc/hostname', join(t, 'link'));
    await restrictTree(t);
    assert.equal(modeOf(join(t, 'sub', 'run.sh')), 0o700);
    assert.equal(modeOf(join(t, 'object')), 0o400);
    assert.equal(modeOf(join(t, 'sub')), 0o700);
    assert.notEqual(statSync('/etc/hostname').mode & 0o077, 0, '/etc/hostname keeps its mode');
  });
});
