import type { Resources } from '../../core/resources.ts';
import type { HealthCheck, Secret, TaskInfo, Volume } from '../../protocol/mesos.ts';
import type { AppDefinition, AppHealthCheck } from './app-definition.ts';
import { CONFIG_RELEASE_LABEL, type ConfigDelivery } from './config-port.ts';
import { marathonEnvironment } from './marathon-environment.ts';

/** Where and as what an instance starts: the placement's agent, resources and host ports. */
export interface TaskLaunch {
  taskId: string;
  agentId: string;
  host: string;
  /** The app version the instance runs (MARATHON_APP_VERSION). */
  version: string;
  resources: Resources;
  /** The role the offer's resources were allocated to. */
  allocationRole: string;
  ports: number[];
  /** The config center's release for the instance, when its app is linked to a config service (config-port.ts). */
  config?: ConfigDelivery;
}

/**
 * The Mesos TaskInfo of an instance, as Marathon's TaskBuilder makes it: `cmd` under the shell,
 * or `args` as argv without one (for a Docker app, `args` are the image entrypoint's arguments);
 * Marathon's environment; `fetch` as URIs for the agent's fetcher; the Docker container with host
 * networking; the first health check translated to a Mesos one (run by the agent); labels; the
 * kill grace period.
 */
export function buildTaskInfo(app: AppDefinition, launch: TaskLaunch): TaskInfo {
  const env = marathonEnvironment(app, { version: launch.version, ports: launch.ports, host: launch.host, taskId: launch.taskId });
  const docker = app.container?.type === 'DOCKER' ? app.container : undefined;
  // A secret's value never enters the TaskInfo: a SECRET variable or volume names it in the
  // secret store (the app's `secrets` map ids to store names), the master resolves it at launch.
  const reference = (id: string): Secret => ({ type: 'REFERENCE', reference: { name: app.secrets[id] ?? id } });
  const secretVariables = Object.entries(app.secretEnv).map(([name, id]) => ({ name, type: 'SECRET' as const, secret: reference(id) }));
  const secretVolumes: Volume[] = (app.container?.secretVolumes ?? []).map((v) => ({ container_path: v.containerPath, source: { type: 'SECRET', secret: reference(v.secret) } }));
  const config = launch.config;
  const configFiles = config !== undefined ? configFilesOf(config, docker !== undefined) : undefined;
  const uris = [
    ...app.fetch.map((f) => ({ value: f.uri, executable: f.executable, extract: f.extract, cache: f.cache, ...(f.destPath !== undefined ? { output_file: f.destPath } : {}) })),
    ...(configFiles?.uris ?? []),
  ];
  const command: NonNullable<TaskInfo['command']> = {
    environment: { variables: [...Object.entries(env).filter(([name]) => !Object.hasOwn(app.secretEnv, name)).map(([name, value]) => ({ name, value })), ...secretVariables, ...(configFiles?.variables ?? [])] },
    ...(uris.length > 0 ? { uris } : {}),
    ...(app.user !== undefined ? { user: app.user } : {}),
  };
  if (app.cmd !== undefined) {
    command.value = app.cmd;
    command.shell = true;
  } else if (app.args !== undefined) {
    command.shell = false;
    if (docker !== undefined) command.arguments = [...app.args];
    else {
      command.value = app.args[0] ?? '';
      command.arguments = [...app.args];
    }
  } else if (docker !== undefined) {
    // Neither cmd nor args: the image's own entrypoint and command.
    command.shell = false;
  }
  const check = app.healthChecks[0];
  const labels = [...Object.entries(app.labels).map(([key, value]) => ({ key, value })), ...(config !== undefined ? [{ key: CONFIG_RELEASE_LABEL, value: String(config.release) }] : [])];
  return {
    name: app.id.split('/').filter(Boolean).reverse().join('.'),
    task_id: { value: launch.taskId },
    agent_id: { value: launch.agentId },
    resources: launch.resources.toJSON(launch.allocationRole),
    command,
    ...(docker !== undefined
      ? {
          container: {
            type: 'DOCKER' as const,
            docker: {
              image: docker.docker.image,
              network: 'HOST' as const,
              privileged: docker.docker.privileged,
              force_pull_image: docker.docker.forcePullImage,
              parameters: docker.docker.parameters.map((p) => ({ ...p })),
            },
            volumes: [...docker.volumes.map((v) => ({ container_path: v.containerPath, host_path: v.hostPath, mode: v.mode })), ...secretVolumes, ...(configFiles?.mounts ?? [])],
          },
        }
      : secretVolumes.length > 0
        ? { container: { type: 'MESOS' as const, volumes: secretVolumes } }
        : {}),
    ...(check !== undefined ? { health_check: mesosHealthCheck(check, launch.ports) } : {}),
    ...(labels.length > 0 ? { labels: { labels } } : {}),
    ...(app.taskKillGracePeriodSeconds !== undefined ? { kill_policy: { grace_period: { nanoseconds: Math.round(app.taskKillGracePeriodSeconds * 1e9) } } } : {}),
  };
}

