import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../core/clock.ts';
import { buildMasterApp } from '../master/http/master-app.ts';
import { Master, type MasterOptions } from '../master/master.ts';
import type { MasterChange, MasterStore } from '../master/master-store.ts';
import { guardHttpServer, httpServerLimits, type HttpServerLimits } from '../lib/http-server-limits.ts';
import { WriteQueue } from '../lib/write-queue.ts';
import { prepareDataDir } from './data-dir.ts';
import { KyselyMasterStore } from '../store/kysely-master-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';
import { VERSION } from './version.ts';
import type { HttpGate } from '../auth/http-gate.ts';
import { join } from 'node:path';
import { openSecretBox, type SecretBox } from '../lib/secret-box.ts';
import { openLocalAuth, type AuthOptions, type LocalAuth } from './local-auth.ts';
import { readTls, type TlsOptions } from './tls-options.ts';

/**
 * Wires a master process: the store (SQLite in the data dir), the master core recovered from it,
 * its HTTP server, and the journal flusher that writes the master's changes to the store after
 * each turn of the event loop (write-behind: the core never waits for the disk).
 */
export interface MasterServerOptions {
  host: string;
  port: number;
  dataDir: string;
  heartbeatIntervalSeconds?: number;
  agentReconnectGraceMs?: number;
  /** How long an agent that announced its restart (RESTARTING) has to come back; default 120 s. */
  agentRestartGraceMs?: number;
  agentHeartbeatIntervalMs?: number;
  agentReregisterTimeoutMs?: number;
  allocationIntervalMs?: number;
  log?: (line: string) => void;
  /** The HTTP server's limits (src/lib/http-server-limits.ts); unset ones take their defaults. */
  httpLimits?: Partial<HttpServerLimits>;
  /**
   * Adds routes to the master's HTTP server before it listens (the built-in frameworks' APIs of
   * `slipway up`, on the same port); `url` is where the server will listen once it does.
   */
  extend?: (app: FastifyInstance, master: Master, gate: HttpGate, auth: LocalAuth) => Promise<void>;
  /** Authentication options (src/server/local-auth.ts); the gate is always on. */
  auth?: AuthOptions;
  /** Where the first start writes the admin token; default `<dataDir>/admin.token`. */
  adminTokenFile?: string;
  /** Serve HTTPS with this certificate and key (PEM files; `--tls-cert`, `--tls-key`). */
  tls?: TlsOptions;
  /** What seals the secret store; default: the key of `secretKeyFile`, else `<dataDir>/secret.key` (made on first start). */
  secretBox?: SecretBox;
  /** The key file the operator names (`--secret-key-file`); it must exist, 32 bytes, mode 0600. */
  secretKeyFile?: string;
  /** A PEM file of the CA that agents' HTTPS files servers chain to (`--agent-ca`); default the system's CAs. */
  agentCaFile?: string;
}

export interface MasterServer {
  url: string;
  master: Master;
  /** The tokens (`slipway up` makes its agent's join token there). */
  auth: LocalAuth;
  /** Where the admin token was written at the first start. */
  adminTokenFile: string;
  close(): Promise<void>;
}

