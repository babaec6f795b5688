import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parse as parseForm } from 'node:querystring';
import { Readable } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { httpErrorReply } from '../../../core/http-error-reply.ts';
import { buildKey, isFinished, type Build, type BuildCause } from '../build.ts';
import { CiBadRequest, CiNotFound, JobNotFound } from '../ci-errors.ts';
import type { CiFramework } from '../ci-framework.ts';
import type { JobDefinition } from '../job-definition.ts';
import { mayOnJob, requireOnJob } from './job-access.ts';
import { parseWholeNumber } from './whole-number.ts';

// Jenkins's remote API under `/jenkins`: the subset that the common clients (the npm `jenkins`
// package, python-jenkins, curl scripts) use to trigger a job, follow its queue item to its build,
// read the build's state and log, and stop it. Shapes follow Jenkins 2.x's JSON (`_class`
// included); the fields a client can use are real, the rest (views, health reports, change sets)
// are present and empty so that code reading them does not break.
//
// Mapping of CI onto Jenkins:
// - A CI job is a freestyle project. Jenkins has no build until its queue item leaves the queue;
//   CI numbers a build when it is queued. So a queued build shows only as a queue item, and a
//   build cancelled while queued never shows as a build (its queue item says `cancelled`).
//   A build that ended in `error` before it ran (no pipeline at the commit) shows as a FAILURE.
// - Results: success → SUCCESS; failure and error → FAILURE; cancelled → ABORTED.
// - Queue-item ids: Jenkins numbers queue items apart from builds; CI has no such id. QueueIds
//   below gives one to each build the first time this API shows it, in memory (see there).
// - The log is the build's whole log, then Jenkins's closing lines (`ERROR: why` when the build
//   has an error, `Finished: RESULT`), which appear once the build ended. Offsets are bytes.
// - `buildWithParameters` starts the build like `build`: CI jobs take no parameters (the
//   pipeline is in the repository), so the parameters are ignored, and named in the build's cause
//   so that the user sees they were.
// - Query parameters `tree`, `depth` and `pretty` are ignored: answers are always the depth-0
//   shape. There is no security: crumbs are issued (the clients ask for one before a POST) but
//   not checked, like every other CI route.
// - Errors answer text/plain with the status of their code (404 for an unknown job, build or
//   queue item, as Jenkins; it answers HTML, clients look at the status only).

/** The version the `X-Jenkins` header announces: clients read it to know they talk to Jenkins 2. */
const JENKINS_VERSION = '2.0';
/** Builds listed in a job's `builds` (Jenkins's default too). */
const LISTED_BUILDS = 100;
/** How far back in a job's history permalinks (lastSuccessfulBuild, ...) are looked for. */
const PERMALINK_SCAN_LIMIT = 1000;
const PAGE = 100;
/** The most log bytes one progressiveText answer carries; the client asks again for the rest. */
const MAX_LOG_CHUNK = 8 * 1024 * 1024;
/** Queue ids remembered (the oldest are forgotten first; Jenkins forgets left items after 5 minutes). */
const QUEUE_IDS_REMEMBERED = 100_000;

const FREESTYLE_PROJECT = 'hudson.model.FreeStyleProject';
const FREESTYLE_BUILD = 'hudson.model.FreeStyleBuild';

export interface JenkinsRoutesOptions {
  framework: CiFramework;
}

/**
 * Registers Jenkins's remote API under `/jenkins`, in its own scope: its own error and
 * not-found answers (text/plain) and a parser for the form bodies Jenkins clients post.
 */
