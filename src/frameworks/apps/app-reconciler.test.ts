import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAppDefinition, type AppDefinition } from './app-definition.ts';
import { killOrder, reconcileApp } from './app-reconciler.ts';
import { isHealthy, type Instance } from './instance.ts';

const NOW = 1_000_000;

function app(extra: Record<string, unknown> = {}): AppDefinition {
  return parseAppDefinition({ id: '/web', cmd: 'serve', instances: 3, ...extra });
}

let seq = 0;
function inst(over: Partial<Instance> = {}): Instance {
  seq++;
  return {
    taskId: `web.instance-${String(seq).padStart(4, '0')}`,
    appId: '/web',
    version: 'v1',
    configVersion: 'c1',
    agentId: 'a1',
    host: 'h1',
    ports: [31000],
    state: 'TASK_RUNNING',
    stagedAt: seq,
    hasHealthCheck: false,
    ready: true,
    killing: false,
    ...over,
  };
}

describe('reconcileApp', () => {
  it('launches what is missing and kills nothing when all instances are current', () => {
    const r = reconcileApp({ spec: app(), configVersion: 'c1', instances: [inst()], now: NOW });
    assert.deepEqual(r, { launch: 2, kill: [] });
  });

  it('kills the surplus youngest first on a scale-down, not-running ones before running ones', () => {
    const old = inst({ stagedAt: 1 });
    const young = inst({ stagedAt: 5 });
    const staging = inst({ stagedAt: 2, state: 'TASK_STAGING' });
    const middle = inst({ stagedAt: 3 });
    const r = reconcileApp({ spec: app({ instances: 2 }), configVersion: 'c1', instances: [old, young, staging, middle], now: NOW });
    assert.equal(r.launch, 0);
    assert.deepEqual(
      r.kill.map((k) => k.taskId),
      [staging.taskId, young.taskId],
    );
  });

  it('kills the oldest first with killSelection OLDEST_FIRST', () => {
    const a = inst({ stagedAt: 1 });
    const b = inst({ stagedAt: 9 });
    const r = reconcileApp({ spec: app({ instances: 1, killSelection: 'OLDEST_FIRST' }), configVersion: 'c1', instances: [a, b], now: NOW });
    assert.deepEqual(
      r.kill.map((k) => k.taskId),
      [a.taskId],
    );
  });

  it('kills every instance of a stopped app, and none already being killed again', () => {
    const a = inst();
    const b = inst({ killing: true });
    const r = reconcileApp({ spec: undefined, configVersion: '', instances: [a, b], now: NOW });
    assert.deepEqual(r, { launch: 0, kill: [{ taskId: a.taskId, reason: 'the app is stopped' }] });
  });

  it('replaces an unreachable instance at once by default, and waits with inactiveAfterSeconds', () => {
    const lost = inst({ state: 'TASK_UNREACHABLE', unreachableSince: NOW - 1000 });
    const others = [inst(), inst()];
    assert.equal(reconcileApp({ spec: app(), configVersion: 'c1', instances: [lost, ...others], now: NOW }).launch, 1);
    const patient = app({ unreachableStrategy: { inactiveAfterSeconds: 60, expungeAfterSeconds: 120 } });
    assert.equal(reconcileApp({ spec: patient, configVersion: 'c1', instances: [lost, ...others], now: NOW }).launch, 0);
    assert.equal(reconcileApp({ spec: patient, configVersion: 'c1', instances: [lost, ...others], now: NOW + 60_000 }).launch, 1);
    const never = app({ unreachableStrategy: 'disabled' });
    assert.equal(reconcileApp({ spec: never, configVersion: 'c1', instances: [lost, ...others], now: NOW + 1e9 }).launch, 0);
  });

  it('kills the surplus when a replaced instance comes back, the not ready ones first', () => {
    const back = inst({ stagedAt: 1 });
    const replacements = [inst({ stagedAt: 10 }), inst({ stagedAt: 11 }), inst({ stagedAt: 12, state: 'TASK_STARTING' })];
    const r = reconcileApp({ spec: app(), configVersion: 'c1', instances: [back, ...replacements], now: NOW });
    assert.deepEqual(
      r.kill.map((k) => k.taskId),
      [replacements[2]!.taskId],
    );
  });

  it('starts a rolling upgrade within maximumOverCapacity and kills no healthy old instance below the floor', () => {
    const spec = app({ instances: 4, upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 } });
    const old = [inst(), inst(), inst(), inst()];
    const r = reconcileApp({ spec, configVersion: 'c2', instances: old, now: NOW });
    // 4 alive, max 4: room only after kills; 2 may go (floor 2).
    assert.equal(r.launch, 0);
    assert.equal(r.kill.length, 2);
  });

  it('kills unhealthy old instances before healthy ones during an upgrade', () => {
    const spec = app({ instances: 2, healthChecks: [{ protocol: 'TCP' }], upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 0 } });
    const sick = inst({ hasHealthCheck: true, healthy: false });
    const fine = inst({ hasHealthCheck: true, healthy: true });
    const r = reconcileApp({ spec, configVersion: 'c2', instances: [sick, fine], now: NOW });
    assert.deepEqual(
      r.kill.map((k) => k.taskId),
      [sick.taskId],
    );
  });

  it('orders kills totally: unreachable, not running, unhealthy or not ready, then by age', () => {
    const order = killOrder('YOUNGEST_FIRST');
    const list = [inst({ stagedAt: 1 }), inst({ stagedAt: 2, ready: false }), inst({ state: 'TASK_STAGING', stagedAt: 0 }), inst({ unreachableSince: 5, state: 'TASK_UNREACHABLE' }), inst({ stagedAt: 3 })];
    const sorted = [...list].sort(order);
    assert.deepEqual(
      sorted.map((i) => list.indexOf(i)),
      [3, 2, 1, 4, 0],
    );
  });

  // A whole upgrade, simulated: each round applies the reconciler's answer; launched instances
  // become healthy (or not) at random, kills complete at random. Whatever happens, healthy
  // instances never drop below ceil(n x minimumHealthCapacity) through a kill we decided, the
  // total never exceeds the maximum, and once launches succeed the upgrade ends.
  it('keeps the health floor and the capacity ceiling through whole simulated upgrades', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.boolean(), { minLength: 400, maxLength: 400 }),
        (n, minPct, overPct, coin) => {
          const min = minPct / 100;
          const over = overPct / 100;
          const spec = app({ instances: n, healthChecks: [{ protocol: 'TCP' }], upgradeStrategy: { minimumHealthCapacity: min, maximumOverCapacity: over } });
          const floor = Math.ceil(n * min - 1e-9);
          let maxTotal = Math.floor(n * (1 + over) + 1e-9);
          if (floor === maxTotal) maxTotal += 1;
          let instances: Instance[] = Array.from({ length: n }, () => inst({ hasHealthCheck: true, healthy: true }));
          let c = 0;
          const flip = () => coin[c++ % coin.length]!;
          for (let round = 0; round < 300; round++) {
            const r = reconcileApp({ spec, configVersion: 'c2', instances, now: NOW });
            const killed = new Set(r.kill.map((k) => k.taskId));
            instances = instances.map((i) => (killed.has(i.taskId) ? { ...i, killing: true } : i));
            const healthyNow = instances.filter((i) => !i.killing && isHealthy(i)).length;
            assert.ok(healthyNow >= Math.min(floor, n), `healthy ${healthyNow} below floor ${floor} (n=${n}, min=${min}, over=${over})`);
            for (let k = 0; k < r.launch; k++) instances.push(inst({ configVersion: 'c2', hasHealthCheck: true, state: 'TASK_STAGING' }));
            assert.ok(instances.length <= maxTotal, `total ${instances.length} above ${maxTotal}`);
            // The world moves: kills complete, new instances start and pass their checks.
            instances = instances.filter((i) => !(i.killing && flip()));
            instances = instances.map((i) => (i.configVersion === 'c2' && !i.healthy && flip() ? { ...i, state: 'TASK_RUNNING', healthy: true } : i));
            const done = instances.length === n && instances.every((i) => i.configVersion === 'c2' && isHealthy(i) && !i.killing);
            if (done) return;
          }
          assert.fail(`upgrade of ${n} (min ${min}, over ${over}) did not end`);
        },
      ),
      { numRuns: 200 },
    );
  });
});
