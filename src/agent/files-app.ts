import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { resolve, sep } from 'node:path';
import type { HttpGate } from '../auth/http-gate.ts';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { SlipwayError } from '../core/errors.ts';
import { httpErrorReply } from '../core/http-error-reply.ts';
import { fastifyServerOptions, type HttpServerLimits, type TlsFiles } from '../lib/http-server-limits.ts';

/** A path outside a sandbox, a missing task or file. HTTP 404 (400 for a path that escapes). */
export class FileNotFound extends SlipwayError {
  readonly code = 'FILE_NOT_FOUND';
  readonly status = 404;
}

export class BadFilePath extends SlipwayError {
  readonly code = 'INVALID_REQUEST';
  readonly status = 400;
}

/**
 * The agent's HTTP server: a task's sandbox files, as Mesos's /files API, for the master to
 * forward to. Only files inside the sandbox of the named task are served; `path` is relative to
 * it. `read` answers Mesos's `{data, offset}` (at most 1 MiB per call); `follow` streams a file
 * as it grows and ends once the task has ended and everything was sent.
 *
 * The sandbox belongs to the task, which may put anything there: symbolic links out of it (to
 * /etc), directories and FIFOs where a log file should be, files that come and go. So:
 * - a path must stay in the sandbox lexically and once every link is resolved: the file opened is
 *   checked again through /proc/self/fd, so a link swapped in between cannot lead out either;
 * - read, download and follow serve regular files only (400 for anything else, 404 when missing),
 *   opened without blocking (a FIFO cannot hang the server), and only those with one link
 *   (`st_nlink` 1, checked with fstat on the opened file): a hard link to /etc/shadow or to the
 *   agent's state is the file itself, and no path check can tell;
 * - the agent answers only sandboxes under its work dir's `sandboxes/` (`sandboxOf`), never a
 *   directory of its own state, whatever a checkpoint says;
 * - nothing a client sends answers 500 or ends the process: a follow that fails mid-way ends its
 *   stream.
 */
/** Where a task's sandbox is, and whether the task has ended (the Agent answers this). */
export interface SandboxLookup {
  /** `secretFiles`: the sandbox-relative paths of the task's secret files (task-secret-files.ts), never served. */
  sandboxOf(frameworkId: string, taskId: string): { dir: string; ended: boolean; secretFiles?: readonly string[] } | undefined;
}

/** A secret file of a task: written for the task alone, never an API answer (issue 12 §4). */
export class SecretFileRefused extends SlipwayError {
  readonly code = 'SECRET_FILE';
  readonly status = 403;
}

/** The most one read takes from a file: `read`'s answer, one chunk of `follow`. */
const MAX_CHUNK = 1024 * 1024;
/** How often `follow` looks at the file (fs.watch misses events on some file systems and in containers). */
const FOLLOW_POLL_MS = 200;

type Query = Record<string, string | string[] | undefined>;

/**
 * `gate` checks who may read sandboxes (the files capability; src/auth/http-gate.ts): the agent's
 * server always has one (src/server/agent-server.ts), tokens resolved by the master.
 */
