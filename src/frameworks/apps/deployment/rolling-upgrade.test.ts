import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideRollingUpgrade, rollingUpgradeDone, upgradeLimits, type RollingUpgradeState, type UpgradeStrategy } from './rolling-upgrade.ts';

/** What the world does between two decisions: fractions of what is in flight that settles. */
interface Events {
  /** Fraction of the launched, not yet ready instances that become healthy and ready. */
  ready: number;
  /** Fraction of the launched, not yet ready instances that fail (and are gone). */
  failed: number;
  /** Fraction of the old instances being killed that terminate. */
  terminated: number;
  /** Fraction of the healthy old instances that turn unhealthy. */
  sickened: number;
}

interface Sim {
  n: number;
  strategy: UpgradeStrategy;
  oldHealthy: number;
  oldUnhealthy: number;
  oldKilling: number;
  newStarted: number;
  newReady: number;
}

const state = (s: Sim): RollingUpgradeState => ({
  instances: s.n,
  ...s.strategy,
  oldRunning: s.oldHealthy + s.oldUnhealthy + s.oldKilling,
  oldHealthy: s.oldHealthy,
  oldKilling: s.oldKilling,
  newStarted: s.newStarted,
  newReady: s.newReady,
});
const healthy = (s: Sim): number => s.oldHealthy + s.newReady;
const total = (s: Sim): number => s.oldHealthy + s.oldUnhealthy + s.oldKilling + s.newStarted + s.newReady;

/** Applies the decision for this moment; returns whether it did anything. */
function decide(s: Sim): boolean {
  const d = decideRollingUpgrade(state(s));
  assert.ok(d.killHealthy <= d.kill && d.kill - d.killHealthy <= s.oldUnhealthy);
  s.oldUnhealthy -= d.kill - d.killHealthy;
  s.oldHealthy -= d.killHealthy;
  s.oldKilling += d.kill;
  s.newStarted += d.launch;
  return d.launch + d.kill > 0;
}

function settle(s: Sim, e: Events): void {
  const ready = Math.floor(s.newStarted * e.ready);
  const failed = Math.floor((s.newStarted - ready) * e.failed);
  s.newStarted -= ready + failed;
  s.newReady += ready;
  const terminated = Math.floor(s.oldKilling * e.terminated);
  s.oldKilling -= terminated;
  const sick = Math.floor(s.oldHealthy * e.sickened);
  s.oldHealthy -= sick;
  s.oldUnhealthy += sick;
}

const fraction = fc.integer({ min: 0, max: 100 }).map((x) => x / 100);
const strategyArb = fc.record({
  minimumHealthCapacity: fc.oneof(fraction, fc.double({ min: 0, max: 1, noNaN: true })),
  maximumOverCapacity: fc.oneof(fraction, fc.double({ min: 0, max: 1, noNaN: true })),
});
const eventsArb = fc.record({
  ready: fraction,
  failed: fc.oneof(fc.constant(0), fraction),
  terminated: fraction,
  sickened: fc.constant(0),
});

/**
 * Runs a whole upgrade: the random events first, then a world where everything in flight settles,
 * and checks the limits after every decision and every event.
 */
function simulate(s: Sim, events: Events[], check: (s: Sim) => void, onDecision?: (healthyBefore: number, after: Sim) => void): void {
  check(s);
  const calm: Events = { ready: 1, failed: 0, terminated: 1, sickened: 0 };
  const bound = events.length + 4 * (s.n + total(s)) + 10;
  for (let i = 0; i < bound && !rollingUpgradeDone(state(s)); i++) {
    const before = healthy(s);
    decide(s);
    check(s);
    onDecision?.(before, s);
    settle(s, events[i] ?? calm);
    check(s);
  }
  assert.ok(rollingUpgradeDone(state(s)), `not finished: ${JSON.stringify(s)}`);
  assert.equal(s.newStarted, 0);
  assert.equal(s.newReady, s.n);
}

