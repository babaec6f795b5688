import { marathonPath } from './marathon-error.ts';

type Json = Record<string, unknown>;
type Path = (string | number)[];

/** A Marathon feature that Slipway does not implement (yet), and how to spot it in a definition. */
export interface UnsupportedField {
  /** The field as documentation names it (`/container/volumes(i)/persistent`). */
  readonly field: string;
  /** Why Slipway refuses it, and what to do instead: the user reads this in the 422. */
  readonly reason: string;
  /** The paths in a raw (not yet validated) definition where the feature is used. */
  readonly find: (app: Json) => Path[];
}

/** Docker `run` flags the agent's Docker containerizer applies (see the parameters entry below). */
const SUPPORTED_DOCKER_PARAMETERS: ReadonlySet<string> = new Set(['label', 'env', 'e', 'user', 'u', 'workdir', 'w', 'hostname']);

/**
 * Marathon features that Slipway refuses with 422 rather than accept and quietly not honour: a
 * definition that asks for one of these would otherwise deploy and behave differently from what its
 * author wrote. Each entry says why. Deprecated Marathon forms that Slipway does support are not
 * here: they are translated (`ports`, `uris`, `container.docker.network: HOST`).
 */
export const UNSUPPORTED_FIELDS: readonly UnsupportedField[] = [
  {
    field: '/residency',
    // Only meaningful with local persistent volumes (refused below); deprecated in Marathon too.
    reason: 'residency goes with local persistent volumes, which Slipway does not have',
    find: (app) => (app['residency'] !== undefined ? [['residency']] : []),
  },
  {
    field: '/healthChecks(i) for i >= 1',
    // A Mesos TaskInfo carries one health check, which the agent runs; Marathon ran further
    // HTTP/TCP checks itself. Slipway would have to drop them: refused instead.
    reason: 'Slipway runs one health check per app (the agent runs it); combine the checks into one, e.g. a COMMAND check',
    find: (app) => items(app['healthChecks']).slice(1).map((_, i) => ['healthChecks', i + 1]),
  },
  {
    field: '/ipAddress',
    // IP-per-task needs container networking (CNI); Slipway's agents run tasks on the host network.
    reason: 'IP-per-task needs container networking; Slipway agents use host networking: listen on $PORT0...',
    find: (app) => (app['ipAddress'] !== undefined ? [['ipAddress']] : []),
  },
  {
    field: '/networks(i) (mode container or container/bridge)',
    // A network without a mode is a container network in Marathon (the mode's default).
    reason: 'container and bridge networks are not available: Slipway agents run Docker without a bridge (dockerd --bridge=none); use mode host and $PORT0...',
    find: (app) =>
      items(app['networks'])
        .map((n, i) => [n, i] as const)
        .filter(([n]) => !isObject(n) || n['mode'] !== 'host')
        .map(([, i]) => ['networks', i]),
  },
  {
    field: '/container/docker/network (BRIDGE, USER)',
    // The Docker engine on Slipway's agents has no bridge (DESIGN.md); the agent would fail the launch.
    reason: 'BRIDGE and USER networking are not available: Slipway agents run Docker without a bridge (dockerd --bridge=none); use HOST and $PORT0...',
    find: (app) => {
      const network = obj(obj(app['container'])?.['docker'])?.['network'];
      return network === 'BRIDGE' || network === 'USER' ? [['container', 'docker', 'network']] : [];
    },
  },
  {
    field: '/container/portMappings, /container/docker/portMappings',
    // Port mappings only mean something on a bridge or container network (refused above).
    reason: 'port mappings need bridge or container networking, which Slipway agents do not have; with host networking use portDefinitions and $PORT0...',
    find: (app) => {
      const container = obj(app['container']);
      const found: Path[] = [];
      if (items(container?.['portMappings']).length > 0) found.push(['container', 'portMappings']);
      if (items(obj(container?.['docker'])?.['portMappings']).length > 0) found.push(['container', 'docker', 'portMappings']);
      return found;
    },
  },
  {
    field: '/container/docker (with type MESOS)',
    // Docker images in the Mesos containerizer (UCR) need an image provisioner Slipway lacks.
    reason: 'Docker images under the MESOS containerizer (UCR) are not implemented; use "type": "DOCKER"',
    find: (app) => {
      const container = obj(app['container']);
      return container?.['type'] === 'MESOS' && container['docker'] !== undefined ? [['container', 'docker']] : [];
    },
  },
  {
    field: '/container/appc',
    // No AppC runtime; AppC is dead upstream as well.
    reason: 'AppC images are not supported; use a Docker image with "type": "DOCKER"',
    find: (app) => (obj(app['container'])?.['appc'] !== undefined ? [['container', 'appc']] : []),
  },
  {
    field: '/container/docker/credential, /container/docker/pullConfig',
    // Both carry registry credentials (pullConfig through a secret); agents pull anonymously.
    reason: 'registry credentials are not supported: agents pull anonymously (use a registry they can read, such as the one on 127.0.0.1:5000)',
    find: (app) => {
      const docker = obj(obj(app['container'])?.['docker']);
      return (['credential', 'pullConfig'] as const).filter((k) => docker?.[k] !== undefined).map((k) => ['container', 'docker', k]);
    },
  },
  {
    field: '/container/volumes(i)/persistent',
    // Local persistent volumes need dynamic reservations and resident tasks; not implemented.
    reason: 'local persistent volumes (reservations, resident tasks) are not implemented; use a hostPath volume',
    find: (app) => volumePaths(app, 'persistent'),
  },
  {
    field: '/container/volumes(i)/external',
    // External volumes need a DVDI or CSI volume provider on the agents; there is none.
    reason: 'external volumes need a volume provider (DVDI, CSI) that Slipway agents do not have; use a hostPath volume',
    find: (app) => volumePaths(app, 'external'),
  },
  {
    field: '/container/volumes(i) (with type MESOS)',
    // A MESOS container without image runs in the process containerizer, which mounts nothing;
    // secret files are written into its sandbox instead.
    reason: 'volumes need a DOCKER container: a MESOS container without image runs as a plain process, which mounts nothing (a secret volume, written into the sandbox, is the exception)',
    find: (app) => {
      const container = obj(app['container']);
      if (container?.['type'] !== 'MESOS') return [];
      return items(container['volumes'])
        .map((v, i) => [v, i] as const)
        .filter(([v]) => !isObject(v) || v['secret'] === undefined)
        .map(([, i]) => ['container', 'volumes', i]);
    },
  },
  {
    field: '/container/docker/parameters(i)/key',
    // The agent's Docker containerizer maps only these `docker run` flags onto the Docker API
    // (src/agent/containerizers/docker-containerizer.ts, applyParameter) and fails the launch on
    // any other: refuse at POST, where the author sees it, rather than at launch.
    reason: `only these docker parameters are supported: ${[...SUPPORTED_DOCKER_PARAMETERS].join(', ')}`,
    find: (app) =>
      items(obj(obj(app['container'])?.['docker'])?.['parameters'])
        .map((p, i) => [p, i] as const)
        .filter(([p]) => isObject(p) && typeof p['key'] === 'string' && !SUPPORTED_DOCKER_PARAMETERS.has(p['key']))
        .map(([, i]) => ['container', 'docker', 'parameters', i, 'key']),
  },
  {
    field: '/container/linuxInfo',
    // Seccomp, IPC and shared-memory settings of the Mesos containerizer; nothing applies them.
    reason: 'Linux seccomp, IPC and shared-memory settings are not implemented',
    find: (app) => (obj(app['container'])?.['linuxInfo'] !== undefined ? [['container', 'linuxInfo']] : []),
  },
  {
    field: '/gpus (more than 0)',
    // Agents do not detect or offer GPUs, so such an app would never be placed.
    reason: 'agents do not offer GPUs, so the app could never be placed',
    find: (app) => (typeof app['gpus'] === 'number' && app['gpus'] > 0 ? [['gpus']] : []),
  },
  {
    field: '/tty',
    // Neither containerizer allocates a pseudo-terminal (Marathon 1.7 field, not in its schema).
    reason: 'tasks get no pseudo-terminal in Slipway',
    find: (app) => (app['tty'] !== undefined ? [['tty']] : []),
  },
  {
    field: '/executor (other than "" and "//cmd")',
    // Custom executors are programs Marathon hands the task to; Slipway's agents run tasks themselves.
    reason: 'custom executors are not supported: Slipway agents run the command themselves; leave executor empty',
    find: (app) => (typeof app['executor'] === 'string' && app['executor'] !== '' && app['executor'] !== '//cmd' ? [['executor']] : []),
  },
  {
    field: '/executorResources',
    // Goes with custom executors (refused above).
    reason: 'there is no separate executor whose resources could be set',
    find: (app) => (app['executorResources'] !== undefined ? [['executorResources']] : []),
  },
  {
    field: '/check',
    // Marathon 1.8's Mesos-native checks (reported, never acted on); not implemented by the agent.
    reason: 'Mesos-native checks are not implemented; use healthChecks (or readinessChecks)',
    find: (app) => (app['check'] !== undefined ? [['check']] : []),
  },
  {
    field: '/role',
    // Marathon 1.9 per-app roles need a MULTI_ROLE framework; the services framework uses one role.
    reason: 'per-app roles are not implemented (only "*", which Marathon exports by default): the services framework is offered resources under its own role; use acceptedResourceRoles to pick reserved resources',
    find: (app) => (app['role'] !== undefined ? [['role']] : []),
  },
  {
    field: '/resourceLimits',
    // Burstable limits above the requested resources; tasks are limited to what they request.
    reason: 'resource limits above the requested cpus and mem are not implemented; tasks are limited to what they request',
    find: (app) => (app['resourceLimits'] !== undefined ? [['resourceLimits']] : []),
  },
  {
    field: '/fetch(i)/uri, /uris(i) (schemes other than http, https, file)',
    // The sandbox fetcher downloads http(s) URLs and copies local files; no HDFS, S3, FTP... clients.
    reason: 'only http, https and file URIs (or absolute paths) can be fetched into the sandbox',
    find: (app) => [
      ...items(app['fetch'])
        .map((f, i) => [f, i] as const)
        .filter(([f]) => isObject(f) && typeof f['uri'] === 'string' && hasUnsupportedScheme(f['uri']))
        .map(([, i]): Path => ['fetch', i, 'uri']),
      ...items(app['uris'])
        .map((u, i) => [u, i] as const)
        .filter(([u]) => typeof u === 'string' && hasUnsupportedScheme(u))
        .map(([, i]): Path => ['uris', i]),
    ],
  },
];

/** Schemes the sandbox fetcher handles. A URI without a scheme is left to the syntax check. */
export const FETCH_SCHEMES = new Set(['http', 'https', 'file']);

function hasUnsupportedScheme(uri: string): boolean {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1];
  return scheme !== undefined && !FETCH_SCHEMES.has(scheme.toLowerCase());
}

/** Every use of an unsupported feature in a raw definition, as Marathon error details. */
export function findUnsupportedFields(app: Json): { path: string; error: string }[] {
  return UNSUPPORTED_FIELDS.flatMap((u) => u.find(app).map((p) => ({ path: marathonPath(p), error: `not supported by Slipway: ${u.reason}` })));
}

function volumePaths(app: Json, kind: 'persistent' | 'external'): Path[] {
  return items(obj(app['container'])?.['volumes'])
    .map((v, i) => [v, i] as const)
    .filter(([v]) => isObject(v) && v[kind] !== undefined)
    .map(([, i]) => ['container', 'volumes', i, kind]);
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function obj(v: unknown): Json | undefined {
  return isObject(v) ? v : undefined;
}

function items(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

