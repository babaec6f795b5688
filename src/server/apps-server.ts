import Fastify, { type FastifyInstance } from 'fastify';
import { fastifyServerOptions, httpServerLimits, type HttpServerLimits } from '../lib/http-server-limits.ts';
import { guardJsonBodies } from '../lib/json-depth.ts';
import type { HttpGate } from '../auth/http-gate.ts';
import { marathonAccessRules } from '../frameworks/apps/http/access-rules.ts';
import { defaultToken } from '../sdk/credentials.ts';
import { remoteGate, type AuthOptions } from './local-auth.ts';
import { readTls, type TlsOptions } from './tls-options.ts';
import type { ConfigPort } from '../frameworks/apps/config-port.ts';
import { AppsFramework } from '../frameworks/apps/apps-framework.ts';
import { eventsRoute } from '../frameworks/apps/events/events-route.ts';
import { MarathonEventBus } from '../frameworks/apps/events/marathon-event-bus.ts';
import { marathonRoutes } from '../frameworks/apps/http/marathon-routes.ts';
import { HttpMasterAgents, readMasterAgents, type MasterAgents } from '../frameworks/kit/master-agents.ts';
import type { Master } from '../master/master.ts';
import { operatorState } from '../master/http/operator-routes.ts';
import type { SchedulerTransport } from '../protocol/scheduler-transport.ts';
import { HttpScheduler } from '../sdk/http-scheduler.ts';
import { KyselyAppsStore } from '../store/kysely-apps-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';
import { prepareDataDir } from './data-dir.ts';
import { VERSION } from './version.ts';

/**
 * Wires the services framework: its store (`apps.db` in the data dir), its event bus, the
 * framework on a scheduler transport, and Marathon's routes on a Fastify server. `slipway up`
 * mounts it on the master's server with the in-process transport; `slipway apps` runs it on its
 * own server over HTTP.
 */
export interface AppsService {
  framework: AppsFramework;
  bus: MarathonEventBus;
  close(): Promise<void>;
}

export interface AppsServiceOptions {
  transport: SchedulerTransport;
  dataDir: string;
  masterUrl: string;
  role?: string;
  log?: (line: string) => void;
  /** The config center, for apps linked to a config service (`slipway up`'s). */
  config?: ConfigPort;
  /** The master's agents, for POST /v2/plan (in process in `slipway up`, over HTTP in `slipway apps`). */
  masterAgents?: MasterAgents;
}

/**
 * The master's agents in process (`slipway up`): the answer of GET_AGENTS, from the same function
 * that answers `POST /api/v1`, read as a framework in its own process reads it over HTTP.
 */
export function inProcessMasterAgents(master: Master): MasterAgents {
  return { agents: async () => readMasterAgents(operatorState(master, VERSION).get_agents.agents) };
}

/** Loads the framework's state and subscribes (resolves once subscribed). */
export async function startAppsService(o: AppsServiceOptions): Promise<AppsService> {
  await prepareDataDir(o.dataDir, 'services framework');
  const store = await KyselyAppsStore.open(sqliteDatabases(o.dataDir));
  const bus = new MarathonEventBus();
  const framework = new AppsFramework({
    transport: o.transport,
    store,
    events: bus,
    ...(o.role !== undefined ? { role: o.role } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.config !== undefined ? { config: o.config } : {}),
    ...(o.masterAgents !== undefined ? { masterAgents: o.masterAgents } : {}),
  });
  try {
    await framework.start();
  } catch (e) {
    await store.close();
    throw e;
  }
  return {
    framework,
    bus,
    async close() {
      await framework.stop();
      await store.close();
    },
  };
}

/** Marathon's API (and /v2/events) for `service` on `app`. */
export function mountMarathonApi(app: FastifyInstance, service: AppsService, where: { leader: () => string; masterUrl: string; rootMetrics: boolean; gate: HttpGate }): void {
  where.gate.addRules(marathonAccessRules(service.framework.view, { rootMetrics: where.rootMetrics }));
  marathonRoutes(app, {
    rootMetrics: where.rootMetrics,
    framework: service.framework,
    leader: where.leader,
    masterUrl: where.masterUrl,
    version: VERSION,
    registerEvents: (scope) => eventsRoute(scope, { bus: service.bus }),
  });
}

export interface AppsServerOptions {
  masterUrl: string;
  host: string;
  port: number;
  dataDir: string;
  role?: string;
  log?: (line: string) => void;
  /** The HTTP server's limits (src/lib/http-server-limits.ts); unset ones take their defaults. */
  httpLimits?: Partial<HttpServerLimits>;
  /** The token it registers with at the master (its principal); default SLIPWAY_TOKEN. */
  token?: string;
  auth?: AuthOptions;
  /** Serve HTTPS with this certificate and key (`--tls-cert`, `--tls-key`). */
  tls?: TlsOptions;
}

export interface AppsServer {
  url: string;
  service: AppsService;
  close(): Promise<void>;
}

/** `slipway apps`: the services framework in its own process, on its own port. */
export async function startAppsServer(o: AppsServerOptions): Promise<AppsServer> {
  const service = await startAppsService({
    transport: new HttpScheduler(o.masterUrl, o.token ?? defaultToken()),
    // With its own token, which needs read on cluster state for GET_AGENTS (else /v2/plan is 503).
    masterAgents: new HttpMasterAgents(o.masterUrl, o.token ?? defaultToken()),
    dataDir: o.dataDir,
    masterUrl: o.masterUrl,
    ...(o.role !== undefined ? { role: o.role } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
  });
  const app = Fastify({ logger: false, ...fastifyServerOptions({ limits: httpServerLimits(o.httpLimits), ...(o.log !== undefined ? { log: o.log } : {}), ...(o.tls !== undefined ? { tls: readTls(o.tls) } : {}) }) });
  guardJsonBodies(app);
  // Its changes go to the master's audit log, reported with its own token.
  const gate = remoteGate(o.masterUrl, o.auth, { token: o.token ?? defaultToken(), ...(o.log !== undefined ? { log: o.log } : {}) });
  gate.install(app);
  let leader = `${o.host}:${o.port}`;
  mountMarathonApi(app, service, { leader: () => leader, masterUrl: o.masterUrl, rootMetrics: true, gate });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ message: `no route ${request.method} ${request.url}` }));
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    await service.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : o.port;
  leader = `${o.host}:${port}`;
  return {
    url: `${o.tls !== undefined ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`,
    service,
    async close() {
      await app.close();
      await gate.closeAudit();
      await service.close();
    },
  };
}
