import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { identityOf, type Check, type GateRequest, type RouteRule } from '../../auth/http-gate.ts';
import { decide, type Capability } from '../../auth/policy.ts';
import { SlipwayError } from '../../core/errors.ts';
import { httpErrorReply } from '../../core/http-error-reply.ts';
import type { DeliveryCenter } from '../delivery-center.ts';
import { deliveryName, environmentJson, releaseVersion, type DeliveryRelease, type JsonObject } from '../delivery-definitions.ts';
import { InvalidDelivery } from '../delivery-errors.ts';
import type { StoredPromotion } from '../delivery-store.ts';

/**
 * `/deliver/v1`, delivery's API (docs/delivery.md). Errors answer `{code, message, details?}`
 * with their status.
 *
 * Who may do what (kind `delivery`, named `service/env`): `read` to see, `configure` to change
 * services (`service/*`) and environments (`*\/env`), `deploy` to make releases (`service/*`),
 * promote and roll back (`service/env`), `approve` to approve or reject a promotion waiting at a
 * manual gate. Delivery deploys the apps itself, so defining what it deploys needs what deploying
 * it would: a service's `app` needs `deploy` on its app id in every environment (with the app's
 * user, cpus, mem and instances for the policies' limits) and `use` on each secret it names; an
 * environment needs `deploy` on the app id of every service in it.
 */

type Params = Record<string, string>;
const on = (capability: Capability, name: string): Check => ({ capability, resource: { kind: 'delivery', name } });
const param = (req: GateRequest, key: string) => req.params[key] ?? '';
const svc = (req: GateRequest) => `${param(req, 'service')}/*`;

function record(v: unknown): JsonObject | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

/** What deploying the template as `appId` asks of the caller (apps' own rule, taken as the template says). */
function appTemplateChecks(template: unknown, appIds: readonly string[]): Check[] {
  const app = record(template) ?? {};
  const num = (k: string) => (typeof app[k] === 'number' ? app[k] : undefined);
  const object = {
    ...(typeof app['user'] === 'string' ? { taskUser: app['user'] } : {}),
    ...(num('cpus') !== undefined ? { cpus: num('cpus')! } : {}),
    ...(num('mem') !== undefined ? { mem: num('mem')! } : {}),
    ...(num('instances') !== undefined ? { instances: num('instances')! } : {}),
  };
  const checks: Check[] = appIds.map((id) => ({ capability: 'deploy', resource: { kind: 'apps', name: id }, object }));
  const secrets = record(app['secrets']);
  for (const s of Object.values(secrets ?? {})) {
    const source = record(s)?.['source'];
    if (typeof source === 'string') checks.push({ capability: 'use', resource: { kind: 'secrets', name: source.replace(/^\/+/, '') } });
  }
  return checks;
}

export function deliveryAccessRules(center: DeliveryCenter): RouteRule[] {
  const at =
    (capability: Capability, name: (req: GateRequest) => string) =>
    (req: GateRequest): Check[] => [on(capability, name(req))];
  const promotionEnv = (req: GateRequest) => {
    const p = center.promotionOrUndefined(param(req, 'service'), param(req, 'id'));
    return `${param(req, 'service')}/${p?.env ?? '*'}`;
  };
  return [
    // Any caller: the lists hold what it may read.
    { method: 'GET', url: '/deliver/v1/services', access: () => [] },
    { method: 'GET', url: '/deliver/v1/services/:service', access: at('read', svc) },
    {
      method: 'PUT',
      url: '/deliver/v1/services/:service',
      access: (req) => [on('configure', svc(req)), ...appTemplateChecks(record(req.body)?.['app'], center.listEnvironments().map((e) => center.appIdOf(param(req, 'service'), e.name) ?? ''))],
    },
    { method: 'DELETE', url: '/deliver/v1/services/:service', access: at('configure', svc) },
    { method: 'GET', url: '/deliver/v1/environments', access: () => [] },
    { method: 'GET', url: '/deliver/v1/environments/:env', access: at('read', (req) => `*/${param(req, 'env')}`) },
    {
      method: 'PUT',
      url: '/deliver/v1/environments/:env',
      access: (req) => {
        const env = param(req, 'env');
        // The app ids it would give each service (an invalid body is refused by the route, with its fields).
        return [on('configure', `*/${env}`), ...center.appIdsUnder(env, req.body).flatMap((x) => appTemplateChecks(x.service.app, [x.appId]))];
      },
    },
    { method: 'DELETE', url: '/deliver/v1/environments/:env', access: at('configure', (req) => `*/${param(req, 'env')}`) },
    { method: 'GET', url: '/deliver/v1/services/:service/releases', access: at('read', svc) },
    { method: 'POST', url: '/deliver/v1/services/:service/releases', access: at('deploy', svc) },
    { method: 'GET', url: '/deliver/v1/services/:service/releases/:version', access: at('read', svc) },
    { method: 'GET', url: '/deliver/v1/services/:service/promotions', access: at('read', svc) },
    { method: 'POST', url: '/deliver/v1/services/:service/promotions', access: at('deploy', (req) => `${param(req, 'service')}/${String(record(req.body)?.['to'] ?? '')}`) },
    { method: 'GET', url: '/deliver/v1/services/:service/promotions/:id', access: at('read', promotionEnv) },
    { method: 'POST', url: '/deliver/v1/services/:service/promotions/:id/approve', access: at('approve', promotionEnv) },
    { method: 'POST', url: '/deliver/v1/services/:service/promotions/:id/reject', access: at('approve', promotionEnv) },
    { method: 'POST', url: '/deliver/v1/services/:service/environments/:env/rollback', access: at('deploy', (req) => `${param(req, 'service')}/${param(req, 'env')}`) },
    { method: 'GET', url: '/deliver/v1/services/:service/figures', access: at('read', svc) },
    // Any caller: the stream holds the events of what it may read.
    { method: 'GET', url: '/deliver/v1/events', access: () => [] },
  ];
}

