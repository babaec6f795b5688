import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { identityOf, type Check, type GateRequest, type RouteRule } from '../../auth/http-gate.ts';
import { decide, type Capability } from '../../auth/policy.ts';
import { SlipwayError } from '../../core/errors.ts';
import { httpErrorReply } from '../../core/http-error-reply.ts';
import type { ConfigCenter } from '../config-center.ts';
import { configName, type ConfigService, type Rollout } from '../config-definitions.ts';
import type { GrayTarget } from '../config-store.ts';
import { FetchRefused, InvalidConfig } from '../config-errors.ts';
import { accessKeySecretChecks } from './apollo-signature.ts';
import { filesText, listingFormat, TEXT_TYPE, watchReleaseText } from './pull-script.ts';

/**
 * `/config/v1`, the config center's API (docs/config.md). Errors answer `{code, message,
 * details?: [{field, message}]}` with their status.
 *
 * Who may do what (kind `config`, named `service/env`): `read` to see (secrets masked), `files`
 * to read a release's files (the secrets rendered into them included), `configure` to change
 * services, environments and values (an edit), `publish-config` to release and roll back
 * (Apollo's edit and publish, per environment). A service's definition is `service/*`; an
 * environment's definition and shared values are `*\/env`.
 */

type Params = Record<string, string>;
const at = (capability: Capability, name: (p: Params, q: Record<string, unknown>) => string): RouteRule['access'] => (req: GateRequest) => [{ capability, resource: { kind: 'config', name: name(req.params as Params, req.query) } }] as Check[];
const svcEnv = (p: Params) => `${p['service']}/${p['env']}`;
const svc = (p: Params) => `${p['service']}/*`;
const env = (p: Params) => `*/${p['env']}`;
const queryScope = (_p: Params, q: Record<string, unknown>) => `${String(q['service'] ?? '')}/${String(q['env'] ?? '')}`;

