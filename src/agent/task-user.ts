import { execFile } from 'node:child_process';
import { accessSync, constants, lchownSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The user a task runs as, resolved on the agent's host (NSS: /etc/passwd, LDAP, ...). Part of the
 * agent contract with the containerizers: a LaunchSpec with a `user` runs as that uid and gid with
 * that user's supplementary groups; without one, as the agent's own user.
 */
export interface TaskUser {
  name: string;
  uid: number;
  gid: number;
  /** Every group of the user (primary included), as `id -G` lists them. */
  groups: number[];
  /** The home directory of its passwd entry (`/nonexistent` for nobody). */
  home: string;
}

/**
 * A user name as POSIX portable names go (letters, digits, `.`, `_`, `-`, not starting with `-`),
 * plus the trailing `$` of machine accounts, or a numeric uid. Anything else (a space, a `/`,
 * a NUL, a leading `-` that a tool would take for an option) is refused before any lookup.
 */
const USER_NAME = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,255}\$?$/;

export function validUserName(name: string): boolean {
  return USER_NAME.test(name);
}

/** How long a looked-up user is kept: group changes show within a minute, without a restart. */
const CACHE_MS = 60_000;

/**
 * Resolves user names with `getent passwd` (so NSS sources count, not only /etc/passwd) and the
 * groups with `id -G` (getgrouplist: the groups file and NSS). Found users are cached for a
 * minute; a user that is not found is asked again next time (it may have been created since).
 */
export class TaskUsers {
  readonly #cache = new Map<string, { user: TaskUser; until: number }>();

  /** The user, or undefined when there is no such user on this host. Throws when the lookup itself fails. */
  async resolve(name: string): Promise<TaskUser | undefined> {
    if (!validUserName(name)) return undefined;
    const cached = this.#cache.get(name);
    if (cached !== undefined && cached.until > Date.now()) return cached.user;
    let passwd: string;
    try {
      passwd = (await run('getent', ['passwd', '--', name], { timeout: 10_000 })).stdout;
    } catch (e) {
      // getent: exit status 2 is "not found"; anything else is a failure of the lookup.
      if ((e as { code?: unknown }).code === 2) return undefined;
      throw new Error(`cannot look up user ${JSON.stringify(name)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const fields = passwd.split('\n')[0]?.split(':') ?? [];
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (fields.length < 7 || !Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`cannot look up user ${JSON.stringify(name)}: getent answered ${JSON.stringify(passwd.slice(0, 200))}`);
    const entryName = fields[0] ?? name;
    let groups = [gid];
    try {
      const ids = (await run('id', ['-G', '--', entryName], { timeout: 10_000 })).stdout.trim().split(/\s+/).map(Number);
      if (ids.length > 0 && ids.every(Number.isInteger)) groups = [...new Set([gid, ...ids])];
    } catch {
      // No group list (id is missing or fails): the primary group alone.
    }
    const user: TaskUser = { name: entryName, uid, gid, groups, home: fields[5] ?? '/' };
    this.#cache.set(name, { user, until: Date.now() + CACHE_MS });
    return user;
  }
}

/** Where `setpriv` (util-linux) is, or undefined when this host has none. */
export function findSetpriv(path = process.env['PATH'] ?? '/usr/bin:/bin'): string | undefined {
  for (const dir of ['/usr/bin', '/bin', ...path.split(':')]) {
    if (dir === '') continue;
    const candidate = join(dir, 'setpriv');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

/**
 * The argv prefix that runs what follows as `user`: `setpriv --reuid U --regid G --init-groups --`.
 *
 * Why setpriv and not Node's spawn `uid`/`gid` options: libuv calls setgroups(0, NULL) before
 * setuid, so a child started that way has no supplementary groups at all, and a CI executor
 * whose user is in the `docker` group could not reach the Docker socket. `--init-groups` sets
 * the groups of the user's entry (initgroups(3)), as a login would. setpriv execs the command:
 * the process tree is the same as without it. Root gets no prefix (nothing to drop).
 */
export function switchUserArgv(setpriv: string, user: TaskUser): string[] {
  if (user.uid === 0) return [];
  return [setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--'];
}

/**
 * The first directory on the way to `dir` (itself included) that `user` may not search (no x
 * for it), with its mode and owner, or undefined when the user can reach `dir` by its path. A
 * task whose sandbox cannot be reached still runs in it (its working directory is opened by the
 * agent), but `$MESOS_SANDBOX` and every absolute path into it fail with EACCES.
 */
export function unsearchableOnTheWay(dir: string, user: TaskUser): string | undefined {
  if (user.uid === 0) return undefined;
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) {
    let st;
    try {
      st = statSync(d);
    } catch {
      return undefined; // Not there yet: whoever creates it decides.
    }
    const bit = st.uid === user.uid ? 0o100 : user.groups.includes(st.gid) ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return `${d} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid}, group gid ${st.gid})`;
  }
  return undefined;
}

/**
 * Gives `user` what the agent (root) wrote in a sandbox: the sandbox itself and, below it, every
 * entry owned by the agent's uid, links themselves (lchown, never followed). Skipped: entries of
 * other owners (the task's own, from an earlier run of the same task id) and regular files with
 * more than one link (a hard link to a file outside the sandbox would hand that file over).
 */
export function chownTree(dir: string, user: Pick<TaskUser, 'uid' | 'gid'>, agentUid: number): void {
  const visit = (path: string, top: boolean): void => {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    if (!top && st.uid !== agentUid) return;
    if (st.isFile() && st.nlink > 1) return;
    lchownSync(path, user.uid, user.gid);
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names) visit(join(path, name), false);
  };
  visit(dir, true);
}
