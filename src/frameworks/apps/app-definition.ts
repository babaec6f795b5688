import { constraintPatternProblem } from '../kit/constraints-pattern.ts';
import type { Constraint, ConstraintOperator } from '../kit/constraints.ts';
import { MarathonErrorCollector, MarathonValidationError, marathonPath } from './marathon-error.ts';
import { canonical, ID_SEGMENT_MESSAGE, ID_TOO_LONG_MESSAGE, isIdSegment, MAX_ID_LENGTH, parsePath, toId } from './path-id.ts';
import { secretName } from '../../core/secret-name.ts';
import { FETCH_SCHEMES, findUnsupportedFields } from './unsupported-fields.ts';
import { CMD_ARGS_OR_CONTAINER, validateAppSchema } from './validate-app-schema.ts';

// ---------------------------------------------------------------------------------------------
// The normalized app: what the rest of the services framework works with. Every default is
// applied, deprecated forms are translated (ports -> portDefinitions, uris -> fetch,
// container.docker.network -> networks), ids are absolute, constraints are objects.
// ---------------------------------------------------------------------------------------------

/** A placement constraint (kit/constraints.ts: Marathon's semantics, shared with CI). */
export type AppConstraint = Constraint;

export interface PortDefinition {
  /** 0: any port from the offer. Otherwise a service port, or the host port with requirePorts. */
  port: number;
  protocol: 'tcp' | 'udp';
  name?: string;
  labels: Record<string, string>;
}

export type HealthCheckProtocol = 'HTTP' | 'HTTPS' | 'TCP' | 'COMMAND' | 'MESOS_HTTP' | 'MESOS_HTTPS' | 'MESOS_TCP';

/**
 * A health check. COMMAND checks carry `command`; the others carry `portIndex` (an index into the
 * task's ports; filled in as 0 when neither it nor `port` was given) or a fixed `port`, and the
 * HTTP kinds a `path` (default "/").
 */
export interface AppHealthCheck {
  protocol: HealthCheckProtocol;
  command?: { value: string };
  path?: string;
  portIndex?: number;
  port?: number;
  gracePeriodSeconds: number;
  intervalSeconds: number;
  timeoutSeconds: number;
  maxConsecutiveFailures: number;
  delaySeconds: number;
  ignoreHttp1xx: boolean;
  ipProtocol: 'IPv4' | 'IPv6';
}

export interface ReadinessCheck {
  name: string;
  protocol: 'HTTP' | 'HTTPS';
  path: string;
  /** Name of one of the app's ports. */
  portName: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  httpStatusCodesForReady: number[];
  preserveLastResponse: boolean;
}

/** A file fetched into the sandbox before the task starts: http(s) URLs, file URIs, absolute paths. */
export interface FetchUri {
  uri: string;
  executable: boolean;
  extract: boolean;
  /** A hint only (Mesos's fetcher cache): the file may be downloaded again for each task. */
  cache: boolean;
  destPath?: string;
}

/** A bind mount; a relative hostPath is relative to the sandbox (Mesos's rule). */
export interface HostVolume {
  containerPath: string;
  hostPath: string;
  mode: 'RO' | 'RW';
}

/** A file holding a secret (Marathon's AppSecretVolume): `secret` is a key of the app's `secrets`. */
export interface SecretVolume {
  containerPath: string;
  secret: string;
}

export interface DockerSpec {
  image: string;
  forcePullImage: boolean;
  privileged: boolean;
  /** `docker run` flags; only those the agent's Docker containerizer applies pass validation. */
  parameters: { key: string; value: string }[];
}

/**
 * The container. DOCKER runs an image on the agent's Docker engine, with host networking. MESOS
 * without an image (the only MESOS form Slipway accepts) is the same as no container: a plain
 * process.
 */
export type AppContainer = { type: 'DOCKER'; docker: DockerSpec; volumes: HostVolume[]; secretVolumes: SecretVolume[] } | { type: 'MESOS'; secretVolumes: SecretVolume[] };

/** Only host networking exists on Slipway's agents (see UNSUPPORTED_FIELDS). */
export interface AppNetwork {
  mode: 'host';
}

/** `disabled`: unreachable instances are never replaced. Otherwise after how long they are replaced / forgotten. */
export type UnreachableStrategy = 'disabled' | { inactiveAfterSeconds: number; expungeAfterSeconds: number };

export interface AppDefinition {
  /** Absolute and canonical: `/group/app`, no trailing slash, no `.` or `..`. */
  id: string;
  cmd?: string;
  args?: string[];
  user?: string;
  instances: number;
  cpus: number;
  mem: number;
  disk: number;
  gpus: number;
  /** '' or '//cmd' (the default executor); nothing else is accepted. */
  executor: string;
  container?: AppContainer;
  networks: AppNetwork[];
  portDefinitions: PortDefinition[];
  requirePorts: boolean;
  env: Record<string, string>;
  /**
   * Marathon's `secrets`: secret id -> the secret store's name of it (`source`). Referenced by
   * `secretEnv` and the containers' `secretVolumes`; the values never enter the definition.
   */
  secrets: Record<string, string>;
  /** Variables set to a secret (Marathon's `env: {"NAME": {"secret": "<id>"}}`): name -> secret id. */
  secretEnv: Record<string, string>;
  labels: Record<string, string>;
  constraints: AppConstraint[];
  /** Undefined: the framework's default (any role it is offered). */
  acceptedResourceRoles?: string[];
  healthChecks: AppHealthCheck[];
  readinessChecks: ReadinessCheck[];
  /** Absolute ids of apps or groups this app depends on. */
  dependencies: string[];
  fetch: FetchUri[];
  upgradeStrategy: { minimumHealthCapacity: number; maximumOverCapacity: number };
  backoffSeconds: number;
  backoffFactor: number;
  maxLaunchDelaySeconds: number;
  killSelection: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  unreachableStrategy: UnreachableStrategy;
  /** Undefined: the agent's default between SIGTERM and SIGKILL. */
  taskKillGracePeriodSeconds?: number;
}