export function jenkinsRoutes(app: FastifyInstance, o: JenkinsRoutesOptions): void {
  void app.register(
    async (scope) => {
      // Jenkins answers errors as plain text: the plain-text reply, with each error's own status.
      scope.setErrorHandler((error: FastifyError, request, reply) => {
        const { status, message, internal } = httpErrorReply(error);
        if (internal) request.log.error(error);
        return reply.code(status).type('text/plain; charset=utf-8').send(message);
      });
      scope.setNotFoundHandler((request, reply) => reply.code(404).type('text/plain; charset=utf-8').send(`not found: ${request.method} ${request.url}`));
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_req, body, done) => done(null, parseForm(String(body))));
      scope.addHook('onRequest', async (_req, reply) => {
        reply.header('X-Jenkins', JENKINS_VERSION);
      });
      routes(scope, o.framework);
    },
    { prefix: '/jenkins' },
  );
}

/**
 * Jenkins's queue-item ids, given to builds the first time the API shows them (when it triggers
 * one, lists the queue, or shows a build) and kept in memory. Ids count up from the time this
 * process started, in milliseconds since 2020: a restart never gives an old id to another build
 * (unless ids were handed out faster than one per millisecond on average), so a client that polls
 * a queue item across a restart gets a 404, never someone else's build. Jenkins too forgets the
 * items that left its queue (after five minutes).
 */
class QueueIds {
  private last: number;
  private readonly byKey = new Map<string, number>();
  private readonly byId = new Map<number, { job: string; number: number }>();

  constructor(now: number) {
    this.last = now - Date.UTC(2020, 0, 1);
  }

  idOf(job: string, number: number): number {
    const key = `${job}#${number}`;
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const id = ++this.last;
    this.byKey.set(key, id);
    this.byId.set(id, { job, number });
    if (this.byId.size > QUEUE_IDS_REMEMBERED) {
      const [oldestId, oldest] = this.byId.entries().next().value as [number, { job: string; number: number }];
      this.byId.delete(oldestId);
      this.byKey.delete(`${oldest.job}#${oldest.number}`);
    }
    return id;
  }

  lookup(id: number): { job: string; number: number } | undefined {
    return this.byId.get(id);
  }
}

/** Whether Jenkins would have this build: it left the queue (ran or runs), or failed before it could. */
function isJenkinsBuild(b: Build): boolean {
  return b.startedAt !== undefined || (isFinished(b) && b.status !== 'cancelled');
}

function resultOf(b: Build): 'SUCCESS' | 'FAILURE' | 'ABORTED' | null {
  switch (b.status) {
    case 'success':
      return 'SUCCESS';
    case 'failure':
    case 'error':
      return 'FAILURE';
    case 'cancelled':
      return 'ABORTED';
    default:
      return null;
  }
}

/** Jenkins's ball colour of a finished build. */
function ballOf(b: Build): string {
  return b.status === 'success' ? 'blue' : b.status === 'cancelled' ? 'aborted' : 'red';
}

function durationOf(b: Build): number {
  return isFinished(b) && b.finishedAt !== undefined ? Math.max(0, b.finishedAt - (b.startedAt ?? b.queuedAt)) : 0;
}

/** Jenkins's cause classes for CI's causes; the description is CI's own words. */
function causeJson(cause: BuildCause): Record<string, unknown> {
  switch (cause.kind) {
    case 'cron':
      return { _class: 'hudson.triggers.TimerTrigger$TimerTriggerCause', shortDescription: cause.description };
    case 'push':
    case 'tag':
      return { _class: 'hudson.triggers.SCMTrigger$SCMTriggerCause', shortDescription: cause.description };
    case 'webhook':
      return { _class: 'hudson.model.Cause$RemoteCause', shortDescription: cause.description, addr: '', note: null };
    default:
      return { _class: 'hudson.model.Cause$UserIdCause', shortDescription: cause.description, userId: null, userName: 'anonymous' };
  }
}

/** Jenkins's closing lines of a finished build's console: `ERROR: why`, then `Finished: RESULT`. */
function trailerOf(b: Build, logEndsWithNewline: boolean): Buffer {
  const lines: string[] = [];
  if (b.error !== undefined) lines.push(`${b.status === 'cancelled' ? 'Aborted' : 'ERROR'}: ${b.error}`);
  lines.push(`Finished: ${resultOf(b) ?? 'FAILURE'}`);
  return Buffer.from(`${logEndsWithNewline ? '' : '\n'}${lines.join('\n')}\n`);
}

