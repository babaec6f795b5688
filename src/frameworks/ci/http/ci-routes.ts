import { websocketOnly } from '../../../core/websocket-only.ts';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { basename, dirname, join, normalize, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { buildKey, isFinished, type Build } from '../build.ts';
import { ArtifactTooLarge, ArtifactUploadForbidden, BuildNotFound, CiBadRequest, CiConflict, CiNotFound, JobNotFound } from '../ci-errors.ts';
import type { LogPiece } from '../build-log-store.ts';
import type { CiFramework } from '../ci-framework.ts';
import type { ExecutorToServer } from '../executor-protocol.ts';
import { parseExecutorSpec, parseJobDefinition } from '../job-definition.ts';
import { redactJob } from '../job-secrets.ts';
import { ciErrorReply } from './ci-error-reply.ts';
import { parseWholeNumber } from './whole-number.ts';
import { JsonTooDeep, parseJsonText } from '../../../lib/json-depth.ts';
import { mayOnJob } from './job-access.ts';

export interface CiRoutesOptions {
  framework: CiFramework;
  /** Where artifacts are kept (`<dir>/<job>/<n>/<path>`). */
  artifactsDir: string;
  /** The largest artifact an executor may upload (413 past it); default DEFAULT_MAX_ARTIFACT_BYTES. */
  maxArtifactBytes?: number;
}

export const DEFAULT_MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024;

/**
 * CI's REST API (`/ci/v1`) and the executors' stream, in their own Fastify scope: errors answer
 * `{code, message, details?}` JSON with their status (ciErrorReply). Needs @fastify/websocket
 * registered on the server.
 */
export function ciRoutes(app: FastifyInstance, o: CiRoutesOptions): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const { status, body, internal } = ciErrorReply(error);
      if (internal) request.log.error(error);
      return reply.code(status).send(body);
    });
    routes(scope, o);
  });
}

