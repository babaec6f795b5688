import { secretName } from '../core/secret-name.ts';
import type { Secret, TaskInfo, Volume } from './mesos.ts';

/**
 * The secrets a TaskInfo references (part of the agent contract, issue 12 §4): environment
 * variables of type SECRET and volumes whose `source.type` is SECRET, each naming a secret of the
 * secret store by `secret.reference.name`. The master resolves the names when it launches the
 * task and sends the values beside the TaskInfo in LAUNCH (protocol/agent.ts), to that agent only;
 * the agent puts each in the task's environment or writes it as a file (0600, the task user's)
 * at the volume's `container_path`: relative to the sandbox, or for a DOCKER container an
 * absolute path in the container (a read-only bind mount of a file kept beside the sandbox).
 *
 * Refused, with why: VALUE secrets (the value would be kept in the master's state and shown by
 * it), `reference.key` (a secret here is one value, not a map), a SECRET variable with a `value`
 * too, and secret file paths with `..` or, outside a DOCKER container, absolute ones.
 */

export interface SecretUse {
  /** The store's name of the secret (a leading `/` dropped). */
  name: string;
  /** An environment variable, or a file at a container path. */
  as: { env: string } | { file: string; volume: number };
}

function referenceOf(secret: Secret | undefined, where: string): string | { problem: string } {
  if (secret === undefined) return { problem: `${where}: a SECRET needs secret.reference.name (a secret of the secret store)` };
  if (secret.type !== 'REFERENCE') return { problem: `${where}: only REFERENCE secrets are supported (a ${secret.type} secret's value would be kept in the master's state): put the value in the secret store (PUT /auth/v1/secrets/NAME) and reference it` };
  const name = secret.reference?.name;
  if (name === undefined || name === '' || name === '/') return { problem: `${where}: secret.reference.name is missing` };
  if (secret.reference?.key !== undefined) return { problem: `${where}: secret.reference.key is not supported (a secret holds one value)` };
  const n = secretName(name);
  return 'problem' in n ? { problem: `${where}: secret.reference.name ${n.problem}` } : n.name;
}

/** Whether a volume is a secret file (its `source.type` is SECRET). */
export function isSecretVolume(v: Volume): boolean {
  return v.source?.type === 'SECRET';
}

/** The secrets `info` uses, or the first reason it cannot be run (TASK_ERROR's message, without the task id). */
export function secretUses(info: TaskInfo): SecretUse[] | { problem: string } {
  const uses: SecretUse[] = [];
  for (const [i, v] of (info.command?.environment?.variables ?? []).entries()) {
    if (v.type !== 'SECRET' && v.secret === undefined) continue;
    const where = `command.environment.variables[${i}] (${v.name})`;
    if (v.type !== 'SECRET') return { problem: `${where}: a variable with a secret must have type SECRET` };
    if (v.value !== undefined) return { problem: `${where}: a SECRET variable takes its value from the secret, not from value` };
    const name = referenceOf(v.secret, where);
    if (typeof name !== 'string') return name;
    uses.push({ name, as: { env: v.name } });
  }
  const docker = info.container?.type === 'DOCKER';
  for (const [i, v] of (info.container?.volumes ?? []).entries()) {
    if (!isSecretVolume(v)) continue;
    const where = `container.volumes[${i}]`;
    if (v.host_path !== undefined) return { problem: `${where}: a secret volume has no host_path` };
    const path = v.container_path;
    if (path.split('/').includes('..')) return { problem: `${where}.container_path: '..' is not allowed in a secret's path` };
    if (path.startsWith('/') && !docker) return { problem: `${where}.container_path: outside a DOCKER container a secret file goes in the sandbox: give a relative path` };
    if (path.replace(/\/+$/, '') === '' || path.endsWith('/')) return { problem: `${where}.container_path: name a file` };
    const name = referenceOf(v.source?.secret, where);
    if (typeof name !== 'string') return name;
    uses.push({ name, as: { file: path, volume: i } });
  }
  return uses;
}