/** The longest deadline a promotion may ask for: a day (an environment's own is bounded alike). */
const MAX_PROMOTION_DEADLINE_S = 24 * 3600;

const iso = (t: number | undefined) => (t !== undefined ? new Date(t).toISOString() : undefined);

export function releaseJson(r: DeliveryRelease): JsonObject {
  return { ...r, createdAt: iso(r.createdAt) };
}

/** A promotion as the API answers it: times in ISO 8601, the app before it left out (its `previousRelease` says what it was). */
export function promotionJson(p: StoredPromotion, progress?: JsonObject): JsonObject {
  const { previousApp: _previous, createdAt, startedAt, deadline, healthyAt, endedAt, deadlineMs, askedDeadlineMs: _asked, ...rest } = p;
  return {
    ...rest,
    createdAt: iso(createdAt),
    ...(startedAt !== undefined ? { startedAt: iso(startedAt) } : {}),
    ...(deadline !== undefined ? { deadline: iso(deadline) } : {}),
    ...(deadlineMs !== undefined ? { deadlineSeconds: Math.round(deadlineMs / 1000) } : {}),
    ...(healthyAt !== undefined ? { healthyAt: iso(healthyAt) } : {}),
    ...(endedAt !== undefined ? { endedAt: iso(endedAt) } : {}),
    ...(progress !== undefined ? { progress } : {}),
  };
}