/**
 * Marathon's defaults, from its RAML (types/app.raml, healthCheck.raml, readinessCheck.raml,
 * unreachableStrategy.raml) and AppNormalization.scala where the RAML is silent.
 */
export const APP_DEFAULTS = {
  instances: 1,
  cpus: 1,
  mem: 128,
  disk: 0,
  gpus: 0,
  executor: '',
  requirePorts: false,
  backoffSeconds: 1,
  backoffFactor: 1.15,
  // app.raml: 300 since Marathon 1.8 (mesosphere/marathon#6686); 3600 before, which is why the
  // 2015 examples carry 3600 explicitly.
  maxLaunchDelaySeconds: 300,
  killSelection: 'YOUNGEST_FIRST',
  upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
  // unreachableStrategy.raml: replace an unreachable instance at once (Marathon 1.4 waited 5 min).
  unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
  // Apps.DefaultPortDefinitions: one port, named "default" (so tasks also get $PORT_DEFAULT).
  portDefinition: { port: 0, protocol: 'tcp', name: 'default' },
  healthCheck: { gracePeriodSeconds: 300, intervalSeconds: 60, timeoutSeconds: 20, maxConsecutiveFailures: 3, delaySeconds: 15, ignoreHttp1xx: false, ipProtocol: 'IPv4', path: '/' },
  readinessCheck: { name: 'readinessCheck', protocol: 'HTTP', path: '/', portName: 'http-api', intervalSeconds: 30, timeoutSeconds: 10, httpStatusCodesForReady: [200], preserveLastResponse: false },
  fetch: { executable: false, extract: true, cache: false },
  volumeMode: 'RW',
} as const;

// ---------------------------------------------------------------------------------------------
// The wire form: Marathon's JSON, as the schema allows it in and as GET /v2/apps/{id} answers.
// ---------------------------------------------------------------------------------------------

export interface MarathonPortMapping {
  containerPort?: number;
  hostPort?: number;
  servicePort?: number;
  protocol?: string;
  name?: string;
  labels?: Record<string, string>;
}

export interface MarathonAppJson {
  id: string;
  cmd?: string;
  args?: string[];
  user?: string;
  instances?: number;
  cpus?: number;
  mem?: number;
  disk?: number;
  gpus?: number;
  executor?: string;
  container?: {
    type?: 'DOCKER' | 'MESOS';
    docker?: {
      image: string;
      forcePullImage?: boolean;
      privileged?: boolean;
      network?: 'BRIDGE' | 'HOST' | 'NONE' | 'USER';
      parameters?: { key: string; value: string }[];
      portMappings?: MarathonPortMapping[];
      credential?: unknown;
      pullConfig?: unknown;
    };
    appc?: unknown;
    portMappings?: MarathonPortMapping[];
    volumes?: { containerPath?: string; hostPath?: string; mode?: 'RO' | 'RW'; persistent?: unknown; external?: unknown; secret?: string }[];
  };
  secrets?: Record<string, { source: string }>;
  networks?: { name?: string; mode?: 'container' | 'container/bridge' | 'host'; labels?: Record<string, unknown> }[];
  ports?: number[];
  portDefinitions?: { port?: number; protocol?: 'tcp' | 'udp'; name?: string; labels?: Record<string, string> }[];
  requirePorts?: boolean;
  env?: Record<string, string | { secret: string }>;
  labels?: Record<string, string>;
  constraints?: string[][];
  acceptedResourceRoles?: string[];
  healthChecks?: {
    protocol?: HealthCheckProtocol;
    command?: { value?: string };
    path?: string;
    portIndex?: number;
    port?: number;
    gracePeriodSeconds?: number;
    intervalSeconds?: number;
    timeoutSeconds?: number;
    maxConsecutiveFailures?: number;
    delaySeconds?: number;
    ignoreHttp1xx?: boolean;
    ipProtocol?: 'IPv4' | 'IPv6';
  }[];
  readinessChecks?: Partial<ReadinessCheck>[];
  dependencies?: string[];
  uris?: string[];
  fetch?: { uri: string; executable?: boolean; extract?: boolean; cache?: boolean; destPath?: string }[];
  upgradeStrategy?: { minimumHealthCapacity?: number; maximumOverCapacity?: number };
  backoffSeconds?: number;
  backoffFactor?: number;
  maxLaunchDelaySeconds?: number;
  killSelection?: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  unreachableStrategy?: 'disabled' | { inactiveAfterSeconds?: number; expungeAfterSeconds?: number };
  taskKillGracePeriodSeconds?: number;
  version?: string;
  versionInfo?: { lastScalingAt?: string; lastConfigChangeAt?: string };
}

