import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { createTestRepo, type TestRepo } from '../../test/support/git-repo.ts';
import { TemplateSource } from './template-source.ts';

/** Over real git repositories in a temp dir: the templates' repository, and the cache of a TemplateSource. */
describe('TemplateSource', () => {
  const root = mkdtempSync(join(tmpdir(), 'slipway-template-source-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  let repo: TestRepo;
  let cacheDir: string;
  let source: TemplateSource;
  beforeEach(() => {
    n++;
    repo = createTestRepo(join(root, `repo${n}`));
    cacheDir = join(root, `cache${n}`);
    source = new TemplateSource(cacheDir);
  });
  /** The branches and tags the cache holds (what the last fetch brought). */
  const cached = () => execFileSync('git', ['--git-dir', join(cacheDir, execFileSync('ls', [cacheDir]).toString().trim()), 'for-each-ref', '--format=%(refname)']).toString().trim().split('\n').sort();

  it('resolves a branch, reads its files at the commit, and skips the fetch while the remote shows the branch unmoved', async () => {
    const c1 = repo.commit({ 'a/app.yaml': 'one\n' });
    assert.equal(await source.resolve(repo.path, 'main'), c1);
    assert.equal(await source.read(repo.path, c1, 'a/app.yaml'), 'one\n');
    // Another branch appears, main stays: no fetch (the cache does not know the new branch).
    repo.git('branch', 'other');
    assert.equal(await source.resolve(repo.path, 'main'), c1);
    assert.deepEqual(cached(), ['refs/heads/main']);
    // main moves: fetched, the new commit and its files.
    const c2 = repo.commit({ 'a/app.yaml': 'two\n' });
    assert.equal(await source.resolve(repo.path, 'main'), c2);
    assert.equal(await source.read(repo.path, c2, 'a/app.yaml'), 'two\n');
    assert.deepEqual(cached(), ['refs/heads/main', 'refs/heads/other']);
    // Moved back (a force push to the old commit): fetched again, not the remembered c2.
    repo.git('reset', '--quiet', '--hard', c1);
    assert.equal(await source.resolve(repo.path, 'main'), c1);
  });

  it('follows a tag moved by a force push, and a branch replaced by a tag of its name', async () => {
    const c1 = repo.commit({ 'x.txt': '1\n' });
    repo.git('tag', '-a', '-m', 'v1', 'v1');
    assert.equal(await source.resolve(repo.path, 'v1'), c1);
    assert.equal(await source.resolve(repo.path, 'v1'), c1);
    const c2 = repo.commit({ 'x.txt': '2\n' });
    repo.git('tag', '-f', '-a', '-m', 'v1 again', 'v1');
    assert.equal(await source.resolve(repo.path, 'v1'), c2);
    // A branch `rel` at c2; then deleted, and a lightweight tag `rel` at c1 made in its place.
    repo.git('branch', 'rel');
    assert.equal(await source.resolve(repo.path, 'rel'), c2);
    repo.git('branch', '-D', 'rel');
    repo.git('tag', 'rel', c1);
    assert.equal(await source.resolve(repo.path, 'rel'), c1);
  });

  it('refuses a ref that does not exist, or no longer does, with the message it always had', async () => {
    repo.commit({ 'x.txt': '1\n' });
    const none = `the templates' repository ${repo.path} has no branch, tag or commit 'nope'`;
    await assert.rejects(source.resolve(repo.path, 'nope'), { message: none });
    await assert.rejects(source.resolve(repo.path, 'nope'), { message: none });
    repo.git('branch', 'gone');
    await source.resolve(repo.path, 'gone');
    repo.git('branch', '-D', 'gone');
    await assert.rejects(source.resolve(repo.path, 'gone'), { message: `the templates' repository ${repo.path} has no branch, tag or commit 'gone'` });
  });

  it('resolves a full commit id, also after the branch that had it moves on', async () => {
    const c1 = repo.commit({ 'x.txt': '1\n' });
    assert.equal(await source.resolve(repo.path, c1), c1);
    repo.commit({ 'x.txt': '2\n' });
    assert.equal(await source.resolve(repo.path, c1), c1);
    assert.equal(await source.read(repo.path, c1, 'x.txt'), '1\n');
    // A commit the cache has never seen: fetched.
    const c3 = repo.commit({ 'x.txt': '3\n' });
    assert.equal(await source.resolve(repo.path, c3), c3);
  });

  it('fails when the remote is gone, though the ref was resolved before', async () => {
    repo.commit({ 'x.txt': '1\n' });
    await source.resolve(repo.path, 'main');
    renameSync(repo.path, `${repo.path}.moved`);
    await assert.rejects(source.resolve(repo.path, 'main'), (e: Error) => e.message.startsWith(`the templates' repository ${repo.path} cannot be fetched: `));
    renameSync(`${repo.path}.moved`, repo.path);
  });
});
