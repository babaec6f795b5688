import { join, resolve } from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { HttpServerLimits } from '../lib/http-server-limits.ts';
import { startAgentServer, type AgentServer } from './agent-server.ts';
import { inProcessMasterAgents, mountMarathonApi, startAppsService, type AppsService } from './apps-server.ts';
import { mountCiApi, startCiService, type CiService } from './ci-server.ts';
import { ciDeployTokens } from './ci-deploy-tokens.ts';
import { TRAVERSE_ONLY_DIR_MODE } from '../lib/private-files.ts';
import { openSecretBox } from '../lib/secret-box.ts';
import { lateServicesPort, mountConfigApi, startConfigService, type ConfigService } from './config-server.ts';
import { deliveryServicesPort, mountDeliveryApi, startDeliveryService, type DeliveryService } from './delivery-server.ts';
import { prepareDataDir } from './data-dir.ts';
import { InProcessScheduler } from './in-process-scheduler.ts';
import { startMasterServer, type MasterServer } from './master-server.ts';
import { localToken } from '../auth/bootstrap.ts';
import type { AuthOptions } from './local-auth.ts';
import type { TlsOptions } from './tls-options.ts';

/**
 * `slipway up`: the embedded single-machine default. One process runs a master (state in SQLite
 * in the data dir), the services framework (Marathon's API on the master's port, its own
 * database in the data dir, on the in-process scheduler API) and one agent (work dir inside the
 * data dir) that connects to the master over HTTP on 127.0.0.1, exactly as a remote agent would.
 */
export interface UpOptions {
  host: string;
  port: number;
  dataDir: string;
  containerizers: 'auto' | ('process' | 'docker')[];
  resources?: string;
  log?: (line: string) => void;
  /** CI's clock (tests of cron triggers run it ahead); default the system clock. */
  ciClock?: Clock;
  /** The limits of the master's server (which serves every API here) and of the agent's files server. */
  httpLimits?: Partial<HttpServerLimits>;
  /** The largest artifact a CI executor may upload (default 1 GiB). */
  ciMaxArtifactBytes?: number;
  /** Authentication options; the first start writes the admin token to `<dataDir>/admin.token`. */
  auth?: AuthOptions;
  /** Serve HTTPS; `caFile` is what its own agent and CI's executors trust (default: the certificate itself, for a self-signed one). */
  tls?: TlsOptions & { caFile?: string };
  /** The user the agent runs tasks without a user as (it runs as root); default nobody. */
  defaultUser?: string;
  /** The user CI executor tasks run as; default the agent's default user. */
  ciUser?: string;
  /**
   * The key that seals secrets at rest (`--secret-key-file`: it must exist, 32 bytes, mode 0600);
   * default `<dataDir>/secret.key`, created on first start.
   */
  secretKeyFile?: string;
}

export interface Up {
  master: MasterServer;
  /** Where the admin token is (written at the first start). */
  adminTokenFile: string;
  apps: AppsService;
  ci: CiService;
  config: ConfigService;
  delivery: DeliveryService;
  agent: AgentServer;
  close(): Promise<void>;
}