export const CONFIG_ACCESS_RULES: readonly RouteRule[] = [
  // Any caller: the list holds the services it may read.
  { method: 'GET', url: '/config/v1/services', access: () => [] },
  { method: 'GET', url: '/config/v1/services/:service', access: at('read', svc) },
  // Linking apps lets its releases restart them and list their instances: `restart` and `read` on each.
  // Naming an Apollo access key hands its value to whoever signs with it: `use` on that secret.
  { method: 'PUT', url: '/config/v1/services/:service', access: (req) => [...(at('configure', svc) as (r: GateRequest) => Check[])(req), ...linkedApps(req.body), ...accessKeySecretChecks(req.body)] },
  { method: 'DELETE', url: '/config/v1/services/:service', access: at('configure', svc) },
  { method: 'GET', url: '/config/v1/environments', access: () => [] },
  { method: 'GET', url: '/config/v1/environments/:env', access: at('read', env) },
  { method: 'PUT', url: '/config/v1/environments/:env', access: at('configure', env) },
  { method: 'DELETE', url: '/config/v1/environments/:env', access: at('configure', env) },
  { method: 'GET', url: '/config/v1/environments/:env/values', access: at('read', env) },
  { method: ['PUT', 'PATCH'], url: '/config/v1/environments/:env/values', access: at('configure', env) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/values', access: at('read', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/values/versions', access: at('read', svcEnv) },
  { method: ['PUT', 'PATCH'], url: '/config/v1/services/:service/environments/:env/values', access: at('configure', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/releases', access: at('read', svcEnv) },
  { method: 'POST', url: '/config/v1/services/:service/environments/:env/releases', access: at('publish-config', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/releases/:version', access: at('read', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/releases/:a/diff/:b', access: at('read', svcEnv) },
  { method: 'POST', url: '/config/v1/services/:service/environments/:env/preview', access: at('read', svcEnv) },
  { method: 'POST', url: '/config/v1/services/:service/environments/:env/rollback', access: at('publish-config', svcEnv) },
  { method: 'POST', url: '/config/v1/services/:service/environments/:env/releases/:version/promote', access: at('publish-config', svcEnv) },
  { method: 'POST', url: '/config/v1/services/:service/environments/:env/releases/:version/abandon', access: at('publish-config', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/instances', access: at('read', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/rollouts', access: at('read', svcEnv) },
  { method: 'GET', url: '/config/v1/services/:service/environments/:env/rollouts/:id', access: at('read', svcEnv) },
  { method: 'GET', url: '/config/v1/files', access: at('read', queryScope) },
  // A file's bytes hold the secrets rendered into it: `files` (as a sandbox's files), not only read.
  { method: 'GET', url: '/config/v1/files/:service/:env/:version/:name', access: (req) => [...(at('read', svcEnv) as (r: GateRequest) => Check[])(req), ...(at('files', svcEnv) as (r: GateRequest) => Check[])(req)] },
  { method: 'GET', url: '/config/v1/watch', access: at('read', queryScope) },
  // Any caller: the stream holds the events of what it may read.
  { method: 'GET', url: '/config/v1/events', access: () => [] },
  // The agent's fetcher at a task's launch: the URL's signature is the proof (ConfigCenter.fetchUrl).
  { method: 'GET', url: '/config/v1/fetch/:service/:env/:version/:name', access: 'own' },
];

/** The watch answers of a release, serialized once however many watchers get them. */
const watchTexts = new WeakMap<object, { poll: string; event: string }>();
function watchText(release: { version: number }): { poll: string; event: string } {
  let t = watchTexts.get(release);
  if (t === undefined) {
    const json = JSON.stringify(release);
    t = { poll: `{"release":${json}}`, event: `event: release\ndata: ${json}\n\n` };
    watchTexts.set(release, t);
  }
  return t;
}

function linkedApps(body: unknown): Check[] {
  const apps = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['apps'] : undefined;
  if (typeof apps !== 'object' || apps === null || Array.isArray(apps)) return [];
  return Object.values(apps)
    // Every one (the service's validation refuses an app of an environment that does not exist).
    .filter((id): id is string => typeof id === 'string')
    .flatMap((id) => [
      { capability: 'restart' as const, resource: { kind: 'apps' as const, name: id } },
      { capability: 'read' as const, resource: { kind: 'apps' as const, name: id } },
    ]);
}

function whole(text: string | undefined, field: string, min = 0): number {
  if (text === undefined || !/^\d{1,9}$/.test(text) || Number(text) < min) throw new InvalidConfig([{ field, message: `must be a whole number${min > 0 ? ` from ${min}` : ''}, not ${JSON.stringify(String(text).slice(0, 40))}` }]);
  return Number(text);
}

function who(req: FastifyRequest): string {
  return identityOf(req)?.name ?? 'anonymous';
}

/**
 * A gray release's target, exactly one of: `instances` (a count), `percent` (1-100 of the app's
 * instances, rounded up), `taskIds` (named instances), `agents` (attribute -> value, `hostname`
 * too, every pair matching).
 */
function parseGray(v: unknown): GrayTarget {
  const problems: { field: string; message: string }[] = [];
  const shape = 'is {"instances": N} | {"percent": P} | {"taskIds": [...]} | {"agents": {"attribute": "value"}}, exactly one';
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidConfig([{ field: 'gray', message: shape }]);
  const g = v as Record<string, unknown>;
  const keys = Object.keys(g);
  for (const k of keys) if (!['instances', 'percent', 'taskIds', 'agents'].includes(k)) problems.push({ field: `gray.${k}`, message: 'unknown field (known: instances, percent, taskIds, agents)' });
  if (keys.length !== 1) problems.push({ field: 'gray', message: shape });
  const { instances, percent, taskIds, agents } = g;
  if (instances !== undefined && (typeof instances !== 'number' || !Number.isInteger(instances) || instances < 1 || instances > 10_000)) problems.push({ field: 'gray.instances', message: 'must be a whole number from 1 to 10000' });
  if (percent !== undefined && (typeof percent !== 'number' || !Number.isInteger(percent) || percent < 1 || percent > 100)) problems.push({ field: 'gray.percent', message: 'must be a whole number from 1 to 100' });
  if (taskIds !== undefined && (!Array.isArray(taskIds) || taskIds.length === 0 || taskIds.length > 1000 || !taskIds.every((t) => typeof t === 'string' && t.length > 0 && t.length <= 500))) problems.push({ field: 'gray.taskIds', message: 'must be a list of 1 to 1000 task ids' });
  if (agents !== undefined && (typeof agents !== 'object' || agents === null || Array.isArray(agents) || Object.keys(agents).length === 0 || Object.keys(agents).length > 20 || !Object.entries(agents).every(([k, x]) => k !== '' && k.length <= 100 && typeof x === 'string' && x.length <= 500))) problems.push({ field: 'gray.agents', message: 'must be an object of 1 to 20 attribute names (1 to 100 characters) to string values (at most 500)' });
  if (problems.length > 0) throw new InvalidConfig(problems);
  return instances !== undefined ? { instances: instances as number } : percent !== undefined ? { percent: percent as number } : taskIds !== undefined ? { taskIds: taskIds as string[] } : { agents: { ...(agents as Record<string, string>) } };
}

/** The `instance` of a files listing or a watch: a task id, for a gray release's members. */
function instanceOf(q: Record<string, string | undefined>): string | undefined {
  const v = q['instance'];
  if (v === undefined) return undefined;
  if (v === '' || v.length > 500) throw new InvalidConfig([{ field: 'instance', message: 'must be a task id (1 to 500 characters)' }]);
  return v;
}

/** A release's or rollback's options: `note`, `rollout` (restart, hot, none) and `deadlineSeconds` of a rollout. */
function releaseOptions(body: unknown, known: readonly string[]): { note?: string; rollout?: Rollout; deadlineMs?: number } {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidConfig([{ field: '', message: 'the body must be a JSON object' }]);
  const b = body as Record<string, unknown>;
  const problems: { field: string; message: string }[] = [];
  for (const k of Object.keys(b)) if (!known.includes(k)) problems.push({ field: k, message: `unknown field (known: ${known.join(', ')})` });
  const { note, rollout, deadlineSeconds } = b;
  if (note !== undefined && (typeof note !== 'string' || note.length > 2000)) problems.push({ field: 'note', message: 'must be a string of at most 2000 characters' });
  if (rollout !== undefined && rollout !== 'restart' && rollout !== 'hot' && rollout !== 'none') problems.push({ field: 'rollout', message: 'must be restart, hot or none' });
  if (deadlineSeconds !== undefined && (typeof deadlineSeconds !== 'number' || !Number.isInteger(deadlineSeconds) || deadlineSeconds < 1 || deadlineSeconds > 86_400)) problems.push({ field: 'deadlineSeconds', message: 'must be a whole number of seconds from 1 to 86400' });
  if (problems.length > 0) throw new InvalidConfig(problems);
  return { ...(note !== undefined ? { note: note as string } : {}), ...(rollout !== undefined ? { rollout: rollout as Rollout } : {}), ...(deadlineSeconds !== undefined ? { deadlineMs: (deadlineSeconds as number) * 1000 } : {}) };
}

/** The routes of /config/v1 on `app` (whose gate must have CONFIG_ACCESS_RULES). */
export function configRoutes(app: FastifyInstance, center: ConfigCenter): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const { status, message, internal } = httpErrorReply(error);
      if (internal) request.log.error(error);
      const own = error instanceof SlipwayError && !internal ? (error.body as Record<string, unknown> | undefined) : undefined;
      return reply.code(status).send(own ?? { code: error instanceof SlipwayError && !internal ? error.code : 'HTTP_ERROR', message });
    });
    routes(scope, center);
  });
}

