import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { HttpServerLimits } from '../lib/http-server-limits.ts';
import { startAgentServer, type AgentServer } from './agent-server.ts';
import { mountMarathonApi, startAppsService, type AppsService } from './apps-server.ts';
import { mountCiApi, startCiService, type CiService } from './ci-server.ts';
import { InProcessScheduler } from './in-process-scheduler.ts';
import { startMasterServer, type MasterServer } from './master-server.ts';
import { localToken } from '../auth/bootstrap.ts';
import type { AuthOptions } from './local-auth.ts';

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
  /** The user the agent runs tasks without a user as (it runs as root); default nobody. */
  defaultUser?: string;
  /** The user CI executor tasks run as; default the agent's default user. */
  ciUser?: string;
}

export interface Up {
  master: MasterServer;
  /** Where the admin token is (written at the first start). */
  adminTokenFile: string;
  apps: AppsService;
  ci: CiService;
  agent: AgentServer;
  close(): Promise<void>;
}

export async function up(o: UpOptions): Promise<Up> {
  const dataDir = resolve(o.dataDir);
  searchableDataDir(dataDir);
  let apps: AppsService | undefined;
  let ci: CiService | undefined;
  let url = '';
  const master = await startMasterServer({
    host: o.host,
    port: o.port,
    dataDir: join(dataDir, 'master'),
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.httpLimits !== undefined ? { httpLimits: o.httpLimits } : {}),
    ...(o.auth !== undefined ? { auth: o.auth } : {}),
    adminTokenFile: join(dataDir, 'admin.token'),
    extend: async (app, core, gate) => {
      const service = await startAppsService({
        transport: new InProcessScheduler(core, 'slipway-apps'),
        dataDir: join(dataDir, 'apps'),
        masterUrl: 'in-process',
        ...(o.log !== undefined ? { log: o.log } : {}),
      });
      apps = service;
      mountMarathonApi(app, service, { leader: () => url.replace(/^http:\/\//, ''), masterUrl: 'in-process', rootMetrics: false, gate });
      try {
        ci = await startCiService({ transport: new InProcessScheduler(core, 'slipway-ci'), dataDir: join(dataDir, 'ci'), serverUrl: () => url, ...(o.log !== undefined ? { log: o.log } : {}), ...(o.ciClock !== undefined ? { clock: o.ciClock } : {}), ...(o.ciUser !== undefined ? { ciUser: o.ciUser } : {}) });
      } catch (e) {
        await service.close();
        throw e;
      }
      mountCiApi(app, ci, { gate, ...(o.ciMaxArtifactBytes !== undefined ? { maxArtifactBytes: o.ciMaxArtifactBytes } : {}) });
    },
  });
  url = master.url;
  // Its own agent joins with a token of its own, kept in the master's data dir (0600).
  const joinToken = await localToken(master.auth.tokens, join(dataDir, 'master', 'agent.token'), { name: 'local-agent', policies: ['agent'] });
  const appsService = apps!;
  const ciService = ci!;
  let agent: AgentServer;
  try {
    agent = await startAgentServer({
      masterUrl: master.url,
      token: joinToken,
      ...(o.auth !== undefined ? { auth: o.auth } : {}),
      workDir: join(dataDir, 'agent'),
      containerizers: o.containerizers,
      host: o.host,
      ...(o.httpLimits !== undefined ? { httpLimits: o.httpLimits } : {}),
      ...(o.resources !== undefined ? { resources: o.resources } : {}),
      ...(o.defaultUser !== undefined ? { defaultUser: o.defaultUser } : {}),
      ...(o.log !== undefined ? { log: o.log } : {}),
    });
  } catch (e) {
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
    async close() {
      await ciService.close();
      await appsService.close();
      await agent.close();
      await master.close();
    },
  };
}

/**
 * The data dir holds the agent's work dir, whose sandboxes belong to the tasks' users: they must
 * be able to pass through it (o+x), never to list or read it (each part's own dir in it is 0700).
 * Made 0711 when new; an existing one of this user gets the search bits added (an older `up`
 * made it 0700).
 */
function searchableDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const st = statSync(dir);
  if (st.uid === process.getuid?.() && (st.mode & 0o011) !== 0o011) chmodSync(dir, (st.mode & 0o7777) | 0o011);
}