/** Where a config file is fetched to in the sandbox of a Docker task, before it is mounted at its destination. */
const DOCKER_CONFIG_DIR = '.slipway-config';

/**
 * The config center's release in a TaskInfo: the variables, each file as a URI with its digest
 * and mode, and for a Docker task a read-only mount of each at its destination. A process task's
 * absolute destination is under its sandbox (`/etc/app/app.yaml` is `$MESOS_SANDBOX/etc/app/app.yaml`;
 * process tasks never write the host's own paths), a relative one is in the sandbox.
 */
function configFilesOf(c: ConfigDelivery, docker: boolean): { variables: { name: string; value: string }[]; uris: NonNullable<NonNullable<TaskInfo['command']>['uris']>; mounts: { container_path: string; host_path: string; mode: 'RO' }[] } {
  const uris = c.files.map((f) => {
    const inSandbox = docker && f.destination.startsWith('/') ? `${DOCKER_CONFIG_DIR}/${f.name}` : f.destination.replace(/^\/+/, '');
    return { value: c.server.replace(/\/$/, '') + f.url, output_file: inSandbox, extract: false, executable: false, cache: false, sha256: f.sha256, mode: f.mode };
  });
  const mounts = docker ? c.files.filter((f) => f.destination.startsWith('/')).map((f) => ({ container_path: f.destination, host_path: `${DOCKER_CONFIG_DIR}/${f.name}`, mode: 'RO' as const })) : [];
  const variables = [
    { name: 'CONFIG_SERVER', value: c.server },
    { name: 'SERVICE', value: c.service },
    { name: 'SLIPWAY_CONFIG_ENV', value: c.env },
    { name: 'SLIPWAY_CONFIG_RELEASE', value: String(c.release) },
    // Where an absolute destination is: the container's root for a Docker task, the sandbox for a process task.
    { name: 'SLIPWAY_CONFIG_DIR', value: docker ? '/' : '$MESOS_SANDBOX' },
  ];
  return { variables, uris, mounts };
}

/**
 * A Marathon health check as a Mesos one. Marathon ran HTTP, HTTPS and TCP checks itself, from
 * the start of the task (its `delaySeconds` applies to Mesos checks only); here the agent runs
 * them all, so those get no delay, and COMMAND and MESOS_* keep Marathon's delaySeconds.
 */
export function mesosHealthCheck(h: AppHealthCheck, ports: readonly number[]): HealthCheck {
  const common = {
    delay_seconds: h.protocol.startsWith('MESOS_') || h.protocol === 'COMMAND' ? h.delaySeconds : 0,
    interval_seconds: h.intervalSeconds,
    timeout_seconds: h.timeoutSeconds,
    consecutive_failures: h.maxConsecutiveFailures,
    grace_period_seconds: h.gracePeriodSeconds,
  };
  if (h.protocol === 'COMMAND') return { type: 'COMMAND', ...common, command: { value: h.command?.value ?? 'true', shell: true } };
  const port = h.port ?? ports[h.portIndex ?? 0];
  if (port === undefined) throw new RangeError(`health check port index ${h.portIndex ?? 0} is not one of the task's ${ports.length} ports`);
  if (h.protocol === 'TCP' || h.protocol === 'MESOS_TCP') return { type: 'TCP', ...common, tcp: { port } };
  const scheme = h.protocol === 'HTTPS' || h.protocol === 'MESOS_HTTPS' ? 'https' : 'http';
  return { type: 'HTTP', ...common, http: { port, path: h.path ?? '/', scheme } };
}
