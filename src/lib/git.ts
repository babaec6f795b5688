import { execFile } from 'node:child_process';
import { SlipwayError } from '../core/errors.ts';

/** A git command failed: the repository is unreachable, the ref unknown, ... */
export class GitFailed extends SlipwayError {
  readonly code = 'GIT_FAILED';
  // The repository (another server) failed or could not be reached: a bad gateway, not a bug of ours.
  readonly status = 502;
}

const GIT_TIMEOUT_MS = 120_000;

/**
 * Runs git with a clean, non-interactive environment: no prompt for credentials (a private
 * repository without them fails at once instead of hanging), LC_ALL=C so that its messages can be
 * read, `input` on stdin. Rejects with GitFailed carrying git's own `fatal:`/`error:` lines.
 */
export function runGit(args: readonly string[], o: { cwd?: string; timeoutMs?: number; input?: string; env?: Record<string, string> } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      [...args],
      { cwd: o.cwd, timeout: o.timeoutMs ?? GIT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', LC_ALL: 'C', ...o.env } },
      (error, stdout, stderr) => {
        if (error !== null) {
          // git says what is wrong on its `fatal:`/`error:` lines; the hints around them are noise.
          const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
          const key = lines.filter((l) => /^(fatal|error):/.test(l));
          const why = (key.length > 0 ? key : lines).slice(0, 3).join(' ') || error.message;
          reject(new GitFailed(`git ${subcommand(args)} failed: ${why}`));
          return;
        }
        resolve(stdout);
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** The subcommand of a git argv (`show` in `git --git-dir D show X`), for messages. */
function subcommand(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-C' || a === '--git-dir' || a === '--work-tree' || a === '-c') i++;
    else if (!a.startsWith('-')) return a;
  }
  return args[0] ?? '';
}
