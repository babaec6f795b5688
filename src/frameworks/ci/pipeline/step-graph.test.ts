import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { findCycles, orderSteps, topologicalOrder } from './step-graph.ts';

const edges = (o: Record<string, string[]>) => new Map(Object.entries(o));

describe('step graph', () => {
  it('orders steps after what they wait for, ties in the given order', () => {
    const { order, blocked } = orderSteps(['deploy', 'build', 'test', 'lint'], edges({ deploy: ['build', 'test'], test: ['build'] }));
    assert.deepEqual(order, ['build', 'lint', 'test', 'deploy']);
    assert.deepEqual(blocked, []);
  });

  it('ignores edges to names it was not given', () => {
    assert.deepEqual(orderSteps(['a'], edges({ a: ['gone'] })).order, ['a']);
  });

  it('blocks the steps on a cycle and those waiting for one', () => {
    const { order, blocked } = orderSteps(['a', 'b', 'c', 'd'], edges({ a: ['b'], b: ['a'], c: ['a'] }));
    assert.deepEqual(order, ['d']);
    assert.deepEqual(blocked, ['a', 'b', 'c']);
  });

  it('finds no cycle in a DAG, and each disjoint cycle otherwise, from its earliest step', () => {
    assert.deepEqual(findCycles(['a', 'b'], edges({ b: ['a'] })), []);
    assert.deepEqual(findCycles(['x', 'a', 'b', 'c', 'y'], edges({ x: ['c'], a: ['x'], c: ['a'], y: ['y'] })), [['x', 'c', 'a'], ['y']]);
  });

  it('stops after the given number of cycles', () => {
    const names = Array.from({ length: 100 }, (_, i) => `s${i}`);
    assert.equal(findCycles(names, new Map(names.map((n) => [n, [n]])), 5).length, 5);
  });

  it('checks a long chain without growing the stack', () => {
    const names = Array.from({ length: 50_000 }, (_, i) => `s${i}`);
    const chain = new Map(names.map((n, i) => [n, i === 0 ? [] : [`s${i - 1}`]]));
    assert.deepEqual(findCycles(names, chain), []);
    chain.set('s0', ['s49999']);
    assert.equal(findCycles(names, chain)[0]?.length, 50_000);
  });

  it('throws from topologicalOrder when there is a cycle', () => {
    assert.throws(() => topologicalOrder([{ name: 'a', dependsOn: ['a'] }]), /cycle: a/);
  });

  it('finds a cycle exactly when no order exists, and every reported cycle is one (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }).chain((n) =>
          fc.tuple(fc.constant(n), fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: 20 })),
        ),
        ([n, pairs]) => {
          const names = Array.from({ length: n }, (_, i) => `n${i}`);
          const deps = new Map<string, string[]>(names.map((x) => [x, []]));
          for (const [from, to] of pairs) deps.get(`n${from}`)?.push(`n${to}`);
          const cycles = findCycles(names, deps);
          const { blocked } = orderSteps(names, deps);
          assert.equal(cycles.length > 0, blocked.length > 0);
          for (const cycle of cycles) {
            cycle.forEach((x, i) => assert.ok(deps.get(x)?.includes(cycle[(i + 1) % cycle.length] as string)));
            assert.equal(new Set(cycle).size, cycle.length);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