export async function buildFilesApp(agent: SandboxLookup, gate?: HttpGate, server?: { limits?: HttpServerLimits; tls?: TlsFiles; log?: (line: string) => void }): Promise<FastifyInstance> {
  // Without `server` (unit tests), Fastify's own server; the agent's is limited like every server
  // of Slipway, and speaks HTTPS when given a certificate (`--tls-cert`).
  const app = Fastify({ logger: false, ...(server !== undefined ? fastifyServerOptions(server) : {}) });
  if (gate !== undefined) {
    gate.install(app);
    gate.addRules(['browse', 'read', 'download', 'follow'].map((action) => ({ method: 'GET', url: `/files/${action}`, access: () => [{ capability: 'files' as const, resource: { kind: 'frameworks' as const, name: '*' } }] })));
  }
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const { status, message } = httpErrorReply(error);
    return reply.code(status).type('text/plain').send(message);
  });

  // Follow streams end when the server closes, or close() would wait for every task to end.
  const follows = new Set<() => void>();
  app.addHook('preClose', (done) => {
    for (const stop of follows) stop();
    done();
  });

  /** One query parameter: a repeated one is refused, not turned into an array. */
  const param = (query: Query, name: string): string | undefined => {
    const value = query[name];
    if (Array.isArray(value)) throw new BadFilePath(`parameter '${name}' is given more than once`);
    return value;
  };
  const intParam = (query: Query, name: string, fallback: number) => {
    const value = param(query, name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < -1) throw new BadFilePath(`${name} must be an integer >= -1, got '${value}'`);
    return n;
  };

  /** The sandbox of the task the query names, and the path it asks for, lexically inside it. */
  const locate = async (query: Query, defaultPath: string) => {
    const fw = param(query, 'framework_id');
    const task = param(query, 'task_id');
    if (!fw || !task) throw new BadFilePath('framework_id and task_id are required');
    const relative = param(query, 'path') ?? defaultPath;
    if (relative.includes('\0')) throw new BadFilePath('path must not contain a NUL character');
    const sandbox = agent.sandboxOf(fw, task);
    if (sandbox === undefined) throw new FileNotFound(`no sandbox for task ${task} of framework ${fw} on this agent`);
    let root: string;
    try {
      root = await realpath(sandbox.dir);
    } catch {
      throw new FileNotFound(`the sandbox of task ${task} is gone`);
    }
    const full = resolve(root, relative);
    if (!inside(root, full)) throw new BadFilePath(`path '${relative}' is outside the task's sandbox`);
    const secrets = (sandbox.secretFiles ?? []).map((f) => resolve(root, f));
    return { fw, task, relative, root, full, secrets };
  };

  /** The path with every link resolved; refused when that leads out of the sandbox, undefined when nothing is there. */
  const resolveInside = async (root: string, full: string, relative: string): Promise<string | undefined> => {
    let real: string;
    try {
      real = await realpath(full);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw new FileNotFound(`'${relative}' cannot be opened: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (!inside(root, real)) throw new BadFilePath(`path '${relative}' leads outside the task's sandbox`);
    return real;
  };

  /**
   * Opens a regular file of the sandbox for reading; undefined when there is none at that path.
   * Refuses (400) anything that is not a regular file, or that turned out to be outside the sandbox.
   */
  const openRegular = async (root: string, full: string, relative: string, secrets: readonly string[]): Promise<FileHandle | undefined> => {
    const real = await resolveInside(root, full, relative);
    if (real === undefined) return undefined;
    let fh: FileHandle;
    try {
      // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
      fh = await open(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (e) {
      if (isMissing(e)) return undefined;
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new BadFilePath(`path '${relative}' changed while it was opened`);
      throw new FileNotFound(`'${relative}' cannot be opened: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      // What was opened, not what the path says now: a link swapped in meanwhile is caught here.
      const opened = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => real);
      if (!inside(root, opened)) throw new BadFilePath(`path '${relative}' leads outside the task's sandbox`);
      if (secrets.includes(opened)) throw new SecretFileRefused(`'${relative}' holds a secret of the task: it is not served`);
      // fstat of the opened file, not stat of the path: what is checked is what is read.
      const st = await fh.stat();
      if (!st.isFile()) throw new BadFilePath(`'${relative}' is not a regular file`);
      // A hard link is the file itself, wherever its other names are (/etc/shadow, the agent's
      // own state): no path check can see that it leads out. Only files of one link are served.
      if (st.nlink !== 1) throw new BadFilePath(`'${relative}' has ${st.nlink} hard links: only files with a single link are served (a hard link may lead out of the sandbox)`);
      return fh;
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  };

  app.get('/files/browse', async (request) => {
    const { root, full, relative } = await locate(request.query as Query, '.');
    const real = await resolveInside(root, full, relative);
    let names: string[];
    try {
      if (real === undefined) throw new Error('missing');
      names = await readdir(real);
    } catch {
      throw new FileNotFound(`no directory '${relative}' in the sandbox`);
    }
    const entries = await Promise.all(
      names.map(async (name) => {
        const path = resolve(real!, name);
        try {
          let st = await lstat(path);
          if (st.isSymbolicLink()) {
            // A link is described by what it points to when that is in the sandbox, by itself
            // otherwise (a dangling link, or one out of the sandbox).
            const target = await realpath(path).catch(() => undefined);
            if (target !== undefined && inside(root, target)) st = await stat(path).catch(() => st);
          }
          return { path: name, size: st.size, mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000), nlink: st.nlink, uid: st.uid, gid: st.gid, directory: st.isDirectory() };
        } catch {
          return undefined; // Gone since readdir.
        }
      }),
    );
    return entries.filter((e) => e !== undefined);
  });

  app.get('/files/read', async (request) => {
    const q = request.query as Query;
    const { root, full, relative, secrets } = await locate(q, 'stdout');
    const offset = intParam(q, 'offset', 0);
    const length = intParam(q, 'length', MAX_CHUNK);
    const fh = await openRegular(root, full, relative, secrets);
    if (fh === undefined) throw new FileNotFound(`no file '${relative}' in the sandbox`);
    try {
      const size = (await fh.stat()).size;
      if (offset === -1) return { data: '', offset: size };
      // length -1: as much as one read gives.
      const n = Math.max(0, Math.min(length === -1 ? MAX_CHUNK : length, MAX_CHUNK, size - offset));
      const buffer = Buffer.alloc(n);
      const { bytesRead } = n > 0 ? await fh.read(buffer, 0, n, offset) : { bytesRead: 0 };
      return { data: buffer.subarray(0, bytesRead).toString('utf8'), offset };
    } finally {
      await fh.close().catch(() => undefined);
    }
  });

  app.get('/files/download', async (request, reply) => {
    const { root, full, relative, secrets } = await locate(request.query as Query, 'stdout');
    const fh = await openRegular(root, full, relative, secrets);
    if (fh === undefined) throw new FileNotFound(`no file '${relative}' in the sandbox`);
    const stream = fh.createReadStream();
    stream.on('error', () => stream.destroy());
    return reply.type('application/octet-stream').send(stream);
  });

  app.get('/files/follow', async (request, reply) => {
    const q = request.query as Query;
    const { fw, task, root, full, relative, secrets } = await locate(q, 'stdout');
    let position = intParam(q, 'offset', 0);
    // Refused at once when it is not a regular file; a file not written yet is waited for while
    // the task runs.
    const first = await openRegular(root, full, relative, secrets);
    if (first === undefined && (agent.sandboxOf(fw, task)?.ended ?? true)) throw new FileNotFound(`no file '${relative}' in the sandbox`);
    if (position === -1) position = first === undefined ? 0 : (await first.stat()).size;

    const out = new PassThrough();
    let closed = false;
    const stop = () => {
      closed = true;
      wake?.();
    };
    let wake: (() => void) | undefined;
    follows.add(stop);
    request.raw.on('close', stop);
    reply.raw.on('close', stop);
    const pause = () =>
      new Promise<void>((r) => {
        const timer = setTimeout(r, FOLLOW_POLL_MS);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    const drained = () => new Promise<void>((r) => {
      const done = () => {
        out.off('drain', done);
        out.off('close', done);
        r();
      };
      out.on('drain', done);
      out.on('close', done);
    });

    // Reads what the file gained, at most MAX_CHUNK at a time, until the task ended and all was sent.
    const pump = async (opened: FileHandle | undefined) => {
      while (!closed) {
        const ended = agent.sandboxOf(fw, task)?.ended ?? true;
        // Opened again each time: the file may be replaced (log rotation, or the task's doing).
        const fh = opened ?? (await openRegular(root, full, relative, secrets));
        opened = undefined;
        let got = 0;
        if (fh !== undefined) {
          try {
            const size = (await fh.stat()).size;
            if (size < position) position = size; // Truncated: follow from its new end.
            const n = Math.min(size - position, MAX_CHUNK);
            if (n > 0) {
              const buffer = Buffer.alloc(n);
              got = (await fh.read(buffer, 0, n, position)).bytesRead;
              position += got;
              if (got > 0 && !out.write(buffer.subarray(0, got)) && !closed) await drained();
            }
          } finally {
            await fh.close().catch(() => undefined);
          }
        }
        if (got > 0) continue;
        if (ended) break;
        await pause();
      }
    };
    pump(first)
      .catch(() => undefined) // The file went away or turned into something else: the stream ends.
      .finally(() => {
        follows.delete(stop);
        request.raw.off('close', stop);
        reply.raw.off('close', stop);
        out.end();
      });
    // A follow is long: its connection is not kept for another request, so that close() (which
    // ends every follow) does not wait for the client to drop an idle keep-alive connection.
    return reply.type('text/plain; charset=utf-8').header('connection', 'close').send(out);
  });

  return app;
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
