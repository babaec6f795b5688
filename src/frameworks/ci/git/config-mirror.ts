import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { privateDir, restrictTree } from '../../../lib/private-files.ts';
import { join } from 'node:path';
import { GitFailed } from './git-source.ts';

/**
 * CI's configuration mirrored to a git repository (the article backed Jenkins's home up to git):
 * one file per job (`jobs/<name>.json`, the job's JSON as `PUT /ci/v1/jobs/{name}` takes it, its
 * secrets sealed: `{"encrypted": "v1:..."}`, never in clear; see CiFramework.mirror for why sealed
 * rather than left out) and
 * per executor spec (`executors/<label>.json`), committed and pushed on every change. `readMirror`
 * reads them back, for `slipway ci import --from GIT` into a fresh server.
 *
 * Contract: `writeMirror` makes the repository's `jobs/` and `executors/` hold exactly the given
 * configuration (files of deleted jobs are removed), commits only when something changed, and
 * pushes to the branch (`main` by default); calls must not overlap (the caller serializes them).
 * A push refused because the remote moved is retried once after a rebase-free reset to it (the
 * mirror is CI's: CI's state wins).
 */
export interface MirroredConfig {
  jobs: Map<string, unknown>;
  executors: Map<string, unknown>;
}

const AUTHOR = { GIT_AUTHOR_NAME: 'slipway-ci', GIT_AUTHOR_EMAIL: 'ci@slipway.local', GIT_COMMITTER_NAME: 'slipway-ci', GIT_COMMITTER_EMAIL: 'ci@slipway.local' };

function git(args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', [...args], { cwd, timeout: 120_000, env: { ...process.env, ...AUTHOR, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (error !== null) reject(new GitFailed(`git ${args[0]} failed: ${stderr.trim().split('\n').filter((l) => /^(fatal|error):/.test(l)).join(' ') || stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** A working copy of the mirror in `dir`, at the remote's branch (created empty if the remote has none). */
async function workingCopy(remote: string, dir: string, branch: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await privateDir(dir);
  await git(['init', '--quiet', `--initial-branch=${branch}`], dir);
  await git(['remote', 'add', 'origin', remote], dir);
  const heads = await git(['ls-remote', '--heads', 'origin', branch], dir);
  if (heads.trim() !== '') {
    await git(['fetch', '--quiet', 'origin', branch], dir);
    await git(['reset', '--quiet', '--hard', `origin/${branch}`], dir);
  }
}

async function writeDir(dir: string, entries: Map<string, unknown>): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [name, doc] of [...entries].sort(([a], [b]) => (a < b ? -1 : 1))) {
    await writeFile(join(dir, `${name}.json`), `${JSON.stringify(doc, null, 2)}\n`);
  }
}

/**
 * Writes, commits and pushes the configuration; resolves with the commit made, or undefined when
 * nothing changed. The working copy is left its owner's only (git writes with the umask's modes).
 */
export async function writeMirror(remote: string, workDir: string, config: MirroredConfig, message: string, branch = 'main'): Promise<string | undefined> {
  try {
    return await writeMirrorOnce(remote, workDir, config, message, branch);
  } finally {
    await restrictTree(workDir);
  }
}

async function writeMirrorOnce(remote: string, workDir: string, config: MirroredConfig, message: string, branch: string): Promise<string | undefined> {
  for (let attempt = 0; attempt < 2; attempt++) {
    await workingCopy(remote, workDir, branch);
    await writeDir(join(workDir, 'jobs'), config.jobs);
    await writeDir(join(workDir, 'executors'), config.executors);
    await git(['add', '--all', 'jobs', 'executors'], workDir);
    const status = await git(['status', '--porcelain'], workDir);
    if (status.trim() === '') return undefined;
    await git(['commit', '--quiet', '-m', message], workDir);
    try {
      await git(['push', '--quiet', 'origin', `HEAD:${branch}`], workDir);
      return (await git(['rev-parse', 'HEAD'], workDir)).trim();
    } catch (e) {
      if (attempt === 1) throw e;
    }
  }
  return undefined;
}

/** Reads the configuration from a mirror repository (any git URL or path), at its branch. */
export async function readMirror(remote: string, workDir: string, branch = 'main'): Promise<MirroredConfig> {
  await workingCopy(remote, workDir, branch);
  const read = async (sub: string) => {
    const out = new Map<string, unknown>();
    const names = await readdir(join(workDir, sub)).catch(() => [] as string[]);
    for (const f of names.sort()) {
      if (!f.endsWith('.json')) continue;
      const text = await readFile(join(workDir, sub, f), 'utf8');
      try {
        out.set(f.slice(0, -'.json'.length), JSON.parse(text) as unknown);
      } catch (e) {
        throw new GitFailed(`${sub}/${f} in ${remote} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return out;
  };
  return { jobs: await read('jobs'), executors: await read('executors') };
}
