import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GitFailed, runGit } from '../lib/git.ts';
import { privateDir } from '../lib/private-files.ts';
import { TemplateSourceFailed } from './config-errors.ts';

/**
 * The templates of a service, read from its git repository at a ref. Each repository is fetched
 * into a bare cache of its own under `cacheDir` (heads and tags), so that a release reads every
 * template at one commit, and a remote that is down fails the release rather than half of it.
 *
 *   resolve(repo, ref) ──fetch──► the commit the ref names (a branch, a tag, or a commit id)
 *   read(repo, commit, path) ──► the file's text at that commit (`git show`)
 */
export class TemplateSource {
  /** One fetch at a time per repository (two releases at once would race in one cache). */
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(private readonly cacheDir: string) {}

  private cacheOf(repo: string): string {
    return join(this.cacheDir, `${createHash('sha256').update(repo).digest('hex').slice(0, 24)}.git`);
  }

  private async fetch(repo: string): Promise<string> {
    const cache = this.cacheOf(repo);
    const running = this.fetching.get(cache);
    if (running !== undefined) {
      await running;
      return cache;
    }
    const run = (async () => {
      await privateDir(this.cacheDir);
      if (!existsSync(cache)) await runGit(['init', '--quiet', '--bare', cache]);
      try {
        await runGit(['--git-dir', cache, 'fetch', '--quiet', '--force', '--prune', '--no-tags', '--', repo, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*']);
      } catch (e) {
        throw new TemplateSourceFailed(`the templates' repository ${repo} cannot be fetched: ${(e as Error).message}`);
      }
    })();
    this.fetching.set(cache, run);
    try {
      await run;
    } finally {
      this.fetching.delete(cache);
    }
    return cache;
  }

  /** The commit `ref` names in `repo`, fetched now. */
  async resolve(repo: string, ref: string): Promise<string> {
    const cache = await this.fetch(repo);
    for (const candidate of [`refs/heads/${ref}`, `refs/tags/${ref}`, ref]) {
      try {
        return (await runGit(['--git-dir', cache, 'rev-parse', '--verify', '--quiet', `${candidate}^{commit}`])).trim();
      } catch (e) {
        if (!(e instanceof GitFailed)) throw e;
      }
    }
    throw new TemplateSourceFailed(`the templates' repository ${repo} has no branch, tag or commit '${ref}'`);
  }

  /** The text of `path` at `commit` (fetched already by `resolve`); undefined when there is no such file. */
  async read(repo: string, commit: string, path: string): Promise<string | undefined> {
    const cache = this.cacheOf(repo);
    try {
      await runGit(['--git-dir', cache, 'cat-file', '-e', `${commit}:${path}`]);
    } catch {
      return undefined;
    }
    return runGit(['--git-dir', cache, 'show', `${commit}:${path}`]);
  }
}
