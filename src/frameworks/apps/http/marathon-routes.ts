import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { identityOf } from '../../../auth/http-gate.ts';
import { decide } from '../../../auth/policy.ts';
import { appToJSON, parseAppDefinition, type AppDefinition, type MarathonAppJson } from '../app-definition.ts';
import { AppAlreadyExists, AppNotFound, AppVersionNotFound, GroupAlreadyExists, GroupNotFound, InvalidAppsRequest, TaskNotFoundInApp, TooManyInRequest } from '../apps-errors.ts';
import type { AppsFramework } from '../apps-framework.ts';
import type { AppsView } from '../apps-state.ts';
import type { StoredAppJson } from '../apps-store.ts';
import type { VersionedApp } from '../deployment/deployment-run.ts';
import { groupIdProblem, MAX_APPS_PER_REQUEST, parseGroupDefinition, resolveGroupId } from '../group-definition.ts';
import { MarathonValidationError } from '../marathon-error.ts';
import { DraftApps } from '../plan/draft-apps.ts';
import { marathonErrorReply } from './marathon-error-reply.ts';
import { appJson, appJsonText, groupJson, parseEmbed, queueJson, taskJson, type Embed } from './marathon-views.ts';

export interface MarathonRoutesOptions {
  framework: AppsFramework;
  /** `host:port` this API is served on (GET /v2/leader, /v2/info); known once the server listens. */
  leader: () => string;
  /** The master the framework is subscribed to, for /v2/info. */
  masterUrl: string;
  version: string;
  /**
   * Serve Marathon's metrics on `/metrics` too (always on `/v2/metrics`). False when the routes
   * share the master's server, whose `/metrics` are the master's.
   */
  rootMetrics: boolean;
  /** Registers GET /v2/events in the same scope (the event stream lives beside the routes). */
  registerEvents?: (scope: FastifyInstance) => void;
}

type Query = Record<string, string | string[] | undefined>;

/**
 * Marathon's REST API v2 (raml/*.raml) over the services framework, in its own Fastify scope so
 * that errors answer in Marathon's JSON shape (marathonErrorReply: `{"message"}`, plus `details`
 * for 422 and `deployments` for 409) while the master's routes on the same server keep plain text.
 */
export function marathonRoutes(app: FastifyInstance, options: MarathonRoutesOptions): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const { status, body, internal } = marathonErrorReply(error);
      if (internal) request.log.error(error);
      return reply.code(status).send(body);
    });
    options.registerEvents?.(scope);
    registerRoutes(scope, options);
  });
}

