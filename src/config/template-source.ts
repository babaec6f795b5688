import { spawn } from 'node:child_process';
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
 *
 * A ref resolved once is asked of the remote again with one `git ls-remote` of its branch and tag
 * (one process, no pack negotiation, no maintenance after it): when both are the objects the cache
 * held when it resolved the ref, the commit is the one it resolved then, and the fetch is skipped;
 * when either moved (or appeared, or went), the repository is fetched as before. The remote is
 * asked at every release either way: one that is down fails the release.
 */
export class TemplateSource {
  /** One fetch at a time per repository (two releases at once would race in one cache). */
  private readonly fetching = new Map<string, Promise<void>>();
  /** Per cache and ref: the ref's branch and tag objects in the cache when it was resolved, and the commit it resolved to. */
  private readonly resolved = new Map<string, { refs: AdvertisedRefs; commit: string }>();

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

  /** The commit `ref` names in `repo` now: fetched, unless the remote shows the ref where it was when last resolved. */
  async resolve(repo: string, ref: string): Promise<string> {
    const cache = this.cacheOf(repo);
    const key = `${cache}\n${ref}`;
    const known = this.resolved.get(key);
    if (known !== undefined && existsSync(cache)) {
      let remote: AdvertisedRefs;
      try {
        remote = refsOf(await runGit(['ls-remote', '--', repo, `refs/heads/${ref}`, `refs/tags/${ref}`]), ref);
      } catch (e) {
        throw new TemplateSourceFailed(`the templates' repository ${repo} cannot be fetched: ${(e as Error).message}`);
      }
      // Neither a branch nor a tag: only a full commit id names the same commit whatever moved.
      const stable = remote.head !== undefined || remote.tag !== undefined || OBJECT_ID.test(ref);
      if (stable && remote.head === known.refs.head && remote.tag === known.refs.tag) return known.commit;
    }
    await this.fetch(repo);
    // The branch and tag as the cache holds them, read once; the commit is resolved from these
    // objects (not the names again), so what is remembered is what the commit came from even when
    // another fetch moves the names meanwhile.
    const refs = refsOf(await runGit(['--git-dir', cache, 'for-each-ref', '--format=%(objectname) %(refname)', `refs/heads/${ref}`, `refs/tags/${ref}`]), ref);
    for (const candidate of [refs.head, refs.tag, ref]) {
      if (candidate === undefined) continue;
      let commit: string;
      try {
        commit = (await runGit(['--git-dir', cache, 'rev-parse', '--verify', '--quiet', `${candidate}^{commit}`])).trim();
      } catch (e) {
        if (!(e instanceof GitFailed)) throw e;
        continue;
      }
      if (candidate !== ref || OBJECT_ID.test(ref)) this.resolved.set(key, { refs, commit });
      else this.resolved.delete(key);
      return commit;
    }
    this.resolved.delete(key);
    throw new TemplateSourceFailed(`the templates' repository ${repo} has no branch, tag or commit '${ref}'`);
  }

  /** The text of `path` at `commit` (fetched already by `resolve`); undefined when there is no such file. */
  async read(repo: string, commit: string, path: string): Promise<string | undefined> {
    return (await this.readAll(repo, commit, [path])).get(path);
  }

  /**
   * The texts of `paths` at `commit`, in one `git cat-file --batch` (one process for a release,
   * not two per file); a path that is not a file there is absent from the answer.
   */
  readAll(repo: string, commit: string, paths: readonly string[]): Promise<Map<string, string>> {
    const cache = this.cacheOf(repo);
    return new Promise((resolve, reject) => {
      const child = spawn('git', ['--git-dir', cache, 'cat-file', '--batch'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0' } });
      const chunks: Buffer[] = [];
      let err = '';
      child.stdout.on('data', (d: Buffer) => chunks.push(d));
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
      child.on('error', (e) => reject(new TemplateSourceFailed(`git cat-file: ${e.message}`)));
      child.on('close', (code) => {
        if (code !== 0) return reject(new TemplateSourceFailed(`git cat-file failed: ${err.trim() || `exit ${code}`}`));
        const out = Buffer.concat(chunks);
        const found = new Map<string, string>();
        let at = 0;
        for (const path of paths) {
          const nl = out.indexOf(0x0a, at);
          if (nl < 0) break;
          const header = out.subarray(at, nl).toString('utf8');
          at = nl + 1;
          const m = /^[0-9a-f]+ (\w+) (\d+)$/.exec(header);
          if (m === null) continue; // `<object> missing` (or ambiguous): no such file.
          const size = Number(m[2]);
          if (m[1] === 'blob') found.set(path, out.subarray(at, at + size).toString('utf8'));
          at += size + 1;
        }
        resolve(found);
      });
      child.stdin.on('error', () => undefined); // Its exit says what went wrong.
      // A path with a newline cannot be asked for on this protocol: config-definitions refuses none, so ask it as missing.
      child.stdin.end(paths.map((p) => (p.includes('\n') ? 'missing-path-with-newline' : `${commit}:${p}`)).join('\n') + '\n');
    });
  }
}

/** A branch and a tag of one name, as `git ls-remote` or `git for-each-ref` list them: the objects they point to. */
interface AdvertisedRefs {
  head: string | undefined;
  tag: string | undefined;
}

/** A full object id (SHA-1 or SHA-256). */
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** `refs/heads/{ref}` and `refs/tags/{ref}` in lines of `<object> <refname>` (either separator); other names (their patterns match by suffix and prefix) ignored. */
function refsOf(listing: string, ref: string): AdvertisedRefs {
  const out: AdvertisedRefs = { head: undefined, tag: undefined };
  for (const line of listing.split('\n')) {
    const m = /^([0-9a-f]+)[\t ](\S+)$/.exec(line.trim());
    if (m === null) continue;
    if (m[2] === `refs/heads/${ref}`) out.head = m[1];
    else if (m[2] === `refs/tags/${ref}`) out.tag = m[1];
  }
  return out;
}
