import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../core/clock.ts';
import { buildMasterApp } from '../master/http/master-app.ts';
import { Master, type MasterOptions } from '../master/master.ts';
import type { MasterStore } from '../master/master-store.ts';
import { KyselyMasterStore } from '../store/kysely-master-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';
import { VERSION } from './version.ts';

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
  agentHeartbeatIntervalMs?: number;
  agentReregisterTimeoutMs?: number;
  allocationIntervalMs?: number;
  log?: (line: string) => void;
  /**
   * Adds routes to the master's HTTP server before it listens (the built-in frameworks' APIs of
   * `slipway up`, on the same port); `url` is where the server will listen once it does.
   */
  extend?: (app: FastifyInstance, master: Master) => Promise<void>;
}

export interface MasterServer {
  url: string;
  master: Master;
  close(): Promise<void>;
}

export async function startMasterServer(o: MasterServerOptions): Promise<MasterServer> {
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
    ...(o.agentHeartbeatIntervalMs !== undefined ? { agentHeartbeatIntervalMs: o.agentHeartbeatIntervalMs } : {}),
    ...(o.agentReregisterTimeoutMs !== undefined ? { agentReregisterTimeoutMs: o.agentReregisterTimeoutMs } : {}),
    ...(o.allocationIntervalMs !== undefined ? { allocationIntervalMs: o.allocationIntervalMs } : {}),
  };
  const master = new Master(masterOptions);
  master.recover(state);
  master.start();

  // Write-behind: a batch every 20 ms at most, never two writes at once. A failed write applies
  // nothing (the store's guarantee), so its changes are written again ahead of the next batch
  // (rows are upserts: order is what matters). A batch the store keeps refusing is a bug, not a
  // passing fault: after MAX_ATTEMPTS it is dropped, loudly, rather than block every later change.
  const MAX_ATTEMPTS = 10;
  let writing: Promise<void> | undefined;
  let retry: ReturnType<typeof master.drainChanges> = [];
  let attempts = 0;
  const flush = async () => {
    const batch = [...retry, ...master.drainChanges()];
    retry = [];
    if (batch.length === 0) return;
    try {
      await store.write(batch);
      attempts = 0;
    } catch (e) {
      attempts++;
      if (attempts >= MAX_ATTEMPTS) {
        o.log?.(`store write failed ${attempts} times; dropping ${batch.length} changes: ${(e as Error).message}`);
        attempts = 0;
        return;
      }
      o.log?.(`store write failed (attempt ${attempts}), will retry: ${(e as Error).message}`);
      retry = batch;
    }
  };
  const flusher = setInterval(() => {
    if (writing !== undefined) return;
    writing = flush().finally(() => (writing = undefined));
  }, 20);

  const app = await buildMasterApp(master, { version: VERSION });
  try {
    await o.extend?.(app, master);
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    clearInterval(flusher);
    master.stop();
    await app.close();
    await store.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : o.port;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  return {
    url,
    master,
    async close() {
      clearInterval(flusher);
      master.stop();
      await writing;
      await flush();
      await app.close();
      await flush(); // What the last disconnections changed.
      await store.close();
    },
  };
}