function registerRoutes(app: FastifyInstance, o: MarathonRoutesOptions): void {
  const fw = o.framework;
  const view = fw.view;

  app.get('/ping', (_req, reply) => reply.type('text/plain').send('pong'));
  app.get('/v2/leader', () => ({ leader: o.leader() }));
  app.get('/v2/info', () => {
    const leader = o.leader();
    return {
    name: 'marathon',
    version: '1.11.0',
    buildref: `slipway-${o.version}`,
    elected: true,
    leader,
    frameworkId: fw.id ?? null,
    marathon_config: {
      master: o.masterUrl,
      framework_name: 'slipway-apps',
      failover_timeout: 604800,
      checkpoint: true,
      decline_offer_duration: 120000,
      executor: '//cmd',
      hostname: leader.split(':')[0],
      mesos_role: '*',
      webui_url: `http://${leader}`,
    },
    http_config: { http_port: Number(leader.split(':').pop()) },
  };
  });
  const metrics = () => {
    const instances = [...view.instances()];
    return {
      version: '4.0.0',
      gauges: {
        'marathon.apps.active.gauge': { value: view.apps().length },
        'marathon.deployments.active.gauge': { value: view.deployments().length },
        'marathon.instances.running.gauge': { value: instances.filter((i) => i.state === 'TASK_RUNNING').length },
        'marathon.instances.staged.gauge': { value: instances.filter((i) => i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING').length },
        'marathon.instances.launch-overdue.gauge': { value: view.queue(fw.now()).reduce((n, q) => n + q.count, 0) },
      },
      counters: {},
      histograms: {},
      meters: {},
      timers: {},
    };
  };
  app.get('/v2/metrics', metrics);
  if (o.rootMetrics) app.get('/metrics', metrics);

  // --- apps ---------------------------------------------------------------------------------

  // GET /v2/apps: at 5,000 apps the list is megabytes, and building it takes milliseconds per
  // request. Answers are kept by query for one state revision (nothing they show changes while
  // the revision stays), and no answer is built for a client that has already left.
  // Kept as bytes: sending a kept answer then costs no encoding and no copy (a 4 MB string is
  // encoded anew for every socket it is written to).
  const listAnswers = new Map<string, Buffer>();
  let listRevision = -1;
  app.get('/v2/apps', async (req, reply) => {
    // One turn of the event loop first, so that a connection its client closed meanwhile is seen
    // closed (clients that give up on a busy server are the ones that pile up).
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (clientLeft(req, reply)) return abandon(reply);
    const q = req.query as Query;
    // Marathon always embeds counts and deployments in the list, whatever `embed` asks for.
    const embed = parseEmbed(list(q, 'embed'), []).add('counts').add('deployments');
    const idFilter = first(q, 'id')?.toLowerCase();
    // Both filters are case-insensitive substrings, as in Marathon's AppsResource.search.
    const cmdFilter = first(q, 'cmd')?.toLowerCase();
    const selector = first(q, 'label');
    if (view.revision !== listRevision) {
      listAnswers.clear();
      listRevision = view.revision;
    }
    // A caller who may not read every app sees those it may read (as Marathon's authorizer
    // plugins filter lists); its answer is built for it alone, not kept.
    const readable = readableApps(req);
    const key = JSON.stringify([[...embed].sort(), idFilter ?? null, cmdFilter ?? null, selector ?? null]);
    let answer = readable === undefined ? listAnswers.get(key) : undefined;
    if (answer === undefined) {
      const match = selector !== undefined ? labelSelector(selector) : undefined;
      const apps = view
        .apps()
        .filter((a) => readable === undefined || readable(a.def.id))
        .filter((a) => idFilter === undefined || a.def.id.toLowerCase().includes(idFilter))
        .filter((a) => cmdFilter === undefined || (a.def.cmd !== undefined && a.def.cmd.toLowerCase().includes(cmdFilter)))
        .filter((a) => match === undefined || match(a.def.labels));
      answer = Buffer.from(`{"apps":[${apps.map((a) => appJsonText(view, a, embed)).join(',')}]}`, 'utf8');
      // A few distinct queries per revision are kept (dashboards poll the same ones).
      if (readable === undefined && listAnswers.size < LIST_ANSWERS_KEPT) listAnswers.set(key, answer);
    }
    return reply.type('application/json; charset=utf-8').send(answer);
  });

  app.post('/v2/apps', async (req, reply) => {
    const def = parseAppDefinition(req.body);
    const { deploymentId, apps } = await fw.deploy(
      (target) => {
        if (target.has(def.id)) throw new AppAlreadyExists(def.id);
        checkNotAGroup(view, target, def.id);
        return target.set(def.id, def);
      },
      { force: bool(req.query as Query, 'force') },
    );
    const created = apps.get(def.id)!;
    return reply
      .code(201)
      .header('Location', location('/v2/apps', def.id))
      .header('Marathon-Deployment-Id', deploymentId)
      .send({ ...appJson(view, created, new Set<Embed>(['counts'])), deployments: [{ id: deploymentId }], tasks: [] });
  });

  const bulk = async (req: FastifyRequest, reply: FastifyReply, partialDefault: boolean) => {
    const q = req.query as Query;
    if (!Array.isArray(req.body)) throw new MarathonValidationError([{ path: '/', errors: ['error.expected.jsarray'] }]);
    // Before anything of the body is read: at most MAX_APPS_PER_REQUEST apps are validated at once.
    if (req.body.length > MAX_APPS_PER_REQUEST) {
      throw new TooManyInRequest(`${req.body.length} apps in one request: at most ${MAX_APPS_PER_REQUEST} apps per ${req.method} /v2/apps (send them in several requests)`);
    }
    const partial = bool(q, 'partialUpdate', partialDefault);
    const items = req.body as unknown[];
    const { deploymentId, version } = await fw.deploy(
      (target) => {
        const details: { path: string; errors: string[] }[] = [];
        items.forEach((item, i) => {
          try {
            const id = item !== null && typeof item === 'object' ? (item as { id?: unknown }).id : undefined;
            if (typeof id !== 'string') throw new MarathonValidationError([{ path: '/id', errors: ['error.path.missing'] }]);
            const existing = target.get(resolveGroupId(id, '/'));
            const def = rolledBack(view, resolveGroupId(id, '/'), item) ?? updatedDefinition(existing, item, partial);
            target.set(def.id, def);
          } catch (e) {
            if (!(e instanceof MarathonValidationError)) throw e;
            for (const d of e.details) details.push({ path: `(${i})${d.path === '/' ? '' : d.path}`, errors: d.errors });
          }
        });
        if (details.length > 0) throw new MarathonValidationError(details);
        return target;
      },
      { force: bool(q, 'force') },
    );
    return reply.code(200).header('Marathon-Deployment-Id', deploymentId).send({ deploymentId, version });
  };
  app.put('/v2/apps', (req, reply) => bulk(req, reply, true));
  app.patch('/v2/apps', (req, reply) => bulk(req, reply, true));

  app.get('/v2/apps/*', (req) => {
    const path = wildcard(req);
    const q = req.query as Query;
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^(.*)\/tasks$/)) !== null && view.app(path) === undefined) {
      const appId = appIdOf(m[1]!);
      existingApp(view, appId);
      return { tasks: view.instancesOf(appId).map(taskJson) };
    }
    if ((m = path.match(/^(.*)\/versions\/([^/]+)$/)) !== null && view.app(path) === undefined) {
      const appId = appIdOf(m[1]!);
      const version = m[2]!;
      const found = appVersions(view, appId).find((v) => v.version === version);
      if (found === undefined) throw new AppVersionNotFound(appId, version);
      return found;
    }
    if ((m = path.match(/^(.*)\/versions$/)) !== null && view.app(path) === undefined) {
      const appId = appIdOf(m[1]!);
      return { versions: appVersions(view, appId).map((v) => v.version).reverse() };
    }
    const appId = appIdOf(path);
    // Marathon (AppsResource.show) always embeds counts, tasks, lastTaskFailure and deployments
    // in one app, "for compatibility", besides what `embed` asks for.
    const embed = parseEmbed(list(q, 'embed'), ['readiness']);
    for (const always of ['tasks', 'counts', 'deployments', 'lastTaskFailure'] as const) embed.add(always);
    return { app: appJson(view, existingApp(view, appId), embed) };
  });

  const updateOne = async (req: FastifyRequest, reply: FastifyReply, partialDefault: boolean) => {
    const appId = appIdOf(wildcard(req));
    const q = req.query as Query;
    const body = req.body;
    if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
      const bodyId = (body as { id?: unknown }).id;
      // A long id is not resolved to be compared (a 2.5M-character one took 107 ms): it cannot be the URL's.
      if (typeof bodyId === 'string' && (bodyId.length > 4 * appId.length + 4096 || resolveGroupId(bodyId, '/') !== appId)) {
        throw new MarathonValidationError([{ path: '/id', errors: [`The app id in the body (${bodyId}) is not the id in the URL (${appId})`] }]);
      }
    }
    const withId = body !== null && typeof body === 'object' && !Array.isArray(body) ? { ...(body as object), id: appId } : body;
    let created = false;
    const { deploymentId, version } = await fw.deploy(
      (target) => {
        const existing = target.get(appId);
        created = existing === undefined;
        if (existing === undefined) checkNotAGroup(view, target, appId);
        const def = rolledBack(view, appId, body) ?? updatedDefinition(existing, withId, bool(q, 'partialUpdate', partialDefault));
        return target.set(appId, def);
      },
      { force: bool(q, 'force') },
    );
    // A PUT that creates the app answers as POST does: 201 with its Location.
    if (created) reply.code(201).header('Location', location('/v2/apps', appId));
    return reply.header('Marathon-Deployment-Id', deploymentId).send({ deploymentId, version });
  };
  app.put('/v2/apps/*', (req, reply) => updateOne(req, reply, true));
  app.patch('/v2/apps/*', (req, reply) => updateOne(req, reply, true));

  app.post('/v2/apps/*', async (req, reply) => {
    const path = wildcard(req);
    const m = path.match(/^(.*)\/restart$/);
    if (m === null) return reply.code(405).send({ message: `POST is not allowed on /v2/apps${path}` });
    const appId = appIdOf(m[1]!);
    const { deploymentId, version } = await fw.deploy((target) => (target.has(appId) ? target : throwNotFound(appId)), { force: bool(req.query as Query, 'force'), restart: [appId] });
    return reply.header('Marathon-Deployment-Id', deploymentId).send({ deploymentId, version });
  });

  app.delete('/v2/apps/*', async (req, reply) => {
    const path = wildcard(req);
    const q = req.query as Query;
    const killOpts = { scale: bool(q, 'scale'), wipe: bool(q, 'wipe'), force: bool(q, 'force') };
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^(.*)\/tasks\/([^/]+)$/)) !== null && view.app(path) === undefined) {
      const appId = appIdOf(m[1]!);
      const taskId = m[2]!;
      const r = await fw.killTasks((v) => {
        existingApp(v, appId);
        if (!v.instancesOf(appId).some((i) => i.taskId === taskId)) throw new TaskNotFoundInApp(taskId);
        return [taskId];
      }, killOpts);
      if (r.deployment !== undefined) return r.deployment;
      return { task: taskJson(r.instances[0]!) };
    }
    if ((m = path.match(/^(.*)\/tasks$/)) !== null && view.app(path) === undefined) {
      const appId = appIdOf(m[1]!);
      const host = first(q, 'host');
      const r = await fw.killTasks((v) => {
        existingApp(v, appId);
        return v
          .instancesOf(appId)
          .filter((i) => host === undefined || i.host === host)
          .map((i) => i.taskId);
      }, killOpts);
      if (r.deployment !== undefined) return r.deployment;
      return { tasks: r.instances.map(taskJson) };
    }
    const appId = appIdOf(path);
    const { deploymentId, version } = await fw.deploy((target) => (target.delete(appId) ? target : throwNotFound(appId)), { force: bool(q, 'force') });
    return reply.header('Marathon-Deployment-Id', deploymentId).send({ deploymentId, version });
  });

  // --- groups -------------------------------------------------------------------------------

  const showGroup = (req: FastifyRequest) => {
    const groupId = resolveGroupId(wildcardOr(req, ''), '/');
    const embed = parseEmbed(list(req.query as Query, 'embed'), ['counts', 'deployments']);
    const g = groupJson(view, groupId, embed, readableApps(req));
    if (g === undefined) throw new GroupNotFound(groupId);
    return g;
  };
  app.get('/v2/groups', showGroup);
  app.get('/v2/groups/*', showGroup);

  const putGroup = async (req: FastifyRequest, reply: FastifyReply, create: boolean) => {
    const q = req.query as Query;
    const urlId = resolveGroupId(wildcardOr(req, ''), '/');
    // The URL's group is the group of a body without id: it is checked as a body's id would be.
    const urlProblem = groupIdProblem(urlId);
    if (urlProblem !== undefined) throw new MarathonValidationError([{ path: '/id', errors: [urlProblem] }]);
    const body = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new MarathonValidationError([{ path: '/', errors: ['error.expected.jsobject'] }]);
    const prefixOf = (g: string) => (g === '/' ? '/' : `${g}/`);
    // A group update with only a version is Marathon's rollback of the group to that version.
    // A version beside apps or groups is what GET answered and is ignored, as in app definitions.
    const b = body as { version?: unknown; apps?: unknown; groups?: unknown };
    if (b.version !== undefined && b.apps === undefined && b.groups === undefined) {
      throw new MarathonValidationError([{ path: '/version', errors: ['not supported by Slipway: rolling a group back to a version (roll each app back with PUT /v2/apps/{id} and a stored version)'] }]);
    }
    const scaleBy = (body as { scaleBy?: unknown }).scaleBy;
    if (scaleBy !== undefined) {
      if (typeof scaleBy !== 'number' || !(scaleBy >= 0)) throw new MarathonValidationError([{ path: '/scaleBy', errors: ['error.expected.jsnumber >= 0'] }]);
      const { deploymentId, version } = await fw.deploy(
        (target) => {
          const groupApps = [...target.values()].filter((a) => a.id.startsWith(prefixOf(urlId)));
          if (groupApps.length === 0 && urlId !== '/') throw new GroupNotFound(urlId);
          for (const a of groupApps) {
            const instances = Math.ceil(a.instances * scaleBy);
            // Through the definition parser: an absurd factor is a 422 here, not an app of Infinity instances.
            target.set(a.id, parseAppDefinition({ ...appToJSON(a), instances }));
          }
          return target;
        },
        { force: bool(q, 'force') },
      );
      return reply.send({ deploymentId, version });
    }
    // Marathon: the group is the body's id resolved against the URL's group, or the URL's group.
    const group = parseGroupDefinition(body, urlId);
    if (!create && group.id !== urlId && (body as { id?: unknown }).id !== undefined) {
      throw new InvalidAppsRequest(`the group id in the body (${group.id}) is not the group in the URL (${urlId})`);
    }
    const groupId = create ? group.id : urlId;
    for (const a of group.apps) if (!a.id.startsWith(prefixOf(groupId))) throw new InvalidAppsRequest(`app ${a.id} is not inside group ${groupId}`);
    const { deploymentId, version } = await fw.deploy(
      (target) => {
        const existing = [...target.keys()].filter((id) => id.startsWith(prefixOf(groupId)));
        if (create && (existing.length > 0 || groupId === '/')) throw new GroupAlreadyExists(groupId);
        for (const id of existing) target.delete(id);
        for (const a of group.apps) target.set(a.id, a);
        return target;
      },
      { force: bool(q, 'force') },
    );
    if (create) reply.header('Location', location('/v2/groups', groupId));
    return reply.code(create ? 201 : 200).header('Marathon-Deployment-Id', deploymentId).send({ deploymentId, version });
  };
  app.post('/v2/groups', (req, reply) => putGroup(req, reply, true));
  app.post('/v2/groups/*', (req, reply) => putGroup(req, reply, true));
  app.put('/v2/groups', (req, reply) => putGroup(req, reply, false));
  app.put('/v2/groups/*', (req, reply) => putGroup(req, reply, false));

  const deleteGroup = async (req: FastifyRequest) => {
    const groupId = resolveGroupId(wildcardOr(req, ''), '/');
    const prefix = groupId === '/' ? '/' : `${groupId}/`;
    const { deploymentId, version } = await fw.deploy(
      (target) => {
        const inside = [...target.keys()].filter((id) => id.startsWith(prefix));
        if (inside.length === 0 && groupId !== '/') throw new GroupNotFound(groupId);
        for (const id of inside) target.delete(id);
        return target;
      },
      { force: bool(req.query as Query, 'force') },
    );
    return { deploymentId, version };
  };
  app.delete('/v2/groups', deleteGroup);
  app.delete('/v2/groups/*', deleteGroup);

  // --- POST /v2/plan: Slipway's preview of a deployment (README.md, "POST /v2/plan") ----------

  // An app as POST /v2/apps takes it (created if new, replaced whole if it exists), or a group as
  // PUT /v2/groups takes it (its apps replace those under it). Nothing is changed: the answer is
  // what a deploy would do and whether its new instances can be placed now (plan-preview.ts).
  app.post('/v2/plan', async (req) => {
    const body = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new MarathonValidationError([{ path: '/', errors: ['error.expected.jsobject'] }]);
    const b = body as { apps?: unknown; groups?: unknown; scaleBy?: unknown; version?: unknown };
    if (b.apps === undefined && b.groups === undefined) {
      if (b.scaleBy !== undefined) throw new MarathonValidationError([{ path: '/scaleBy', errors: ['not supported by POST /v2/plan: send the group with its apps scaled'] }]);
      const def = parseAppDefinition(body);
      return fw.preview((target) => {
        checkNotAGroup(view, target, def.id);
        return target.set(def.id, def);
      });
    }
    const group = parseGroupDefinition(body, '/');
    const prefix = group.id === '/' ? '/' : `${group.id}/`;
    for (const a of group.apps) if (!a.id.startsWith(prefix)) throw new InvalidAppsRequest(`app ${a.id} is not inside group ${group.id}`);
    return fw.preview((target) => {
      for (const id of [...target.keys()].filter((x) => x.startsWith(prefix))) target.delete(id);
      for (const a of group.apps) target.set(a.id, a);
      return target;
    });
  });

  // --- deployments, tasks, queue --------------------------------------------------------------

  // A deployment is shown to a caller who may read every app it affects.
  app.get('/v2/deployments', (req) => {
    const readable = readableApps(req);
    return view
      .deployments()
      .filter((run) => readable === undefined || run.plan.affectedApps.every(readable))
      .map((run) => run.toJSON(new Map(run.currentActions().map((a) => [a.app, view.readinessResults(a.app)] as const))));
  });
  app.delete('/v2/deployments/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const result = await fw.cancelDeployment(id, bool(req.query as Query, 'force'));
    if (result === undefined) return reply.code(202).send();
    return reply.code(200).send(result);
  });

  app.get('/v2/tasks', (req) => {
    const status = list(req.query as Query, 'status');
    const wanted = new Set(status.map((s) => `TASK_${s.toUpperCase()}`));
    const readable = readableApps(req);
    return { tasks: [...view.instances()].filter((i) => (wanted.size === 0 || wanted.has(i.state)) && (readable === undefined || readable(i.appId))).map(taskJson) };
  });
  app.post('/v2/tasks/delete', async (req) => {
    const q = req.query as Query;
    const body = req.body as { ids?: unknown } | null;
    if (body === null || typeof body !== 'object' || !Array.isArray(body.ids) || !body.ids.every((x) => typeof x === 'string')) {
      throw new MarathonValidationError([{ path: '/ids', errors: ['error.expected.jsarray of task ids'] }]);
    }
    const ids = body.ids as string[];
    // Ids of tasks that are gone are ignored, as Marathon does.
    const r = await fw.killTasks((v) => ids.filter((id) => v.instance(id) !== undefined), { scale: bool(q, 'scale'), wipe: bool(q, 'wipe'), force: bool(q, 'force') });
    if (r.deployment !== undefined) return r.deployment;
    return { tasks: r.instances.map(taskJson) };
  });

  app.get('/v2/queue', (req) => queueJson(view, fw.now(), readableApps(req)));
  app.delete('/v2/queue/*', async (req, reply) => {
    const m = wildcard(req).match(/^(.*)\/delay$/);
    if (m === null) return reply.code(404).send({ message: `no route DELETE ${req.url}` });
    await fw.resetDelay(appIdOf(m[1]!));
    return reply.code(204).send();
  });
}

