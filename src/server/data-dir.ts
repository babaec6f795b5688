import { access, constants, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SlipwayError } from '../core/errors.ts';
import { PRIVATE_DIR_MODE, privateDir, writePrivateFile } from '../lib/private-files.ts';

/** A data dir that cannot be written (a read-only file system, wrong owner, full disk). */
export class DataDirNotWritable extends SlipwayError {
  readonly code = 'DATA_DIR_NOT_WRITABLE';
  /** The server cannot keep anything until the operator fixes the dir (raised at start, before any route). */
  readonly status = 503;
}

/**
 * Makes sure `dir` exists with mode `mode` (0700 by default: only its owner may read or pass
 * through it; set on a dir that existed too, whatever the umask) and can be written, before a
 * store is opened in it: a store on a read-only data dir would fail at its first write, after
 * the server said it was up. Throws DataDirNotWritable saying which dir and why.
 */
export async function prepareDataDir(dir: string, what: string, mode: number = PRIVATE_DIR_MODE): Promise<void> {
  const probe = join(dir, `.write-probe-${process.pid}`);
  try {
    await privateDir(dir, mode);
    await writePrivateFile(probe, '');
    await rm(probe, { force: true });
  } catch (e) {
    // mkdir -p reports a read-only parent as ENOENT: the nearest existing ancestor says why.
    const code = (e as { code?: string }).code === 'ENOENT' ? ((await ancestorProblem(dir)) ?? 'ENOENT') : (e as { code?: string }).code;
    const reasons: Record<string, string> = {
      EROFS: 'the file system is read-only',
      EACCES: 'permission denied',
      EPERM: 'permission denied',
      ENOSPC: 'no space left on the device',
      ENOENT: 'it cannot be created there (a parent is missing, or its file system is read-only)',
      ENOTDIR: 'a part of the path is a file',
    };
    const why = (code !== undefined ? reasons[code] : undefined) ?? (e instanceof Error ? e.message : String(e));
    throw new DataDirNotWritable(`cannot use ${dir} as the ${what}'s data dir: ${why}. Give it a writable directory (--data-dir).`);
  }
}

/** The error code of writing into the nearest existing ancestor of `dir` (EROFS, EACCES), if any. */
async function ancestorProblem(dir: string): Promise<string | undefined> {
  for (let d = dirname(dir); ; d = dirname(d)) {
    const exists = await stat(d).then(
      () => true,
      () => false,
    );
    if (exists) {
      return access(d, constants.W_OK).then(
        () => undefined,
        (e: unknown) => (e as { code?: string }).code,
      );
    }
    if (dirname(d) === d) return undefined;
  }
}
