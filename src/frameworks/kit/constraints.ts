import { compileValuePattern, type ValuePattern } from './constraints-pattern.ts';
import { fieldValue, type InstanceTally, type Location } from './instance-tally.ts';

export type ConstraintOperator = 'UNIQUE' | 'CLUSTER' | 'GROUP_BY' | 'LIKE' | 'UNLIKE' | 'MAX_PER' | 'IS';

/**
 * A placement constraint (Marathon's `["hostname", "LIKE", "srv2.*"]`): `fieldName` is `hostname`
 * or an agent attribute. LIKE and UNLIKE values are regular expressions that must match the whole
 * value (Marathon uses Java's `String.matches`); GROUP_BY and MAX_PER values are decimal integers.
 * The services framework (app constraints) and CI (executor constraints) both place by these.
 */
export interface Constraint {
  fieldName: string;
  operator: ConstraintOperator;
  value?: string;
}

/**
 * Marathon's constraint semantics (mesos/Constraints.scala), checked against the tasks of the same run
 * spec (an app's instances, a label's executors) already running and those placed earlier in the
 * same plan:
 * - UNIQUE: no instance has the candidate's value.
 * - CLUSTER: the candidate has the given value (or, without one, that of the first instance), and
 *   every instance has it too.
 * - GROUP_BY: the candidate's value is new, or there are at least `value` groups and it is one of
 *   the smallest groups.
 * - MAX_PER: fewer than `value` instances have the candidate's value.
 * - LIKE / UNLIKE: the regex matches / does not match the whole value.
 * - IS: the value equals.
 * An agent without the attribute passes only UNLIKE, as in Marathon.
 */
export function meetsConstraint(c: Constraint, candidate: Location, placed: InstanceTally, pattern?: ValuePattern): boolean {
  const value = fieldValue(c.fieldName, candidate);
  if (value === undefined) return c.operator === 'UNLIKE';
  switch (c.operator) {
    case 'UNIQUE':
      return placed.withValue(c.fieldName, value) === 0;
    case 'CLUSTER': {
      const target = c.value !== undefined && c.value !== '' ? c.value : placed.total > 0 ? placed.first(c.fieldName) : value;
      return value === target && placed.withValue(c.fieldName, value) === placed.total;
    }
    case 'GROUP_BY':
      return meetsGroupBy(c, value, placed);
    case 'MAX_PER': {
      const max = parseCount(c.value);
      return max !== undefined && placed.withValue(c.fieldName, value) < max;
    }
    case 'LIKE':
      return pattern !== undefined && pattern.test(value);
    case 'UNLIKE':
      return pattern !== undefined && !pattern.test(value);
    case 'IS':
      return value === c.value;
  }
}

function meetsGroupBy(c: Constraint, value: string, placed: InstanceTally): boolean {
  const groups = placed.groups(c.fieldName);
  const mine = groups.get(value);
  if (mine === undefined) return true;
  const minimum = parseCount(c.value) ?? 0;
  let smallest = Infinity;
  for (const n of groups.values()) smallest = Math.min(smallest, n);
  return groups.size >= minimum && mine === smallest;
}

/** A decimal count (GROUP_BY, MAX_PER), or undefined when absent or malformed. */
function parseCount(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/**
 * The regex of a LIKE / UNLIKE value, anchored to match the whole value (Java's `String.matches`).
 * Undefined when it does not compile, or has a shape that can take exponential time
 * (constraints-pattern.ts): such a constraint is met by no agent.
 */
export function wholeValuePattern(value: string | undefined): ValuePattern | undefined {
  return value === undefined ? undefined : compileValuePattern(value);
}

/** Whether `candidate` meets every constraint; `patterns[i]` is the compiled regex of constraint i. */
export function meetsConstraints(
  constraints: readonly Constraint[],
  patterns: readonly (ValuePattern | undefined)[],
  candidate: Location,
  placed: InstanceTally,
): boolean {
  for (let i = 0; i < constraints.length; i++) {
    if (!meetsConstraint(constraints[i]!, candidate, placed, patterns[i])) return false;
  }
  return true;
}
