import { spawn } from 'node:child_process';
import { closeSync, constants, fchownSync, lstatSync, mkdirSync, openSync, rmSync, writeSync, chownSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { ContainerInfo, TaskInfo, Volume } from '../protocol/mesos.ts';
import { isSecretVolume, secretUses, type SecretUse } from '../protocol/task-secrets.ts';
import { findSetpriv, switchUserArgv, type TaskUser } from './task-user.ts';

/**
 * A task's secrets as the agent hands them over (protocol/task-secrets.ts): variables for its
 * environment, and files. A file at a relative `container_path` is written in the sandbox; one at
 * an absolute path (DOCKER containers) is written in the task's meta dir, outside the sandbox and
 * its files API, and bind-mounted read-only there. Each file is 0600, owned by the task's user.
 * The values come from the master's LAUNCH and are never checkpointed; the files are removed when
 * the task ends (`removeSecretFiles`).
 *
 * The sandbox belongs to the task's user, whose processes (an earlier run of the same task id, any
 * other task of that user) may change it while the agent works in it: a check of the path and a
 * write by root would race with a link swapped in (root writing or removing where the link
 * points: `/etc/ld.so.preload`). So a file in the sandbox of a task that runs as another user is
 * written and removed by a child process running as that user (setpriv), which a link can lead
 * only where the user may write anyway. When the task runs as the agent's own user, the agent
 * writes itself, following no link on the way. Files outside the sandbox are in the task's meta
 * dir, which only the agent can reach.
 */

export interface DeliveredSecrets {
  /** Variable name -> value, for the task's environment. */
  env: Record<string, string>;
  /** The container's volumes with the secret ones replaced: bind mounts of the files kept outside the sandbox. */
  container: ContainerInfo | undefined;
}

export class SecretDeliveryFailed extends Error {}

/** Where the file of a secret volume is written (the sandbox's, or one in `secretsDir` for an absolute path). */
function fileOf(use: SecretUse & { as: { file: string; volume: number } }, sandbox: string, secretsDir: string): string {
  return use.as.file.startsWith('/') ? join(secretsDir, `volume-${use.as.volume}`) : join(sandbox, use.as.file);
}

/**
 * Writes the task's secret files and answers its secret variables and the volumes to mount.
 * Throws SecretDeliveryFailed (the launch fails with its message) when the master sent no value
 * for a secret, or a file cannot be written safely.
 */
export async function deliverSecrets(o: { info: TaskInfo; secrets: Readonly<Record<string, string>>; sandbox: string; secretsDir: string; user: TaskUser | undefined }): Promise<DeliveredSecrets> {
  const uses = secretUses(o.info);
  if ('problem' in uses) throw new SecretDeliveryFailed(uses.problem);
  const env: Record<string, string> = {};
  const mounts: Volume[] = [];
  for (const u of uses) {
    const value = Object.hasOwn(o.secrets, u.name) ? o.secrets[u.name] : undefined;
    if (value === undefined) throw new SecretDeliveryFailed(`the master sent no value for secret '${u.name}'`);
    if ('env' in u.as) {
      env[u.as.env] = value;
      continue;
    }
    const file = fileOf({ ...u, as: u.as }, o.sandbox, o.secretsDir);
    if (u.as.file.startsWith('/')) {
      mkdirSync(o.secretsDir, { recursive: true, mode: 0o700 });
      writeNoFollow(o.secretsDir, file, value, o.user);
      mounts.push({ host_path: file, container_path: u.as.file, mode: 'RO' });
    } else if (otherUser(o.user)) {
      await asUser(o.user, WRITE_SCRIPT, file, value);
    } else {
      writeNoFollow(o.sandbox, file, value, undefined);
    }
  }
  const container = o.info.container;
  const kept = (container?.volumes ?? []).filter((v) => !isSecretVolume(v));
  const volumes = [...kept, ...mounts];
  return { env, container: container === undefined ? undefined : { ...container, volumes } };
}

/** The sandbox-relative paths of the task's secret files (the files API serves none of them). */
export function sandboxSecretFiles(info: TaskInfo): string[] {
  const uses = secretUses(info);
  if ('problem' in uses) return [];
  return uses.flatMap((u) => ('file' in u.as && !u.as.file.startsWith('/') ? [u.as.file] : []));
}

/**
 * Removes the files of the task's secrets (best effort: the task is over): in the sandbox of a
 * task of another user, as that user, in child processes; resolves when they are done (`log`
 * hears of a failure; it never rejects).
 */
export function removeSecretFiles(info: TaskInfo, sandbox: string, secretsDir: string, user: TaskUser | undefined, log: (line: string) => void): Promise<void> {
  const uses = secretUses(info);
  if ('problem' in uses) return Promise.resolve();
  const background: Promise<void>[] = [];
  for (const u of uses) {
    if (!('file' in u.as)) continue;
    const file = fileOf({ ...u, as: u.as }, sandbox, secretsDir);
    if (!u.as.file.startsWith('/') && otherUser(user)) {
      background.push(asUser(user, REMOVE_SCRIPT, file, '').catch((e: unknown) => log(`secret file ${file} not removed: ${e instanceof Error ? e.message : String(e)}`)));
      continue;
    }
    try {
      // Only if nothing on the way is a link (rmSync of a link would remove the link, but the way there must not be one either).
      if (walkTo(u.as.file.startsWith('/') ? secretsDir : sandbox, file) === undefined) rmSync(file, { force: true });
    } catch {
      // Gone already, or the sandbox was removed.
    }
  }
  return Promise.all(background).then(() => undefined);
}

/** Whether `user` is another user than the agent's, which the agent (root) switches to. */
function otherUser(user: TaskUser | undefined): user is TaskUser {
  return user !== undefined && user.uid !== (process.getuid?.() ?? -1);
}

/** Makes the file's directories (0700) and the file (0600) anew, its content from stdin. */
const WRITE_SCRIPT = 'umask 077 && mkdir -p -- "$(dirname -- "$1")" && rm -f -- "$1" && cat > "$1"';
const REMOVE_SCRIPT = 'rm -f -- "$1"';

let setprivPath: string | undefined;

/** Runs `script` under /bin/sh as `user`, with `file` as $1 and `input` on stdin. */
function asUser(user: TaskUser, script: string, file: string, input: string): Promise<void> {
  setprivPath ??= findSetpriv();
  if (setprivPath === undefined) return Promise.reject(new SecretDeliveryFailed(`cannot act as user ${user.name}: setpriv (util-linux) is not installed on this agent`));
  const argv = [...switchUserArgv(setprivPath, user), '/bin/sh', '-c', script, 'sh', file];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    child.on('error', (e) => reject(new SecretDeliveryFailed(`cannot act as user ${user.name}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new SecretDeliveryFailed(`as user ${user.name}: ${err.trim() || `exit ${code}`}`))));
    child.stdin.on('error', () => undefined); // The child's exit says what went wrong.
    child.stdin.end(input);
  });
}

/**
 * Walks the directories between `top` (excluded) and `file`'s parent: the first that is a link or
 * not a directory is answered; one that is missing is made (`make`) or, without it, ends the walk.
 */
function walkTo(top: string, file: string, make?: (dir: string) => void): string | undefined {
  let at = top;
  for (const p of relative(top, dirname(file)).split(sep).filter((x) => x !== '')) {
    at = join(at, p);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      if (make === undefined) return undefined; // Not there: nothing below it either.
      make(at);
      continue;
    }
    if (st.isSymbolicLink() || !st.isDirectory()) return at;
  }
  return undefined;
}

function writeNoFollow(top: string, file: string, value: string, user: TaskUser | undefined): void {
  const rel = relative(top, file);
  if (rel === '' || rel.startsWith('..')) throw new SecretDeliveryFailed(`secret file ${file} is outside ${top}`);
  // The directories on the way: made (0700, the task user's), or refused when one is a link.
  const bad = walkTo(top, file, (dir) => {
    mkdirSync(dir, { mode: 0o700 });
    if (user !== undefined) chownSync(dir, user.uid, user.gid);
  });
  if (bad !== undefined) throw new SecretDeliveryFailed(`cannot write secret file ${rel}: ${relative(top, bad)} is not a directory (a link is not followed)`);
  // A file left by an earlier run (or a link put there) goes; the new one is made exclusively.
  rmSync(file, { force: true });
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new SecretDeliveryFailed(`cannot write secret file ${rel}: ${(e as Error).message}`);
  }
  try {
    if (user !== undefined) fchownSync(fd, user.uid, user.gid);
    const data = Buffer.from(value, 'utf8');
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
}
