/** Where a task runs or may run: the agent and what constraints look at. */
export interface Location {
  agentId: string;
  hostname: string;
  /** Agent attributes, TEXT and SCALAR values as strings (offerAttributes). */
  attributes: Readonly<Record<string, string>>;
}

/** The value of a constraint field at a location: the hostname, or an attribute (undefined if absent). */
export function fieldValue(field: string, at: Location): string | undefined {
  if (field === 'hostname') return at.hostname;
  return Object.hasOwn(at.attributes, field) ? at.attributes[field] : undefined;
}

/**
 * A run spec's tasks (an app's instances, a label's executors: running, staging, and placed so
 * far in the plan) counted by agent and by
 * the value of each constraint field, so that every check is O(1) or O(groups) however many
 * instances there are.
 */
export class InstanceTally {
  private readonly byAgent = new Map<string, number>();
  /** field -> value (undefined: the agent lacks the attribute) -> count. */
  private readonly byField = new Map<string, Map<string | undefined, number>>();
  /** field -> the value at the first instance counted. */
  private readonly firstValue = new Map<string, string | undefined>();
  private count = 0;

  constructor(
    private readonly fields: readonly string[],
    instances: Iterable<Location> = [],
  ) {
    for (const f of fields) this.byField.set(f, new Map());
    for (const i of instances) this.add(i);
  }

  add(at: Location): void {
    if (this.count === 0) for (const f of this.fields) this.firstValue.set(f, fieldValue(f, at));
    this.count++;
    this.byAgent.set(at.agentId, (this.byAgent.get(at.agentId) ?? 0) + 1);
    for (const [f, groups] of this.byField) {
      const v = fieldValue(f, at);
      groups.set(v, (groups.get(v) ?? 0) + 1);
    }
  }

  get total(): number {
    return this.count;
  }

  onAgent(agentId: string): number {
    return this.byAgent.get(agentId) ?? 0;
  }

  /** Instances whose `field` has `value` (undefined: instances on agents without the attribute). */
  withValue(field: string, value: string | undefined): number {
    return this.groups(field).get(value) ?? 0;
  }

  /** The instance count of every value of `field` present, the missing-attribute group included. */
  groups(field: string): ReadonlyMap<string | undefined, number> {
    const g = this.byField.get(field);
    if (g === undefined) throw new Error(`field '${field}' is not tallied`);
    return g;
  }

  /** The value of `field` at the first instance, or undefined when there is none (or it lacks the field). */
  first(field: string): string | undefined {
    return this.firstValue.get(field);
  }
}