/**
 * Marathon's rollback of an app (AppHelpers.updateOrCreate; the UI's "revert to this version"): an
 * update whose body holds a `version`, besides at most the app's `id`, gives the app the stored
 * definition of that version (a new version of the app, as in Marathon). A `version` beside other
 * fields is refused with Marathon's message. Undefined when the body asks for no rollback.
 */
function rolledBack(view: AppsView, appId: string, body: unknown): AppDefinition | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  if (b['version'] === undefined) return undefined;
  // versionInfo is no field of Marathon's AppUpdate: ignored there, so here.
  if (Object.keys(b).some((k) => k !== 'id' && k !== 'version' && k !== 'versionInfo' && b[k] !== undefined)) {
    throw new MarathonValidationError([{ path: '/', errors: ["The 'version' field may only be combined with the 'id' field."] }]);
  }
  const version = b['version'];
  if (typeof version !== 'string') throw new MarathonValidationError([{ path: '/version', errors: ['error.expected.jsstring'] }]);
  const stored = appVersions(view, appId).find((v) => v.version === version);
  if (stored === undefined) throw new AppVersionNotFound(appId, version);
  return parseAppDefinition(stored);
}

/** The declared app, or AppNotFound (404). */
function existingApp(view: AppsView, appId: string): VersionedApp {
  const app = view.app(appId);
  if (app === undefined) throw new AppNotFound(appId);
  return app;
}

