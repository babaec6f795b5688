/**
 * The authorization model of Slipway (issue 12; docs/security.md): default deny. A caller holds
 * policies; a policy is a list of rules; a rule grants capabilities on the resources of one kind
 * whose names match its pattern, with limits on the object being changed. A request is allowed
 * when one rule of one of the caller's policies allows it (Nomad's ACL policies, Mesos's ACLs over
 * actions and objects, Jenkins's matrix).
 */

/** What a caller may do. `admin` on a kind implies every other capability on it. */
export const CAPABILITIES = [
  'read',
  'deploy',
  'restart',
  'kill',
  'delete',
  'read-logs',
  'files',
  'trigger',
  'configure',
  'publish-config',
  'approve',
  'register',
  'use',
  'admin',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * The kinds of resources, and what names them:
 * - `apps`: Marathon apps, groups, pods, tasks and deployments, by app id (`/team-a/web`);
 * - `ci`: CI jobs and their builds, logs, artifacts and executors, by job name;
 * - `config`: config center services, by `service/environment`;
 * - `delivery`: delivery's services, releases and promotions, by `service/environment`;
 * - `frameworks`: Mesos frameworks, by role (`register` = SUBSCRIBE in that role);
 * - `agents`: agents joining the cluster (`register`), by hostname;
 * - `cluster`: cluster operations, by name (`state`, `weights`, `quota`, `maintenance`, `teardown`, `files`);
 * - `tokens`: tokens and the audit log, by token name;
 * - `secrets`: the secret store, by secret name (`db/password`): `read` lists names (never a
 *   value: no capability reads one back), `configure` writes, `delete`, and `use` names a secret
 *   in an app, a CI job or a task, which is then given its value (so `use` is as good as reading it).
 */
export const RESOURCE_KINDS = ['apps', 'ci', 'config', 'delivery', 'frameworks', 'agents', 'cluster', 'tokens', 'secrets'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export interface Resource {
  kind: ResourceKind;
  name: string;
}

/** What a policy may say about the object a request changes (the whole object, not only its name). */
export interface RuleLimits {
  /** The task users (Marathon's `user`, Mesos's `CommandInfo.user`) a caller may run tasks as; absent: any but `root`. */
  taskUsers?: string[];
  /** The most cpus, mem (MiB) and instances one app may ask for. */
  maxCpus?: number;
  maxMem?: number;
  maxInstances?: number;
}

export interface PolicyRule extends RuleLimits {
  kind: ResourceKind | '*';
  /** `*` for every name, `prefix*` for names that start with prefix, else the exact name. */
  match: string;
  capabilities: Capability[];
}

export interface Policy {
  name: string;
  description: string;
  rules: PolicyRule[];
}

/** What a request changes, for the rules' limits (all optional: a read has none). */
export interface ChangedObject {
  taskUser?: string;
  cpus?: number;
  mem?: number;
  instances?: number;
}

const all = (capabilities: Capability[], kinds: (ResourceKind | '*')[] = ['*']): PolicyRule[] => kinds.map((kind) => ({ kind, match: '*', capabilities }));

/**
 * The built-in roles (a token names policies; these are always there). Each says in its
 * description what it is for; docs/security.md has the table.
 */
export const BUILT_IN_POLICIES: Readonly<Record<string, Policy>> = {
  viewer: {
    name: 'viewer',
    description: 'reads everything but logs, sandboxes, tokens and secret values (it lists the names of secrets)',
    rules: all(['read'], ['apps', 'ci', 'config', 'delivery', 'frameworks', 'agents', 'cluster', 'secrets']),
  },
  developer: {
    name: 'developer',
    description: 'a viewer that deploys, restarts and kills apps, configures and triggers CI jobs, edits config, reads logs and sandboxes (it lists secrets; using or writing them takes a policy that names them)',
    rules: [
      ...all(['read'], ['secrets']),
      ...all(['read'], ['agents', 'cluster']),
      ...all(['read', 'files'], ['frameworks']),
      ...all(['read', 'deploy', 'restart', 'kill', 'read-logs', 'files'], ['apps']),
      ...all(['read', 'configure', 'trigger', 'read-logs'], ['ci']),
      ...all(['read', 'configure'], ['config']),
      ...all(['read', 'configure', 'deploy'], ['delivery']),
    ],
  },
  deployer: {
    name: 'deployer',
    description: 'deploys and restarts apps (a rollback too), triggers CI, publishes config, approves; reads logs; uses secrets',
    rules: [
      ...all(['read', 'use'], ['secrets']),
      ...all(['read'], ['frameworks', 'agents', 'cluster']),
      ...all(['read', 'deploy', 'restart', 'read-logs'], ['apps']),
      ...all(['read', 'trigger', 'read-logs'], ['ci']),
      ...all(['read', 'publish-config', 'approve'], ['config']),
      ...all(['read', 'deploy', 'approve'], ['delivery']),
    ],
  },
  operator: {
    name: 'operator',
    description: 'runs the cluster: agents, maintenance, weights and quota, kills and restarts, logs and sandboxes',
    rules: [
      ...all(['read', 'admin'], ['cluster', 'agents']),
      ...all(['read', 'kill', 'restart', 'read-logs', 'files'], ['apps', 'frameworks']),
      ...all(['read', 'read-logs'], ['ci', 'config']),
      ...all(['read'], ['secrets', 'delivery']),
    ],
  },
  admin: { name: 'admin', description: 'everything, tokens and policies included', rules: all(['admin']) },
  /** What a join token grants: an agent may join the cluster (and nothing else). */
  agent: { name: 'agent', description: 'an agent joining the cluster', rules: [{ kind: 'agents', match: '*', capabilities: ['register'] }] },
  /** What a config client needs (Apollo's, which sends no token: granted to anonymous requests by the operator's choice). */
  'config-client': { name: 'config-client', description: "a config client (Apollo's): reads the config center's releases and their files, secrets in them included", rules: [{ kind: 'config', match: '*', capabilities: ['read', 'files'] }] },
  /** What a framework's token grants: SUBSCRIBE in any role, and the calls on its own framework. */
  framework: { name: 'framework', description: 'a Mesos framework registering in any role', rules: [{ kind: 'frameworks', match: '*', capabilities: ['register', 'read'] }] },
};

/** The built-in policy of that name; undefined for any other name (`constructor` and `__proto__` included). */
export function builtInPolicy(name: string): Policy | undefined {
  return Object.hasOwn(BUILT_IN_POLICIES, name) ? BUILT_IN_POLICIES[name] : undefined;
}

/** Whether `name` matches a rule's pattern. */
export function matches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

/** Why a rule's limits refuse `object`, or undefined when they allow it. */
function limitRefusal(rule: PolicyRule, object: ChangedObject | undefined): string | undefined {
  if (object === undefined) return undefined;
  const user = object.taskUser;
  if (user !== undefined) {
    if (rule.taskUsers !== undefined ? !rule.taskUsers.includes(user) && !rule.taskUsers.includes('*') : user === 'root' && !rule.capabilities.includes('admin')) {
      return `may not run tasks as user '${user}'${rule.taskUsers !== undefined ? ` (allowed: ${rule.taskUsers.join(', ')})` : ''}`;
    }
  }
  if (rule.maxCpus !== undefined && (object.cpus ?? 0) > rule.maxCpus) return `may not ask for more than ${rule.maxCpus} cpus`;
  if (rule.maxMem !== undefined && (object.mem ?? 0) > rule.maxMem) return `may not ask for more than ${rule.maxMem} MiB of mem`;
  if (rule.maxInstances !== undefined && (object.instances ?? 0) > rule.maxInstances) return `may not run more than ${rule.maxInstances} instances`;
  return undefined;
}

export type Decision = { allowed: true } | { allowed: false; reason: string };

/**
 * Whether `policies` allow `capability` on `resource` for `object`. Default deny: allowed only
 * when a rule of the kind (or `*`) matches the name, grants the capability (or `admin`), and its
 * limits allow the object. The reason of a refusal names what was missing, for a 403's message.
 */
export function decide(policies: readonly Policy[], capability: Capability, resource: Resource, object?: ChangedObject): Decision {
  let limited: string | undefined;
  for (const policy of policies) {
    for (const rule of policy.rules) {
      if (rule.kind !== '*' && rule.kind !== resource.kind) continue;
      if (!matches(rule.match, resource.name)) continue;
      if (!rule.capabilities.includes(capability) && !rule.capabilities.includes('admin')) continue;
      const refusal = limitRefusal(rule, object);
      if (refusal === undefined) return { allowed: true };
      limited ??= refusal;
    }
  }
  if (limited !== undefined) return { allowed: false, reason: `${capability} on ${resource.kind} '${resource.name}': ${limited}` };
  return { allowed: false, reason: `no policy grants ${capability} on ${resource.kind} '${resource.name}'` };
}

/** The capabilities `policies` grant on `resource` (for whoami and the UI). */
export function capabilitiesOn(policies: readonly Policy[], resource: Resource): Capability[] {
  return CAPABILITIES.filter((c) => decide(policies, c, resource).allowed);
}
