import { closeSync, constants, fchownSync, lstatSync, mkdirSync, openSync, rmSync, writeSync, chownSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { ContainerInfo, TaskInfo, Volume } from '../protocol/mesos.ts';
import { isSecretVolume, secretUses, type SecretUse } from '../protocol/task-secrets.ts';
import type { TaskUser } from './task-user.ts';

/**
 * A task's secrets as the agent hands them over (protocol/task-secrets.ts): variables for its
 * environment, and files. A file at a relative `container_path` is written in the sandbox; one at
 * an absolute path (DOCKER containers) is written in the task's meta dir, outside the sandbox and
 * its files API, and bind-mounted read-only there. Each file is 0600, owned by the task's user.
 * The values come from the master's LAUNCH and are never checkpointed; the files are removed when
 * the task ends (`removeSecretFiles`).
 *
 * The agent writes as root into a directory that an earlier run of the same task id may have
 * filled: no symbolic link on the way is followed (a task could point one at /etc/shadow).
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
export function deliverSecrets(o: { info: TaskInfo; secrets: Readonly<Record<string, string>>; sandbox: string; secretsDir: string; user: TaskUser | undefined }): DeliveredSecrets {
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
    const top = u.as.file.startsWith('/') ? o.secretsDir : o.sandbox;
    if (u.as.file.startsWith('/')) mkdirSync(o.secretsDir, { recursive: true, mode: 0o700 });
    writeNoFollow(top, file, value, o.user);
    if (u.as.file.startsWith('/')) mounts.push({ host_path: file, container_path: u.as.file, mode: 'RO' });
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

/** Removes the files of the task's secrets (best effort: the task is over). */
export function removeSecretFiles(info: TaskInfo, sandbox: string, secretsDir: string): void {
  const uses = secretUses(info);
  if ('problem' in uses) return;
  for (const u of uses) {
    if (!('file' in u.as)) continue;
    try {
      const file = fileOf({ ...u, as: u.as }, sandbox, secretsDir);
      // Only if nothing on the way is a link (rmSync of a link would remove the link, but the way there must not be one either).
      if (walkTo(u.as.file.startsWith('/') ? secretsDir : sandbox, file) === undefined) rmSync(file, { force: true });
    } catch {
      // Gone already, or the sandbox was removed.
    }
  }
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