function routes(app: FastifyInstance, center: ConfigCenter): void {
  const p = (req: FastifyRequest) => req.params as Params;
  const names = (req: FastifyRequest) => ({ service: configName(p(req)['service'] ?? '', 'service'), env: configName(p(req)['env'] ?? '', 'env') });

  app.get('/config/v1/services', (req) => {
    const caller = identityOf(req);
    const readable = (s: string) => caller === undefined || decide(caller.policies, 'read', { kind: 'config', name: `${s}/*` }).allowed;
    return { services: center.listServices().filter((s) => readable(s.name)).map(withLinkedApps) };
  });
  // `linkedApps`: the app its files go to in each environment as it holds (delivery's
  // environments' mapping over the service's own `apps`); read-only, ignored in a PUT.
  const withLinkedApps = <S extends ConfigService>(s: S) => ({ ...s, linkedApps: center.appsOf(s) });
  app.get('/config/v1/services/:service', (req) => withLinkedApps(center.service(configName(p(req)['service'] ?? '', 'service'))));
  app.put('/config/v1/services/:service', async (req, reply) => {
    const { service, created } = await center.putService(p(req)['service'] ?? '', req.body);
    return reply.code(created ? 201 : 200).send(withLinkedApps(service));
  });
  app.delete('/config/v1/services/:service', async (req, reply) => {
    await center.deleteService(configName(p(req)['service'] ?? '', 'service'));
    return reply.code(204).send();
  });

  app.get('/config/v1/environments', () => ({ environments: center.listEnvironments() }));
  app.get('/config/v1/environments/:env', (req) => center.environment(configName(p(req)['env'] ?? '', 'env')));
  app.put('/config/v1/environments/:env', async (req, reply) => {
    const { environment, created } = await center.putEnvironment(p(req)['env'] ?? '', req.body);
    return reply.code(created ? 201 : 200).send(environment);
  });
  app.delete('/config/v1/environments/:env', async (req, reply) => {
    await center.deleteEnvironment(configName(p(req)['env'] ?? '', 'env'));
    return reply.code(204).send();
  });

  const version = (req: FastifyRequest) => {
    const v = (req.query as Record<string, string | undefined>)['version'];
    return v === undefined ? undefined : whole(v, 'version', 1);
  };
  app.get('/config/v1/environments/:env/values', (req) => center.valuesOf('*', configName(p(req)['env'] ?? '', 'env'), version(req)));
  const writeShared = (patch: boolean) => async (req: FastifyRequest, reply: FastifyReply) => reply.code(200).send(await center.writeValues('*', configName(p(req)['env'] ?? '', 'env'), req.body, { patch, by: who(req) }));
  app.put('/config/v1/environments/:env/values', writeShared(false));
  app.patch('/config/v1/environments/:env/values', writeShared(true));

  app.get('/config/v1/services/:service/environments/:env/values', (req) => {
    const n = names(req);
    return center.valuesOf(n.service, n.env, version(req));
  });
  app.get('/config/v1/services/:service/environments/:env/values/versions', (req) => {
    const n = names(req);
    return { versions: center.valuesVersions(n.service, n.env) };
  });
  const writeValues = (patch: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    const n = names(req);
    return reply.code(200).send(await center.writeValues(n.service, n.env, req.body, { patch, by: who(req) }));
  };
  app.put('/config/v1/services/:service/environments/:env/values', writeValues(false));
  app.patch('/config/v1/services/:service/environments/:env/values', writeValues(true));

  app.get('/config/v1/services/:service/environments/:env/releases', (req) => {
    const n = names(req);
    return { releases: center.listReleases(n.service, n.env) };
  });
  app.post('/config/v1/services/:service/environments/:env/releases', async (req, reply) => {
    const n = names(req);
    const body = req.body as Record<string, unknown> | null | undefined;
    const options = releaseOptions(body, ['note', 'rollout', 'deadlineSeconds', 'gray']);
    const gray = body?.['gray'] !== undefined ? parseGray(body['gray']) : undefined;
    const outcome = await center.makeRelease(n.service, n.env, { by: who(req), ...options, ...(gray !== undefined ? { gray } : {}) });
    return reply.code(outcome.change === 'unchanged' ? 200 : 201).send(outcome);
  });
  app.get('/config/v1/services/:service/environments/:env/releases/:version', (req) => {
    const n = names(req);
    return center.release(n.service, n.env, whole(p(req)['version'], 'version', 1));
  });
  app.get('/config/v1/services/:service/environments/:env/releases/:a/diff/:b', (req) => {
    const n = names(req);
    return center.diff(n.service, n.env, whole(p(req)['a'], 'a', 1), whole(p(req)['b'], 'b', 1));
  });
  app.post('/config/v1/services/:service/environments/:env/preview', async (req) => {
    const n = names(req);
    return center.preview(n.service, n.env);
  });
  app.post('/config/v1/services/:service/environments/:env/rollback', async (req, reply) => {
    const n = names(req);
    const body = req.body as Record<string, unknown> | null | undefined;
    const to = body?.['to'];
    if (typeof to !== 'number' || !Number.isSafeInteger(to) || to < 1) throw new InvalidConfig([{ field: 'to', message: 'is required: the version of the release to roll back to' }]);
    return reply.code(201).send(await center.rollback(n.service, n.env, to, { by: who(req), ...releaseOptions(body, ['to', 'note', 'rollout', 'deadlineSeconds']) }));
  });
  // A gray release's end: promoted (the environment's release from now on) or abandoned (its instances back).
  app.post('/config/v1/services/:service/environments/:env/releases/:version/promote', async (req) => {
    const n = names(req);
    const o = releaseOptions(req.body, ['rollout', 'deadlineSeconds']);
    return center.promote(n.service, n.env, whole(p(req)['version'], 'version', 1), { by: who(req), ...(o.rollout !== undefined ? { rollout: o.rollout } : {}), ...(o.deadlineMs !== undefined ? { deadlineMs: o.deadlineMs } : {}) });
  });
  app.post('/config/v1/services/:service/environments/:env/releases/:version/abandon', async (req) => {
    const n = names(req);
    const o = releaseOptions(req.body, ['rollout', 'note']);
    return center.abandon(n.service, n.env, whole(p(req)['version'], 'version', 1), { by: who(req), ...(o.rollout !== undefined ? { rollout: o.rollout } : {}), ...(o.note !== undefined ? { reason: o.note } : {}) });
  });
  app.get('/config/v1/services/:service/environments/:env/rollouts', (req) => {
    const n = names(req);
    return { rollouts: center.listRollouts(n.service, n.env) };
  });
  app.get('/config/v1/services/:service/environments/:env/rollouts/:id', (req) => {
    const n = names(req);
    return center.rollout(n.service, n.env, p(req)['id'] ?? '');
  });

  app.get('/config/v1/services/:service/environments/:env/instances', async (req) => {
    const n = names(req);
    return center.instances(n.service, n.env);
  });

  // The original contract: (service, env[, release]) -> the files, where they go, their digests and URLs.
  app.get('/config/v1/files', (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const format = listingFormat(q);
    const service = configName(q['service'] ?? '', 'service');
    const envName = configName(q['env'] ?? '', 'env');
    const { release } = center.files(service, envName, q['release'] !== undefined ? whole(q['release'], 'release', 1) : undefined, instanceOf(q));
    const base = `/config/v1/files/${encodeURIComponent(service)}/${encodeURIComponent(envName)}/${release.version}`;
    const listing = { service, env: envName, release: release.version, files: release.files.map((f) => ({ ...f, url: `${base}/${encodeURIComponent(f.name)}` })) };
    if (format === 'json') return listing;
    void reply.type(TEXT_TYPE);
    return filesText(listing);
  });
  app.get('/config/v1/files/:service/:env/:version/:name', (req, reply) => {
    const n = names(req);
    const f = center.fileContent(n.service, n.env, whole(p(req)['version'], 'version', 1), p(req)['name'] ?? '');
    return reply.header('X-Slipway-Sha256', f.sha256).header('X-Slipway-Destination', f.destination).header('X-Slipway-Mode', f.mode).header('Cache-Control', 'no-store').type('application/octet-stream').send(Buffer.from(f.content, 'utf8'));
  });

  app.get('/config/v1/fetch/:service/:env/:version/:name', (req, reply) => {
    const n = names(req);
    const q = req.query as Record<string, string | undefined>;
    const version = whole(p(req)['version'], 'version', 1);
    const name = p(req)['name'] ?? '';
    if (!center.fetchAllowed(n.service, n.env, version, name, Number(q['expires']), q['sig'] ?? '')) throw new FetchRefused('the URL is not signed by this config center, or has expired: ask for the files again (GET /config/v1/files)');
    const f = center.fileContent(n.service, n.env, version, name);
    return reply.header('X-Slipway-Sha256', f.sha256).header('Cache-Control', 'no-store').type('application/octet-stream').send(Buffer.from(f.content, 'utf8'));
  });

  // Server-sent events of releases and rollouts (DESIGN.md, "Events"): `event: <type>`, `data: <json>`.
  app.get('/config/v1/events', (req, reply) => {
    // HEAD: the headers of the stream, and the end (a HEAD answer has no body to stream).
    if (req.method === 'HEAD') return reply.code(200).header('Cache-Control', 'no-store').type('text/event-stream').send();
    const caller = identityOf(req);
    const readable = (e: { service: string; env: string }) => caller === undefined || decide(caller.policies, 'read', { kind: 'config', name: `${e.service}/${e.env}` }).allowed;
    const raw = reply.raw;
    const stop = center.onEvent((e) => {
      if (readable(e)) raw.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    });
    reply.hijack();
    raw.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    raw.flushHeaders();
    raw.write(': config events\n\n');
    const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
    const end = () => {
      clearInterval(keepAlive);
      stop();
    };
    raw.on('close', end);
    if (raw.destroyed) end();
    return reply;
  });

  // Long poll: held until a release newer than `since` (or `wait` seconds, at most 60), then 304.
  // With `Accept: text/event-stream`: server-sent events, one `release` event per release (the
  // current one first when it is newer than `since`), a comment every 15 s to keep the line open.
  app.get('/config/v1/watch', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const service = configName(q['service'] ?? '', 'service');
    const envName = configName(q['env'] ?? '', 'env');
    const since = q['since'] === undefined ? 0 : whole(q['since'], 'since');
    const format = listingFormat(q);
    // An instance's watch (`instance=<task id>`, as pull sends MESOS_TASK_ID): a gray release's member gets it.
    const instance = instanceOf(q);
    if (String(req.headers.accept ?? '').includes('text/event-stream')) {
      if (req.method === 'HEAD') return reply.code(200).header('Cache-Control', 'no-store').type('text/event-stream').send();
      const current = center.targetFor(service, envName, instance);
      const raw = reply.raw;
      let last = since;
      // Newer releases; for an instance, any other (an abandoned gray release sends it back).
      const send = (r: { version: number }) => {
        if (instance === undefined ? r.version <= last : r.version === last) return;
        last = r.version;
        raw.write(watchText(r).event);
      };
      const stop = center.follow(service, envName, send, instance);
      reply.hijack();
      raw.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
      raw.flushHeaders();
      raw.write(': watching\n\n');
      if (current !== undefined) send(center.release(service, envName, current.version));
      const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
      const end = () => {
        clearInterval(keepAlive);
        stop();
      };
      raw.on('close', end);
      // Gone already (while the gate looked at its token): 'close' came before the listener.
      if (raw.destroyed) end();
      return reply;
    }
    const wait = q['wait'] === undefined ? 60 : Math.min(whole(q['wait'], 'wait'), 60);
    // The response's close, not the request's (which Node emits once a GET is read): the client went away.
    const abort = new AbortController();
    reply.raw.on('close', () => abort.abort());
    if (reply.raw.destroyed) abort.abort();
    const release = await center.watch(service, envName, since, wait * 1000, abort.signal, instance);
    if (release === undefined) return reply.code(304).send();
    if (format === 'text') return reply.type(TEXT_TYPE).send(watchReleaseText(release));
    // A release reaches every watcher at once: the answer is written straight to the socket, past
    // Fastify's reply pipeline (its hooks are for changes: the gate audits no GET), so that a fan-out
    // to 1,000 costs a write each.
    const text = watchText(release).poll;
    reply.hijack();
    reply.raw.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    reply.raw.end(text);
    return reply;
  });
}
