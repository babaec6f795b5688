import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { stopOnSignal } from '../../server/stop-on-signal.ts';
import { tlsFromFlags } from '../../server/tls-options.ts';
import { positiveInt } from '../options.ts';
import { registerCiClientCommands } from './ci.ts';

/**
 * `slipway up`, `master`, `agent`, `apps`, `ci`, `ci-executor`: the long-running processes. Each
 * loads its server modules when it runs (dynamic import): a CI executor task starts in ~0.4 s
 * instead of ~1.4 s when it does not load Fastify, SQLite and every framework first.
 */

function containerizers(value: string): 'auto' | ('process' | 'docker')[] {
  if (value === 'auto') return 'auto';
  const list = value.split(',').map((s) => s.trim());
  for (const c of list) if (c !== 'process' && c !== 'docker') throw new InvalidArgumentError(`unknown containerizer '${c}': use process, docker, a list of them, or auto`);
  return list as ('process' | 'docker')[];
}

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

// No commander defaults for these two: an agent that is not root says when it ignores a
// --default-user given to it, and CI leaves the user to the agent unless told one.
const DEFAULT_USER_HELP = 'the user tasks that name none run as, when the agent runs as root (default: nobody; root only if named)';
const CI_USER_HELP = "the user CI executor tasks run as (default: the agent's default user); builds with image steps need one in the docker group";

interface AuthFlags {
  tlsCert?: string;
  tlsKey?: string;
  hostName?: string[];
  anonymousPolicy?: string[];
  anonymousLoopbackOnly?: boolean;
}

const list = (v: string, all: string[] = []) => [...all, ...v.split(',').map((x) => x.trim()).filter((x) => x !== '')];

/** The authentication flags every server takes (docs/security.md). */
function authFlags(c: Command): Command {
  return c
    .option('--host-name <names>', 'names clients use for this server (the Host header is checked against them, besides IP addresses and localhost); repeatable, comma-separated', list)
    .option('--anonymous-policy <names>', 'grant these policies to requests without a token (off by default; e.g. viewer)', list)
    .option('--anonymous-loopback-only', 'grant the anonymous policies only to requests from this machine')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', 'the key of --tls-cert (PEM)');
}

function authOptions(o: AuthFlags) {
  return {
    ...(o.hostName !== undefined ? { hostNames: o.hostName } : {}),
    ...(o.anonymousPolicy !== undefined ? { anonymousPolicies: o.anonymousPolicy } : {}),
    ...(o.anonymousLoopbackOnly === true ? { anonymousLoopbackOnly: true } : {}),
  };
}

/** Says so when a server listens beyond this machine without TLS: its tokens travel in clear. */
function warnIfExposed(host: string, tls = false): void {
  if (tls) return;
  if (host === '127.0.0.1' || host === '::1' || host === 'localhost' || host.startsWith('127.')) return;
  log(`WARNING: listening on ${host} without TLS: tokens and secrets cross the network in clear. Put a TLS proxy (nginx) in front, or bind to 127.0.0.1.`);
}

/** A token from a file (0600, as `slipway token create` output saved), or the environment's. */
function tokenFrom(file: string | undefined, ...envNames: string[]): string | undefined {
  if (file !== undefined) {
    const text = readFileSync(file, 'utf8').trim();
    if (text === '') throw new InvalidArgumentError(`${file} holds no token`);
    return text;
  }
  for (const n of envNames) {
    const v = process.env[n];
    if (v !== undefined && v.trim() !== '') return v.trim();
  }
  return undefined;
}

const SECRET_KEY_FILE_HELP =
  'the key that encrypts secrets at rest: 32 random bytes, mode 0600 (e.g. `head -c 32 /dev/urandom > FILE && chmod 600 FILE`); give the same file to a part started again elsewhere (default: secret.key in the data dir, created on first start)';

