import type { TaskInfo } from '../protocol/mesos.ts';

/**
 * The environment of a task, as Mesos's agents and Marathon set it: PORT0..PORTn and PORTS from
 * the task's port resources (in the order of its ranges), HOST, MESOS_SANDBOX, MESOS_TASK_ID,
 * MESOS_AGENT_ID, MESOS_FRAMEWORK_ID, the agent's PATH, HOME (process tasks: the agent's, or for a
 * task of another user that user's home, else its sandbox), then the task's own variables, which win
 * (a SECRET variable's value is the secret the master sent with the LAUNCH). Slipway's own variables
 * (`SLIPWAY_*`) may start with `$MESOS_SANDBOX`, which the agent replaces by the sandbox's path as
 * the task sees it (a framework does not know it: `SLIPWAY_CONFIG_DIR` of the config center).
 * In a Docker container the sandbox is mounted at /mnt/mesos/sandbox, as Mesos does.
 */
export function taskEnvironment(o: {
  info: TaskInfo;
  frameworkId: string;
  agentId: string;
  hostname: string;
  sandbox: string;
  docker: boolean;
  /** HOME of a process task that runs as another user than the agent. */
  home?: string;
  /** The values of its SECRET variables, by variable name (task-secret-files.ts). */
  secretEnv?: Readonly<Record<string, string>>;
}): Record<string, string> {
  const ports: number[] = [];
  for (const r of o.info.resources) {
    if (r.name !== 'ports' || r.ranges === undefined) continue;
    for (const range of r.ranges.range) for (let p = range.begin; p <= range.end && ports.length < 1000; p++) ports.push(p);
  }
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOST: o.hostname,
    MESOS_SANDBOX: o.docker ? '/mnt/mesos/sandbox' : o.sandbox,
    MESOS_TASK_ID: o.info.task_id.value,
    MESOS_AGENT_ID: o.agentId,
    MESOS_FRAMEWORK_ID: o.frameworkId,
    PORTS: ports.join(','),
  };
  if (!o.docker) env['HOME'] = o.home ?? process.env['HOME'] ?? o.sandbox;
  ports.forEach((p, i) => (env[`PORT${i}`] = String(p)));
  if (ports.length > 0) env['PORT'] = String(ports[0]);
  for (const v of o.info.command?.environment?.variables ?? []) env[v.name] = v.type === 'SECRET' ? (o.secretEnv?.[v.name] ?? '') : sandboxed(v.name, v.value ?? '', env['MESOS_SANDBOX']!);
  return env;
}

/** `$MESOS_SANDBOX...` in a `SLIPWAY_*` variable, with the sandbox's path; any other value as it is. */
function sandboxed(name: string, value: string, sandbox: string): string {
  if (!name.startsWith('SLIPWAY_') || !value.startsWith('$MESOS_SANDBOX')) return value;
  const rest = value.slice('$MESOS_SANDBOX'.length);
  return rest === '' || rest.startsWith('/') ? sandbox + rest : value;
}
