import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chownTree, switchUserArgv, TaskUsers, unsearchableOnTheWay, validUserName, type TaskUser } from './task-user.ts';

const asRoot = process.getuid?.() === 0;
const nobodyGid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
const NOBODY: TaskUser = { name: 'nobody', uid: 65534, gid: nobodyGid, groups: [nobodyGid], home: '/nonexistent' };

describe('task users', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'task-user-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('accepts user names and uids, and refuses what a lookup tool could take for an option or a path', () => {
    for (const name of ['nobody', 'www-data', 'ci.user_1', '65534', 'HOST$']) assert.equal(validUserName(name), true, name);
    for (const name of ['', '-o', '--help', 'a b', 'a/b', 'a:b', 'x\u0000', 'x'.repeat(300)]) assert.equal(validUserName(name), false, JSON.stringify(name));
  });

  it('resolves a user by name or uid with its groups, and a user that does not exist as undefined', async () => {
    const users = new TaskUsers();
    assert.deepEqual(await users.resolve('nobody'), NOBODY);
    assert.equal((await users.resolve('65534'))?.name, 'nobody');
    assert.equal(await users.resolve('slipway-no-such-user'), undefined);
    assert.equal(await users.resolve('-o'), undefined);
  });

  it('drops to the user with setpriv, keeping its groups; root needs no prefix', () => {
    assert.deepEqual(switchUserArgv('/usr/bin/setpriv', NOBODY), ['/usr/bin/setpriv', `--reuid=65534`, `--regid=${nobodyGid}`, '--init-groups', '--']);
    assert.deepEqual(switchUserArgv('/usr/bin/setpriv', { ...NOBODY, name: 'root', uid: 0, gid: 0 }), []);
  });

  it('names the first directory on the way that the user may not search', () => {
    const top = tempDir();
    const inner = join(top, 'a', 'b');
    mkdirSync(inner, { recursive: true });
    chmodSync(top, 0o700);
    assert.match(unsearchableOnTheWay(inner, NOBODY) ?? '', new RegExp(`^${top} \\(mode 0700, owner uid \\d+`));
    chmodSync(top, 0o711);
    assert.equal(unsearchableOnTheWay(inner, NOBODY), undefined);
    assert.equal(unsearchableOnTheWay(inner, { ...NOBODY, uid: 0 }), undefined);
  });

  it('hands over what the agent wrote, never through a link nor a file with other links', { skip: asRoot ? false : 'chown needs root' }, () => {
    const sandbox = tempDir();
    const outside = join(tempDir(), 'outside');
    writeFileSync(outside, 'root only');
    mkdirSync(join(sandbox, 'extracted', 'deep'), { recursive: true });
    writeFileSync(join(sandbox, 'extracted', 'deep', 'file'), 'x');
    symlinkSync(outside, join(sandbox, 'link'));
    linkSync(outside, join(sandbox, 'hard'));
    chownTree(sandbox, NOBODY, 0);
    for (const p of ['', 'extracted', 'extracted/deep', 'extracted/deep/file']) assert.equal(statSync(join(sandbox, p)).uid, NOBODY.uid, p);
    assert.equal(lstatSync(join(sandbox, 'link')).uid, NOBODY.uid, 'the link itself');
    assert.equal(statSync(outside).uid, 0, 'not what it leads to, nor what a hard link is');
  });
});