export function registerCluster(program: Command): void {
  const upCommand = program
    .command('up')
    .description('run a master and one agent on this machine (the embedded single-machine default)')
    .option('--port <port>', 'port of the master', positiveInt('--port'), 5050)
    .option('--host <ip>', 'address to bind', '127.0.0.1')
    .option('--data-dir <dir>', 'where state, sandboxes and logs live', './.slipway')
    .option('--containerizers <list>', 'process,docker or auto (docker when an engine answers)', containerizers, 'auto' as const)
    .option('--resources <text>', 'the agent\'s resources, e.g. "cpus:4;mem:8192;ports:[31000-32000]" (default: detected)')
    .option('--default-user <name>', DEFAULT_USER_HELP)
    .option('--ci-user <name>', CI_USER_HELP)
    .option('--secret-key-file <path>', SECRET_KEY_FILE_HELP)
    .option('--tls-ca <file>', 'with --tls-cert: the CA its own agent and CI executors trust (default: the certificate itself, when it is self-signed)');
  authFlags(upCommand).action(
    async (o: AuthFlags & { tlsCa?: string; port: number; host: string; dataDir: string; containerizers: 'auto' | ('process' | 'docker')[]; resources?: string; defaultUser?: string; ciUser?: string; secretKeyFile?: string }) => {
      const tls = tlsFromFlags(o);
      warnIfExposed(o.host, tls !== undefined);
      const { up } = await import('../../server/up.ts');
      const running = await up({
        host: o.host,
        port: o.port,
        dataDir: o.dataDir,
        containerizers: o.containerizers,
        log,
        auth: authOptions(o),
        ...(tls !== undefined ? { tls: { ...tls, ...(o.tlsCa !== undefined ? { caFile: resolve(o.tlsCa) } : {}) } } : {}),
        ...(o.resources !== undefined ? { resources: o.resources } : {}),
        ...(o.defaultUser !== undefined ? { defaultUser: o.defaultUser } : {}),
        ...(o.ciUser !== undefined ? { ciUser: o.ciUser } : {}),
        ...(o.secretKeyFile !== undefined ? { secretKeyFile: o.secretKeyFile } : {}),
      });
      process.stdout.write(
        [
          `Slipway is up at ${running.master.url}`,
          `  data dir        ${resolve(o.dataDir)}`,
          `  agent           ${running.agent.url} (containerizers: ${running.agent.containerizers.join(', ')})`,
          `  scheduler API   POST ${running.master.url}/api/v1/scheduler`,
          `  operator API    POST ${running.master.url}/api/v1   state: ${running.master.url}/master/state`,
          `  services API    ${running.master.url}/v2/apps (Marathon's REST API)   events: ${running.master.url}/v2/events`,
          `  CI API          ${running.master.url}/ci/v1/jobs`,
          `  admin token     ${running.adminTokenFile} (the CLI finds it there; for curl: export SLIPWAY_TOKEN=$(cat ${running.adminTokenFile}), then curl -u :$SLIPWAY_TOKEN ...)`,
          'Press Ctrl-C to stop (running tasks keep running and are recovered by the next `slipway up`).',
          '',
        ].join('\n'),
      );
      stopOnSignal(() => running.close(), 'master, services and agent', log);
    },
  );

  const appsCommand = program
    .command('apps')
    .description('run the services framework (Marathon\'s REST API) in its own process, against a master')
    .requiredOption('--master <url>', 'the master, e.g. http://127.0.0.1:5050')
    .option('--port <port>', 'port of the Marathon API', positiveInt('--port'), 8080)
    .option('--host <ip>', 'address to bind', '127.0.0.1')
    .option('--data-dir <dir>', 'where the framework keeps its state', './.slipway/apps')
    .option('--role <role>', 'the role to subscribe with', '*')
    .option('--token-file <file>', 'the token it registers with at the master (its principal; default: SLIPWAY_TOKEN)');
  authFlags(appsCommand).action(async (o: AuthFlags & { master: string; port: number; host: string; dataDir: string; role: string; tokenFile?: string }) => {
      const tls = tlsFromFlags(o);
      warnIfExposed(o.host, tls !== undefined);
      const token = tokenFrom(o.tokenFile, 'SLIPWAY_TOKEN');
      const { startAppsServer } = await import('../../server/apps-server.ts');
      const server = await startAppsServer({ masterUrl: o.master, host: o.host, port: o.port, dataDir: o.dataDir, role: o.role, log, auth: authOptions(o), ...(tls !== undefined ? { tls } : {}), ...(token !== undefined ? { token } : {}) });
      process.stdout.write(`services (Marathon API) at ${server.url}/v2/apps, framework ${server.service.framework.id ?? '?'}; master ${o.master}\n`);
      stopOnSignal(() => server.close(), 'services framework', log);
    });

  const ci = program
    .command('ci')
    .description('run CI (jobs, pipelines, elastic executors) in its own process, against a master; `ci build`, `ci jobs` talk to a running CI')
    // Not requiredOption: commander would then demand it of `ci build` and `ci jobs` too.
    .option('--master <url>', 'the master, e.g. http://127.0.0.1:5050 (required to run CI)')
    .option('--port <port>', 'port of the CI API', positiveInt('--port'), 8090)
    .option('--host <ip>', 'address to bind (executors on other machines connect to it)', '127.0.0.1')
    .option('--data-dir <dir>', 'where CI keeps its state, logs and artifacts', './.slipway/ci')
    .option('--role <role>', 'the role to subscribe with', '*')
    .option('--mirror <git>', 'a git repository to mirror jobs and executor specs to, on every change')
    .option('--token-file <file>', 'the token it registers with at the master (its principal; default: SLIPWAY_TOKEN)')
    .option('--ci-user <name>', CI_USER_HELP)
    .option('--secret-key-file <path>', SECRET_KEY_FILE_HELP);
  authFlags(ci).action(async (o: AuthFlags & { master?: string; port: number; host: string; dataDir: string; role: string; mirror?: string; tokenFile?: string; ciUser?: string; secretKeyFile?: string }) => {
      if (o.master === undefined) ci.error("error: required option '--master <url>' not specified");
      const tls = tlsFromFlags(o);
      warnIfExposed(o.host, tls !== undefined);
      const token = tokenFrom(o.tokenFile, 'SLIPWAY_TOKEN');
      const { startCiServer } = await import('../../server/ci-server.ts');
      const server = await startCiServer({
        masterUrl: o.master!,
        host: o.host,
        port: o.port,
        dataDir: o.dataDir,
        role: o.role,
        log,
        auth: authOptions(o),
        ...(tls !== undefined ? { tls } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(o.mirror !== undefined ? { mirrorRepo: o.mirror } : {}),
        ...(o.ciUser !== undefined ? { ciUser: o.ciUser } : {}),
        ...(o.secretKeyFile !== undefined ? { secretKeyFile: o.secretKeyFile } : {}),
      });
      process.stdout.write(`CI at ${server.url}/ci/v1/jobs; master ${o.master}\n`);
      stopOnSignal(() => server.close(), 'CI', log);
    });
  registerCiClientCommands(ci);

  program
    .command('ci-executor')
    .description('a CI build executor (CI launches these as tasks; not for running by hand)')
    .requiredOption('--server <url>', 'CI, e.g. http://127.0.0.1:5050')
    .requiredOption('--id <id>', 'the executor id CI gave')
    .requiredOption('--label <label>', 'the executor label')
    // The token is not an option: a command line is visible to every user (`ps`). CI puts it in
    // the task's environment, SLIPWAY_EXECUTOR_TOKEN, which the executor removes before any step.
    .action(async (o: { server: string; id: string; label: string }) => {
      const { runCiExecutor } = await import('../../server/ci-executor-main.ts');
      const code = await runCiExecutor({ serverUrl: o.server, id: o.id, label: o.label, log });
      process.exit(code);
    });

  const masterCommand = program
    .command('master')
    .description('run a master')
    .option('--port <port>', 'port', positiveInt('--port'), 5050)
    .option('--host <ip>', 'address to bind', '127.0.0.1')
    .option('--data-dir <dir>', 'where the master keeps its state', './.slipway/master')
    .option('--agent-grace <ms>', 'how long a dropped agent has to come back before its tasks are reported', positiveInt('--agent-grace'), 5000)
    .option('--agent-restart-grace <ms>', 'how long an agent that announced a restart (stopped with SIGTERM) has to come back', positiveInt('--agent-restart-grace'), 120_000)
    .option('--heartbeat <seconds>', 'heartbeat interval to frameworks', positiveInt('--heartbeat'), 15)
    .option('--secret-key-file <path>', SECRET_KEY_FILE_HELP)
    .option('--agent-ca <file>', "a PEM file of the CA that agents' HTTPS files servers (`slipway agent --tls-cert`) chain to (default: the system's CAs)");
  authFlags(masterCommand).action(async (o: AuthFlags & { port: number; host: string; dataDir: string; agentGrace: number; agentRestartGrace: number; heartbeat: number; secretKeyFile?: string; agentCa?: string }) => {
      const tls = tlsFromFlags(o);
      warnIfExposed(o.host, tls !== undefined);
      const { startMasterServer } = await import('../../server/master-server.ts');
      const server = await startMasterServer({ host: o.host, port: o.port, dataDir: o.dataDir, agentReconnectGraceMs: o.agentGrace, agentRestartGraceMs: o.agentRestartGrace, heartbeatIntervalSeconds: o.heartbeat, log, auth: authOptions(o), ...(tls !== undefined ? { tls } : {}), ...(o.secretKeyFile !== undefined ? { secretKeyFile: o.secretKeyFile } : {}), ...(o.agentCa !== undefined ? { agentCaFile: resolve(o.agentCa) } : {}) });
      process.stdout.write(`master listening at ${server.url}; admin token (first start): ${server.adminTokenFile}\n`);
      stopOnSignal(() => server.close(), 'master', log);
    });

  const agentCommand = program
    .command('agent')
    .description('run an agent that offers this machine to a master')
    .requiredOption('--master <url>', 'the master, e.g. http://127.0.0.1:5050')
    .requiredOption('--work-dir <dir>', 'sandboxes, checkpoints and the agent id')
    .option('--resources <text>', 'e.g. "cpus:4;mem:8192;ports:[31000-32000];cpus(ci):2" (default: detected)')
    .option('--attributes <text>', 'e.g. "rack:a;zone:z1"')
    .option('--containerizers <list>', 'process,docker or auto', containerizers, 'auto' as const)
    .option('--hostname <name>', 'the hostname to report (default: this machine\'s)')
    .option('--ip <ip>', 'address of the agent\'s files server', '127.0.0.1')
    .option('--port <port>', 'port of the agent\'s files server (default: any free one)', positiveInt('--port'))
    .option('--cgroups-enable-cfs', 'enforce cpu limits with CFS quota, not only shares, as Mesos\'s --cgroups_enable_cfs (small quotas slow task start-up)')
    .option('--no-announce-restart', 'on SIGTERM, do not tell the master this is a planned restart (it then reports the tasks after the short --agent-grace)')
    .option('--join-token <file>', 'a token that may register agents (`slipway token create <name> --policy agent`); default: SLIPWAY_JOIN_TOKEN, else SLIPWAY_TOKEN')
    .option('--default-user <name>', DEFAULT_USER_HELP)
    .option('--ca <file>', 'the CA (PEM) an HTTPS master\'s certificate must chain to (default: the system\'s)');
  authFlags(agentCommand).action(async (o: AuthFlags & { ca?: string; master: string; workDir: string; resources?: string; attributes?: string; containerizers: 'auto' | ('process' | 'docker')[]; hostname?: string; ip: string; port?: number; cgroupsEnableCfs?: boolean; announceRestart: boolean; joinToken?: string; defaultUser?: string }) => {
      const tls = tlsFromFlags(o);
      warnIfExposed(o.ip, tls !== undefined);
      const token = tokenFrom(o.joinToken, 'SLIPWAY_JOIN_TOKEN', 'SLIPWAY_TOKEN');
      if (token === undefined) log('no join token (--join-token, SLIPWAY_JOIN_TOKEN or SLIPWAY_TOKEN): the master will refuse this agent');
      mkdirSync(o.workDir, { recursive: true });
      const { startAgentServer } = await import('../../server/agent-server.ts');
      const server = await startAgentServer({
        masterUrl: o.master,
        workDir: o.workDir,
        containerizers: o.containerizers,
        host: o.ip,
        cgroupsEnableCfs: o.cgroupsEnableCfs === true,
        announceRestartOnStop: o.announceRestart,
        ...(o.defaultUser !== undefined ? { defaultUser: o.defaultUser } : {}),
        ...(o.ca !== undefined ? { caFile: resolve(o.ca) } : {}),
        ...(tls !== undefined ? { tls } : {}),
        auth: authOptions(o),
        ...(token !== undefined ? { token } : {}),
        log,
        ...(o.resources !== undefined ? { resources: o.resources } : {}),
        ...(o.attributes !== undefined ? { attributes: o.attributes } : {}),
        ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
        ...(o.port !== undefined ? { port: o.port } : {}),
      });
      process.stdout.write(`agent serving files at ${server.url}, containerizers: ${server.containerizers.join(', ')}; master ${o.master}\n`);
      stopOnSignal(() => server.close(), 'agent', log);
    });
}
