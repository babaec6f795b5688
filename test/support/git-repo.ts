import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const AUTHOR = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' };

/** A git repository of a test, on branch main, with a fixed author. */
export interface TestRepo {
  path: string;
  /** Runs git in the repository; answers its output, trimmed. */
  git(...args: string[]): string;
  /** Writes `files` (path → content, directories made), adds and commits everything; answers the commit. */
  commit(files: Record<string, string>, message?: string): string;
}

/** Makes `path` (and its parents) an empty repository on branch main. */
export function createTestRepo(path: string): TestRepo {
  mkdirSync(path, { recursive: true });
  const git = (...args: string[]) => execFileSync('git', args, { cwd: path, env: { ...process.env, ...AUTHOR } }).toString().trim();
  git('init', '--quiet', '--initial-branch=main');
  return {
    path,
    git,
    commit(files, message = 'commit') {
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(dirname(join(path, name)), { recursive: true });
        writeFileSync(join(path, name), content);
      }
      git('add', '.');
      git('commit', '--quiet', '-m', message);
      return git('rev-parse', 'HEAD');
    },
  };
}
