import type { FastifyInstance } from 'fastify';
import type { HttpGate } from '../auth/http-gate.ts';
import type { ConfigCenter } from '../config/config-center.ts';
import { rolloutDeadlineOf } from '../config/services-port.ts';
import { SystemClock, type Clock } from '../core/clock.ts';
import { SlipwayError } from '../core/errors.ts';
import { DeliveryCenter } from '../delivery/delivery-center.ts';
import type { JsonObject } from '../delivery/delivery-definitions.ts';
import { DeploymentRefused } from '../delivery/delivery-errors.ts';
import { deliveryAccessRules, deliveryRoutes } from '../delivery/http/delivery-routes.ts';
import type { DeliveryServicesPort } from '../delivery/services-port.ts';
import { appToJSON, parseAppDefinition, type AppDefinition } from '../frameworks/apps/app-definition.ts';
import type { AppsFramework } from '../frameworks/apps/apps-framework.ts';
import { KyselyDeliveryStore } from '../store/kysely-delivery-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';
import { prepareDataDir } from './data-dir.ts';

/** Delivery of a Slipway process (issue 14): its state in `<dataDir>/delivery.db`. */
export interface DeliveryService {
  center: DeliveryCenter;
  close(): Promise<void>;
}

export async function startDeliveryService(o: { dataDir: string; services: DeliveryServicesPort; clock?: Clock; log?: (line: string) => void }): Promise<DeliveryService> {
  await prepareDataDir(o.dataDir, 'delivery');
  const store = await KyselyDeliveryStore.open(sqliteDatabases(o.dataDir));
  let center: DeliveryCenter;
  try {
    center = await DeliveryCenter.open({ store, services: o.services, clock: o.clock ?? new SystemClock(), ...(o.log !== undefined ? { log: o.log } : {}) });
  } catch (e) {
    await store.close();
    throw e;
  }
  return { center, close: () => center.close() };
}

/** `/deliver/v1` on `app`, behind `gate`. */
export function mountDeliveryApi(app: FastifyInstance, service: DeliveryService, o: { gate: HttpGate }): void {
  o.gate.addRules(deliveryAccessRules(service.center));
  deliveryRoutes(app, service.center);
}

/** A definition as the framework validates it; its refusal as delivery's (422, Marathon's details). */
function parsed(app: JsonObject): AppDefinition {
  try {
    return parseAppDefinition(app);
  } catch (e) {
    if (e instanceof SlipwayError && e.status === 422) throw new DeploymentRefused(`the app definition is not valid: ${e.message}`, (e as SlipwayError & { details?: unknown }).details);
    throw e;
  }
}

const ALIVE = new Set(['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING']);

/**
 * Delivery's ServicesPort over the services framework (and the config center) of the same
 * process; the framework is known later (`slipway up` starts delivery beside the config center).
 */
export function deliveryServicesPort(framework: () => AppsFramework | undefined, config: () => ConfigCenter | undefined): DeliveryServicesPort {
  const f = () => {
    const x = framework();
    if (x === undefined) throw new Error('the services framework is not started yet');
    return x;
  };
  return {
    appDefinition: (appId) => {
      const app = framework()?.view.app(appId);
      if (app === undefined) return undefined;
      const { version: _v, versionInfo: _i, ...json } = appToJSON(app.def) as unknown as JsonObject;
      return json;
    },
    // POST /v2/plan's preview of the deploy below (the same edit): the definition is checked as
    // the framework checks it (422), and whether its new instances can be placed now on the
    // master's agents is answered with the reasons per agent of each app that cannot be.
    preflight: async (app) => {
      const def = parsed(app);
      const preview = await f().preview((declared) => declared.set(def.id, def));
      if (preview.fits) return { fits: true };
      const unplaced = preview.apps.filter((a) => a.unplaced > 0).map(({ id, unplaced, message, reasons }) => ({ id, unplaced, ...(message !== undefined ? { message } : {}), reasons }));
      return { fits: false, reasons: unplaced };
    },
    deploy: async (app, o) => {
      const def = parsed(app);
      const r = await f().deploy((declared) => new Map(declared).set(def.id, def), { force: o.force });
      const configVersion = r.apps.get(def.id)?.info.lastConfigChangeAt ?? f().view.app(def.id)?.info.lastConfigChangeAt ?? r.version;
      return { deploymentId: r.deploymentId, configVersion };
    },
    remove: async (appId) => {
      await f().deploy(
        (declared) => {
          const m = new Map(declared);
          m.delete(appId);
          return m;
        },
        { force: true },
      );
    },
    deploymentRunning: (id) => framework()?.view.deployment(id) !== undefined,
    progress: (appId, configVersion) => {
      const view = framework()?.view;
      const app = view?.app(appId);
      if (view === undefined || app === undefined) return undefined;
      const instances = view.instancesOf(appId);
      const healthyOnVersion = instances.filter((i) => i.configVersion === configVersion && !i.killing && i.state === 'TASK_RUNNING' && (!i.hasHealthCheck || i.healthy === true)).length;
      const old = instances.filter((i) => i.configVersion !== configVersion && ALIVE.has(i.state)).length;
      return { wanted: app.def.instances, healthyOnVersion, old };
    },
    deadlineMs: (app) => rolloutDeadlineOf(parsed(app)),
    configRolloutOf: (appId) => config()?.runningRolloutOf(appId),
    configReleaseOf: (service, env) => config()?.current(service, env)?.version,
  };
}
