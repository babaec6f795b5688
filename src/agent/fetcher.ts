import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, open, realpath, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import { SlipwayError } from '../core/errors.ts';
import type { CommandInfo } from '../protocol/mesos.ts';

/**
 * Mesos's fetcher (docs/fetcher.md): puts a task's `command.uris` into its sandbox before the
 * task starts. All I/O is asynchronous (downloads, copies, and `tar`/`unzip` as child processes):
 * an agent fetching for one task keeps serving the others.
 *
 * For each URI, one after the other (as mesos-fetcher does):
 *
 *   value ──► http://, https://   download (fetch; a non-2xx answer fails; no data for
 *         │                       `stallTimeoutMs` fails, as Mesos's --fetcher_stall_timeout)
 *         ├─► file://, /abs/path  copy of a regular file on this host
 *         └─► anything else       fails (ftp://, hdfs://, s3://, relative paths)
 *       ──► <sandbox>/<output_file>, or <sandbox>/<last segment of the URI's path>
 *       ──► executable: chmod 0755, never extracted
 *           else extract (default true, as in mesos.proto) by the name's extension, into the
 *           sandbox itself (the archive stays): .tar .tar.gz .tgz .tar.bz2 .tbz2 .tar.xz .txz
 *           (tar), .zip (unzip), .gz (gunzipped to the name without .gz); other files stay as is
 *
 * Slipway's own fields: `sha256`, checked once the file is in (a mismatch fails the fetch and the
 * file goes); `mode`, an octal mode set on it (then it is not extracted).
 *
 * `cache` is a hint Slipway ignores: every fetch downloads. The first URI that fails ends the
 * fetch with a FetchFailed naming it (credentials in the URI are masked) and the cause.
 *
 * The sandbox may hold what an earlier run of the same task id left, symbolic links included:
 * nothing is written through a link, and no directory on the way may lead out of the sandbox.
 */

export type CommandUri = NonNullable<CommandInfo['uris']>[number];

/** A URI could not be fetched: the message names it and says why, for the TASK_FAILED update. */
export class FetchFailed extends SlipwayError {
  readonly code = 'FETCH_FAILED';
  // 502: the agent fetches on the task's behalf, like a gateway, and what fails is mostly the
  // other end (a server that answers an error, cannot be reached, or stalls). Today the failure
  // goes into the task's TASK_FAILED update and no HTTP answer carries it.
  readonly status = 502;

  constructor(
    readonly uri: string,
    readonly reason: string,
  ) {
    super(`Failed to fetch '${uri}': ${reason}`);
  }
}

export interface FetchOptions {
  /** The task's sandbox; it exists. */
  sandbox: string;
  /** A download that receives nothing for this long fails. Default 60 s (Mesos's default). */
  stallTimeoutMs?: number;
  /** Aborting it stops the fetch at once (the task was killed, the agent stops). */
  signal?: AbortSignal;
  /** The PATH where `tar` and `unzip` are looked for. Default: the agent's. */
  toolPath?: string;
}

