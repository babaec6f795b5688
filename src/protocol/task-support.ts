import type { TaskInfo } from './mesos.ts';
import { isSecretVolume, secretUses } from './task-secrets.ts';

/**
 * What of a TaskInfo Slipway's agents honour (issue 11 §12). Part of the agent contract: a task
 * that asks for something its containerizer would ignore must not run as if it had not asked (a
 * MESOS container with an image run on the host, a SECRET run with an empty value). The master
 * answers such a task TASK_ERROR (REASON_TASK_INVALID) naming the field, before any LAUNCH; the
 * agent checks again at launch (a master of another version), answering the same way.
 *
 * Refused, with why (Mesos's field names, include/mesos/v1/mesos.proto):
 * - `container.mesos` (`image`): the process containerizer runs commands on the host's file
 *   system; it has no image provisioner. DOCKER containers run images.
 * - `container.volumes` of a MESOS container: the process containerizer mounts nothing (secret
 *   files, written into the sandbox, excepted).
 * - `container.volumes[i].source` / `.image`: volume sources (Docker volume drivers, images);
 *   only bind mounts (`host_path`) and secrets (`source.type` SECRET, task-secrets.ts) are made.
 * - `container.network_infos`, `container.linux_info`, `container.rlimit_info`,
 *   `container.tty_info`, `container.hostname`: container networking (CNI), capabilities and
 *   namespaces, rlimits, a TTY and a hostname are not set up by either containerizer.
 * - secrets other than references to the secret store, and their misuses (task-secrets.ts).
 * - `check`, `max_completion_time`, `resource_limits`, `limits`: general checks, a deadline and
 *   limits other than the resources are not enforced.
 * - `executor` (refused by the master already): custom executors are not run.
 * Honoured, or harmless when ignored (left as they are): `discovery`, `labels`, `data`,
 * `command.uris[i].cache` (every launch downloads). Docker's own fields are checked by the docker
 * containerizer at launch (TASK_FAILED naming the field: network BRIDGE, port_mappings, parameters).
 * `command.user` depends on the agent's user and is checked by the agent: a root agent runs the
 * task as that user (an unknown one is TASK_ERROR), one that is not root only as itself.
 *
 * Returns the TASK_ERROR message (`task <id>: <field>: why`), or undefined when nothing is refused.
 */
export function unhonouredTaskField(info: TaskInfo): string | undefined {
  const why = problem(info);
  return why === undefined ? undefined : `task ${info.task_id.value}: ${why}`;
}

const UNSUPPORTED_TASK_FIELDS: [string, string][] = [
  ['check', 'general checks are not run; use health_check'],
  ['max_completion_time', 'a task deadline is not enforced'],
  ['resource_limits', 'limits other than the task\'s resources are not enforced'],
  ['limits', 'limits other than the task\'s resources are not enforced'],
];

const UNSUPPORTED_CONTAINER_FIELDS: [string, string][] = [
  ['network_infos', 'container networking (CNI) is not available; tasks use the host network and their ports ($PORT0...)'],
  ['linux_info', 'Linux capabilities and namespaces are not set by Slipway\'s containerizers'],
  ['rlimit_info', 'rlimits are not set by Slipway\'s containerizers'],
  ['tty_info', 'tasks get no TTY'],
  ['hostname', 'a container hostname is not set (for docker tasks, use the parameter hostname)'],
];

function problem(info: TaskInfo): string | undefined {
  const task = info as unknown as Record<string, unknown>;
  for (const [field, why] of UNSUPPORTED_TASK_FIELDS) if (task[field] !== undefined) return `${field}: ${why}`;
  const secrets = secretUses(info);
  if ('problem' in secrets) return secrets.problem;
  const container = info.container as (Record<string, unknown> & NonNullable<TaskInfo['container']>) | undefined;
  if (container === undefined) return undefined;
  if (container.type === 'MESOS') {
    const mesos = container['mesos'];
    if (mesos !== undefined) {
      const image = typeof mesos === 'object' && mesos !== null && (mesos as Record<string, unknown>)['image'] !== undefined;
      return `container.mesos${image ? '.image' : ''}: MESOS containers run on the host's file system here (no image provisioner); use container.type DOCKER with docker.image`;
    }
    if ((container.volumes ?? []).some((v) => !isSecretVolume(v))) return 'container.volumes: the process containerizer (MESOS containers) mounts no volumes (secret files in the sandbox excepted)';
  }
  for (const [i, v] of (container.volumes ?? []).entries()) {
    if (isSecretVolume(v)) continue;
    const volume = v as Record<string, unknown>;
    for (const field of ['source', 'image']) {
      if (volume[field] !== undefined) return `container.volumes[${i}].${field}: only bind mounts (host_path) and secrets (source.type SECRET) are supported`;
    }
  }
  for (const [field, why] of UNSUPPORTED_CONTAINER_FIELDS) if (container[field] !== undefined) return `container.${field}: ${why}`;
  return undefined;
}
