import { readFileSync } from 'node:fs';
import { privateDirSync, TRAVERSE_ONLY_DIR_MODE } from '../lib/private-files.ts';
import os from 'node:os';
import { SystemClock } from '../core/clock.ts';
import { Agent } from '../agent/agent.ts';
import { ContainerizerUnavailable, type Containerizer } from '../agent/containerizer.ts';
import { DockerContainerizer } from '../agent/containerizers/docker-containerizer.ts';
import { ProcessContainerizer } from '../agent/containerizers/process-containerizer.ts';
import { detectResources, parseAttributes } from '../agent/detect-resources.ts';
import { buildFilesApp } from '../agent/files-app.ts';
import { remoteGate, type AuthOptions } from './local-auth.ts';
import { FILES_SERVER_SHARE, httpServerLimits, type HttpServerLimits } from '../lib/http-server-limits.ts';
import { readTls, type TlsOptions } from './tls-options.ts';

/**
 * Wires an agent process: its resources (given or detected), its containerizers, its files
 * server, and the agent daemon. `containerizers: 'auto'` means process, plus docker when an
 * engine answers.
 */
export interface AgentServerOptions {
  masterUrl: string;
  workDir: string;
  resources?: string;
  attributes?: string;
  containerizers: 'auto' | ('process' | 'docker')[];
  hostname?: string;
  /** Address of the files server; port 0 picks a free one. */
  host?: string;
  port?: number;
  statusRetryMs?: number;
  /**
   * Enforce cpu limits with a CFS quota too, not only with shares (Mesos's
   * `--cgroups_enable_cfs`). Default false: small quotas slow task start-up.
   */
  cgroupsEnableCfs?: boolean;
  /** The join token it registers with; default SLIPWAY_JOIN_TOKEN, else SLIPWAY_TOKEN. */
  token?: string;
  /** A PEM file of the certificates an HTTPS master's must chain to (`--ca`). */
  caFile?: string;
  /** How its files server authenticates (tokens are resolved by the master). */
  auth?: AuthOptions;
  /** Tell the master on stop that this is a planned restart (RESTARTING); default true. */
  announceRestartOnStop?: boolean;
  /** The user tasks without `command.user` run as, when the agent is root (default nobody). */
  defaultUser?: string;
  log?: (line: string) => void;
  /** The files server's limits (src/lib/http-server-limits.ts); unset ones take their defaults. */
  httpLimits?: Partial<HttpServerLimits>;
  /** Serve the files server over HTTPS with this certificate and key (`--tls-cert`, `--tls-key`). */
  tls?: TlsOptions;
}

export interface AgentServer {
  agent: Agent;
  url: string;
  containerizers: string[];
  close(): Promise<void>;
}

export async function startAgentServer(o: AgentServerOptions): Promise<AgentServer> {
  const wanted = o.containerizers === 'auto' ? ['process', ...((await DockerContainerizer.available()) ? ['docker'] : [])] : o.containerizers;
  const containerizers: Containerizer[] = [];
  const cfsQuota = o.cgroupsEnableCfs ?? false;
  for (const kind of wanted) {
    if (kind === 'process') containerizers.push(new ProcessContainerizer({ cfsQuota }));
    else if (kind === 'docker') {
      if (!(await DockerContainerizer.available())) throw new ContainerizerUnavailable('the docker containerizer was asked for, but no Docker engine answers at /var/run/docker.sock');
      containerizers.push(new DockerContainerizer({ cfsQuota }));
    } else throw new ContainerizerUnavailable(`unknown containerizer '${kind}' (process, docker)`);
  }
  const host = o.host ?? '127.0.0.1';
  // Disk is detected on the work dir's file system. Traverse-only (see Agent): tasks running as
  // another user reach their sandboxes inside it.
  privateDirSync(o.workDir, TRAVERSE_ONLY_DIR_MODE);
  const resources = detectResources(o.workDir, o.resources);
  // The files server needs the agent, and the agent announces the server's URL: listen first on
  // a known port, then create the agent with that URL.
  const holder: { agent?: Agent } = {};
  const joinToken = o.token ?? envToken('SLIPWAY_JOIN_TOKEN') ?? envToken('SLIPWAY_TOKEN');
  const ca = o.caFile !== undefined ? readFileSync(o.caFile) : undefined;
  // Its limits are those of every server of Slipway; the callers' tokens are resolved by the
  // master (trusted with the same CA as the agent's stream).
  const files = await buildFilesApp({ sandboxOf: (fw, task) => holder.agent?.sandboxOf(fw, task) }, remoteGate(o.masterUrl, { ...o.auth, ...(ca !== undefined ? { ca } : {}) }), {
    limits: httpServerLimits(o.httpLimits, FILES_SERVER_SHARE),
    ...(o.tls !== undefined ? { tls: readTls(o.tls) } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
  });
  await files.listen({ host, port: o.port ?? 0 });
  const address = files.server.address();
  const url = `${o.tls !== undefined ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const agent = new Agent({
    masterUrl: o.masterUrl,
    ...(joinToken !== undefined ? { token: joinToken } : {}),
    ...(ca !== undefined ? { ca } : {}),
    workDir: o.workDir,
    hostname: o.hostname ?? os.hostname(),
    url,
    resources,
    attributes: parseAttributes(o.attributes),
    containerizers,
    clock: new SystemClock(),
    ...(o.statusRetryMs !== undefined ? { statusRetryMs: o.statusRetryMs } : {}),
    ...(o.announceRestartOnStop !== undefined ? { announceRestartOnStop: o.announceRestartOnStop } : {}),
    ...(o.defaultUser !== undefined ? { defaultUser: o.defaultUser } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
  });
  holder.agent = agent;
  await agent.start();
  return {
    agent,
    url,
    containerizers: containerizers.map((c) => c.kind),
    async close() {
      await agent.stop();
      await files.close();
    },
  };
}

function envToken(name: string): string | undefined {
  const v = process.env[name];
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}