export interface FetchedUri {
  /** The URI, credentials masked. */
  uri: string;
  /** Where it was put. */
  path: string;
  /** It was an archive (or a .gz) and was extracted into the sandbox. */
  extracted: boolean;
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/** Fetches every URI into the sandbox, in order; rejects with FetchFailed on the first failure. */
export async function fetchUris(uris: readonly CommandUri[], options: FetchOptions): Promise<FetchedUri[]> {
  const fetched: FetchedUri[] = [];
  if (uris.length === 0) return fetched;
  const root = await realpath(options.sandbox);
  for (const uri of uris) {
    const shown = maskCredentials(uri.value);
    try {
      if (options.signal?.aborted === true) throw new Problem('the fetch was cancelled');
      fetched.push({ uri: shown, ...(await fetchOne(uri, root, options)) });
    } catch (e) {
      throw new FetchFailed(shown, options.signal?.aborted === true ? 'the fetch was cancelled' : describe(e));
    }
  }
  return fetched;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** A failure whose message is already what the user should read. */
class Problem extends Error {}

type Source = { kind: 'http'; url: URL } | { kind: 'file'; path: string };

async function fetchOne(uri: CommandUri, root: string, options: FetchOptions): Promise<{ path: string; extracted: boolean }> {
  const source = sourceOf(uri.value);
  const name = uri.output_file ?? nameOf(source);
  const path = await writableTarget(root, name, uri.output_file !== undefined ? 'output_file' : 'file name');
  try {
    if (source.kind === 'http') await download(source.url, path, options);
    else await copy(source.path, path, options);
  } catch (e) {
    // Nothing half-written stays behind.
    await rm(path, { force: true }).catch(() => undefined);
    throw e;
  }
  if (uri.sha256 !== undefined) {
    const digest = await sha256Of(path);
    if (digest !== uri.sha256) {
      await rm(path, { force: true }).catch(() => undefined);
      throw new Problem(`its SHA-256 is ${digest}, not ${uri.sha256} as the task says (the file changed on the way, or at its source)`);
    }
  }
  if (uri.mode !== undefined) {
    await chmod(path, parseInt(uri.mode, 8));
    return { path, extracted: false };
  }
  if (uri.executable === true) {
    await chmod(path, 0o755);
    return { path, extracted: false };
  }
  if (uri.extract === false) return { path, extracted: false };
  return { path, extracted: await extract(path, root, options) };
}

/** What kind of URI this is; anything this agent cannot fetch fails here, before any I/O. */
function sourceOf(raw: string): Source {
  const value = raw.replace(/^\s+/, ''); // As mesos-fetcher: leading white space is ignored.
  if (value === '') throw new Problem('the URI is empty');
  if (value.startsWith('/')) return { kind: 'file', path: value };
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) throw new Problem('not a URI nor an absolute path (relative paths are not supported)');
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'file') {
    throw new Problem(`the URI scheme ${scheme}:// is not supported (this agent fetches http://, https://, file:// and absolute paths)`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Problem('not a valid URI');
  }
  if (scheme !== 'file') return { kind: 'http', url };
  try {
    return { kind: 'file', path: fileURLToPath(url) };
  } catch (e) {
    throw new Problem(`not a file on this host: ${describe(e)}`);
  }
}

/** The last segment of the URI's path (percent-decoded unless that would make a separator). */
function nameOf(source: Source): string {
  if (source.kind === 'file') return basename(source.path);
  const segment = source.url.pathname.slice(source.url.pathname.lastIndexOf('/') + 1);
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    // Not valid percent-encoding: the segment as it is.
  }
  return decoded.includes('/') || decoded.includes('\0') ? segment : decoded;
}

/**
 * The absolute path `name` (relative to the sandbox) is written at, once the directories on the
 * way exist. Refused: an absolute name, one that leaves the sandbox (`..`) or is the sandbox
 * itself, a directory on the way that is a link out of the sandbox. A link at the target itself
 * is removed (the file replaces it; nothing is written through it).
 */
async function writableTarget(root: string, name: string, what: string): Promise<string> {
  if (name === '') throw new Problem(what === 'file name' ? "the URI's path names no file (set output_file)" : `no ${what}`);
  if (isAbsolute(name)) throw new Problem(`${what} ${JSON.stringify(name)} must be relative to the sandbox`);
  const rel = relative(root, resolve(root, name));
  if (rel === '' || !within(root, resolve(root, rel))) throw new Problem(`${what} ${JSON.stringify(name)} is not a file inside the sandbox`);
  const parts = rel.split(sep);
  let dir = root;
  for (const part of parts.slice(0, -1)) {
    const next = join(dir, part);
    const st = await lstatOrUndefined(next);
    if (st === undefined) {
      await mkdir(next).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      });
      dir = next;
      continue;
    }
    let target = next;
    if (st.isSymbolicLink()) {
      target = await realpath(next);
      if (!within(root, target) && target !== root) throw new Problem(`${what} ${JSON.stringify(name)} goes through a link out of the sandbox`);
    }
    if (!(await stat(target)).isDirectory()) throw new Problem(`${what} ${JSON.stringify(name)}: ${relative(root, next)} is not a directory`);
    dir = target;
  }
  const path = join(dir, parts[parts.length - 1]!);
  const existing = await lstatOrUndefined(path);
  if (existing?.isSymbolicLink() === true) await unlink(path);
  else if (existing?.isDirectory() === true) throw new Problem(`${what} ${JSON.stringify(name)} is a directory in the sandbox`);
  return path;
}

/** Opens a file for writing, never through a symbolic link. */
function openForWrite(path: string): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
}

async function download(source: URL, path: string, options: FetchOptions): Promise<void> {
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  let url = source;
  const headers: Record<string, string> = {};
  if (url.username !== '' || url.password !== '') {
    // fetch() refuses credentials in the URL: they go in an Authorization header, as curl does.
    headers['authorization'] = `Basic ${Buffer.from(`${safeDecode(url.username)}:${safeDecode(url.password)}`).toString('base64')}`;
    url = new URL(url.href);
    url.username = '';
    url.password = '';
  }
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      abort.abort();
    }, stallMs);
  };
  let file: FileHandle | undefined;
  try {
    arm();
    const response = await fetch(url, { headers, signal: abort.signal, redirect: 'follow' });
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new Problem(`HTTP ${response.status}${response.statusText !== '' ? ` ${response.statusText}` : ''}`);
    }
    file = await openForWrite(path);
    if (response.body !== null) {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        arm();
        await file.write(chunk);
      }
    }
  } catch (e) {
    if (stalled) throw new Problem(`no data received for ${stallMs} ms`);
    throw e;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    await file?.close();
  }
}