export interface ParseAppOptions {
  /**
   * The group the definition sits in (`/tools` for an app of group.json's /tools group). A
   * relative id is resolved against it, an absolute one must be a direct child of it, and
   * dependencies are resolved against it. Without it, both resolve against the root group.
   */
  idPrefix?: string;
}

/**
 * Validates a Marathon app definition (already parsed from JSON) and returns it normalized.
 *
 * Order, as in Marathon: unsupported features (Slipway's own list), then the JSON Schema, then
 * Marathon's semantic rules on a value of the right shape. Everything found is reported at once:
 * throws MarathonValidationError (422) with every problem at its Marathon path. `version` and
 * `versionInfo` in the input are ignored: versions are the store's to assign.
 */
/** Java's Integer.MAX_VALUE: Marathon's bound on `instances`. */
const MAX_INSTANCES = 2_147_483_647;

/** The role `role: "*"` names, accepted in a definition as Marathon 1.9+ exports it. */
const DEFAULT_ROLE = '*';

export function parseAppDefinition(json: unknown, options: ParseAppOptions = {}): AppDefinition {
  const base = options.idPrefix === undefined ? [] : groupPath(options.idPrefix);
  const errors = new MarathonErrorCollector();
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new MarathonValidationError([{ path: '/', errors: ['error.expected.jsobject'] }]);
  }
  // Marathon 1.9+ writes `role` into every app it exports (`*` unless set): the default role is
  // the framework's own and means nothing more here, so exported apps POST unchanged. Other roles
  // are refused (UNSUPPORTED_FIELDS). The schema predates the field.
  if ((json as Record<string, unknown>)['role'] === DEFAULT_ROLE) {
    const { role: _role, ...rest } = json as Record<string, unknown>;
    json = rest;
  }
  for (const u of findUnsupportedFields(json as Record<string, unknown>)) errors.add(u.path, u.error);
  // An id far too long is refused before the schema looks at it: Ajv's checks of a 1.8M-character
  // id took 18-40 ms (155 ms under load, bench fuzz), for an answer known from its length. The
  // bound is on the text as sent, which `..` segments may make longer than the canonical id.
  const id = (json as Record<string, unknown>)['id'];
  if (typeof id === 'string' && id.length > MAX_RAW_ID_LENGTH) {
    errors.add('/id', ID_TOO_LONG_MESSAGE);
    errors.throwIfAny();
  }
  if (!validateAppSchema(json, errors)) throw new MarathonValidationError(errors.details());
  const app = normalize(json as MarathonAppJson, base, options.idPrefix !== undefined, errors);
  errors.throwIfAny();
  return app;
}

// Ids: path-id.ts (Marathon's PathId, checked in one pass without regular expressions).
/** The longest id text that is looked at at all (the canonical id has at most MAX_ID_LENGTH). */
const MAX_RAW_ID_LENGTH = 4096;
const RESERVED_LAST_SEGMENTS = ['restart', 'tasks', 'versions'];

function groupPath(idPrefix: string): string[] {
  const p = parsePath(idPrefix);
  // A programming error of the caller (the groups route), not a user's mistake.
  if (!p.absolute) throw new TypeError(`idPrefix must be an absolute group path, not '${idPrefix}'`);
  return canonical(p, []);
}

// ---------------------------------------------------------------------------------------------
// Normalization and Marathon's semantic checks (AppValidation.scala, SchedulingValidation.scala).
// ---------------------------------------------------------------------------------------------

