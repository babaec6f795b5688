import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { planExecutorPool, type PoolExecutor, type PoolInput, type WaitingBuild } from './executor-pool.ts';

const SPEC = { maxExecutors: 3, idleTerminationSeconds: 180 };

function input(over: Partial<PoolInput> = {}): PoolInput {
  return {
    waiting: [],
    runningPerJob: new Map(),
    concurrency: new Map(),
    executors: [],
    specs: new Map([['default', SPEC]]),
    now: 1_000_000,
    ...over,
  };
}

const build = (job: string, n: number, label = 'default', queuedAt = n): WaitingBuild => ({ key: `${job}#${n}`, job, label, queuedAt });

describe('planExecutorPool', () => {
  it('gives a waiting build to an idle executor of its label', () => {
    const plan = planExecutorPool(input({ waiting: [build('a', 1)], executors: [{ id: 'e1', label: 'default', state: 'idle', idleSince: 0 }] }));
    assert.deepEqual([...plan.assign], [['a#1', 'e1']]);
    assert.equal(plan.launch.size, 0);
    assert.deepEqual(plan.stop, []);
  });

  it('starts one executor per waiting build up to maxExecutors, and says why the rest wait', () => {
    const waiting = [build('a', 1), build('b', 1), build('c', 1), build('d', 1)];
    const plan = planExecutorPool(input({ waiting }));
    assert.equal(plan.launch.get('default'), 3);
    assert.equal(plan.reasons.get('a#1')?.kind, 'waiting-for-offer');
    assert.equal(plan.reasons.get('d#1')?.kind, 'max-executors');
  });

  it('does not start a second executor for a build one being launched will take', () => {
    const plan = planExecutorPool(input({ waiting: [build('a', 1)], executors: [{ id: 'e1', label: 'default', state: 'launching' }] }));
    assert.equal(plan.launch.size, 0);
    assert.equal(plan.reasons.get('a#1')?.kind, 'executor-starting');
  });

  it('keeps builds of a job beyond its concurrency waiting, whatever the executors', () => {
    const executors: PoolExecutor[] = [
      { id: 'e1', label: 'default', state: 'idle', idleSince: 0 },
      { id: 'e2', label: 'default', state: 'idle', idleSince: 0 },
    ];
    const plan = planExecutorPool(input({ waiting: [build('a', 1), build('a', 2)], executors }));
    assert.deepEqual([...plan.assign.keys()], ['a#1']);
    assert.equal(plan.reasons.get('a#2')?.kind, 'concurrency');
    const two = planExecutorPool(input({ waiting: [build('a', 1), build('a', 2)], executors, concurrency: new Map([['a', 2]]) }));
    assert.equal(two.assign.size, 2);
  });

  it('stops executors idle past idleTerminationSeconds, and only those', () => {
    const now = 1_000_000;
    const executors: PoolExecutor[] = [
      { id: 'old', label: 'default', state: 'idle', idleSince: now - 180_000 },
      { id: 'young', label: 'default', state: 'idle', idleSince: now - 179_000 },
      { id: 'busy', label: 'default', state: 'busy' },
    ];
    assert.deepEqual(planExecutorPool(input({ executors, now })).stop, ['old']);
  });

  it('uses the longest idle executor for a build rather than stopping it', () => {
    const now = 1_000_000;
    const executors: PoolExecutor[] = [
      { id: 'old', label: 'default', state: 'idle', idleSince: now - 500_000 },
      { id: 'young', label: 'default', state: 'idle', idleSince: now - 1_000 },
    ];
    const plan = planExecutorPool(input({ waiting: [build('a', 1)], executors, now }));
    assert.deepEqual([...plan.assign], [['a#1', 'old']]);
    assert.deepEqual(plan.stop, []);
  });

  it('says so when a label has no executor spec', () => {
    const plan = planExecutorPool(input({ waiting: [build('a', 1, 'gpu')] }));
    assert.equal(plan.reasons.get('a#1')?.kind, 'no-spec');
    assert.equal(plan.launch.size, 0);
  });

  it('never exceeds maxExecutors, never assigns an executor twice, and accounts for every waiting build', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ job: fc.constantFrom('a', 'b', 'c'), label: fc.constantFrom('default', 'docker') }), { maxLength: 20 }),
        fc.array(fc.record({ label: fc.constantFrom('default', 'docker'), state: fc.constantFrom('launching', 'idle', 'busy', 'stopping') }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 4 }),
        (builds, execs, max) => {
          const waiting = builds.map((b, i) => build(b.job, i, b.label, i));
          const executors = execs.map((e, i) => ({ id: `e${i}`, label: e.label, state: e.state as PoolExecutor['state'], idleSince: 0 }));
          const specs = new Map([
            ['default', { maxExecutors: max, idleTerminationSeconds: 60 }],
            ['docker', { maxExecutors: max, idleTerminationSeconds: 60 }],
          ]);
          const plan = planExecutorPool(input({ waiting, executors, specs, concurrency: new Map([['a', 2], ['b', 1], ['c', 3]]) }));
          for (const label of ['default', 'docker']) {
            const alive = executors.filter((e) => e.label === label && e.state !== 'stopping').length;
            assert.ok(alive + (plan.launch.get(label) ?? 0) <= Math.max(max, alive), `label ${label} over its maximum`);
          }
          assert.equal(new Set(plan.assign.values()).size, plan.assign.size);
          for (const id of plan.assign.values()) assert.equal(executors.find((e) => e.id === id)?.state, 'idle');
          for (const b of waiting) assert.ok(plan.assign.has(b.key) !== plan.reasons.has(b.key), `${b.key} assigned or explained, not both`);
        },
      ),
    );
  });
});
