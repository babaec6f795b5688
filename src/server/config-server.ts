import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import type { HttpGate } from '../auth/http-gate.ts';
import type { SecretRegistry } from '../auth/secret-registry.ts';
import { ConfigCenter, type ConfigSealer } from '../config/config-center.ts';
import { apolloAccessRules, apolloRoutes } from '../config/http/apollo-routes.ts';
import { configRoutes, CONFIG_ACCESS_RULES } from '../config/http/config-routes.ts';
import { pullScriptRoutes, PULL_SCRIPT_ACCESS_RULES } from '../config/http/pull-script.ts';
import { ReleaseRepository } from '../config/release-repository.ts';
import { rolloutDeadlineOf, type ServicesPort } from '../config/services-port.ts';
import type { AppsFramework } from '../frameworks/apps/apps-framework.ts';
import { TemplateSource } from '../config/template-source.ts';
import { SystemClock, type Clock } from '../core/clock.ts';
import { loadSecretKey } from '../lib/secret-box.ts';
import { KyselyConfigStore } from '../store/kysely-config-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';
import { prepareDataDir } from './data-dir.ts';

/**
 * The config center of a Slipway process (issue 13): its state in `<dataDir>/config.db`, the
 * templates' git caches in `<dataDir>/templates`, the releases' audit repository in
 * `<dataDir>/releases` (a git repository, one commit per release).
 */
export interface ConfigService {
  center: ConfigCenter;
  dataDir: string;
  /** The config center's clock (Apollo's signatures are held against it too). */
  clock: Clock;
  close(): Promise<void>;
}

/** `server`: where tasks reach this config center (their `CONFIG_SERVER`), known once the server listens. */
export async function startConfigService(o: { dataDir: string; sealer: ConfigSealer; server: () => string; services?: ServicesPort; clock?: Clock; log?: (line: string) => void }): Promise<ConfigService> {
  await prepareDataDir(o.dataDir, 'config center');
  const store = await KyselyConfigStore.open(sqliteDatabases(o.dataDir));
  const clock = o.clock ?? new SystemClock();
  let center: ConfigCenter;
  try {
    center = await ConfigCenter.open({
      store,
      sealer: o.sealer,
      templates: new TemplateSource(join(o.dataDir, 'templates')),
      audit: new ReleaseRepository(join(o.dataDir, 'releases')),
      clock,
      // The key of the signed URLs of tasks' files: the config center's own, 0600, made on first start.
      fetchKey: loadSecretKey(join(o.dataDir, 'fetch.key'), { create: true }),
      server: o.server,
      ...(o.services !== undefined ? { services: o.services } : {}),
      ...(o.log !== undefined ? { log: o.log } : {}),
    });
  } catch (e) {
    await store.close();
    throw e;
  }
  return { center, dataDir: o.dataDir, clock, close: () => center.close() };
}

/**
 * `/config/v1` and Apollo's client API on `app`, behind `gate`. `secrets`: the secret store, which
 * holds the access keys of Apollo's appIds (the config center knows their names only, and asks
 * for a value here, at each signed request, so that a new version of the secret holds at once).
 */
export function mountConfigApi(app: FastifyInstance, service: ConfigService, o: { gate: HttpGate; secrets: Pick<SecretRegistry, 'value'> }): void {
  o.gate.addRules(CONFIG_ACCESS_RULES);
  o.gate.addRules(PULL_SCRIPT_ACCESS_RULES);
  o.gate.addRules(apolloAccessRules(service.center, { secretValue: (name) => o.secrets.value(name), now: () => service.clock.now() }));
  configRoutes(app, service.center);
  pullScriptRoutes(app);
  apolloRoutes(app, service.center);
}

/** The config center's ServicesPort over the services framework of the same process. */
export function servicesPortOf(framework: AppsFramework): ServicesPort {
  const view = framework.view;
  return {
    instancesOf: (appId) =>
      view.instancesOf(appId).map((i) => ({
        taskId: i.taskId,
        host: i.host,
        attributes: { ...(view.agents.get(i.agentId)?.attributes ?? {}) },
        state: i.state,
        ...(i.killing ? { killing: true } : {}),
        // With a health check, healthy only once it passed; without one, running is enough.
        ...(i.hasHealthCheck ? { healthy: i.healthy === true } : {}),
        ...(i.configRelease !== undefined ? { configRelease: { ...i.configRelease } } : {}),
      })),
    wantedInstances: (appId) => view.app(appId)?.def.instances,
    restart: async (appId, o) => {
      const r = await framework.deploy((declared) => declared, { force: o.force, restart: [appId] });
      return { deploymentId: r.deploymentId };
    },
    killTasks: async (appId, taskIds) => {
      await framework.killTasks((v) => taskIds.filter((id) => v.instance(id)?.appId === appId), {});
    },
    rolloutDeadlineMs: (appId) => {
      const def = view.app(appId)?.def;
      return def !== undefined ? rolloutDeadlineOf(def) : undefined;
    },
    deploymentRunning: (id) => view.deployment(id) !== undefined,
  };
}

/**
 * A ServicesPort whose framework is known later (`slipway up` starts the config center first):
 * until it is there, no app exists and nothing can be restarted.
 */
export function lateServicesPort(framework: () => AppsFramework | undefined): ServicesPort {
  const port = () => {
    const f = framework();
    return f !== undefined ? servicesPortOf(f) : undefined;
  };
  return {
    instancesOf: (appId) => port()?.instancesOf(appId) ?? [],
    wantedInstances: (appId) => port()?.wantedInstances(appId),
    restart: async (appId, o) => {
      const p = port();
      if (p === undefined) throw new Error('the services framework is not started yet');
      return p.restart(appId, o);
    },
    killTasks: async (appId, taskIds) => {
      const p = port();
      if (p === undefined) throw new Error('the services framework is not started yet');
      return p.killTasks(appId, taskIds);
    },
    rolloutDeadlineMs: (appId) => port()?.rolloutDeadlineMs(appId),
    deploymentRunning: (id) => port()?.deploymentRunning(id) ?? false,
  };
}