function normalize(raw: MarathonAppJson, base: string[], inGroup: boolean, errors: MarathonErrorCollector): AppDefinition {
  const id = normalizeId(raw.id, base, inGroup, errors);
  const dependencies = (raw.dependencies ?? []).map((d, i) => {
    const p = parsePath(d);
    if (!p.segments.every(isIdSegment)) errors.add(marathonPath(['dependencies', i]), ID_SEGMENT_MESSAGE);
    return toId(canonical(p, base));
  });

  const container = normalizeContainer(raw, errors);
  const hasImage = raw.container !== undefined && (raw.container.docker !== undefined || raw.container.appc !== undefined);
  const hasCmd = raw.cmd !== undefined;
  const hasArgs = (raw.args ?? []).length > 0;
  if (!(hasCmd !== hasArgs || (!(hasCmd && hasArgs) && hasImage))) errors.add('/', CMD_ARGS_OR_CONTAINER);

  if ((raw.cpus ?? APP_DEFAULTS.cpus) < 0.001) errors.add('/cpus', 'must be >= 0.001'); // app.raml's minimum; the schema says 0
  // Marathon reads instances into a Java Int: more is refused there, and here (the JSON Schema
  // alone lets 1e308 through, which is an integer to JavaScript).
  if ((raw.instances ?? 0) > MAX_INSTANCES) errors.add('/instances', `got ${raw.instances}, expected ${MAX_INSTANCES} or less`);
  if (raw.acceptedResourceRoles !== undefined && raw.acceptedResourceRoles.length === 0) errors.add('/acceptedResourceRoles', 'must not be empty');
  checkProcessStrings(raw, errors);
  checkSecrets(raw, errors);

  const portDefinitions = normalizePortDefinitions(raw, errors);
  // Port mappings are refused (no bridge), but while they are there they are what indices count.
  const portMappings = raw.container?.portMappings ?? raw.container?.docker?.portMappings ?? [];
  const portNames = (portMappings.length > 0 ? portMappings : portDefinitions).flatMap((p) => (p.name === undefined ? [] : [p.name]));
  const portCount = portMappings.length > 0 ? portMappings.length : portDefinitions.length;
  const healthChecks = normalizeHealthChecks(raw, portCount, container?.type === 'DOCKER', errors);
  const readinessChecks = normalizeReadinessChecks(raw, portNames, errors);

  const app: AppDefinition = {
    id,
    ...(raw.cmd !== undefined ? { cmd: raw.cmd } : {}),
    ...(raw.args !== undefined && raw.args.length > 0 ? { args: [...raw.args] } : {}),
    ...(raw.user !== undefined ? { user: raw.user } : {}),
    instances: raw.instances ?? APP_DEFAULTS.instances,
    cpus: raw.cpus ?? APP_DEFAULTS.cpus,
    mem: raw.mem ?? APP_DEFAULTS.mem,
    disk: raw.disk ?? APP_DEFAULTS.disk,
    gpus: raw.gpus ?? APP_DEFAULTS.gpus,
    executor: raw.executor ?? APP_DEFAULTS.executor,
    ...(container !== undefined ? { container } : {}),
    networks: normalizeNetworks(raw, errors),
    portDefinitions,
    requirePorts: raw.requirePorts ?? APP_DEFAULTS.requirePorts,
    env: Object.fromEntries(Object.entries(raw.env ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string')),
    secrets: Object.fromEntries(Object.entries(raw.secrets ?? {}).map(([k, v]) => [k, v.source])),
    secretEnv: Object.fromEntries(Object.entries(raw.env ?? {}).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? [[k, v.secret]] : []))),
    labels: { ...(raw.labels ?? {}) },
    constraints: normalizeConstraints(raw.constraints ?? [], errors),
    ...(raw.acceptedResourceRoles !== undefined ? { acceptedResourceRoles: [...raw.acceptedResourceRoles] } : {}),
    healthChecks,
    readinessChecks,
    dependencies,
    fetch: normalizeFetch(raw, errors),
    upgradeStrategy: {
      minimumHealthCapacity: raw.upgradeStrategy?.minimumHealthCapacity ?? APP_DEFAULTS.upgradeStrategy.minimumHealthCapacity,
      maximumOverCapacity: raw.upgradeStrategy?.maximumOverCapacity ?? APP_DEFAULTS.upgradeStrategy.maximumOverCapacity,
    },
    backoffSeconds: raw.backoffSeconds ?? APP_DEFAULTS.backoffSeconds,
    backoffFactor: raw.backoffFactor ?? APP_DEFAULTS.backoffFactor,
    maxLaunchDelaySeconds: raw.maxLaunchDelaySeconds ?? APP_DEFAULTS.maxLaunchDelaySeconds,
    killSelection: raw.killSelection ?? APP_DEFAULTS.killSelection,
    unreachableStrategy: normalizeUnreachable(raw, errors),
    ...(raw.taskKillGracePeriodSeconds !== undefined ? { taskKillGracePeriodSeconds: raw.taskKillGracePeriodSeconds } : {}),
  };
  return app;
}

const NO_NUL = 'must not contain NUL characters (a process cannot be given them)';

/**
 * Marathon's EnvVarValidation (non-strict, as for apps): a variable name must not be empty. Also
 * what no process can be started with, which Marathon leaves to Mesos to fail at launch: a `=` in
 * a name, a NUL anywhere in the environment, the command or its arguments. Refused here, a
 * definition cannot reach an agent that would fail every launch of it.
 */
function checkProcessStrings(raw: MarathonAppJson, errors: MarathonErrorCollector): void {
  Object.entries(raw.env ?? {}).forEach(([name, value], i) => {
    const at = marathonPath(['env', 'keys', i]);
    if (name === '') errors.add(at, 'must not be empty');
    else if (name.includes('=')) errors.add(at, `'${name}': must not contain '=' (it ends a variable's name)`);
    if (name.includes('\0')) errors.add(at, NO_NUL);
    if (typeof value === 'string' && value.includes('\0')) errors.add(marathonPath(['env', name]), NO_NUL);
  });
  if (raw.cmd?.includes('\0') === true) errors.add('/cmd', NO_NUL);
  (raw.args ?? []).forEach((a, i) => {
    if (a.includes('\0')) errors.add(marathonPath(['args', i]), NO_NUL);
  });
  if (raw.user?.includes('\0') === true) errors.add('/user', NO_NUL);
}

