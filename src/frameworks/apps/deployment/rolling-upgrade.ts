// ---------------------------------------------------------------------------------------------
// The decision of a rolling restart (Marathon's TaskReplaceActor), as a pure function of counts:
// given what runs now, how many new-version instances to launch and old ones to kill. The
// deployment runner calls it again whenever a count changes (an instance launched, became
// healthy and ready, or terminated) and applies the answer; the function keeps no state.
//
// Limits, Marathon's formulas (computeRestartStrategy):
//   minHealthy  = ceil(n × minimumHealthCapacity)
//   maxCapacity = floor(n × (1 + maximumOverCapacity))
// computed with a tolerance of 1e-9 so that float noise (0.07 × 100 = 7.000000000000001) does not
// add an instance to minHealthy; Marathon, on doubles, has that noise.
//
// minHealthy = maxCapacity (which means minHealthy = n = maxCapacity, e.g. minimumHealthCapacity 1
// with maximumOverCapacity 0) leaves no room to start a replacement without going below
// minHealthy. Marathon then allows a temporary over-capacity of one instance (maxCapacity + 1),
// and so does Slipway: the upgrade replaces one instance at a time, never below minHealthy.
// Marathon does it only when the app runs at least maxCapacity instances at the start; a
// stateless decision does not know the start, and an app that starts below it deadlocks later
// in the same way, so Slipway always does it.
//
// The rule, at every moment:
//   kill   the old instances that are not healthy (they count for nothing), and as many healthy
//          old ones as keep oldHealthy + newReady >= minHealthy;
//   launch as many new instances as are missing (n - newStarted - newReady), within
//          maxCapacity - (oldRunning + newStarted + newReady).
// A killed instance stops counting as healthy at once but counts for capacity until it has
// terminated, so neither limit is crossed while kills and launches are in flight. Like Marathon,
// it kills as early as minHealthy allows (n=10, min 0.5: five at once) and launches as early as
// maxCapacity allows (n=10, min 1, max 0.2: two at once, kills only once replacements are ready).
//
// Progress: once everything in flight has settled, nothing to do means healthy <= minHealthy and
// total >= maxCapacity with total = healthy, so minHealthy = maxCapacity, which the extra
// instance above rules out. Hence the upgrade ends as long as launched instances become ready.
// ---------------------------------------------------------------------------------------------

export interface UpgradeStrategy {
  /** In [0, 1]. */
  minimumHealthCapacity: number;
  /** In [0, 1]. */
  maximumOverCapacity: number;
}

export interface RollingUpgradeState extends UpgradeStrategy {
  /** Target number of instances (of the new version). */
  instances: number;
  /** Old-version instances alive, including those already being killed. */
  oldRunning: number;
  /** Old-version instances healthy (and not being killed). An app without health checks: running. */
  oldHealthy: number;
  /** Old-version instances with a kill already issued that have not terminated yet. Default 0. */
  oldKilling?: number;
  /** New-version instances launched (or queued for launch) but not yet healthy and ready. */
  newStarted: number;
  /** New-version instances healthy and ready. */
  newReady: number;
}

export interface RollingUpgradeDecision {
  /** New-version instances to launch now. */
  launch: number;
  /** Old-version instances to kill now (among those not already being killed). */
  kill: number;
  /**
   * How many of `kill` may be healthy ones: kill the unhealthy old instances first
   * (`kill - killHealthy` of them), or the health floor is not kept.
   */
  killHealthy: number;
}

export interface UpgradeLimits {
  minHealthy: number;
  /** The effective maximum, including Marathon's extra instance when minHealthy = maxCapacity. */
  maxCapacity: number;
}

const EPSILON = 1e-9;

export function upgradeLimits(instances: number, strategy: UpgradeStrategy): UpgradeLimits {
  checkCount('instances', instances);
  checkFraction('minimumHealthCapacity', strategy.minimumHealthCapacity);
  checkFraction('maximumOverCapacity', strategy.maximumOverCapacity);
  const minHealthy = Math.ceil(instances * strategy.minimumHealthCapacity - EPSILON);
  let maxCapacity = Math.floor(instances * (1 + strategy.maximumOverCapacity) + EPSILON);
  if (minHealthy === maxCapacity) maxCapacity += 1;
  return { minHealthy, maxCapacity };
}

export function decideRollingUpgrade(state: RollingUpgradeState): RollingUpgradeDecision {
  const { instances: n, oldRunning, oldHealthy, newStarted, newReady } = state;
  const oldKilling = state.oldKilling ?? 0;
  for (const [name, v] of Object.entries({ oldRunning, oldHealthy, oldKilling, newStarted, newReady })) checkCount(name, v);
  if (oldHealthy + oldKilling > oldRunning) {
    throw new RangeError(`oldHealthy (${oldHealthy}) + oldKilling (${oldKilling}) exceed oldRunning (${oldRunning})`);
  }
  const { minHealthy, maxCapacity } = upgradeLimits(n, state);

  const oldUnhealthy = oldRunning - oldKilling - oldHealthy;
  const killHealthy = Math.min(oldHealthy, Math.max(0, oldHealthy + newReady - minHealthy));
  const total = oldRunning + newStarted + newReady;
  const launch = Math.max(0, Math.min(n - newStarted - newReady, maxCapacity - total));
  return { launch, kill: oldUnhealthy + killHealthy, killHealthy };
}

/** The upgrade is done when all new instances are healthy and ready and no old one is alive. */
export function rollingUpgradeDone(state: RollingUpgradeState): boolean {
  return state.newReady >= state.instances && state.oldRunning === 0;
}

function checkCount(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, not ${v}`);
}

function checkFraction(name: string, v: number): void {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be within [0, 1], not ${v}`);
}
