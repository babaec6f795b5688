import type { AppDefinition } from './app-definition.ts';

/** What only the launch knows: the app version, the host ports taken from the offer, the agent, the task. */
export interface TaskLaunchContext {
  /** The app version the task runs (ISO 8601), as in MARATHON_APP_VERSION. */
  version: string;
  /** Host ports assigned to the task, in the order of the app's portDefinitions. */
  ports: number[];
  /** The agent's hostname. */
  host: string;
  taskId: string;
}

/** Marathon's limit (EnvironmentHelper.maxEnvironmentVarLength): longer label keys or values are left out. */
const MAX_ENV_VAR_LENGTH = 512;
const LABEL_PREFIX = 'MARATHON_APP_LABEL_';

/**
 * The environment Marathon gives a task (mesos/TaskBuilder.scala, mesos/EnvironmentHelper.scala),
 * in Marathon's order of precedence:
 *
 * 1. MESOS_TASK_ID, MARATHON_APP_ID, MARATHON_APP_VERSION, MARATHON_APP_DOCKER_IMAGE (Docker apps
 *    only), MARATHON_APP_RESOURCE_CPUS/MEM/DISK/GPUS, MARATHON_APP_LABELS and one
 *    MARATHON_APP_LABEL_<NAME> per label;
 * 2. PORT0..PORTn, PORT_<port> (the declared port, or the host port for a declared 0),
 *    PORT_<NAME> for named ports, PORT (the first), PORTS (all, comma-separated), HOST;
 * 3. the app's `env`, which overrides all of the above (Marathon applies it last).
 *
 * Resource values are printed as Java prints a double ("0.1", "128.0"), because scripts written
 * for Marathon parse them that way; GPUs are an integer ("0").
 */
export function marathonEnvironment(app: AppDefinition, ctx: TaskLaunchContext): Record<string, string> {
  const env: Record<string, string> = {
    MESOS_TASK_ID: ctx.taskId,
    MARATHON_APP_ID: app.id,
    MARATHON_APP_VERSION: ctx.version,
    ...(app.container?.type === 'DOCKER' ? { MARATHON_APP_DOCKER_IMAGE: app.container.docker.image } : {}),
    MARATHON_APP_RESOURCE_CPUS: javaDouble(app.cpus),
    MARATHON_APP_RESOURCE_MEM: javaDouble(app.mem),
    MARATHON_APP_RESOURCE_DISK: javaDouble(app.disk),
    MARATHON_APP_RESOURCE_GPUS: String(app.gpus),
    ...labelsEnvironment(app.labels),
    ...portsEnvironment(app, ctx.ports),
    HOST: ctx.host,
  };
  return { ...env, ...app.env };
}

/**
 * EnvironmentHelper.labelsToEnvVars: a label's name becomes upper case, each run of characters
 * other than letters, digits and `_` becomes one `_`; labels whose key or value is too long for an
 * environment variable are left out, of MARATHON_APP_LABELS too.
 */
function labelsEnvironment(labels: Record<string, string>): Record<string, string> {
  const valid = Object.entries(labels)
    .filter(([k, v]) => k.length < MAX_ENV_VAR_LENGTH - LABEL_PREFIX.length && v.length < MAX_ENV_VAR_LENGTH)
    .map(([k, v]) => [k.replace(/[^a-zA-Z0-9_]+/g, '_').toUpperCase(), v] as const);
  return {
    MARATHON_APP_LABELS: valid.map(([k]) => k).join(' '),
    ...Object.fromEntries(valid.map(([k, v]) => [`${LABEL_PREFIX}${k}`, v])),
  };
}

/** EnvironmentHelper.portsEnv for host networking (the only networking Slipway has): nothing without ports. */
function portsEnvironment(app: AppDefinition, ports: number[]): Record<string, string> {
  if (ports.length === 0) return {};
  const env: Record<string, string> = {};
  ports.forEach((p, i) => (env[`PORT${i}`] = String(p)));
  ports.forEach((p, i) => {
    const declared = app.portDefinitions[i];
    if (declared === undefined) return;
    env[`PORT_${declared.port !== 0 ? declared.port : p}`] = String(p);
    // Upper-cased only, as in Marathon: a name with a dash gives PORT_HTTP-API, which env(1) shows
    // but a shell cannot expand.
    if (declared.name !== undefined) env[`PORT_${declared.name.toUpperCase()}`] = String(p);
  });
  env['PORT'] = String(ports[0]);
  env['PORTS'] = ports.join(',');
  return env;
}

/** Java's Double.toString, which Marathon's Scala code uses for resources: 1 -> "1.0", 0.1 -> "0.1", 1e-4 -> "1.0E-4". */
export function javaDouble(n: number): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
  const abs = Math.abs(n);
  if (abs === 0 || (abs >= 1e-3 && abs < 1e7)) {
    const s = String(n);
    return s.includes('.') ? s : `${s}.0`;
  }
  const [mantissa = '0', exponent = '0'] = n.toExponential().split('e');
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${exponent.replace('+', '')}`;
}