async function copy(source: string, path: string, options: FetchOptions): Promise<void> {
  let st;
  try {
    st = await stat(source);
  } catch (e) {
    throw new Problem(`cannot read ${source}: ${describe(e)}`);
  }
  if (!st.isFile()) throw new Problem(`${source} is not a regular file`);
  const file = await openForWrite(path);
  await pipeline(createReadStream(source), file.createWriteStream(), options.signal !== undefined ? { signal: options.signal } : {});
}

/** How each extension is extracted; the first that matches wins (.tar.gz before .gz). */
const ARCHIVES: readonly { suffix: string; how: 'tar' | 'zip' | 'gunzip'; tarFlag?: string }[] = [
  { suffix: '.tar', how: 'tar' },
  { suffix: '.tar.gz', how: 'tar', tarFlag: '-z' },
  { suffix: '.tgz', how: 'tar', tarFlag: '-z' },
  { suffix: '.tar.bz2', how: 'tar', tarFlag: '-j' },
  { suffix: '.tbz2', how: 'tar', tarFlag: '-j' },
  { suffix: '.tar.xz', how: 'tar', tarFlag: '-J' },
  { suffix: '.txz', how: 'tar', tarFlag: '-J' },
  { suffix: '.zip', how: 'zip' },
  { suffix: '.gz', how: 'gunzip' },
];

/** Extracts `path` into the sandbox when its name says it is an archive; false when it is not one. */
async function extract(path: string, root: string, options: FetchOptions): Promise<boolean> {
  const name = basename(path);
  const kind = ARCHIVES.find((a) => name.endsWith(a.suffix));
  if (kind === undefined) return false;
  if (kind.how === 'tar') {
    // As root, tar would give the files the owners recorded in the archive.
    const owner = process.getuid?.() === 0 ? ['--no-same-owner'] : [];
    await run('tar', ['-x', ...(kind.tarFlag !== undefined ? [kind.tarFlag] : []), '-f', path, '-C', root, ...owner], name, [0], options);
  } else if (kind.how === 'zip') {
    // unzip's status 1 is "warnings, but everything was extracted".
    await run('unzip', ['-o', '-q', path, '-d', root], name, [0, 1], options);
  } else {
    // Like Mesos: into the sandbox itself, named without .gz.
    const output = await writableTarget(root, name.slice(0, -'.gz'.length), 'decompressed file');
    const file = await openForWrite(output);
    try {
      await pipeline(createReadStream(path), createGunzip(), file.createWriteStream(), options.signal !== undefined ? { signal: options.signal } : {});
    } catch (e) {
      await rm(output, { force: true }).catch(() => undefined);
      throw new Problem(`cannot gunzip ${name}: ${describe(e)}`);
    }
  }
  return true;
}

/** Runs an extraction tool; its last lines of stderr say why it failed. */
function run(command: string, args: string[], name: string, okStatuses: number[], options: FetchOptions): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const env = { ...process.env, PATH: options.toolPath ?? process.env['PATH'] ?? '/usr/bin:/bin' };
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'], ...(options.signal !== undefined ? { signal: options.signal } : {}) });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? new Problem(`${command} is not installed on this agent (it is needed to extract ${name})`) : e);
    });
    child.on('close', (status, signal) => {
      if (status !== null && okStatuses.includes(status)) {
        resolvePromise();
        return;
      }
      const why = stderr.trim().split('\n').slice(-3).join('; ');
      reject(new Problem(`cannot extract ${name}: ${command} ${status !== null ? `exited with status ${status}` : `was killed by ${signal ?? 'a signal'}`}${why !== '' ? `: ${why}` : ''}`));
    });
  });
}

function within(root: string, path: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The URI as it may be shown: user and password replaced by `***`. */
export function maskCredentials(value: string): string {
  try {
    const url = new URL(value.trim());
    // Query parameters that are proofs (the config center's signed URLs: `sig`; tokens) are credentials too.
    const proofs = [...url.searchParams.keys()].filter((k) => /^(sig|signature|token|access_token|key)$/i.test(k));
    if (url.username === '' && url.password === '' && proofs.length === 0) return value;
    if (url.username !== '' || url.password !== '') {
      url.username = '***';
      url.password = '';
    }
    for (const k of proofs) url.searchParams.set(k, '***');
    return url.href;
  } catch {
    return value;
  }
}

/** An error as a sentence: fetch's "fetch failed" says why only in its cause. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? e.cause.message : undefined;
  return cause !== undefined && cause !== '' && !e.message.includes(cause) ? `${e.message}: ${cause}` : e.message;
}
