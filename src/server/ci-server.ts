import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { fastifyServerOptions, httpServerLimits, WEBSOCKET_MAX_PAYLOAD, type HttpServerLimits } from '../lib/http-server-limits.ts';
import { guardJsonBodies } from '../lib/json-depth.ts';
import type { HttpGate } from '../auth/http-gate.ts';
import { CI_ACCESS_RULES } from '../frameworks/ci/http/access-rules.ts';
import { defaultToken } from '../sdk/credentials.ts';
import type { DeployTokens } from '../frameworks/ci/deploy-tokens.ts';
import { remoteGate, type AuthOptions } from './local-auth.ts';
import { readTls, type TlsOptions } from './tls-options.ts';
import type { Clock } from '../core/clock.ts';
import { CiFramework } from '../frameworks/ci/ci-framework.ts';
import { EXECUTOR_TOKEN_VARIABLE } from '../frameworks/ci/executor-task.ts';
import { ciRoutes } from '../frameworks/ci/http/ci-routes.ts';
import { jenkinsRoutes } from '../frameworks/ci/http/jenkins-routes.ts';
import type { SchedulerTransport } from '../protocol/scheduler-transport.ts';
import { HttpScheduler } from '../sdk/http-scheduler.ts';
import { prepareDataDir } from './data-dir.ts';
import { openSecretBox, type SecretBox } from '../lib/secret-box.ts';
import { KyselyCiStore } from '../store/kysely-ci-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';

/** The slipway program, which executor tasks run as `slipway ci-executor`. */
const SLIPWAY_BIN = fileURLToPath(new URL('../../bin/slipway.js', import.meta.url));
/** The installation the program is part of (bin/, src/, node_modules/): what a Docker executor mounts. */
const SLIPWAY_HOME = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/**
 * Wires CI: its store (`ci.db` in the data dir), the framework on a scheduler transport, and its
 * routes. `slipway up` mounts it on the master's server with the in-process transport; `slipway
 * ci` runs it on its own server over HTTP. Executors are launched as `node bin/slipway.js
 * ci-executor` on the agents (the agents run this same program), as processes or, for an executor
 * spec with containerizer `docker`, in its image with this installation mounted.
 */
export interface CiService {
  framework: CiFramework;
  dataDir: string;
  close(): Promise<void>;
}

export interface CiServiceOptions {
  /** A PEM file of the CA that CI's HTTPS certificate chains to, for its executors (NODE_EXTRA_CA_CERTS). */
  caFile?: string;
  transport: SchedulerTransport;
  dataDir: string;
  /** Where executors reach CI: known once the server listens. */
  serverUrl: () => string;
  role?: string;
  log?: (line: string) => void;
  /** CI's clock (tests of cron triggers run it ahead); default the system clock. */
  clock?: Clock;
  /** A git repository mirroring jobs and executor specs. */
  mirrorRepo?: string;
  /**
   * The user executor tasks run as (their `command.user`); default none, i.e. the agent's default
   * task user. Builds with image steps need one in the `docker` group (docs/security.md).
   */
  ciUser?: string;
  /**
   * What seals the jobs' secrets at rest. Default: the key of `secretKeyFile` if given, else
   * `<dataDir>/secret.key` (created on first start).
   */
  secretBox?: SecretBox;
  /** The key file the operator names (`--secret-key-file`); it must exist, 32 bytes, mode 0600. */
  secretKeyFile?: string;
  /** The master's secret store, for the jobs' `credentials` (in `slipway up`); absent: jobs with credentials are refused. */
  secretStore?: { value(name: string): string | undefined };
  /** Tokens for deploy steps (in `slipway up`: ciDeployTokens); absent: deploy steps are refused one. */
  deployTokens?: DeployTokens;
}