function routes(app: FastifyInstance, o: CiRoutesOptions): void {
  const ci = o.framework;
  const jobOf = (name: string) => {
    const job = ci.view.jobs.get(name);
    if (job === undefined) throw new JobNotFound(name);
    return job;
  };
  /** A build number, `?before=` or `?limit=`: digits only, a safe integer, at least 1 (400 otherwise). */
  const numberOf = (raw: string, what = 'build number') => {
    const n = parseWholeNumber(raw);
    if (n === undefined || n < 1) throw new CiBadRequest(`${what} must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER} (digits only), not ${JSON.stringify(raw)}`);
    return n;
  };
  const buildOf = async (name: string, raw: string): Promise<Build> => {
    jobOf(name);
    const n = numberOf(raw);
    const b = await ci.getBuild(name, n);
    if (b === undefined) throw new BuildNotFound(name, n);
    return b;
  };

  // --- jobs ---------------------------------------------------------------------------------

  // Secrets are write-only: every answer shows them as "***" (redactJob), and a PUT that sends
  // "***" back keeps the stored value, so that a client can GET, edit and PUT a job.
  app.put('/ci/v1/jobs/:name', async (req, reply) => {
    const { name } = req.params as { name: string };
    const job = parseJobDefinition(name, req.body);
    const created = await ci.putJob(job);
    return reply.code(created ? 201 : 200).send(redactJob(job));
  });
  // The jobs the caller may read (all of them for a token that reads every job).
  app.get('/ci/v1/jobs', (req) => {
    const readable = (name: string) => mayOnJob(req, 'read', name);
    return {
      jobs: [...ci.view.jobs.values()]
        .filter((j) => readable(j.name))
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((j) => ({ ...redactJob(j), lastBuild: ci.view.lastNumber(j.name) || null })),
    };
  });
  app.get('/ci/v1/jobs/:name', (req) => {
    const job = jobOf((req.params as { name: string }).name);
    return { ...redactJob(job), lastBuild: ci.view.lastNumber(job.name) || null };
  });
  app.delete('/ci/v1/jobs/:name', async (req, reply) => {
    const { name } = req.params as { name: string };
    jobOf(name);
    await ci.deleteJob(name);
    return reply.code(204).send();
  });

  // --- builds -------------------------------------------------------------------------------

  app.post('/ci/v1/jobs/:name/builds', async (req, reply) => {
    const { name } = req.params as { name: string };
    jobOf(name);
    const body = (req.body ?? {}) as { branch?: unknown; tag?: unknown; commit?: unknown };
    if (typeof body !== 'object' || Array.isArray(body)) throw new CiBadRequest('the body, if any, is {branch?, tag?, commit?}');
    for (const k of ['branch', 'tag', 'commit'] as const) {
      if (body[k] !== undefined && typeof body[k] !== 'string') throw new CiBadRequest(`${k} must be a string`);
    }
    const tag = body.tag as string | undefined;
    const build = await ci.trigger(name, {
      cause: { kind: 'manual', description: `manual (API)${tag !== undefined ? `, tag ${tag}` : ''}` },
      event: tag !== undefined ? 'tag' : 'manual',
      ...(body.branch !== undefined ? { branch: body.branch as string } : {}),
      ...(tag !== undefined ? { tag } : {}),
      ...(body.commit !== undefined ? { commit: body.commit as string } : {}),
    });
    return reply.code(201).header('Location', `/ci/v1/jobs/${name}/builds/${build.number}`).send(build);
  });
  app.get('/ci/v1/jobs/:name/builds', async (req) => {
    const { name } = req.params as { name: string };
    jobOf(name);
    const q = req.query as { limit?: string; before?: string };
    const limit = q.limit !== undefined ? Math.min(numberOf(q.limit, 'limit'), 1000) : 50;
    return { builds: await ci.listBuilds(name, limit, q.before !== undefined ? numberOf(q.before, 'before') : undefined) };
  });
  app.get('/ci/v1/jobs/:name/builds/:n', async (req) => {
    const { name, n } = req.params as { name: string; n: string };
    return buildOf(name, n);
  });
  app.post('/ci/v1/jobs/:name/builds/:n/cancel', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    const b = await buildOf(name, n);
    if (!(await ci.cancel(name, b.number))) throw new CiConflict(`build ${name} #${b.number} has ended (${b.status})`);
    return reply.code(202).send(await buildOf(name, n));
  });
  // A deploy step's token (CiFramework.deployToken): the executor running the build proves itself
  // with its own token, in the body (never in the URL, which logs keep).
  app.post('/ci/v1/jobs/:name/builds/:n/deploy-token', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    const b = await buildOf(name, n);
    const body = (typeof req.body === 'object' && req.body !== null && !Array.isArray(req.body) ? req.body : {}) as Record<string, unknown>;
    const { executor, token, service } = body;
    if (typeof executor !== 'string' || typeof token !== 'string' || typeof service !== 'string') throw new CiBadRequest('the body must be {executor, token, service}: the executor running the build, its token, and the delivery service');
    return reply.code(201).header('cache-control', 'no-store').send(await ci.deployToken(name, b.number, { executor, token }, service));
  });
  app.post('/ci/v1/jobs/:name/builds/:n/rebuild', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    const b = await buildOf(name, n);
    const build = await ci.rebuild(name, b.number);
    return reply.code(201).header('Location', `/ci/v1/jobs/${name}/builds/${build.number}`).send(build);
  });

  // A build's log as text: the whole build, or `?step=` one step; `?follow=true` streams until it ends.
  app.get('/ci/v1/jobs/:name/builds/:n/log', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    const b = await buildOf(name, n);
    const q = req.query as { step?: string; follow?: string };
    if (q.step !== undefined && !b.steps.some((s) => s.name === q.step)) throw new CiNotFound(`build ${name} #${b.number} has no step ${q.step}`);
    const file = ci.logs.path(name, b.number, q.step);
    reply.type('text/plain; charset=utf-8');
    if (q.follow !== 'true' || isFinished(b)) {
      // A build just finished may still have its last pieces on their way to the file.
      if (isFinished(b)) await ci.logs.written(name, b.number);
      const text = await readFile(file).catch(() => Buffer.alloc(0));
      return reply.send(text);
    }
    return followLog(ci, req, reply, b, file, q.step);
  });

  // --- artifacts ----------------------------------------------------------------------------

  const maxArtifactBytes = o.maxArtifactBytes ?? DEFAULT_MAX_ARTIFACT_BYTES;
  const artifactFile = (name: string, n: number, path: string) => {
    if (path === '' || path.length > 4096 || path.includes('\0')) throw new CiBadRequest('an artifact path is 1 to 4096 characters, without NUL');
    const rel = normalize(path);
    if (rel.startsWith('..') || rel.startsWith(sep) || rel === '.' || rel.endsWith(sep)) throw new CiBadRequest(`artifact path ${path} is outside the build, or not a file's`);
    return join(o.artifactsDir, name, String(n), rel);
  };
  app.get('/ci/v1/jobs/:name/builds/:n/artifacts/*', async (req, reply) => {
    const { name, n, '*': path } = req.params as { name: string; n: string; '*': string };
    const b = await buildOf(name, n);
    if (!b.artifacts.includes(path)) throw new CiNotFound(`build ${name} #${b.number} has no artifact ${path}`);
    const file = artifactFile(name, b.number, path);
    const st = await stat(file).catch(() => undefined);
    if (st === undefined) throw new CiNotFound(`artifact ${path} of ${name} #${b.number} is gone`);
    return reply.type('application/octet-stream').header('Content-Length', st.size).send(createReadStream(file));
  });
  // Executors upload artifacts before BUILD_DONE, with their token (uploadArtifact).
  void app.register(async (uploads) => {
    // The body is not parsed: the handler streams it to disk, once the checks are passed.
    uploads.removeAllContentTypeParsers();
    uploads.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
    const targets = new WeakMap<FastifyRequest, string>();
    uploads.put('/ci/v1/jobs/:name/builds/:n/artifacts/*', {
      // Every check before a byte of the body is read (issue 11, finding 6: a body of up to 1 GB
      // was buffered first, then refused). A refusal closes the connection, so that the body
      // announced is not read either.
      onRequest: async (req, reply) => {
        try {
          const { name, n, '*': path } = req.params as { name: string; n: string; '*': string };
          const q = req.query as { executor?: string; token?: string };
          const b = await buildOf(name, n);
          const e = q.executor !== undefined && q.token !== undefined ? ci.hub.authenticate(q.executor, q.token)?.executor : undefined;
          if (e === undefined || e.build !== buildKey(name, b.number)) {
            throw new ArtifactUploadForbidden('only the executor running the build may store its artifacts');
          }
          const file = artifactFile(name, b.number, path);
          const declared = req.headers['content-length'];
          if (declared !== undefined && !(Number(declared) <= maxArtifactBytes)) throw new ArtifactTooLarge(maxArtifactBytes);
          targets.set(req, file);
        } catch (error) {
          const { status, body } = ciErrorReply(error);
          return reply.code(status).header('connection', 'close').send(body);
        }
      },
    }, async (req, reply) => {
      const file = targets.get(req);
      if (file === undefined) throw new CiBadRequest('the upload was not checked'); // onRequest answered already.
      try {
        await uploadArtifact(req.raw, file, maxArtifactBytes);
      } catch (error) {
        // The rest of the body is not read: the connection closes once the answer is out.
        const { status, body } = ciErrorReply(error);
        return reply.code(status).header('connection', 'close').send(body);
      }
      return reply.code(201).send();
    });
  });

  // --- triggers: webhooks, and what the triggers have seen ----------------------------------

  // `POST /ci/v1/hooks/{job}`: GitHub, Gitea and GitLab push events, or the generic payload. The
  // body is kept as bytes (a signature is over the exact bytes), in a scope of its own so that
  // the other routes keep their JSON parser. 201 with the build(s); 202 with why nothing was
  // built; 400 for a payload that cannot be read, 403 when the job takes no webhooks or the call
  // does not prove its secret, 404 for an unknown job.
  void app.register(async (hooks) => {
    hooks.removeAllContentTypeParsers();
    hooks.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    hooks.post('/ci/v1/hooks/:job', async (req, reply) => {
      const { job } = req.params as { job: string };
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const outcome = await ci.webhook(job, { headers: req.headers, body });
      const [first] = outcome.builds;
      if (first === undefined) return reply.code(202).send({ message: outcome.message, builds: [] });
      return reply.code(201).header('Location', `/ci/v1/jobs/${job}/builds/${first.number}`).send({ message: outcome.message, builds: outcome.builds });
    });
  });
  // What the triggers have seen, and for each tag built the releases its builds made (deploy
  // steps' outputs), newest build first, from the job's last 100 builds.
  app.get('/ci/v1/jobs/:name/triggers', async (req) => {
    const job = jobOf((req.params as { name: string }).name);
    const status = ci.triggerStatus(job);
    // A Map, then an object of own entries: a tag may be named `__proto__`.
    const releases = new Map<string, { build: number; service: string; version: string; env: string; promotion: string; state: string }[]>();
    for (const b of await ci.listBuilds(job.name, 100)) {
      if (b.tag === undefined) continue;
      for (const o of b.outputs ?? []) {
        if (o.kind !== 'release') continue;
        const list = releases.get(b.tag) ?? [];
        list.push({ build: b.number, service: o.service, version: o.name, env: o.env, promotion: o.promotion, state: o.state });
        releases.set(b.tag, list);
      }
    }
    return { ...status, releases: Object.fromEntries(releases) };
  });

  // --- executors and the queue --------------------------------------------------------------

  app.put('/ci/v1/executors/:label', async (req, reply) => {
    const { label } = req.params as { label: string };
    const spec = parseExecutorSpec(label, req.body);
    const created = await ci.putExecutorSpec(label, spec);
    return reply.code(created ? 201 : 200).send(spec);
  });
  app.get('/ci/v1/executors', () => ({
    specs: [...ci.view.specs].map(([label, s]) => ({ ...s, label })),
    executors: [...ci.view.executors.values()].map(({ launchTokenDigest: _l, launchTokenExpiresAt: _x, sessionTokenDigest: _s, ...e }) => e),
  }));
  app.get('/ci/v1/queue', (req) => ({
    queue: ci.view.queue().filter((q) => mayOnJob(req, 'read', q.build.job)).map((q) => ({ job: q.build.job, number: q.build.number, label: q.build.label, queuedAt: new Date(q.build.queuedAt).toISOString(), why: q.why })),
  }));

  // --- the executors' stream ----------------------------------------------------------------

  app.get('/ci/v1/executor-stream', { websocket: true, onRequest: websocketOnly('GET /ci/v1/executor-stream (the CI executors\' stream)') }, (socket: WebSocket, req) => {
    const q = req.query as { executor?: string; token?: string };
    let executorId: string | undefined;
    const conn = {
      send: (m: unknown) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
      },
      close: () => socket.close(),
    };
    socket.on('message', (data) => {
      let m: ExecutorToServer;
      try {
        m = parseJsonText(String(data)) as ExecutorToServer;
      } catch (e) {
        conn.send({ type: 'ERROR', message: e instanceof JsonTooDeep ? e.message : 'a frame is not JSON' });
        socket.close();
        return;
      }
      if (m === null || typeof m !== 'object' || typeof m.type !== 'string') return;
      if (executorId === undefined) {
        if (m.type !== 'HELLO' || typeof m.executorId !== 'string' || m.executorId !== q.executor) {
          conn.send({ type: 'ERROR', message: 'the first message must be HELLO, for the executor of the URL' });
          socket.close();
          return;
        }
        if (ci.hub.connected(m, q.token ?? '', conn)) executorId = m.executorId;
        return;
      }
      ci.hub.heardFrom(executorId);
      if (m.type === 'HEARTBEAT') {
        conn.send({ type: 'HEARTBEAT' });
        return;
      }
      ci.hub.message(executorId, conn, m);
    });
    socket.on('close', () => {
      if (executorId !== undefined) ci.hub.disconnected(executorId, conn);
    });
  });
}