export function deliveryRoutes(app: FastifyInstance, center: DeliveryCenter): void {
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

function routes(app: FastifyInstance, center: DeliveryCenter): void {
  const p = (req: FastifyRequest) => req.params as Params;
  const service = (req: FastifyRequest) => deliveryName(p(req)['service'] ?? '', 'service');
  const env = (req: FastifyRequest) => deliveryName(p(req)['env'] ?? '', 'env');
  const by = (req: FastifyRequest) => identityOf(req)?.name ?? 'anonymous';
  const readable = (req: FastifyRequest, name: string) => {
    const caller = identityOf(req);
    return caller === undefined || decide(caller.policies, 'read', { kind: 'delivery', name }).allowed;
  };
  const body = (req: FastifyRequest): JsonObject => {
    const b = req.body ?? {};
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new InvalidDelivery([{ field: '', message: 'the body must be a JSON object' }]);
    return b as JsonObject;
  };

  app.get('/deliver/v1/services', (req) => ({ services: center.listServices().filter((s) => readable(req, `${s.name}/*`)) }));
  app.get('/deliver/v1/services/:service', (req) => {
    const name = service(req);
    return { ...center.service(name), environments: center.currentByEnvironment(name) };
  });
  app.put('/deliver/v1/services/:service', async (req, reply) => {
    const { service: s, created } = await center.putService(service(req), req.body);
    return reply.code(created ? 201 : 200).send(s);
  });
  app.delete('/deliver/v1/services/:service', async (req, reply) => {
    await center.deleteService(service(req));
    return reply.code(204).send();
  });

  app.get('/deliver/v1/environments', (req) => ({ environments: center.listEnvironments().filter((e) => readable(req, `*/${e.name}`)).map(environmentJson) }));
  app.get('/deliver/v1/environments/:env', (req) => environmentJson(center.environment(env(req))));
  app.put('/deliver/v1/environments/:env', async (req, reply) => {
    const { environment, created } = await center.putEnvironment(env(req), req.body);
    return reply.code(created ? 201 : 200).send(environmentJson(environment));
  });
  app.delete('/deliver/v1/environments/:env', async (req, reply) => {
    await center.deleteEnvironment(env(req));
    return reply.code(204).send();
  });

  app.get('/deliver/v1/services/:service/releases', (req) => ({ releases: center.listReleases(service(req)).map(releaseJson) }));
  app.post('/deliver/v1/services/:service/releases', async (req, reply) => reply.code(201).send(releaseJson(await center.createRelease(service(req), req.body, by(req)))));
  app.get('/deliver/v1/services/:service/releases/:version', (req) => releaseJson(center.release(service(req), releaseVersion(p(req)['version'] ?? '', 'version'))));

  app.get('/deliver/v1/services/:service/promotions', (req) => {
    const q = req.query as Record<string, unknown>;
    const e = typeof q['env'] === 'string' ? deliveryName(q['env'], 'env') : undefined;
    return { promotions: center.history(service(req), e).map((x) => promotionJson(x)) };
  });
  app.post('/deliver/v1/services/:service/promotions', async (req, reply) => {
    const b = body(req);
    const problems = [];
    if (typeof b['release'] !== 'string') problems.push({ field: 'release', message: 'is required: the version of a release of the service' });
    if (typeof b['to'] !== 'string') problems.push({ field: 'to', message: 'is required: the environment to promote it to' });
    const d = b['deadlineSeconds'];
    if (d !== undefined && !(typeof d === 'number' && Number.isInteger(d) && d >= 1 && d <= MAX_PROMOTION_DEADLINE_S)) problems.push({ field: 'deadlineSeconds', message: `must be an integer from 1 to ${MAX_PROMOTION_DEADLINE_S}` });
    for (const k of Object.keys(b)) if (k !== 'release' && k !== 'to' && k !== 'deadlineSeconds') problems.push({ field: k, message: 'unknown field (known: release, to, deadlineSeconds)' });
    if (problems.length > 0) throw new InvalidDelivery(problems);
    const promotion = await center.promote(
      service(req),
      { release: releaseVersion(b['release'] as string, 'release'), to: deliveryName(b['to'] as string, 'to'), ...(typeof d === 'number' ? { deadlineSeconds: d } : {}) },
      by(req),
    );
    return reply.code(201).send(promotionJson(promotion, center.progressOf(promotion)));
  });
  app.get('/deliver/v1/services/:service/promotions/:id', (req) => {
    const promotion = center.promotion(service(req), p(req)['id'] ?? '');
    return promotionJson(promotion, center.progressOf(promotion));
  });
  app.post('/deliver/v1/services/:service/promotions/:id/approve', async (req) => {
    const promotion = await center.approve(service(req), p(req)['id'] ?? '', by(req));
    return promotionJson(promotion, center.progressOf(promotion));
  });
  app.post('/deliver/v1/services/:service/promotions/:id/reject', async (req) => {
    const reason = body(req)['reason'];
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > 500)) throw new InvalidDelivery([{ field: 'reason', message: 'must be a string of at most 500 characters' }]);
    return promotionJson(await center.reject(service(req), p(req)['id'] ?? '', by(req), (reason as string | undefined) ?? ''));
  });
  app.post('/deliver/v1/services/:service/environments/:env/rollback', async (req, reply) => {
    const to = body(req)['to'];
    if (to !== undefined && typeof to !== 'string') throw new InvalidDelivery([{ field: 'to', message: 'must be the version of a release of the service' }]);
    const promotion = await center.rollback(service(req), env(req), by(req), to !== undefined ? releaseVersion(to, 'to') : undefined);
    return reply.code(201).send(promotionJson(promotion, center.progressOf(promotion)));
  });
  app.get('/deliver/v1/services/:service/figures', (req) => {
    const q = req.query as Record<string, unknown>;
    const days = q['days'] === undefined ? 30 : Number(q['days']);
    if (!Number.isInteger(days) || days < 1 || days > 365) throw new InvalidDelivery([{ field: 'days', message: 'must be an integer from 1 to 365' }]);
    return center.figures(service(req), days);
  });

  // Server-sent events (DESIGN.md, "Events"): `event: <type>`, `data: <json>`.
  app.get('/deliver/v1/events', (req, reply) => {
    if (req.method === 'HEAD') return reply.code(200).header('Cache-Control', 'no-store').type('text/event-stream').send();
    const caller = identityOf(req);
    const mayRead = (e: { service: string; env?: string }) => caller === undefined || decide(caller.policies, 'read', { kind: 'delivery', name: `${e.service}/${e.env ?? '*'}` }).allowed;
    const raw = reply.raw;
    const stop = center.onEvent((e) => {
      if (mayRead(e)) raw.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    });
    reply.hijack();
    raw.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    raw.flushHeaders();
    raw.write(': delivery events\n\n');
    const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
    const end = () => {
      clearInterval(keepAlive);
      stop();
    };
    raw.on('close', end);
    if (raw.destroyed) end();
    return reply;
  });
}
