import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { resolve, sep } from 'node:path';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { SlipwayError } from '../core/errors.ts';
import { httpStatusOf } from '../core/http-status.ts';

/** A path outside a sandbox, a missing task or file. HTTP 404 (400 for a path that escapes). */
export class FileNotFound extends SlipwayError {
  readonly code = 'FILE_NOT_FOUND';
}

export class BadFilePath extends SlipwayError {
  readonly code = 'INVALID_REQUEST';
}

/**
 * The agent's HTTP server: a task's sandbox files, as Mesos's /files API, for the master to
 * forward to. Only files inside the sandbox of the named task are served; `path` is relative to
 * it. `read` answers Mesos's `{data, offset}`; `follow` streams a file as it grows and ends once
 * the task has ended and everything was sent.
 */
/** Where a task's sandbox is, and whether the task has ended (the Agent answers this). */
export interface SandboxLookup {
  sandboxOf(frameworkId: string, taskId: string): { dir: string; ended: boolean } | undefined;
}

export async function buildFilesApp(agent: SandboxLookup): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (error instanceof SlipwayError) return reply.code(httpStatusOf(error.code)).type('text/plain').send(error.message);
    const status = error.statusCode ?? 500;
    return reply.code(status).type('text/plain').send(status >= 500 ? 'internal error' : error.message);
  });

  const locate = (query: Record<string, string | undefined>, defaultPath: string) => {
    const fw = query['framework_id'];
    const task = query['task_id'];
    if (!fw || !task) throw new BadFilePath('framework_id and task_id are required');
    const sandbox = agent.sandboxOf(fw, task);
    if (sandbox === undefined) throw new FileNotFound(`no sandbox for task ${task} of framework ${fw} on this agent`);
    const relative = query['path'] ?? defaultPath;
    const full = resolve(sandbox.dir, relative);
    if (full !== sandbox.dir && !full.startsWith(sandbox.dir + sep)) throw new BadFilePath(`path '${relative}' is outside the task's sandbox`);
    return { full, sandbox };
  };
  const intParam = (value: string | undefined, name: string, fallback: number) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < -1) throw new BadFilePath(`${name} must be an integer >= -1, got '${value}'`);
    return n;
  };

  app.get('/files/browse', async (request) => {
    const { full } = locate(request.query as Record<string, string>, '.');
    let names: string[];
    try {
      names = await readdir(full);
    } catch {
      throw new FileNotFound(`no directory '${(request.query as Record<string, string>)['path'] ?? '.'}' in the sandbox`);
    }
    return Promise.all(
      names.map(async (name) => {
        const st = await stat(resolve(full, name));
        return { path: name, size: st.size, mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000), nlink: st.nlink, uid: st.uid, gid: st.gid, directory: st.isDirectory() };
      }),
    );
  });

  app.get('/files/read', async (request) => {
    const q = request.query as Record<string, string | undefined>;
    const { full } = locate(q, 'stdout');
    const offset = intParam(q['offset'], 'offset', 0);
    const length = intParam(q['length'], 'length', 1024 * 1024);
    let fh;
    try {
      fh = await open(full, 'r');
    } catch {
      throw new FileNotFound(`no file '${q['path'] ?? 'stdout'}' in the sandbox`);
    }
    try {
      const size = (await fh.stat()).size;
      if (offset === -1) return { data: '', offset: size };
      const n = Math.max(0, Math.min(length, size - offset));
      const buffer = Buffer.alloc(n);
      if (n > 0) await fh.read(buffer, 0, n, offset);
      return { data: buffer.toString('utf8'), offset };
    } finally {
      await fh.close();
    }
  });

  app.get('/files/download', async (request, reply) => {
    const { full } = locate(request.query as Record<string, string>, 'stdout');
    try {
      await stat(full);
    } catch {
      throw new FileNotFound('no such file in the sandbox');
    }
    return reply.type('application/octet-stream').send(createReadStream(full));
  });

  app.get('/files/follow', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    const { full } = locate(q, 'stdout');
    let position = intParam(q['offset'], 'offset', 0);
    const fw = q['framework_id']!;
    const task = q['task_id']!;
    const out = new PassThrough();
    let closed = false;
    request.raw.on('close', () => (closed = true));
    // Polls the file: fs.watch misses events on some file systems and in containers.
    const pump = async () => {
      while (!closed) {
        const ended = agent.sandboxOf(fw, task)?.ended ?? true;
        const size = await stat(full).then(
          (st) => st.size,
          () => 0, // Not created yet: the task has not written anything.
        );
        if (size > position) {
          const fh = await open(full, 'r');
          const buffer = Buffer.alloc(size - position);
          await fh.read(buffer, 0, buffer.length, position);
          await fh.close();
          position = size;
          out.write(buffer);
        } else if (ended) {
          break;
        } else {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      out.end();
    };
    void pump();
    return reply.type('text/plain; charset=utf-8').send(out);
  });

  return app;
}