describe('decideRollingUpgrade', () => {
  it('never goes below minHealthy nor above maxCapacity, and always finishes, from a fully healthy app', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), strategyArb, fc.array(eventsArb, { maxLength: 80 }), (n, strategy, events) => {
        const { minHealthy, maxCapacity } = upgradeLimits(n, strategy);
        assert.ok(minHealthy <= n && n <= maxCapacity && minHealthy < maxCapacity);
        assert.ok(maxCapacity <= n + Math.floor(n * strategy.maximumOverCapacity + 1e-9) + (minHealthy === n ? 1 : 0));
        const s: Sim = { n, strategy, oldHealthy: n, oldUnhealthy: 0, oldKilling: 0, newStarted: 0, newReady: 0 };
        simulate(s, events, (x) => {
          assert.ok(healthy(x) >= minHealthy, `healthy ${healthy(x)} < ${minHealthy}: ${JSON.stringify(x)}`);
          assert.ok(total(x) <= maxCapacity, `total ${total(x)} > ${maxCapacity}: ${JSON.stringify(x)}`);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('keeps what health it has and finishes from any start: other instance counts, unhealthy or sickening old instances', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        strategyArb,
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 10 }),
        fc.array(fc.record({ ready: fraction, failed: fraction, terminated: fraction, sickened: fraction }), { maxLength: 80 }),
        (n, strategy, oldHealthy, oldUnhealthy, events) => {
          const { minHealthy, maxCapacity } = upgradeLimits(n, strategy);
          const s: Sim = { n, strategy, oldHealthy, oldUnhealthy, oldKilling: 0, newStarted: 0, newReady: 0 };
          const capacity = Math.max(maxCapacity, total(s));
          simulate(
            s,
            events,
            (x) => assert.ok(total(x) <= capacity, `total ${total(x)} > ${capacity}: ${JSON.stringify(x)}`),
            // Old instances that fall sick are not the decision's doing; what it kills never takes
            // the healthy count below minHealthy, nor below what it was when already under.
            (before, x) => assert.ok(healthy(x) >= Math.min(minHealthy, before), `healthy ${before} -> ${healthy(x)}, min ${minHealthy}`),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('launches 2 first with n=10, min 1, max 0.2, and kills only after replacements are ready', () => {
    const base = { instances: 10, minimumHealthCapacity: 1, maximumOverCapacity: 0.2 };
    assert.deepEqual(upgradeLimits(10, base), { minHealthy: 10, maxCapacity: 12 });
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 10, oldHealthy: 10, newStarted: 0, newReady: 0 }), {
      launch: 2,
      kill: 0,
      killHealthy: 0,
    });
    // Launched, not ready yet: nothing more to do.
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 10, oldHealthy: 10, newStarted: 2, newReady: 0 }), {
      launch: 0,
      kill: 0,
      killHealthy: 0,
    });
    // One ready: one old goes; no launch while it is still terminating.
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 10, oldHealthy: 10, newStarted: 1, newReady: 1 }), {
      launch: 0,
      kill: 1,
      killHealthy: 1,
    });
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 10, oldHealthy: 9, oldKilling: 1, newStarted: 1, newReady: 1 }), {
      launch: 0,
      kill: 0,
      killHealthy: 0,
    });
    // Terminated: room for one more.
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 9, oldHealthy: 9, newStarted: 1, newReady: 1 }), {
      launch: 1,
      kill: 0,
      killHealthy: 0,
    });
  });

  it('kills 5 first with n=10, min 0.5, max 0, then launches as they terminate', () => {
    const base = { instances: 10, minimumHealthCapacity: 0.5, maximumOverCapacity: 0 };
    assert.deepEqual(upgradeLimits(10, base), { minHealthy: 5, maxCapacity: 10 });
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 10, oldHealthy: 10, newStarted: 0, newReady: 0 }), {
      launch: 0,
      kill: 5,
      killHealthy: 5,
    });
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 7, oldHealthy: 5, oldKilling: 2, newStarted: 0, newReady: 0 }), {
      launch: 3,
      kill: 0,
      killHealthy: 0,
    });
  });

  it('allows one instance over capacity, as Marathon does, when min 1 and max 0 leave no room', () => {
    const base = { instances: 3, minimumHealthCapacity: 1, maximumOverCapacity: 0 };
    assert.deepEqual(upgradeLimits(3, base), { minHealthy: 3, maxCapacity: 4 });
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 3, oldHealthy: 3, newStarted: 0, newReady: 0 }), {
      launch: 1,
      kill: 0,
      killHealthy: 0,
    });
  });

  it('kills unhealthy old instances at once, since they count for nothing', () => {
    const d = decideRollingUpgrade({ instances: 4, minimumHealthCapacity: 1, maximumOverCapacity: 0, oldRunning: 4, oldHealthy: 2, newStarted: 0, newReady: 0 });
    assert.deepEqual(d, { launch: 1, kill: 2, killHealthy: 0 }); // 4 alive, maxCapacity 3 + 1
  });

  it('is done when all new instances are ready and no old one is alive', () => {
    const base = { instances: 2, minimumHealthCapacity: 1, maximumOverCapacity: 0 };
    assert.equal(rollingUpgradeDone({ ...base, oldRunning: 0, oldHealthy: 0, newStarted: 0, newReady: 2 }), true);
    assert.equal(rollingUpgradeDone({ ...base, oldRunning: 1, oldHealthy: 0, oldKilling: 1, newStarted: 0, newReady: 2 }), false);
    assert.deepEqual(decideRollingUpgrade({ ...base, oldRunning: 0, oldHealthy: 0, newStarted: 0, newReady: 2 }), { launch: 0, kill: 0, killHealthy: 0 });
  });

  it('takes 0.07 of 100 instances as 7, not 8 (no float noise in the limits)', () => {
    assert.deepEqual(upgradeLimits(100, { minimumHealthCapacity: 0.07, maximumOverCapacity: 0.07 }), { minHealthy: 7, maxCapacity: 107 });
  });

  it('refuses counts that cannot be', () => {
    const base = { instances: 2, minimumHealthCapacity: 1, maximumOverCapacity: 0, newStarted: 0, newReady: 0 };
    assert.throws(() => decideRollingUpgrade({ ...base, oldRunning: 1, oldHealthy: 2 }), RangeError);
    assert.throws(() => decideRollingUpgrade({ ...base, oldRunning: -1, oldHealthy: 0 }), RangeError);
    assert.throws(() => upgradeLimits(2, { minimumHealthCapacity: 1.5, maximumOverCapacity: 0 }), RangeError);
  });
});
