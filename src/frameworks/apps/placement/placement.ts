import type { Resources } from '../../../core/resources.ts';
import { Random } from '../../../core/random.ts';
import { meetsConstraints, wholeValuePattern } from '../../kit/constraints.ts';
import { fitInstance, usableResources, type Fit } from './fit.ts';
import { compareScores, spreadScore } from './spread.ts';
import { InstanceTally } from '../../kit/instance-tally.ts';
import type { Placement, PlacementInput, PlacementOffer } from './types.ts';

export type { Placement, PlacementApp, PlacementInput, PlacementOffer, Location } from './types.ts';

interface Candidate {
  offer: PlacementOffer;
  /** What is left of the offer for the app (its accepted roles, minus earlier placements). */
  left: Resources;
  /** The fit on `left`, computed lazily; 'unknown' after `left` changed. */
  fit: Fit | undefined | 'unknown';
}

/**
 * Plans where to start up to `input.wanted` instances of an app, one at a time, like Nomad's
 * stack: for each instance the offers go through the constraints filter (which counts the
 * instances running and those placed earlier in this plan), then the fit filter (cpus, mem, disk
 * and ports left on the offer), then the spread scorer; ties go to the earlier offer of a seeded
 * shuffle. An offer may take several instances; each placement is subtracted before the next.
 * Pure: the same input gives the same plan.
 */
export function planPlacements(input: PlacementInput): Placement[] {
  const { app } = input;
  const constraints = app.constraints;
  const patterns = constraints.map((c) => (c.operator === 'LIKE' || c.operator === 'UNLIKE' ? wholeValuePattern(c.value) : undefined));
  const placed = new InstanceTally([...new Set(constraints.map((c) => c.fieldName))], input.running);

  let candidates: Candidate[] = new Random(input.seed)
    .shuffle([...input.offers])
    .map((offer) => ({ offer, left: usableResources(offer.resources, app.acceptedResourceRoles), fit: 'unknown' as const }));

  const plan: Placement[] = [];
  while (plan.length < input.wanted) {
    let best: Candidate | undefined;
    let bestScore: [number, number] | undefined;
    for (const c of candidates) {
      if (!meetsConstraints(constraints, patterns, c.offer, placed)) continue;
      if (c.fit === 'unknown') c.fit = fitInstance(app, c.left);
      if (c.fit === undefined) continue;
      const score = spreadScore(constraints, c.offer, placed);
      if (bestScore === undefined || compareScores(score, bestScore) < 0) {
        best = c;
        bestScore = score;
      }
    }
    if (best === undefined || best.fit === undefined || best.fit === 'unknown') break;

    const fit = best.fit;
    plan.push({ offerId: best.offer.id, agentId: best.offer.agentId, resources: fit.resources, ports: fit.ports });
    placed.add(best.offer);
    best.left = best.left.subtract(fit.resources);
    best.fit = 'unknown';
    // Resources only shrink: an offer that no longer fits never will again.
    candidates = candidates.filter((c) => c.fit !== undefined);
  }
  return plan;
}
