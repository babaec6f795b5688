import { join, resolve } from 'node:path';
import { startAgentServer, type AgentServer } from './agent-server.ts';
import { startMasterServer, type MasterServer } from './master-server.ts';

/**
 * `slipway up`: the embedded single-machine default. One process runs a master (state in SQLite
 * in the data dir) and one agent (work dir inside the data dir) that connects to it over HTTP on
 * 127.0.0.1, exactly as a remote agent would.
 */
export interface UpOptions {
  host: string;
  port: number;
  dataDir: string;
  containerizers: 'auto' | ('process' | 'docker')[];
  resources?: string;
  log?: (line: string) => void;
}

export interface Up {
  master: MasterServer;
  agent: AgentServer;
  close(): Promise<void>;
}

export async function up(o: UpOptions): Promise<Up> {
  const dataDir = resolve(o.dataDir);
  const master = await startMasterServer({ host: o.host, port: o.port, dataDir: join(dataDir, 'master'), ...(o.log !== undefined ? { log: o.log } : {}) });
  let agent: AgentServer;
  try {
    agent = await startAgentServer({
      masterUrl: master.url,
      workDir: join(dataDir, 'agent'),
      containerizers: o.containerizers,
      host: o.host,
      ...(o.resources !== undefined ? { resources: o.resources } : {}),
      ...(o.log !== undefined ? { log: o.log } : {}),
    });
  } catch (e) {
    await master.close();
    throw e;
  }
  return {
    master,
    agent,
    async close() {
      await agent.close();
      await master.close();
    },
  };
}
