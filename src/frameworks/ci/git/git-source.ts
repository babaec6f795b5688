import { mkdir, rm } from 'node:fs/promises';
import { GitFailed, runGit } from '../../../lib/git.ts';

// GitFailed (502) and the runner are lib's, shared with the config center's templates.
export { GitFailed };

/** What a remote has: branch heads and tags (annotated tags peeled to their commit). */
export interface RemoteRefs {
  branches: Map<string, string>;
  tags: Map<string, string>;
  /** The branch HEAD points to, when the remote says (`git ls-remote --symref`). */
  head?: string;
}

/**
 * Runs git with a clean, non-interactive environment (lib/git.ts runGit): no prompt for
 * credentials, so a private repo without them fails at once instead of hanging CI.
 */
function git(args: readonly string[], cwd?: string, timeoutMs?: number): Promise<string> {
  return runGit(args, { ...(cwd !== undefined ? { cwd } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
}

/** The branches and tags of `repo` (a URL or a local path), as `git ls-remote` lists them. */
export async function listRemoteRefs(repo: string): Promise<RemoteRefs> {
  const out = await git(['ls-remote', '--symref', '--', repo]);
  const branches = new Map<string, string>();
  const tags = new Map<string, string>();
  let head: string | undefined;
  for (const line of out.split('\n')) {
    const symref = /^ref: refs\/heads\/(\S+)\s+HEAD$/.exec(line);
    if (symref !== null) {
      head = symref[1];
      continue;
    }
    const m = /^([0-9a-f]{40,64})\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const [, sha, ref] = m as unknown as [string, string, string];
    if (ref.startsWith('refs/heads/')) branches.set(ref.slice('refs/heads/'.length), sha);
    else if (ref.startsWith('refs/tags/')) {
      const name = ref.slice('refs/tags/'.length);
      // `tag^{}` is the commit an annotated tag points to: it wins over the tag object's id.
      if (name.endsWith('^{}')) tags.set(name.slice(0, -3), sha);
      else if (!tags.has(name)) tags.set(name, sha);
    }
  }
  return { branches, tags, ...(head !== undefined ? { head } : {}) };
}

/**
 * Makes `dir` a checkout of `commit` of `repo` (detached HEAD), fetching only what is needed:
 * a fresh `git init`, a shallow fetch of the commit (falling back to a full fetch where the
 * server does not allow fetching by id), then `checkout --force`. `dir` is emptied first.
 */
export async function checkoutCommit(repo: string, commit: string, dir: string): Promise<void> {
  if (!/^[0-9a-f]{7,64}$/.test(commit)) throw new GitFailed(`not a commit id: ${commit}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await git(['init', '--quiet'], dir);
  await git(['remote', 'add', 'origin', repo], dir);
  try {
    await git(['fetch', '--quiet', '--depth', '1', 'origin', commit], dir);
  } catch {
    await git(['fetch', '--quiet', '--tags', 'origin', '+refs/heads/*:refs/remotes/origin/*'], dir);
  }
  await git(['checkout', '--quiet', '--force', commit], dir);
}

/** The commit a branch or tag of `repo` points to now, or undefined when there is none. */
export async function resolveRef(repo: string, ref: { branch?: string; tag?: string }): Promise<string | undefined> {
  const refs = await listRemoteRefs(repo);
  if (ref.tag !== undefined) return refs.tags.get(ref.tag);
  const branch = ref.branch ?? refs.head;
  return branch !== undefined ? refs.branches.get(branch) : undefined;
}

/** Reads one file of a commit without a checkout (the pipeline file, before a build is queued). */
export async function readFileAt(repo: string, commit: string, path: string, scratch: string): Promise<string | undefined> {
  await checkoutCommit(repo, commit, scratch);
  try {
    return await git(['show', `${commit}:${path}`], scratch);
  } catch {
    return undefined;
  }
}
