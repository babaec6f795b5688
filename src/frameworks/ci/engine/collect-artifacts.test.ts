import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidArtifactPattern, artifactPatternProblem, collectArtifacts } from './collect-artifacts.ts';
import { removeWorkspaces, workspace } from './engine-test-support.ts';

after(removeWorkspaces);

async function files(root: string, contents: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(contents)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
}

describe('collectArtifacts', () => {
  it('copies the files that match globs, keeping their paths, and whole directories a pattern names', async () => {
    const ws = await workspace();
    await files(ws, {
      'dist/app-1.2.tar.gz': 'tarball',
      'dist/app-1.2.zip': 'zip',
      'dist/nested/deep.tar.gz': 'deep',
      'reports/unit/junit.xml': '<xml/>',
      'reports/unit/extra/more.xml': '<more/>',
      'coverage/index.html': 'cov',
      'src/main.c': 'code',
    });
    const dest = join(await workspace(), 'artifacts');
    const collected = await collectArtifacts(ws, ['dist/*.tar.gz', 'reports/**/*.xml', './coverage/', 'missing/*.log'], dest);
    assert.deepEqual(collected.files, [
      { path: 'coverage/index.html', size: 3 },
      { path: 'dist/app-1.2.tar.gz', size: 7 },
      { path: 'reports/unit/extra/more.xml', size: 7 },
      { path: 'reports/unit/junit.xml', size: 6 },
    ]);
    assert.deepEqual(collected.unmatched, ['missing/*.log']);
    assert.deepEqual(collected.skipped, []);
    assert.equal(await readFile(join(dest, 'dist/app-1.2.tar.gz'), 'utf8'), 'tarball');
    assert.ok(!existsSync(join(dest, 'dist/nested/deep.tar.gz')), '* does not cross a /');
    assert.ok(!existsSync(join(dest, 'src')));
  });

  it('refuses patterns that leave the workspace, before copying anything', async () => {
    const ws = await workspace();
    await files(ws, { 'ok.txt': 'ok' });
    const dest = join(await workspace(), 'out');
    for (const pattern of ['../secret', 'dist/../../etc/passwd', '/etc/passwd', '~/.ssh/id_rsa']) {
      await assert.rejects(collectArtifacts(ws, ['ok.txt', pattern], dest), (e: unknown) => {
        assert.ok(e instanceof InvalidArtifactPattern);
        assert.equal(e.code, 'INVALID_ARTIFACT_PATTERN');
        assert.equal(e.pattern, pattern);
        return true;
      });
      assert.notEqual(artifactPatternProblem(pattern), undefined);
    }
    assert.ok(!existsSync(join(dest, 'ok.txt')));
  });

  it('does not follow symbolic links out of the workspace, nor into directories', async () => {
    const outside = await workspace();
    await files(outside, { 'secret.txt': 'secret', 'dir/inner.txt': 'inner' });
    const ws = await workspace();
    await files(ws, { 'build/real.txt': 'real' });
    await symlink(join(outside, 'secret.txt'), join(ws, 'build/leak.txt'));
    await symlink(join(outside, 'dir'), join(ws, 'build/leakdir'));
    await symlink(join(ws, 'build/real.txt'), join(ws, 'build/alias.txt'));
    await symlink(join(outside, 'dir'), join(ws, 'linked'));
    const dest = join(await workspace(), 'out');
    const collected = await collectArtifacts(ws, ['build/**', 'linked/*.txt'], dest);
    assert.deepEqual(collected.files.map((f) => f.path), ['build/alias.txt', 'build/real.txt']);
    assert.equal(await readFile(join(dest, 'build/alias.txt'), 'utf8'), 'real', 'a link to a file inside is copied as the file');
    assert.deepEqual(collected.skipped, [
      { path: 'build/leak.txt', reason: 'a symbolic link to outside the workspace' },
      { path: 'build/leakdir', reason: 'a symbolic link to outside the workspace' },
      { path: 'linked', reason: 'a symbolic link to a directory is not followed' },
    ]);
    assert.ok(!existsSync(join(dest, 'build/leak.txt')) && !existsSync(join(dest, 'linked')));
  });

  it('does not walk a destination inside the workspace', async () => {
    const ws = await workspace();
    await files(ws, { 'a.txt': 'a', '.artifacts/old.txt': 'old' });
    const collected = await collectArtifacts(ws, ['**'], join(ws, '.artifacts'));
    assert.deepEqual(collected.files.map((f) => f.path), ['a.txt']);
  });
});
