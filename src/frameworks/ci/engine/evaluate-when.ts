import type { BuildEvent, StepCondition } from '../pipeline/pipeline.ts';
import { matchesGlob } from './glob-pattern.ts';

/** What a step's `when` is checked against. */
export interface WhenContext {
  event: BuildEvent;
  /** The build's branch; absent (a tag build): no `branch` condition holds. */
  branch?: string;
  /**
   * Whether one of the steps this step depends on, directly or through others, failed (or
   * erred) without `failure: ignore`.
   */
  upstreamFailed: boolean;
}

export type WhenVerdict = { run: true } | { run: false; reason: string };

/**
 * Whether a step runs (docs/pipelines.md, "Conditions", Woodpecker's rule): when **any**
 * condition of the list holds; a condition holds when every field it gives holds; a field's list
 * holds when one of its entries does. A condition without `status` holds only when nothing
 * upstream failed (as `status: success`), and no condition at all is one empty condition.
 */
export function evaluateWhen(when: readonly StepCondition[], ctx: WhenContext): WhenVerdict {
  const conditions = when.length > 0 ? when : [{}];
  const reasons: string[] = [];
  for (const c of conditions) {
    const reason = whyNot(c, ctx);
    if (reason === undefined) return { run: true };
    if (!reasons.includes(reason)) reasons.push(reason);
  }
  return { run: false, reason: reasons.join('; ') };
}

/** Why one condition does not hold, or undefined when it does. */
function whyNot(c: StepCondition, ctx: WhenContext): string | undefined {
  const upstream = ctx.upstreamFailed ? 'failure' : 'success';
  if (!(c.status ?? ['success']).includes(upstream)) {
    return upstream === 'failure' ? 'a step it depends on failed' : 'when: status is failure, and no step it depends on failed';
  }
  if (c.event !== undefined && !c.event.includes(ctx.event)) {
    return `when: event is ${ctx.event}, not ${c.event.join(' or ')}`;
  }
  if (c.branch !== undefined) {
    if (ctx.branch === undefined) return `when: branch ${c.branch.join(' or ')}, and the build has no branch`;
    const branch = ctx.branch;
    if (!c.branch.some((pattern) => matchesGlob(branch, pattern))) return `when: branch is ${branch}, not ${c.branch.join(' or ')}`;
  }
  return undefined;
}