export async function up(o: UpOptions): Promise<Up> {
  const dataDir = resolve(o.dataDir);
  const caFile = o.tls !== undefined ? (o.tls.caFile ?? o.tls.certFile) : undefined;
  // Traverse-only (0711), not 0700: it holds the agent's work dir, whose sandboxes tasks running
  // as another user (the app's `user`) must reach by path; nothing in it is listable, and each
  // part's own dir inside is 0700.
  await prepareDataDir(dataDir, 'single-machine Slipway', TRAVERSE_ONLY_DIR_MODE);
  // One key for the installation, in the data dir (beside the parts' own dirs) unless named.
  const secretBox = openSecretBox({ dataDir, keyFile: o.secretKeyFile });
  let apps: AppsService | undefined;
  let ci: CiService | undefined;
  let config: ConfigService | undefined;
  let delivery: DeliveryService | undefined;
  let url = '';
  const master = await startMasterServer({
    host: o.host,
    port: o.port,
    dataDir: join(dataDir, 'master'),
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.httpLimits !== undefined ? { httpLimits: o.httpLimits } : {}),
    ...(o.auth !== undefined ? { auth: o.auth } : {}),
    ...(o.tls !== undefined ? { tls: o.tls } : {}),
    adminTokenFile: join(dataDir, 'admin.token'),
    secretBox,
    // Its own agent serves files with the same certificate.
    ...(caFile !== undefined ? { agentCaFile: caFile } : {}),
    extend: async (app, core, gate, auth) => {
      // The config center first: the services framework may launch (a deployment it resumes) as
      // soon as it starts, and every launch of a linked app asks the config center for its files.
      // Its ServicesPort reaches the framework once that is there; rollouts resume after.
      const started: { framework?: AppsService['framework'] } = {};
      // A config release and a promotion of one app take turns: each asks the other.
      // And the app a config service has in an environment is delivery's, when delivery deploys it.
      const servicesPort = {
        ...lateServicesPort(() => started.framework),
        promotionOf: (appId: string) => delivery?.center.promotionOnApp(appId),
        appIdOf: (configService: string, env: string) => delivery?.center.appIdForConfig(configService, env),
      };
      config = await startConfigService({ dataDir: join(dataDir, 'config'), sealer: secretBox, server: () => url, services: servicesPort, ...(o.log !== undefined ? { log: o.log } : {}) });
      try {
        delivery = await startDeliveryService({ dataDir: join(dataDir, 'delivery'), services: deliveryServicesPort(() => started.framework, () => config?.center), ...(o.log !== undefined ? { log: o.log } : {}) });
      } catch (e) {
        await config.close();
        throw e;
      }
      const deliveryService = delivery;
      let service: AppsService;
      try {
        service = await startAppsService({
          transport: new InProcessScheduler(core, 'slipway-apps'),
          masterAgents: inProcessMasterAgents(core),
          config: { deliveryFor: (s, e, appId, placement) => config?.center.deliveryFor(s, e, appId, placement) },
          dataDir: join(dataDir, 'apps'),
          masterUrl: 'in-process',
          ...(o.log !== undefined ? { log: o.log } : {}),
        });
      } catch (e) {
        await deliveryService.close();
        await config.close();
        throw e;
      }
      apps = service;
      started.framework = service.framework;
      config.center.resumeRollouts();
      deliveryService.center.resume();
      mountMarathonApi(app, service, { leader: () => url.replace(/^http:\/\//, ''), masterUrl: 'in-process', rootMetrics: false, gate });
      try {
        ci = await startCiService({ transport: new InProcessScheduler(core, 'slipway-ci'), dataDir: join(dataDir, 'ci'), serverUrl: () => url, secretBox, secretStore: auth.secrets, deployTokens: ciDeployTokens({ tokens: auth.tokens, policies: auth.policies, deliveryUrl: () => url }), ...(caFile !== undefined ? { caFile } : {}), ...(o.log !== undefined ? { log: o.log } : {}), ...(o.ciClock !== undefined ? { clock: o.ciClock } : {}), ...(o.ciUser !== undefined ? { ciUser: o.ciUser } : {}) });
      } catch (e) {
        await service.close();
        await deliveryService.close();
        await config.close();
        throw e;
      }
      mountCiApi(app, ci, { gate, ...(o.ciMaxArtifactBytes !== undefined ? { maxArtifactBytes: o.ciMaxArtifactBytes } : {}) });
      mountConfigApi(app, config, { gate, secrets: auth.secrets });
      mountDeliveryApi(app, deliveryService, { gate });
    },
  });
  url = master.url;
  // Its own agent joins with a token of its own, kept in the master's data dir (0600).
  const joinToken = await localToken(master.auth.tokens, join(dataDir, 'master', 'agent.token'), { name: 'local-agent', policies: ['agent'] });
  const appsService = apps!;
  const ciService = ci!;
  const configService = config!;
  const deliveryService = delivery!;
  let agent: AgentServer;
  try {
    agent = await startAgentServer({
      masterUrl: master.url,
      token: joinToken,
      ...(caFile !== undefined ? { caFile } : {}),
      ...(o.auth !== undefined ? { auth: o.auth } : {}),
      workDir: join(dataDir, 'agent'),
      ...(o.tls !== undefined ? { tls: o.tls } : {}),
      containerizers: o.containerizers,
      host: o.host,
      ...(o.httpLimits !== undefined ? { httpLimits: o.httpLimits } : {}),
      ...(o.resources !== undefined ? { resources: o.resources } : {}),
      ...(o.defaultUser !== undefined ? { defaultUser: o.defaultUser } : {}),
      ...(o.log !== undefined ? { log: o.log } : {}),
    });
  } catch (e) {
    await deliveryService.close();
    await configService.close();
    await ciService.close();
    await appsService.close();
    await master.close();
    throw e;
  }
  return {
    master,
    adminTokenFile: master.adminTokenFile,
    apps: appsService,
    ci: ciService,
    agent,
    config: configService,
    delivery: deliveryService,
    async close() {
      await deliveryService.close();
      await configService.close();
      await ciService.close();
      await appsService.close();
      await agent.close();
      await master.close();
    },
  };
}
