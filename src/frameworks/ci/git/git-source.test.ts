import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkoutCommit, GitFailed, listRemoteRefs, readFileAt, resolveRef } from './git-source.ts';

// Real repositories in a temp dir: a "remote" with two commits on main, a lightweight and an
// annotated tag, and a second branch.
describe('git sources', () => {
  let dir: string;
  let remote: string;
  let first: string;
  let second: string;
  let feature: string;
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, { cwd, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' } }).toString().trim();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-git-'));
    remote = join(dir, 'remote');
    execFileSync('git', ['init', '--quiet', '--initial-branch=main', remote]);
    writeFileSync(join(remote, '.slipway.yml'), 'steps:\n  - name: one\n    commands: [echo 1]\n');
    git(remote, 'add', '.');
    git(remote, 'commit', '--quiet', '-m', 'first');
    first = git(remote, 'rev-parse', 'HEAD');
    git(remote, 'tag', 'v1.0.0');
    writeFileSync(join(remote, 'VERSION'), '2\n');
    git(remote, 'add', '.');
    git(remote, 'commit', '--quiet', '-m', 'second');
    second = git(remote, 'rev-parse', 'HEAD');
    git(remote, 'tag', '-a', 'v2.0.0', '-m', 'release 2');
    git(remote, 'checkout', '--quiet', '-b', 'feature');
    writeFileSync(join(remote, 'FEATURE'), 'x\n');
    git(remote, 'add', '.');
    git(remote, 'commit', '--quiet', '-m', 'feature');
    feature = git(remote, 'rev-parse', 'HEAD');
    git(remote, 'checkout', '--quiet', 'main');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists branches, tags (annotated ones peeled to their commit) and HEAD', async () => {
    const refs = await listRemoteRefs(remote);
    assert.equal(refs.branches.get('main'), second);
    assert.equal(refs.branches.get('feature'), feature);
    assert.equal(refs.tags.get('v1.0.0'), first);
    assert.equal(refs.tags.get('v2.0.0'), second, 'the commit, not the tag object');
    assert.equal(refs.head, 'main');
  });

  it('resolves a tag, a branch and the default branch', async () => {
    assert.equal(await resolveRef(remote, { tag: 'v1.0.0' }), first);
    assert.equal(await resolveRef(remote, { branch: 'feature' }), feature);
    assert.equal(await resolveRef(remote, {}), second);
    assert.equal(await resolveRef(remote, { tag: 'v9' }), undefined);
  });

  it('checks out a commit into a fresh directory, replacing what was there', async () => {
    const work = join(dir, 'work');
    await checkoutCommit(remote, first, work);
    assert.throws(() => readFileSync(join(work, 'VERSION')));
    await checkoutCommit(remote, second, work);
    assert.equal(readFileSync(join(work, 'VERSION'), 'utf8'), '2\n');
    assert.equal(git(work, 'rev-parse', 'HEAD'), second);
  });

  it('reads the pipeline file of a commit', async () => {
    assert.match((await readFileAt(remote, first, '.slipway.yml', join(dir, 'scratch'))) ?? '', /name: one/);
    assert.equal(await readFileAt(remote, first, 'missing.yml', join(dir, 'scratch')), undefined);
  });

  it('fails with the reason for an unreachable repository, without prompting', async () => {
    await assert.rejects(listRemoteRefs(join(dir, 'nowhere')), (e: unknown) => e instanceof GitFailed && /does not appear to be a git repository|not found|No such/i.test(e.message));
    await assert.rejects(checkoutCommit(remote, 'not-a-sha', join(dir, 'x')), GitFailed);
  });
});