function normalizeId(rawId: string, base: string[], inGroup: boolean, errors: MarathonErrorCollector): string {
  const p = parsePath(rawId);
  if (!p.segments.every(isIdSegment)) errors.add('/id', ID_SEGMENT_MESSAGE);
  const segments = canonical(p, base);
  if (segments.length === 0) {
    errors.add('/id', 'Path must contain at least one path element');
    return '/';
  }
  if (toId(segments).length > MAX_ID_LENGTH) errors.add('/id', ID_TOO_LONG_MESSAGE);
  const last = segments[segments.length - 1] ?? '';
  if (RESERVED_LAST_SEGMENTS.includes(last)) errors.add('/id', `must not end with any of the following reserved keywords: ${RESERVED_LAST_SEGMENTS.join(', ')}`);
  // In a group, an app must sit directly in it (PathId.childOf); relative ids always do.
  if (inGroup && toId(segments.slice(0, -1)) !== toId(base)) errors.add('/id', `Identifier is not child of ${toId(base)}. Hint: use relative paths.`);
  return toId(segments);
}

function normalizeContainer(raw: MarathonAppJson, errors: MarathonErrorCollector): AppContainer | undefined {
  const c = raw.container;
  if (c === undefined) return undefined;
  const secretVolumes = normalizeSecretVolumes(raw);
  if ((c.type ?? 'DOCKER') === 'MESOS') return { type: 'MESOS', secretVolumes }; // images and other volumes under MESOS are refused as unsupported
  if (c.docker === undefined) {
    errors.add('/container/docker', 'error.path.missing'); // Marathon: a DOCKER container needs container.docker
    return undefined;
  }
  const d = c.docker;
  if (d.network === 'NONE') errors.add('/container/docker/network', 'unsupported docker network type NONE'); // Marathon's NetworkTranslation refuses it too
  const volumes: HostVolume[] = [];
  (c.volumes ?? []).forEach((v, i) => {
    if (v.persistent !== undefined || v.external !== undefined) return; // refused as unsupported
    if (v.secret !== undefined) return; // normalizeSecretVolumes
    if (v.containerPath === undefined) errors.add(marathonPath(['container', 'volumes', i, 'containerPath']), 'error.path.missing');
    if (v.hostPath === undefined) errors.add(marathonPath(['container', 'volumes', i, 'hostPath']), 'error.path.missing');
    if (v.containerPath !== undefined && v.hostPath !== undefined) volumes.push({ containerPath: v.containerPath, hostPath: v.hostPath, mode: v.mode ?? APP_DEFAULTS.volumeMode });
  });
  return {
    type: 'DOCKER',
    docker: {
      image: d.image,
      forcePullImage: d.forcePullImage ?? false,
      privileged: d.privileged ?? false,
      parameters: (d.parameters ?? []).map((p) => ({ key: p.key, value: p.value })),
    },
    volumes,
    secretVolumes,
  };
}

/**
 * The app's secrets (Marathon's `secrets`, `env` values `{"secret": id}`, volumes `{containerPath,
 * secret}`): each `source` a secret store name (core/secret-name.ts), each reference a declared
 * id, each file path without `..` (and relative in a MESOS container: the file goes in the sandbox).
 */
function checkSecrets(raw: MarathonAppJson, errors: MarathonErrorCollector): void {
  const declared = raw.secrets ?? {};
  for (const [id, s] of Object.entries(declared)) {
    const n = secretName(s.source);
    if ('problem' in n) errors.add(marathonPath(['secrets', id, 'source']), n.problem);
  }
  const known = (id: string) => Object.hasOwn(declared, id);
  for (const [name, v] of Object.entries(raw.env ?? {})) {
    if (typeof v === 'object' && v !== null && !known(v.secret)) errors.add(marathonPath(['env', name, 'secret']), `references secret '${v.secret}', which is not declared in /secrets`);
  }
  (raw.container?.volumes ?? []).forEach((v, i) => {
    if (v.secret === undefined) return;
    const at = (f: string) => marathonPath(['container', 'volumes', i, f]);
    if (!known(v.secret)) errors.add(at('secret'), `references secret '${v.secret}', which is not declared in /secrets`);
    if (v.hostPath !== undefined) errors.add(at('hostPath'), 'a secret volume has no hostPath');
    const path = v.containerPath;
    if (path === undefined) errors.add(at('containerPath'), 'error.path.missing');
    else if (path.split('/').includes('..')) errors.add(at('containerPath'), "must not contain '..'");
    else if (path.endsWith('/')) errors.add(at('containerPath'), 'must name a file');
    else if (path.startsWith('/') && (raw.container?.type ?? 'DOCKER') === 'MESOS') errors.add(at('containerPath'), 'must be relative in a MESOS container (the file is written into the sandbox)');
  });
}

function normalizeSecretVolumes(raw: MarathonAppJson): SecretVolume[] {
  return (raw.container?.volumes ?? []).flatMap((v) => (v.secret !== undefined && v.containerPath !== undefined ? [{ containerPath: v.containerPath, secret: v.secret }] : []));
}

function normalizeNetworks(raw: MarathonAppJson, errors: MarathonErrorCollector): AppNetwork[] {
  if (raw.container?.docker?.network !== undefined && raw.networks !== undefined) {
    errors.add('/', 'must not specify both container.docker.network and networks');
  }
  (raw.networks ?? []).forEach((n, i) => {
    // Non-host networks are refused as unsupported; a host network has nothing to name or label.
    if (n.mode === 'host' && (n.name !== undefined || n.labels !== undefined)) errors.add(marathonPath(['networks', i]), 'a host network takes no name or labels');
  });
  return [{ mode: 'host' }];
}