export async function startMasterServer(o: MasterServerOptions): Promise<MasterServer> {
  await prepareDataDir(o.dataDir, 'master');
  const store: MasterStore = await KyselyMasterStore.open(sqliteDatabases(o.dataDir));
  const state = await store.load();
  const clock = new SystemClock();
  const masterOptions: MasterOptions = {
    clock,
    journal: true,
    hostname: o.host,
    port: o.port,
    version: VERSION,
    ...(o.heartbeatIntervalSeconds !== undefined ? { heartbeatIntervalSeconds: o.heartbeatIntervalSeconds } : {}),
    ...(o.agentReconnectGraceMs !== undefined ? { agentReconnectGraceMs: o.agentReconnectGraceMs } : {}),
    ...(o.agentRestartGraceMs !== undefined ? { agentRestartGraceMs: o.agentRestartGraceMs } : {}),
    ...(o.agentHeartbeatIntervalMs !== undefined ? { agentHeartbeatIntervalMs: o.agentHeartbeatIntervalMs } : {}),
    ...(o.agentReregisterTimeoutMs !== undefined ? { agentReregisterTimeoutMs: o.agentReregisterTimeoutMs } : {}),
    ...(o.allocationIntervalMs !== undefined ? { allocationIntervalMs: o.allocationIntervalMs } : {}),
  };
  // The secret store lives in auth (opened below, after the master); the master asks it at launch.
  let secrets: LocalAuth['secrets'] | undefined;
  masterOptions.resolveSecret = (name) => secrets?.value(name);
  const master = new Master(masterOptions);
  master.recover(state);
  master.start();

  // Write-behind: the journal drained every 20 ms into one ordered write queue that never drops a
  // batch (a failed write applies nothing, the store's guarantee, so it is written again, ahead
  // of the later ones). While the store refuses, the master makes no offers and /health says why;
  // agents' updates stay unacknowledged until the task states they carry are written.
  const writes = new WriteQueue<MasterChange>({
    name: 'master store',
    write: (changes) => store.write(changes),
    clock,
    attempts: Infinity,
    onHealth: (h) => {
      master.setStoreTrouble(h.ok ? undefined : h.reason);
      if (h.ok) o.log?.('master store takes writes again');
      else if (h.failedAttempts === 1 || h.failedAttempts % 10 === 0) o.log?.(`master store write failed (attempt ${h.failedAttempts}); offers stopped until it works: ${h.reason}`);
    },
  });
  const flush = () => {
    const position = master.journalPosition();
    const batch = master.drainChanges();
    if (batch.length > 0) void writes.write(batch).then(() => master.journalDurable(position));
  };
  const flusher = setInterval(flush, 20);
  /** Writes what is left at shutdown; a store that still refuses after `ms` loses it (said in the log). */
  const flushAtClose = async (ms: number) => {
    flush();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = await Promise.race([writes.flush().then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)))]);
    clearTimeout(timer);
    if (gaveUp) o.log?.(`master store: the last changes could not be written before shutdown: ${writes.health.ok ? '' : writes.health.reason}`);
  };

  const adminTokenFile = o.adminTokenFile ?? join(o.dataDir, 'admin.token');
  let auth: LocalAuth;
  try {
    const secretBox = o.secretBox ?? openSecretBox({ dataDir: o.dataDir, keyFile: o.secretKeyFile });
    auth = await openLocalAuth({ ...o.auth, dataDir: o.dataDir, adminTokenFile, clock, secretBox, ...(o.log !== undefined ? { log: o.log } : {}) });
    secrets = auth.secrets;
  } catch (e) {
    clearInterval(flusher);
    master.stop();
    await flushAtClose(5000);
    await store.close();
    throw e;
  }
  const app = await buildMasterApp(master, {
    version: VERSION,
    auth,
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.tls !== undefined ? { tls: readTls(o.tls) } : {}),
    ...(o.agentCaFile !== undefined ? { agentCa: readFileSync(o.agentCaFile) } : {}),
  });
  guardHttpServer(app.server, httpServerLimits(o.httpLimits), o.log);
  try {
    await o.extend?.(app, master, auth.gate, auth);
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    clearInterval(flusher);
    master.stop();
    await app.close();
    await flushAtClose(5000);
    await auth.close();
    await store.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : o.port;
  const url = `${o.tls !== undefined ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  return {
    url,
    master,
    auth,
    adminTokenFile,
    async close() {
      clearInterval(flusher);
      master.stop();
      await flushAtClose(5000);
      await app.close();
      await flushAtClose(5000); // What the last disconnections changed.
      await auth.close();
      await store.close();
    },
  };
}
