import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * Files only their owner may read: the data dirs of every part, their databases, checkpoints,
 * keys and tokens, build logs. Directories 0700, files 0600, whatever the umask of the process
 * (a mode given to mkdir or open is cut by the umask but never widened by it, and an existing
 * file keeps its mode: so each helper also chmods what it made or found).
 *
 * Contract: after `privateDir(path)` every directory from the first one it created down to
 * `path` (and `path` itself, even if it existed) has exactly `mode` (0700 by default); after
 * `writePrivateFile(path, data)` the file has mode 0600 (its directory is not touched). Both have
 * a synchronous twin for the agent's synchronous paths. `restrictTree` takes group and other
 * bits off everything under a directory (for trees that git or a task wrote with the umask's
 * modes), leaving the owner's bits as they are.
 */

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/**
 * A directory others may pass through to a path they know but not list: the agent's work dir
 * and its `sandboxes`, so that a task running as another user (the agent as root, the task as
 * the app's `user`) reaches its own sandbox. Nothing in such a directory is readable by them
 * unless its own mode says so.
 */
export const TRAVERSE_ONLY_DIR_MODE = 0o711;

export async function privateDir(path: string, mode: number = PRIVATE_DIR_MODE): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode });
  // mkdir -p gives `mode` (less the umask) to every directory it makes; chmod says it exactly.
  for (const d of madeDirs(path, first)) await chmod(d, mode);
}

export function privateDirSync(path: string, mode: number = PRIVATE_DIR_MODE): void {
  const first = mkdirSync(path, { recursive: true, mode });
  for (const d of madeDirs(path, first)) chmodSync(d, mode);
}

/** `path` and the directories between it and `first` (the first one mkdir made), deepest last. */
function madeDirs(path: string, first: string | undefined): string[] {
  const dirs = [path];
  if (first === undefined) return dirs;
  for (let d = dirname(path); d.length >= first.length && d !== dirname(d); d = dirname(d)) dirs.unshift(d);
  return dirs;
}

export async function writePrivateFile(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data, { mode: PRIVATE_FILE_MODE });
  await chmod(path, PRIVATE_FILE_MODE);
}

export function writePrivateFileSync(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data, { mode: PRIVATE_FILE_MODE });
  chmodSync(path, PRIVATE_FILE_MODE);
}

/** Takes group and other bits off `dir` and everything under it (symbolic links are left alone). */
export async function restrictTree(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (st === undefined || st.isSymbolicLink()) return;
  if ((st.mode & 0o077) !== 0) await chmod(dir, st.mode & 0o700);
  if (!st.isDirectory()) return;
  for (const name of await readdir(dir)) await restrictTree(join(dir, name));
}

export function restrictTreeSync(dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) return;
  if ((st.mode & 0o077) !== 0) chmodSync(dir, st.mode & 0o700);
  if (!st.isDirectory()) return;
  for (const name of readdirSync(dir)) restrictTreeSync(join(dir, name));
}