function normalizePortDefinitions(raw: MarathonAppJson, errors: MarathonErrorCollector): PortDefinition[] {
  const { ports, portDefinitions } = raw;
  if (ports !== undefined && portDefinitions !== undefined && ports.length > 0 && portDefinitions.length > 0) {
    const same = ports.length === portDefinitions.length && ports.every((p, i) => (portDefinitions[i]?.port ?? 0) === p);
    if (!same) errors.add('/', 'cannot specify both ports and port definitions');
  }
  if (ports !== undefined) {
    const fixed = ports.filter((p) => p !== 0);
    if (new Set(fixed).size !== fixed.length) errors.add('/', 'ports must be unique');
  }
  if (portDefinitions !== undefined) {
    const names = portDefinitions.flatMap((d) => (d.name === undefined ? [] : [d.name]));
    if (new Set(names).size !== names.length) errors.add('/portDefinitions', 'Port names must be unique.');
    const fixed = portDefinitions.map((d) => d.port ?? 0).filter((p) => p !== 0);
    if (new Set(fixed).size !== fixed.length) errors.add('/portDefinitions', 'Ports must be unique.');
  }
  const hasPortMappings = (raw.container?.portMappings ?? raw.container?.docker?.portMappings ?? []).length > 0;
  // Marathon's migratePortDefinitions: portDefinitions when given (even empty), else ports, else
  // the default port, unless port mappings stand in for ports (they are refused as unsupported,
  // and no default port is invented next to them).
  type Given = { port?: number; protocol?: 'tcp' | 'udp'; name?: string; labels?: Record<string, string> };
  const given: Given[] = portDefinitions ?? ports?.map((port) => ({ port })) ?? (hasPortMappings ? [] : [APP_DEFAULTS.portDefinition]);
  return given.map((d) => ({
    port: d.port ?? 0,
    protocol: d.protocol ?? 'tcp',
    ...(d.name !== undefined ? { name: d.name } : {}),
    labels: { ...(d.labels ?? {}) },
  }));
}

const HTTP_PROTOCOLS: ReadonlySet<HealthCheckProtocol> = new Set(['HTTP', 'HTTPS', 'MESOS_HTTP', 'MESOS_HTTPS']);
const MESOS_PROTOCOLS: ReadonlySet<HealthCheckProtocol> = new Set(['MESOS_HTTP', 'MESOS_HTTPS', 'MESOS_TCP']);

function normalizeHealthChecks(raw: MarathonAppJson, portCount: number, docker: boolean, errors: MarathonErrorCollector): AppHealthCheck[] {
  const d = APP_DEFAULTS.healthCheck;
  const checks = (raw.healthChecks ?? []).map((h, i): AppHealthCheck => {
    const at = (...rest: string[]) => marathonPath(['healthChecks', i, ...rest]);
    // Marathon's old API gave a command and no protocol; a command makes it a COMMAND check.
    const protocol = h.protocol ?? (h.command !== undefined ? 'COMMAND' : 'HTTP');
    const common = {
      gracePeriodSeconds: h.gracePeriodSeconds ?? d.gracePeriodSeconds,
      intervalSeconds: h.intervalSeconds ?? d.intervalSeconds,
      timeoutSeconds: h.timeoutSeconds ?? d.timeoutSeconds,
      maxConsecutiveFailures: h.maxConsecutiveFailures ?? d.maxConsecutiveFailures,
      delaySeconds: h.delaySeconds ?? d.delaySeconds,
      ignoreHttp1xx: h.ignoreHttp1xx ?? d.ignoreHttp1xx,
      ipProtocol: h.ipProtocol ?? d.ipProtocol,
    };
    if (common.ipProtocol === 'IPv6' && !(MESOS_PROTOCOLS.has(protocol) && docker)) {
      errors.add(at(), 'IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks');
    }
    if (protocol === 'COMMAND') {
      const value = h.command?.value;
      if (typeof value !== 'string' || value === '') {
        errors.add(at('command'), 'a COMMAND health check needs command.value');
        return { protocol, command: { value: '' }, ...common };
      }
      return { protocol, command: { value }, ...common };
    }
    if (h.command !== undefined) errors.add(at('command'), `a ${protocol} health check takes no command (use protocol COMMAND)`);
    if (h.port !== undefined && h.portIndex !== undefined) errors.add(at(), 'give either port or portIndex, not both');
    const path = HTTP_PROTOCOLS.has(protocol) ? { path: h.path ?? d.path } : {};
    if (h.port !== undefined) return { protocol, ...path, port: h.port, ...common };
    // Marathon fills in portIndex 0 when neither is given (AppNormalization.normalizeHealthChecks).
    const portIndex = h.portIndex ?? 0;
    if (portIndex >= portCount) errors.add(at(), 'Health check port indices must address an element of the ports array or container port mappings.');
    return { protocol, ...path, portIndex, ...common };
  });
  // Mesos runs one check per task; Marathon lets an app have at most one Mesos-run check besides
  // the COMMAND checks of its old API.
  const mesosRun = (raw.healthChecks ?? []).filter((h) => h.command === undefined && (h.protocol === 'COMMAND' || (h.protocol !== undefined && MESOS_PROTOCOLS.has(h.protocol))));
  if (mesosRun.length > 1) errors.add('/', 'AppDefinition can contain at most one Mesos health check');
  return checks;
}