/** An app's kept versions, oldest first; AppNotFound (404) for an app that does not exist. */
function appVersions(view: AppsView, appId: string): readonly StoredAppJson[] {
  existingApp(view, appId);
  return view.versions(appId);
}

function throwNotFound(appId: string): never {
  throw new AppNotFound(appId);
}

/**
 * The new definition of an app after PUT/PATCH: with `partial`, the body's top-level fields over
 * the existing definition (Marathon's default); otherwise the body alone. A deprecated field in
 * the body replaces its canonical form in the existing one (ports vs portDefinitions, uris vs
 * fetch, cmd vs args).
 */
function updatedDefinition(existing: AppDefinition | undefined, body: unknown, partial: boolean): AppDefinition {
  if (existing === undefined || !partial || body === null || typeof body !== 'object' || Array.isArray(body)) return parseAppDefinition(body);
  const base: Partial<MarathonAppJson> & Record<string, unknown> = { ...appToJSON(existing) };
  const b = body as Record<string, unknown>;
  const replaces: [string, string[]][] = [
    ['ports', ['portDefinitions']],
    ['portDefinitions', ['ports']],
    ['uris', ['fetch']],
    ['fetch', ['uris']],
    ['cmd', ['args']],
    ['args', ['cmd']],
  ];
  for (const [field, others] of replaces) if (b[field] !== undefined) for (const o of others) delete base[o];
  return parseAppDefinition({ ...base, ...b });
}