export async function startCiService(o: CiServiceOptions): Promise<CiService> {
  await prepareDataDir(o.dataDir, 'CI');
  const secrets = o.secretBox ?? openSecretBox({ dataDir: o.dataDir, keyFile: o.secretKeyFile });
  const store = await KyselyCiStore.open(sqliteDatabases(o.dataDir));
  const framework = new CiFramework({
    transport: o.transport,
    store,
    secrets,
    dataDir: o.dataDir,
    executorProgram: ({ id, token, label, containerizer }) => {
      const args = [SLIPWAY_BIN, 'ci-executor', '--server', o.serverUrl(), '--id', id, '--label', label];
      const user = o.ciUser !== undefined ? { user: o.ciUser } : {};
      // The token in the task's environment, not its command line (which `ps` shows everyone);
      // the executor takes it out of its own environment before it runs anything.
      // An HTTPS CI: the executor (fetch and WebSocket alike) trusts the CA it is given.
      const environment = { variables: [{ name: EXECUTOR_TOKEN_VARIABLE, value: token }, ...(o.caFile !== undefined ? [{ name: 'NODE_EXTRA_CA_CERTS', value: o.caFile }] : [])] };
      if (containerizer === 'process') return { command: { shell: false, value: process.execPath, arguments: [process.execPath, ...args], environment, ...user } };
      // In its image: the image's `node` (on its PATH) runs this installation, mounted read-only at
      // the same path; the image's entrypoint, if any, gets `node ...` as its command.
      return { command: { shell: false, arguments: ['node', ...args], environment, ...user }, mounts: [{ containerPath: SLIPWAY_HOME, hostPath: SLIPWAY_HOME, mode: 'RO' }] };
    },
    ...(o.role !== undefined ? { role: o.role } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
    ...(o.mirrorRepo !== undefined ? { mirrorRepo: o.mirrorRepo } : {}),
    ...(o.secretStore !== undefined ? { secretStore: o.secretStore } : {}),
    ...(o.deployTokens !== undefined ? { deployTokens: o.deployTokens } : {}),
  });
  try {
    await framework.start();
  } catch (e) {
    await store.close();
    throw e;
  }
  return {
    framework,
    dataDir: o.dataDir,
    async close() {
      await framework.stop();
      await store.close();
    },
  };
}

/** CI's API on `app` (which must have @fastify/websocket registered). */
export function mountCiApi(app: FastifyInstance, service: CiService, options: { maxArtifactBytes?: number; gate: HttpGate }): void {
  options.gate.addRules(CI_ACCESS_RULES);
  ciRoutes(app, { framework: service.framework, artifactsDir: join(service.dataDir, 'artifacts'), ...(options.maxArtifactBytes !== undefined ? { maxArtifactBytes: options.maxArtifactBytes } : {}) });
  jenkinsRoutes(app, { framework: service.framework });
}

export interface CiServerOptions {
  mirrorRepo?: string;
  masterUrl: string;
  host: string;
  port: number;
  dataDir: string;
  role?: string;
  log?: (line: string) => void;
  /** The HTTP server's limits (src/lib/http-server-limits.ts); unset ones take their defaults. */
  httpLimits?: Partial<HttpServerLimits>;
  /** The largest artifact an executor may upload (default 1 GiB). */
  maxArtifactBytes?: number;
  /** The token it registers with at the master (its principal); default SLIPWAY_TOKEN. */
  token?: string;
  auth?: AuthOptions;
  /** Serve HTTPS with this certificate and key (`--tls-cert`, `--tls-key`). */
  tls?: TlsOptions;
  /** The user executor tasks run as; default the agents' default task user. */
  ciUser?: string;
  /** The secret key file (`--secret-key-file`); default `<dataDir>/secret.key`, created on first start. */
  secretKeyFile?: string;
}

/** `slipway ci`: CI in its own process, on its own port. */
export async function startCiServer(o: CiServerOptions): Promise<{ url: string; service: CiService; close(): Promise<void> }> {
  let url = `${o.tls !== undefined ? 'https' : 'http'}://${o.host}:${o.port}`;
  const service = await startCiService({
    transport: new HttpScheduler(o.masterUrl, o.token ?? defaultToken()),
    dataDir: o.dataDir,
    serverUrl: () => url,
    ...(o.role !== undefined ? { role: o.role } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.mirrorRepo !== undefined ? { mirrorRepo: o.mirrorRepo } : {}),
    ...(o.ciUser !== undefined ? { ciUser: o.ciUser } : {}),
    ...(o.secretKeyFile !== undefined ? { secretKeyFile: o.secretKeyFile } : {}),
  });
  const app = Fastify({ logger: false, ...fastifyServerOptions({ limits: httpServerLimits(o.httpLimits), ...(o.log !== undefined ? { log: o.log } : {}), ...(o.tls !== undefined ? { tls: readTls(o.tls) } : {}) }) });
  guardJsonBodies(app);
  // Its changes go to the master's audit log, reported with its own token.
  const gate = remoteGate(o.masterUrl, o.auth, { token: o.token ?? defaultToken(), ...(o.log !== undefined ? { log: o.log } : {}) });
  gate.install(app);
  await app.register(websocket, { options: { maxPayload: WEBSOCKET_MAX_PAYLOAD } });
  mountCiApi(app, service, { gate, ...(o.maxArtifactBytes !== undefined ? { maxArtifactBytes: o.maxArtifactBytes } : {}) });
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    await service.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : o.port;
  url = `${o.tls !== undefined ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  return {
    url,
    service,
    async close() {
      await app.close();
      await gate.closeAudit();
      await service.close();
    },
  };
}