function normalizeReadinessChecks(raw: MarathonAppJson, portNames: string[], errors: MarathonErrorCollector): ReadinessCheck[] {
  const given = raw.readinessChecks ?? [];
  if (given.length > 1) errors.add('/readinessChecks', `got ${given.length}, expected 1 or less`);
  const d = APP_DEFAULTS.readinessCheck;
  return given.map((r, i) => {
    const check: ReadinessCheck = {
      name: r.name ?? d.name,
      protocol: r.protocol ?? d.protocol,
      path: r.path ?? d.path,
      portName: r.portName ?? d.portName,
      intervalSeconds: r.intervalSeconds ?? d.intervalSeconds,
      timeoutSeconds: r.timeoutSeconds ?? d.timeoutSeconds,
      httpStatusCodesForReady: r.httpStatusCodesForReady !== undefined && r.httpStatusCodesForReady.length > 0 ? [...r.httpStatusCodesForReady] : [...d.httpStatusCodesForReady],
      preserveLastResponse: r.preserveLastResponse ?? d.preserveLastResponse,
    };
    if (!portNames.includes(check.portName)) errors.add(marathonPath(['readinessChecks', i, 'portName']), `No port definition reference for portName ${check.portName}`);
    if (check.timeoutSeconds >= check.intervalSeconds) errors.add(marathonPath(['readinessChecks', i, 'timeoutSeconds']), `got ${check.timeoutSeconds}, expected less than ${check.intervalSeconds}`);
    return check;
  });
}

const OPERATORS: readonly ConstraintOperator[] = ['UNIQUE', 'CLUSTER', 'GROUP_BY', 'LIKE', 'UNLIKE', 'MAX_PER', 'IS'];
const OPERATOR_MESSAGE = 'Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS';

/** Scala's `toInt`, which Marathon uses on GROUP_BY and MAX_PER values: an optionally signed int32. */
function isInt32(s: string): boolean {
  return /^[+-]?\d+$/.test(s) && Math.abs(Number(s)) <= 2147483647;
}

/** Marathon's complyWithAppConstraintRules, with IS (Marathon 1.7). Refused constraints are left out. */
function normalizeConstraints(given: string[][], errors: MarathonErrorCollector): AppConstraint[] {
  const out: AppConstraint[] = [];
  given.forEach((c, i) => {
    const bad = (message: string) => errors.add(marathonPath(['constraints', i]), message);
    if (c.length < 2 || c.length > 3) return bad('Each constraint must have either 2 or 3 fields');
    const [fieldName = '', op = '', value] = c;
    if (!(OPERATORS as readonly string[]).includes(op)) return bad(OPERATOR_MESSAGE);
    const operator = op as ConstraintOperator;
    switch (operator) {
      case 'UNIQUE':
        if (value !== undefined) return bad('Value specified but not used');
        break;
      case 'CLUSTER':
      case 'IS':
        if (value === undefined) return bad('Missing value');
        break;
      case 'GROUP_BY':
        if (value !== undefined && !isInt32(value)) return bad('Value was specified but is not a number');
        break;
      case 'MAX_PER':
        // Marathon's app validator lets a MAX_PER without value through, and its scheduler then
        // fails on it; its pod validator requires one. Require it, as the issue asks.
        if (value === undefined || !isInt32(value)) return bad('Value was not specified or is not a number');
        break;
      case 'LIKE':
      case 'UNLIKE':
        if (value === undefined) return bad('A regular expression value must be provided');
        {
          // A user's regex, run by a backtracking engine on every offer: bounded shapes only.
          const problem = constraintPatternProblem(value);
          if (problem !== undefined) return bad(problem);
        }
        break;
    }
    out.push({ fieldName, operator, ...(value !== undefined ? { value } : {}) });
  });
  return out;
}

/** Marathon's FetchUri.isExtract: the archive types the Mesos fetcher unpacks by default. */
function isExtract(uri: string): boolean {
  return ['.tgz', '.tar.gz', '.tbz2', '.tar.bz2', '.txz', '.tar.xz', '.zip'].some((ext) => uri.endsWith(ext));
}

function normalizeFetch(raw: MarathonAppJson, errors: MarathonErrorCollector): FetchUri[] {
  const uris = raw.uris ?? [];
  const fetch = raw.fetch ?? [];
  if (uris.length > 0 && fetch.length > 0) errors.add('/uris', 'may not be set in conjunction with fetch');
  const d = APP_DEFAULTS.fetch;
  const out: FetchUri[] =
    fetch.length > 0 || uris.length === 0
      ? fetch.map((f) => ({
          uri: f.uri,
          executable: f.executable ?? d.executable,
          extract: f.extract ?? d.extract,
          cache: f.cache ?? d.cache,
          ...(f.destPath !== undefined ? { destPath: f.destPath } : {}),
        }))
      : uris.map((uri) => ({ uri, executable: d.executable, extract: isExtract(uri), cache: d.cache }));
  const from = fetch.length > 0 || uris.length === 0 ? 'fetch' : 'uris';
  out.forEach((f, i) => {
    const path = from === 'fetch' ? marathonPath(['fetch', i, 'uri']) : marathonPath(['uris', i]);
    if (errors.has(path)) return; // an unsupported scheme, already named
    if (!isFetchable(f.uri)) errors.add(path, 'URI has invalid syntax.');
  });
  return out;
}