/** Streams the log so far, then each new piece, until the build ends or the client goes. */
async function followLog(ci: CiFramework, req: FastifyRequest, reply: FastifyReply, b: Build, file: string, step: string | undefined): Promise<FastifyReply> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
  const early: LogPiece[] = [];
  let ended = false;
  let caughtUp = false;
  const finish = () => {
    if (!res.writableEnded) res.end();
  };
  const stop = ci.logs.follow(b.job, b.number, (piece) => {
    if (piece === undefined) {
      ended = true;
      if (caughtUp) finish();
      return;
    }
    if (!caughtUp) early.push(piece);
    else if (step === undefined || piece.step === step) res.write(piece.bytes);
  });
  req.raw.on('close', stop);
  // What the file held when read; pieces that ended before that offset are in it already.
  const text = await readFile(file).catch(() => Buffer.alloc(0));
  res.write(text);
  const sent = text.length;
  caughtUp = true;
  for (const p of early) {
    if (step !== undefined && p.step !== step) continue;
    const end = step !== undefined ? p.stepEnd : p.end;
    if (end <= sent) continue;
    res.write(p.bytes.subarray(Math.max(0, sent - (end - p.bytes.length))));
  }
  if (ended || isFinished((await ci.getBuild(b.job, b.number)) ?? b)) finish();
  return reply;
}

/**
 * Streams an upload to `file`: into a temporary file beside it (0600, in directories 0700), renamed
 * over it once complete, so that a reader never sees half an artifact. Past `limit` bytes the
 * upload is cut (ArtifactTooLarge, 413), and a cut or failed upload leaves no file behind.
 */
async function uploadArtifact(body: IncomingMessage, file: string, limit: number): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temp = join(dirname(file), `.${basename(file)}.upload-${randomBytes(6).toString('hex')}`);
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      if (received > limit) done(new ArtifactTooLarge(limit));
      else done(null, chunk);
    },
  });
  // Not pipeline(body, ...): it would destroy the request, and with it the connection the 413
  // must go out on. The body is piped; a client that goes away ends the counter.
  body.once('error', (e) => counter.destroy(e));
  body.once('close', () => {
    if (!body.complete) counter.destroy(new Error('the client went away'));
  });
  body.pipe(counter);
  try {
    await pipeline(counter, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    await rename(temp, file);
  } catch (e) {
    body.unpipe(counter);
    await rm(temp, { force: true });
    if (e instanceof ArtifactTooLarge) throw e;
    throw new CiBadRequest(`the upload did not complete: ${(e as Error).message}`);
  }
}
