import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runGit } from '../lib/git.ts';
import { privateDir } from '../lib/private-files.ts';

/**
 * The audit copy of every release (what the original config center kept in GitLab): a git
 * repository with one commit per release, the rendered files at `{env}/{service}/{name}`, secret
 * values masked (the files themselves are served by the config center, never from here). A local
 * repository with a work tree, in the config center's data dir; anyone allowed may clone it.
 */
export class ReleaseRepository {
  /** One commit at a time: the repository has one index and one HEAD, for every service and environment. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {}

  private ready = false;

  private async ensure(): Promise<void> {
    if (this.ready) return;
    if (existsSync(join(this.dir, '.git'))) {
      // A git killed with its config center (kill -9) leaves its lock: this process is the
      // repository's only writer (the data dir is locked), so a lock found at start is stale.
      await rm(join(this.dir, '.git', 'index.lock'), { force: true });
      await rm(join(this.dir, '.git', 'HEAD.lock'), { force: true });
      await rm(join(this.dir, '.git', 'refs', 'heads', 'main.lock'), { force: true });
    } else {
      await privateDir(this.dir);
      await runGit(['init', '--quiet', '--initial-branch=main', this.dir]);
    }
    this.ready = true;
  }

  /** Commits the files of one release of `service` in `env` (replacing what was there); answers the commit id. */
  commit(o: { env: string; service: string; version: number; files: { name: string; content: string }[]; author: string; message: string; at: number }): Promise<string> {
    const run = this.chain.then(() => this.commitNow(o));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async commitNow(o: { env: string; service: string; version: number; files: { name: string; content: string }[]; author: string; message: string; at: number }): Promise<string> {
    await this.ensure();
    const base = join(this.dir, o.env, o.service);
    await rm(base, { recursive: true, force: true });
    for (const f of o.files) {
      const path = join(base, f.name);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(path, f.content, { mode: 0o600 });
    }
    const date = new Date(o.at).toISOString();
    const identity = { GIT_AUTHOR_NAME: o.author, GIT_AUTHOR_EMAIL: `${o.author}@slipway`, GIT_COMMITTER_NAME: 'slipway config', GIT_COMMITTER_EMAIL: 'config@slipway', GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date };
    await runGit(['-C', this.dir, 'add', '--all', '--', join(o.env, o.service)]);
    // --allow-empty: a rollback to files identical to the last commit is still a release.
    await runGit(['-C', this.dir, 'commit', '--quiet', '--allow-empty', '--no-verify', '-m', o.message], { env: identity });
    return (await runGit(['-C', this.dir, 'rev-parse', 'HEAD'])).trim();
  }
}