/** An absolute path, or a parseable URL of a scheme the sandbox fetcher handles. */
function isFetchable(uri: string): boolean {
  if (uri.startsWith('/')) return true;
  try {
    return FETCH_SCHEMES.has(new URL(uri).protocol.slice(0, -1));
  } catch {
    return false;
  }
}

function normalizeUnreachable(raw: MarathonAppJson, errors: MarathonErrorCollector): UnreachableStrategy {
  const u = raw.unreachableStrategy;
  if (u === 'disabled') return 'disabled';
  const d = APP_DEFAULTS.unreachableStrategy;
  const strategy = { inactiveAfterSeconds: u?.inactiveAfterSeconds ?? d.inactiveAfterSeconds, expungeAfterSeconds: u?.expungeAfterSeconds ?? d.expungeAfterSeconds };
  if (strategy.expungeAfterSeconds < strategy.inactiveAfterSeconds) {
    errors.add('/unreachableStrategy', 'expungeAfterSeconds must be greater than or equal to inactiveAfterSeconds');
  }
  return strategy;
}

// ---------------------------------------------------------------------------------------------
// Back to Marathon's JSON.
// ---------------------------------------------------------------------------------------------

/** An app version's timestamps (ISO 8601), which the store assigns. */
export interface AppVersionInfo {
  version: string;
  lastScalingAt: string;
  lastConfigChangeAt: string;
}

/**
 * The app as Marathon's `GET /v2/apps/{id}` shows it (the `app` object, without the task
 * counts that `embed` adds): every field, defaults included, in Marathon's canonical form
 * (portDefinitions, fetch, networks; constraints as arrays). `versionInfo` comes from the caller;
 * without it, `version` and `versionInfo` are left out. Parsing the result gives `app` back.
 */
export function appToJSON(app: AppDefinition, versionInfo?: AppVersionInfo): MarathonAppJson {
  return {
    id: app.id,
    ...(app.acceptedResourceRoles !== undefined ? { acceptedResourceRoles: [...app.acceptedResourceRoles] } : {}),
    backoffFactor: app.backoffFactor,
    backoffSeconds: app.backoffSeconds,
    ...(app.cmd !== undefined ? { cmd: app.cmd } : {}),
    ...(app.args !== undefined ? { args: [...app.args] } : {}),
    constraints: app.constraints.map((c) => [c.fieldName, c.operator, ...(c.value !== undefined ? [c.value] : [])]),
    ...(app.container !== undefined ? { container: containerToJSON(app.container) } : {}),
    cpus: app.cpus,
    dependencies: [...app.dependencies],
    disk: app.disk,
    env: { ...app.env, ...Object.fromEntries(Object.entries(app.secretEnv).map(([k, id]) => [k, { secret: id }])) },
    executor: app.executor,
    fetch: app.fetch.map((f) => ({ ...f })),
    gpus: app.gpus,
    healthChecks: app.healthChecks.map((h) => ({ ...h, ...(h.command !== undefined ? { command: { ...h.command } } : {}) })),
    instances: app.instances,
    labels: { ...app.labels },
    maxLaunchDelaySeconds: app.maxLaunchDelaySeconds,
    mem: app.mem,
    networks: app.networks.map((n) => ({ ...n })),
    portDefinitions: app.portDefinitions.map((p) => ({ port: p.port, protocol: p.protocol, ...(p.name !== undefined ? { name: p.name } : {}), labels: { ...p.labels } })),
    readinessChecks: app.readinessChecks.map((r) => ({ ...r, httpStatusCodesForReady: [...r.httpStatusCodesForReady] })),
    requirePorts: app.requirePorts,
    ...(Object.keys(app.secrets).length > 0 ? { secrets: Object.fromEntries(Object.entries(app.secrets).map(([k, source]) => [k, { source }])) } : {}),
    upgradeStrategy: { ...app.upgradeStrategy },
    ...(app.user !== undefined ? { user: app.user } : {}),
    ...(versionInfo !== undefined
      ? { version: versionInfo.version, versionInfo: { lastScalingAt: versionInfo.lastScalingAt, lastConfigChangeAt: versionInfo.lastConfigChangeAt } }
      : {}),
    killSelection: app.killSelection,
    unreachableStrategy: app.unreachableStrategy === 'disabled' ? 'disabled' : { ...app.unreachableStrategy },
    ...(app.taskKillGracePeriodSeconds !== undefined ? { taskKillGracePeriodSeconds: app.taskKillGracePeriodSeconds } : {}),
  };
}

function containerToJSON(c: AppContainer): NonNullable<MarathonAppJson['container']> {
  const secretVolumes = c.secretVolumes.map((v) => ({ ...v }));
  if (c.type === 'MESOS') return { type: 'MESOS', volumes: secretVolumes };
  return {
    type: 'DOCKER',
    docker: { image: c.docker.image, forcePullImage: c.docker.forcePullImage, privileged: c.docker.privileged, parameters: c.docker.parameters.map((p) => ({ ...p })) },
    volumes: [...c.volumes.map((v) => ({ ...v })), ...secretVolumes],
  };
}