/**
 * An app's id must not be a group (have apps under it), nor lie under an app, among `declared`.
 * `declared` is the deploy's draft: while it holds no change yet (a create), the state's sorted
 * ids answer in logarithmic time; otherwise every id is looked at.
 */
function checkNotAGroup(view: AppsView, declared: ReadonlyMap<string, AppDefinition>, appId: string): void {
  const prefix = `${appId}/`;
  const unchanged = declared instanceof DraftApps && declared.changed.size === 0;
  if (unchanged ? view.hasAppUnder(appId) : [...declared.keys()].some((id) => id.startsWith(prefix))) {
    throw new MarathonValidationError([{ path: '/id', errors: [`${appId} is a group: an app cannot have the id of a group`] }]);
  }
  const parts = appId.split('/').filter(Boolean);
  for (let k = 1; k < parts.length; k++) {
    const ancestor = `/${parts.slice(0, k).join('/')}`;
    if (declared.has(ancestor)) throw new MarathonValidationError([{ path: '/id', errors: [`${ancestor} is an app: it cannot hold ${appId}`] }]);
  }
}

/** How many GET /v2/apps answers (distinct queries) are kept for one state revision. */
const LIST_ANSWERS_KEPT = 8;

/** Whether the client of `req` is gone: its connection closed before the answer was begun. */
function clientLeft(req: FastifyRequest, reply: FastifyReply): boolean {
  return req.raw.socket.destroyed || reply.raw.destroyed;
}