/** Bytes [from, to) of a file (fewer if it is shorter). */
async function readRange(file: string, from: number, to: number): Promise<Buffer> {
  if (to <= from) return Buffer.alloc(0);
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(to - from);
    const { bytesRead } = await fh.read(buf, 0, buf.length, from);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Permalinks of a job (`/job/x/lastBuild/...`), each the newest build it matches. */
const PERMALINKS = new Map<string, (b: Build) => boolean>([
  ['lastBuild', () => true],
  ['lastCompletedBuild', (b) => isFinished(b)],
  ['lastSuccessfulBuild', (b) => b.status === 'success'],
  ['lastStableBuild', (b) => b.status === 'success'],
  ['lastFailedBuild', (b) => b.status === 'failure' || b.status === 'error'],
  ['lastUnsuccessfulBuild', (b) => isFinished(b) && b.status !== 'success'],
  // CI has no "unstable" result.
  ['lastUnstableBuild', () => false],
]);

function routes(app: FastifyInstance, ci: CiFramework): void {
  const queueIds = new QueueIds(Date.now());
  const crumb = randomBytes(16).toString('hex');

  /** The absolute URL of `/jenkins` as the client reached it (Jenkins answers absolute URLs). */
  const baseOf = (req: FastifyRequest): string => {
    const host = req.host !== '' ? req.host : `${req.socket.localAddress ?? '127.0.0.1'}:${req.socket.localPort ?? 80}`;
    return `${req.protocol}://${host}/jenkins`;
  };
  const jobUrl = (base: string, job: string) => `${base}/job/${encodeURIComponent(job)}/`;
  const buildUrl = (base: string, job: string, n: number) => `${jobUrl(base, job)}${n}/`;
  const buildRef = (base: string, b: Build) => ({ _class: FREESTYLE_BUILD, number: b.number, url: buildUrl(base, b.job, b.number) });

  const jobOf = (name: string): JobDefinition => {
    const job = ci.view.jobs.get(name);
    if (job === undefined) throw new JobNotFound(name);
    return job;
  };

  /** A job's builds as Jenkins has them, newest first, at most `limit` looked at. */
  async function* history(job: string, limit: number): AsyncGenerator<Build> {
    let before: number | undefined;
    let seen = 0;
    while (seen < limit) {
      const page = await ci.listBuilds(job, Math.min(PAGE, limit - seen), before);
      for (const b of page) if (isJenkinsBuild(b)) yield b;
      seen += page.length;
      const oldest = page[page.length - 1];
      if (oldest === undefined || page.length < PAGE) return;
      before = oldest.number;
    }
  }

  /** Jenkins's colour of a job: its last completed build's ball (`notbuilt` without one), `_anime` while a build runs. */
  const colorOf = async (job: string): Promise<string> => {
    let building = false;
    for await (const b of history(job, PERMALINK_SCAN_LIMIT)) {
      if (b.status === 'running') building = true;
      else if (isFinished(b)) return `${ballOf(b)}${building ? '_anime' : ''}`;
    }
    return `notbuilt${building ? '_anime' : ''}`;
  };

  const taskJson = async (base: string, job: string) => ({ _class: FREESTYLE_PROJECT, name: job, url: jobUrl(base, job), color: await colorOf(job) });

  const buildOf = async (name: string, raw: string): Promise<Build> => {
    jobOf(name);
    const permalink = PERMALINKS.get(raw);
    if (permalink !== undefined) {
      for await (const b of history(name, PERMALINK_SCAN_LIMIT)) if (permalink(b)) return b;
      throw new CiNotFound(`job ${name} has no ${raw}`);
    }
    const n = parseWholeNumber(raw);
    const b = n !== undefined && n >= 1 ? await ci.getBuild(name, n) : undefined;
    if (b === undefined || !isJenkinsBuild(b)) throw new CiNotFound(`no build ${name} #${raw}`);
    return b;
  };

  /** Jenkins's estimate: the mean duration of the last three successful builds (else of the last completed ones), -1 without any. */
  const estimatedDuration = async (job: string): Promise<number> => {
    const successful: number[] = [];
    const completed: number[] = [];
    for await (const b of history(job, PAGE)) {
      if (b.status === 'success' && successful.length < 3) successful.push(durationOf(b));
      else if (isFinished(b) && completed.length < 3) completed.push(durationOf(b));
      if (successful.length === 3) break;
    }
    const pick = successful.length > 0 ? successful : completed;
    return pick.length > 0 ? Math.round(pick.reduce((a, c) => a + c, 0) / pick.length) : -1;
  };

  const buildJson = async (base: string, b: Build) => ({
    _class: FREESTYLE_BUILD,
    actions: [{ _class: 'hudson.model.CauseAction', causes: [causeJson(b.cause)] }],
    artifacts: b.artifacts.map((p) => ({ displayPath: basename(p), fileName: basename(p), relativePath: p })),
    building: !isFinished(b),
    builtOn: b.hostname ?? '',
    changeSet: { _class: 'hudson.scm.EmptyChangeLogSet', items: [], kind: null },
    culprits: [],
    description: null,
    displayName: `#${b.number}`,
    duration: durationOf(b),
    estimatedDuration: await estimatedDuration(b.job),
    executor: null,
    fullDisplayName: `${b.job} #${b.number}`,
    id: String(b.number),
    keepLog: false,
    number: b.number,
    queueId: queueIds.idOf(b.job, b.number),
    result: resultOf(b),
    timestamp: b.startedAt ?? b.queuedAt,
    url: buildUrl(base, b.job, b.number),
  });

  /** A queue item: waiting (blocked or buildable, with CI's reason), or left (to its build, or cancelled). */
  const queueItemJson = async (base: string, id: number, b: Build) => {
    const common = {
      actions: [{ _class: 'hudson.model.CauseAction', causes: [causeJson(b.cause)] }],
      id,
      inQueueSince: b.queuedAt,
      params: '',
      stuck: false,
      task: await taskJson(base, b.job),
      url: `queue/item/${id}/`,
    };
    if (b.status === 'queued') {
      const blocked = ci.view.reasons.get(buildKey(b.job, b.number))?.kind === 'concurrency';
      const why = ci.view.queue().find((q) => q.build.job === b.job && q.build.number === b.number)?.why ?? null;
      return {
        _class: blocked ? 'hudson.model.Queue$BlockedItem' : 'hudson.model.Queue$BuildableItem',
        ...common,
        blocked,
        buildable: !blocked,
        buildableStartMilliseconds: b.queuedAt,
        ...(blocked ? {} : { pending: false }),
        why,
        cancelled: false,
        executable: null,
        timestamp: b.queuedAt,
      };
    }
    const ran = isJenkinsBuild(b);
    return {
      _class: 'hudson.model.Queue$LeftItem',
      ...common,
      blocked: false,
      buildable: false,
      why: null,
      cancelled: !ran,
      executable: ran ? buildRef(base, b) : null,
      timestamp: b.startedAt ?? b.finishedAt ?? b.queuedAt,
    };
  };

  const queueItemOf = async (raw: string): Promise<{ id: number; build: Build }> => {
    const id = parseWholeNumber(raw);
    const ref = id !== undefined ? queueIds.lookup(id) : undefined;
    const build = ref !== undefined ? await ci.getBuild(ref.job, ref.number) : undefined;
    if (id === undefined || build === undefined) throw new CiNotFound(`no queue item ${raw}`);
    return { id, build };
  };

  // --- the server -----------------------------------------------------------------------------

  const overview = async (req: FastifyRequest) => {
    const base = baseOf(req);
    const names = [...ci.view.jobs.values()].map((j) => j.name).filter((n) => mayOnJob(req, 'read', n)).sort();
    return {
      _class: 'hudson.model.Hudson',
      assignedLabels: [{ name: 'built-in' }],
      mode: 'NORMAL',
      nodeDescription: 'Slipway CI',
      nodeName: '',
      numExecutors: 0,
      description: null,
      jobs: await Promise.all(names.map((name) => taskJson(base, name))),
      overallLoad: {},
      primaryView: { _class: 'hudson.model.AllView', name: 'all', url: `${base}/` },
      quietingDown: false,
      slaveAgentPort: -1,
      unlabeledLoad: { _class: 'jenkins.model.UnlabeledLoadStatistics' },
      url: `${base}/`,
      useCrumbs: true,
      useSecurity: false,
      views: [{ _class: 'hudson.model.AllView', name: 'all', url: `${base}/` }],
    };
  };
  app.get('/api/json', overview);
  app.get('/', async (req) => overview(req));
  app.get('/crumbIssuer/api/json', () => ({ _class: 'hudson.security.csrf.DefaultCrumbIssuer', crumb, crumbRequestField: 'Jenkins-Crumb' }));

  // --- the queue ------------------------------------------------------------------------------

  app.get('/queue/api/json', async (req) => {
    const base = baseOf(req);
    return {
      _class: 'hudson.model.Queue',
      discoverableItems: [],
      items: await Promise.all(ci.view.queue().filter((q) => mayOnJob(req, 'read', q.build.job)).map((q) => queueItemJson(base, queueIds.idOf(q.build.job, q.build.number), q.build))),
    };
  });
  app.get('/queue/item/:id/api/json', async (req) => {
    const { id, build } = await queueItemOf((req.params as { id: string }).id);
    requireOnJob(req, 'read', build.job);
    return queueItemJson(baseOf(req), id, build);
  });
  // The npm client wants a redirect (Jenkins's "back to the previous page").
  app.post('/queue/item/:id/cancelQueue', async (req, reply) => {
    const { build } = await queueItemOf((req.params as { id: string }).id);
    requireOnJob(req, 'trigger', build.job);
    if (build.status === 'queued') await ci.cancel(build.job, build.number);
    return reply.redirect(jobUrl(baseOf(req), build.job), 302);
  });

  // --- jobs -----------------------------------------------------------------------------------

  app.get('/job/:name/api/json', async (req) => {
    const { name } = req.params as { name: string };
    const job = jobOf(name);
    const base = baseOf(req);
    const builds: Build[] = [];
    const links = new Map<string, Build | null>([...PERMALINKS.keys()].map((k) => [k, null]));
    let building = false;
    let lastCompleted: Build | undefined;
    for await (const b of history(name, PERMALINK_SCAN_LIMIT)) {
      if (builds.length < LISTED_BUILDS) builds.push(b);
      if (b.status === 'running' && lastCompleted === undefined) building = true;
      if (isFinished(b)) lastCompleted ??= b;
      for (const [k, matches] of PERMALINKS) if (links.get(k) === null && matches(b)) links.set(k, b);
      if (builds.length >= LISTED_BUILDS && [...links].every(([k, v]) => v !== null || k === 'lastUnstableBuild')) break;
    }
    const queued = ci.view.queue().find((q) => q.build.job === name);
    const ref = (k: string) => {
      const b = links.get(k);
      return b === undefined || b === null ? null : buildRef(base, b);
    };
    return {
      _class: FREESTYLE_PROJECT,
      actions: [],
      buildable: true,
      builds: builds.map((b) => buildRef(base, b)),
      color: `${lastCompleted !== undefined ? ballOf(lastCompleted) : 'notbuilt'}${building ? '_anime' : ''}`,
      concurrentBuild: job.concurrency > 1,
      description: null,
      displayName: name,
      displayNameOrNull: null,
      downstreamProjects: [],
      fullDisplayName: name,
      fullName: name,
      healthReport: [],
      inQueue: queued !== undefined,
      keepDependencies: false,
      lastBuild: ref('lastBuild'),
      lastCompletedBuild: ref('lastCompletedBuild'),
      lastFailedBuild: ref('lastFailedBuild'),
      lastStableBuild: ref('lastStableBuild'),
      lastSuccessfulBuild: ref('lastSuccessfulBuild'),
      lastUnstableBuild: null,
      lastUnsuccessfulBuild: ref('lastUnsuccessfulBuild'),
      name,
      nextBuildNumber: ci.view.lastNumber(name) + 1,
      property: [],
      queueItem: queued !== undefined ? await queueItemJson(base, queueIds.idOf(name, queued.build.number), queued.build) : null,
      scm: { _class: 'hudson.scm.NullSCM' },
      upstreamProjects: [],
      url: jobUrl(base, name),
    };
  });

  // `build` and `buildWithParameters` (with `?token=`, `?delay=`, `?cause=` as Jenkins has them):
  // 201 with the queue item's absolute URL in Location, which clients parse for its id.
  const trigger = async (req: FastifyRequest, reply: FastifyReply) => {
    const { name } = req.params as { name: string };
    jobOf(name);
    const query = req.query as Record<string, string | string[] | undefined>;
    const body = req.body !== null && typeof req.body === 'object' && !Buffer.isBuffer(req.body) ? (req.body as Record<string, unknown>) : {};
    const control = new Set(['token', 'delay', 'cause']);
    const ignored = [...new Set([...Object.keys(query), ...Object.keys(body)])].filter((k) => !control.has(k)).sort();
    const why = typeof query['cause'] === 'string' ? `: ${query['cause']}` : '';
    const build = await ci.trigger(name, {
      cause: { kind: 'manual', description: `manual (Jenkins API${why})${ignored.length > 0 ? `; parameters ignored: ${ignored.join(', ')}` : ''}` },
      event: 'manual',
    });
    const id = queueIds.idOf(name, build.number);
    return reply.code(201).header('Location', `${baseOf(req)}/queue/item/${id}/`).send();
  };
  app.post('/job/:name/build', trigger);
  app.post('/job/:name/buildWithParameters', trigger);

  // --- builds (a number or a permalink) -------------------------------------------------------

  app.get('/job/:name/:n/api/json', async (req) => {
    const { name, n } = req.params as { name: string; n: string };
    return buildJson(baseOf(req), await buildOf(name, n));
  });
  app.get('/job/:name/:n/buildNumber', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    return reply.type('text/plain; charset=utf-8').send(String((await buildOf(name, n)).number));
  });

  // Stop: Jenkins redirects back (the npm client insists on the 302); stopping an ended build does nothing.
  app.post('/job/:name/:n/stop', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    const b = await buildOf(name, n);
    if (!isFinished(b)) await ci.cancel(name, b.number);
    return reply.redirect(buildUrl(baseOf(req), name, b.number), 302);
  });
  // Pipeline jobs' harder stops answer 200 in Jenkins; here they are the same stop.
  for (const verb of ['term', 'kill']) {
    app.post(`/job/:name/:n/${verb}`, async (req, reply) => {
      const { name, n } = req.params as { name: string; n: string };
      const b = await buildOf(name, n);
      if (!isFinished(b)) await ci.cancel(name, b.number);
      return reply.code(200).send();
    });
  }

  // The log from byte `start` (query or form body): complete lines only while the build runs (so
  // that no line and no UTF-8 character is cut), X-Text-Size the offset to ask from next time,
  // X-More-Data while there may be more. A `start` beyond the end starts over (Jenkins's rule).
  const progressiveText = async (req: FastifyRequest, reply: FastifyReply) => {
    const { name, n } = req.params as { name: string; n: string };
    let b = await buildOf(name, n);
    const query = req.query as Record<string, unknown>;
    const body = req.body !== null && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
    const raw = query['start'] ?? body['start'];
    let start = 0;
    if (raw !== undefined && raw !== '') {
      const offset = typeof raw === 'string' ? parseWholeNumber(raw) : undefined;
      if (offset === undefined) throw new CiBadRequest(`start must be a byte offset (digits only), not ${String(raw)}`);
      start = offset;
    }
    if (isFinished(b)) await ci.logs.written(name, b.number);
    b = (await ci.getBuild(name, b.number)) ?? b;
    const file = ci.logs.path(name, b.number);
    const size = await stat(file).then((st) => st.size, () => 0);
    reply.type('text/plain; charset=utf-8');
    if (!isFinished(b)) {
      if (start > size) start = 0;
      const chunk = await readRange(file, start, Math.min(size, start + MAX_LOG_CHUNK)).catch(() => Buffer.alloc(0));
      const text = chunk.subarray(0, chunk.lastIndexOf(0x0a) + 1);
      return reply.header('X-Text-Size', String(start + text.length)).header('X-More-Data', 'true').send(text);
    }
    const endsWithNewline = size === 0 || (await readRange(file, size - 1, size).catch(() => Buffer.from('\n')))[0] === 0x0a;
    const trailer = trailerOf(b, endsWithNewline);
    const total = size + trailer.length;
    if (start > total) start = 0;
    const end = Math.min(total, start + MAX_LOG_CHUNK);
    const fromFile = start < size ? await readRange(file, start, Math.min(size, end)).catch(() => Buffer.alloc(0)) : Buffer.alloc(0);
    let text = Buffer.concat([fromFile, trailer.subarray(Math.max(0, start - size), Math.max(0, end - size))]);
    if (end < total) {
      // A cut in the middle: at a line's end if the chunk has one.
      const nl = text.lastIndexOf(0x0a);
      if (nl >= 0) text = text.subarray(0, nl + 1);
      reply.header('X-More-Data', 'true');
    }
    return reply.header('X-Text-Size', String(start + text.length)).send(text);
  };
  app.get('/job/:name/:n/logText/progressiveText', progressiveText);
  app.post('/job/:name/:n/logText/progressiveText', progressiveText);

  // The whole console as text (what Jenkins shows as "Console Output"), with its closing lines once the build ended.
  app.get('/job/:name/:n/consoleText', async (req, reply) => {
    const { name, n } = req.params as { name: string; n: string };
    let b = await buildOf(name, n);
    if (isFinished(b)) await ci.logs.written(name, b.number);
    b = (await ci.getBuild(name, b.number)) ?? b;
    const file = ci.logs.path(name, b.number);
    const size = await stat(file).then((st) => st.size, () => 0);
    const finished = isFinished(b);
    const endsWithNewline = size === 0 || (await readRange(file, size - 1, size).catch(() => Buffer.from('\n')))[0] === 0x0a;
    async function* consoleBytes(): AsyncGenerator<Buffer> {
      if (size > 0) for await (const chunk of createReadStream(file, { start: 0, end: size - 1 })) yield chunk as Buffer;
      if (finished) yield trailerOf(b, endsWithNewline);
    }
    return reply.type('text/plain; charset=utf-8').send(Readable.from(consoleBytes()));
  });

  // Artifacts are CI's: Jenkins's artifact URL sends the client there.
  app.get('/job/:name/:n/artifact/*', async (req, reply) => {
    const { name, n, '*': path } = req.params as { name: string; n: string; '*': string };
    const b = await buildOf(name, n);
    if (!b.artifacts.includes(path)) throw new CiNotFound(`build ${name} #${b.number} has no artifact ${path}`);
    const encoded = path.split('/').map(encodeURIComponent).join('/');
    return reply.redirect(`/ci/v1/jobs/${encodeURIComponent(name)}/builds/${b.number}/artifacts/${encoded}`, 302);
  });
}
