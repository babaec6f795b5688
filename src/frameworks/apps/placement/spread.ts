import type { AppConstraint } from '../app-definition.ts';
import { fieldValue, type InstanceTally, type Location } from '../../kit/instance-tally.ts';

/**
 * The spread score of a candidate, lower is better: first the instances sharing its value of each
 * GROUP_BY field (so the groups fill evenly even before Marathon's minimum group count is known),
 * then the instances on its agent (even spread over agents).
 */
export function spreadScore(constraints: readonly AppConstraint[], candidate: Location, placed: InstanceTally): [number, number] {
  let grouped = 0;
  for (const c of constraints) {
    if (c.operator === 'GROUP_BY') grouped += placed.withValue(c.fieldName, fieldValue(c.fieldName, candidate));
  }
  return [grouped, placed.onAgent(candidate.agentId)];
}

/** Compares two spread scores: negative when `a` is the better one. */
export function compareScores(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}
