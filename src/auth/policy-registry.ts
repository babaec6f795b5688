import { SlipwayError } from '../core/errors.ts';
import { builtInPolicy, BUILT_IN_POLICIES, CAPABILITIES, RESOURCE_KINDS, type Capability, type Policy, type PolicyRule } from './policy.ts';

/**
 * Policies an operator writes (Nomad's ACL policies), beside the built-in roles: a name and rules
 * (`{"kind": "apps", "match": "/team-a/*", "capabilities": ["read", "deploy"], "taskUsers":
 * ["team-a"], "maxCpus": 4}`). Kept in memory for a lookup per request, written through to the
 * store before a change answers. A token names policies; a name it holds that no longer exists
 * grants nothing (default deny).
 */

export interface PolicyStore {
  loadPolicies(): Promise<Policy[]>;
  savePolicy(policy: Policy): Promise<void>;
  deletePolicy(name: string): Promise<void>;
}

export class InvalidPolicy extends SlipwayError {
  readonly code = 'INVALID_POLICY';
  readonly status = 400;
}

export class PolicyNotFound extends SlipwayError {
  readonly code = 'POLICY_NOT_FOUND';
  readonly status = 404;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_RULES = 100;
const MAX_MATCH = 256;
const MAX_USERS = 100;

/** A policy document read from outside: every field checked, unknown ones refused; throws InvalidPolicy naming the first problem. */
export function readPolicy(name: string, doc: unknown): Policy {
  if (!NAME.test(name)) throw new InvalidPolicy(`policy name '${name.slice(0, 80)}' must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit`);
  if (builtInPolicy(name) !== undefined) throw new InvalidPolicy(`'${name}' is a built-in policy (${Object.keys(BUILT_IN_POLICIES).join(', ')}): choose another name`);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InvalidPolicy('a policy must be a JSON object: {"description": "...", "rules": [...]}');
  const o = doc as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'description' && k !== 'rules' && k !== 'name') throw new InvalidPolicy(`unknown field '${k.slice(0, 40)}' (known: description, rules)`);
  if (o['name'] !== undefined && o['name'] !== name) throw new InvalidPolicy(`the body names policy '${String(o['name']).slice(0, 80)}', the URL '${name}'`);
  const description = o['description'] ?? '';
  if (typeof description !== 'string' || description.length > 1000) throw new InvalidPolicy('description must be a string of at most 1000 characters');
  const rules = o['rules'];
  if (!Array.isArray(rules) || rules.length === 0 || rules.length > MAX_RULES) throw new InvalidPolicy(`rules must be an array of 1 to ${MAX_RULES} rules`);
  return { name, description, rules: rules.map((r, i) => readRule(r, `rules[${i}]`)) };
}

function readRule(doc: unknown, at: string): PolicyRule {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InvalidPolicy(`${at} must be an object`);
  const r = doc as Record<string, unknown>;
  const known = ['kind', 'match', 'capabilities', 'taskUsers', 'maxCpus', 'maxMem', 'maxInstances'];
  for (const k of Object.keys(r)) if (!known.includes(k)) throw new InvalidPolicy(`${at}: unknown field '${k.slice(0, 40)}' (known: ${known.join(', ')})`);
  const kind = r['kind'];
  if (kind !== '*' && !(RESOURCE_KINDS as readonly unknown[]).includes(kind)) throw new InvalidPolicy(`${at}.kind must be one of *, ${RESOURCE_KINDS.join(', ')}`);
  const match = r['match'] ?? '*';
  if (typeof match !== 'string' || match === '' || match.length > MAX_MATCH) throw new InvalidPolicy(`${at}.match must be '*', 'prefix*' or a name, of at most ${MAX_MATCH} characters`);
  if (match.indexOf('*') !== -1 && match.indexOf('*') !== match.length - 1) throw new InvalidPolicy(`${at}.match may hold '*' only at its end`);
  const caps = r['capabilities'];
  if (!Array.isArray(caps) || caps.length === 0) throw new InvalidPolicy(`${at}.capabilities must be a non-empty array of: ${CAPABILITIES.join(', ')}`);
  for (const c of caps) if (!(CAPABILITIES as readonly unknown[]).includes(c)) throw new InvalidPolicy(`${at}.capabilities: '${String(c).slice(0, 40)}' is not one of ${CAPABILITIES.join(', ')}`);
  const rule: PolicyRule = { kind: kind as PolicyRule['kind'], match, capabilities: [...new Set(caps as Capability[])] };
  const users = r['taskUsers'];
  if (users !== undefined) {
    if (!Array.isArray(users) || users.length > MAX_USERS || !users.every((u) => typeof u === 'string' && /^[A-Za-z0-9_*][A-Za-z0-9._-]{0,31}$/.test(u))) {
      throw new InvalidPolicy(`${at}.taskUsers must be an array of at most ${MAX_USERS} user names (or '*')`);
    }
    rule.taskUsers = users as string[];
  }
  for (const limit of ['maxCpus', 'maxMem', 'maxInstances'] as const) {
    const v = r[limit];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new InvalidPolicy(`${at}.${limit} must be a number >= 0`);
    rule[limit] = v;
  }
  return rule;
}

export class PolicyRegistry {
  private readonly byName = new Map<string, Policy>();

  private constructor(private readonly store: PolicyStore) {}

  static async open(store: PolicyStore): Promise<PolicyRegistry> {
    const r = new PolicyRegistry(store);
    for (const p of await store.loadPolicies()) r.byName.set(p.name, p);
    return r;
  }

  /** The policy of that name, built-in or written; undefined when there is none. */
  get(name: string): Policy | undefined {
    return builtInPolicy(name) ?? this.byName.get(name);
  }

  /** Every policy, the built-in ones first. */
  list(): (Policy & { builtIn: boolean })[] {
    return [...Object.values(BUILT_IN_POLICIES).map((p) => ({ ...p, builtIn: true })), ...[...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name)).map((p) => ({ ...p, builtIn: false }))];
  }

  /** Creates or replaces a policy from a document (readPolicy); answers it and whether it is new. */
  async put(name: string, doc: unknown): Promise<{ policy: Policy; created: boolean }> {
    const policy = readPolicy(name, doc);
    await this.store.savePolicy(policy);
    const created = !this.byName.has(name);
    this.byName.set(name, policy);
    return { policy, created };
  }

  async delete(name: string): Promise<void> {
    if (builtInPolicy(name) !== undefined) throw new InvalidPolicy(`'${name}' is a built-in policy and cannot be deleted`);
    if (!this.byName.has(name)) throw new PolicyNotFound(`no policy '${name.slice(0, 80)}'`);
    await this.store.deletePolicy(name);
    this.byName.delete(name);
  }
}