/** Ends a request whose client has left, without building or sending anything. */
function abandon(reply: FastifyReply): FastifyReply {
  reply.hijack();
  reply.raw.destroy();
  return reply;
}

/**
 * A Location header: the route and an id that passed validation (letters, digits, `-`, `.`, `/`),
 * percent-encoded all the same, so that no text of a request can make the header invalid.
 */
function location(route: string, id: string): string {
  return encodeURI(`${route}${id}`);
}

function wildcard(req: FastifyRequest): string {
  return (req.params as { '*': string })['*'];
}

function wildcardOr(req: FastifyRequest, fallback: string): string {
  return (req.params as { '*'?: string })['*'] ?? fallback;
}

/** An app id from a URL path: absolute, canonical; refused when it cannot be one. */
function appIdOf(path: string): string {
  // Fastify has decoded the path already: decoding again would turn %25 into a URIError.
  const id = resolveGroupId(path, '/');
  if (id === '/') throw new AppNotFound('/');
  return id;
}

function list(q: Query, name: string): string[] {
  const v = q[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function first(q: Query, name: string): string | undefined {
  return list(q, name)[0];
}

function bool(q: Query, name: string, fallback = false): boolean {
  const v = first(q, name);
  if (v === undefined || v === '') return fallback;
  return v === 'true' || v === '1';
}

/**
 * Marathon's label selector: comma-separated terms, all of which must hold: `key` (present),
 * `!key` (absent), `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`.
 */
export function labelSelector(selector: string): (labels: Readonly<Record<string, string>>) => boolean {
  const terms = selector.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  const tests = terms.map((raw): ((l: Readonly<Record<string, string>>) => boolean) => {
    const t = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^([^!=\s]+)\s*==\s*(.*)$/)) !== null) return (l) => l[m![1]!] === m![2]!.trim();
    if ((m = t.match(/^([^!=\s]+)\s*!=\s*(.*)$/)) !== null) return (l) => l[m![1]!] !== m![2]!.trim();
    if ((m = t.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/)) !== null) {
      const values = m[3]!.split(',').map((s) => s.trim());
      const negate = m[2] === 'notin';
      return (l) => values.includes(l[m![1]!] ?? '\u0000') !== negate;
    }
    if (t.startsWith('!')) return (l) => l[t.slice(1)] === undefined;
    return (l) => l[t] !== undefined;
  });
  return (labels) => tests.every((test) => test(labels));
}

/**
 * Which apps the caller may read, for the lists (as Marathon's authorizer plugins filter them):
 * undefined when it may read them all (the common case, and the shared cached answers), else a
 * predicate on app ids.
 */
function readableApps(req: FastifyRequest): ((appId: string) => boolean) | undefined {
  const who = identityOf(req);
  if (who === undefined || decide(who.policies, 'read', { kind: 'apps', name: '*' }).allowed) return undefined;
  return (id: string) => decide(who.policies, 'read', { kind: 'apps', name: id }).allowed;
}
