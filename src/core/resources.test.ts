import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Resources, containsRanges, normalizeRanges, subtractRanges, unionRanges } from './resources.ts';
import { InvalidResources } from './errors.ts';

const ROLES = ['*', 'ci', 'web'];

/** Arbitrary resources: scalars with up to three decimals, port ranges and sets, some reserved. */
const scalarArb = fc.record({
  name: fc.constantFrom('cpus', 'mem', 'disk', 'gpus'),
  role: fc.constantFrom(...ROLES),
  value: fc.integer({ min: 0, max: 100_000_000 }).map((m) => m / 1000),
});
const rangeArb = fc
  .tuple(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 50 }))
  .map(([b, len]) => [b, b + len] as [number, number]);
const rangesArb = fc.record({ role: fc.constantFrom(...ROLES), ranges: fc.array(rangeArb, { maxLength: 5 }) });
const setArb = fc.record({ role: fc.constantFrom(...ROLES), items: fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 4 }) });

const resourcesArb = fc
  .tuple(fc.array(scalarArb, { maxLength: 6 }), fc.array(rangesArb, { maxLength: 2 }), fc.array(setArb, { maxLength: 2 }))
  .map(([scalars, ranges, sets]) => {
    let r = Resources.EMPTY;
    for (const s of scalars) r = r.add(Resources.scalars({ [s.name]: s.value }, s.role));
    for (const p of ranges) r = r.add(Resources.ranges('ports', p.ranges, p.role));
    for (const s of sets) {
      r = r.add(Resources.fromJSON([{ name: 'zones', type: 'SET', set: { item: s.items }, ...(s.role === '*' ? {} : { reservations: [{ type: 'STATIC', role: s.role }] }) }]));
    }
    return r;
  });

/** Every value of normalized flat ranges, for checking range operations against plain sets. */
function values(flat: readonly number[]): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < flat.length; i += 2) for (let v = flat[i]!; v <= flat[i + 1]!; v++) out.add(v);
  return out;
}

describe('Resources', () => {
  it('keeps scalars exact through repeated add and subtract (no float residue)', () => {
    let r = Resources.EMPTY;
    for (let i = 0; i < 3; i++) r = r.add(Resources.scalars({ cpus: 0.1 }));
    assert.equal(r.scalar('cpus'), 0.3);
    for (let i = 0; i < 1000; i++) r = r.add(Resources.scalars({ cpus: 0.1 })).subtract(Resources.scalars({ cpus: 0.1 }));
    assert.equal(r.scalar('cpus'), 0.3);
    assert.deepEqual(r.toJSON(), [{ name: 'cpus', type: 'SCALAR', scalar: { value: 0.3 } }]);
  });

  it('rounds scalars to three decimals as Mesos does', () => {
    assert.equal(Resources.scalars({ cpus: 0.0004 }).isEmpty(), true);
    assert.equal(Resources.scalars({ cpus: 1.2346 }).scalar('cpus'), 1.235);
    assert.equal(Resources.scalars({ mem: 0.0005 }).scalar('mem'), 0.001);
  });

  it('parses the agent syntax with ranges, sets and static reservations', () => {
    const r = Resources.parse('cpus:4;mem:8192;disk:10000;ports:[31000-32000];cpus(ci):2;zones:{b,a}');
    assert.equal(r.scalar('cpus'), 6);
    assert.equal(r.unreserved().scalar('cpus'), 4);
    assert.equal(r.reserved('ci').scalar('cpus'), 2);
    assert.equal(r.reserved('ci').scalar('mem'), 0);
    assert.deepEqual(r.ranges('ports'), [[31000, 32000]]);
    assert.equal(r.rangeCount('ports'), 1001);
    assert.deepEqual(r.reservationRoles(), ['ci']);
    assert.equal(r.toString(), 'cpus:4;mem:8192;disk:10000;ports:[31000-32000];cpus(ci):2;zones:{a,b}');
    assert.ok(Resources.parse(r.toString()).equals(r));
  });

  it('splits by role: a role is offered unreserved plus its own reservations', () => {
    const r = Resources.parse('cpus:4;mem:1024;cpus(ci):2;mem(web):512');
    assert.equal(r.allocatableTo('ci').scalar('cpus'), 6);
    assert.equal(r.allocatableTo('ci').scalar('mem'), 1024);
    assert.equal(r.allocatableTo('web').scalar('mem'), 1536);
    assert.equal(r.allocatableTo('other').scalar('cpus'), 4);
    assert.ok(r.reserved('ci').add(r.reserved('web')).add(r.unreserved()).equals(r));
  });

  it('writes and reads Mesos v1 Resource JSON, reservations included', () => {
    const r = Resources.parse('cpus(ci):2;ports:[1-3,5-5]');
    const json = r.toJSON('ci');
    assert.deepEqual(json, [
      { name: 'cpus', type: 'SCALAR', scalar: { value: 2 }, reservations: [{ type: 'STATIC', role: 'ci' }], allocation_info: { role: 'ci' } },
      { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 1, end: 3 }, { begin: 5, end: 5 }] }, allocation_info: { role: 'ci' } },
    ]);
    assert.ok(Resources.fromJSON(json).equals(r));
    // The pre-1.5 `role` field is understood too.
    assert.ok(Resources.fromJSON([{ name: 'cpus', type: 'SCALAR', scalar: { value: 2 }, role: 'ci' }]).equals(r.reserved('ci')));
  });

  it('refuses bad input with a message that names the problem', () => {
    const bad: [string, RegExp][] = [
      ['cpus', /name:value/],
      ['cpus:-1', /not a non-negative number/],
      ['cpus:abc', /not a non-negative number/],
      ['ports:[5-1]', /begin <= end/],
      ['ports:[1-2', /must end with/],
      ['ports:[a-b]', /begin-end/],
      ['cpus(bad role):1', /not a valid role/],
      ['cpus:1;cpus:[1-2]', /both scalar and ranges/],
    ];
    for (const [text, message] of bad) assert.throws(() => Resources.parse(text), (e: unknown) => e instanceof InvalidResources && message.test(e.message), text);
    assert.throws(() => Resources.fromJSON({}), /must be an array/);
    assert.throws(() => Resources.fromJSON([{ name: 'cpus', type: 'SCALAR' }]), /resources\[0\]\.scalar\.value/);
    assert.throws(() => Resources.fromJSON([{ name: 'cpus', type: 'FLOAT' }]), /SCALAR, RANGES or SET/);
    assert.throws(() => Resources.fromJSON([{ name: 'cpus', type: 'SCALAR', scalar: { value: Number.NaN } }]), /finite/);
    assert.throws(() => Resources.fromJSON([{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 }, reservations: [{ type: 'DYNAMIC', role: 'x' }] }]), /STATIC/);
  });

  it('caps scalars for quota without touching other kinds', () => {
    const r = Resources.parse('cpus:4;mem:1024;cpus(ci):2;ports:[1-10]');
    const capped = r.capScalars((n) => (n === 'cpus' ? 5000 : undefined));
    assert.equal(capped.scalar('cpus'), 5);
    assert.equal(capped.scalar('mem'), 1024);
    assert.equal(capped.rangeCount('ports'), 10);
    assert.equal(r.capScalars(() => undefined), r);
  });

  describe('properties', () => {
    it('subtract(add(a, b), b) equals a', () => {
      // Scalars always cancel exactly (fixed point).
      fc.assert(
        fc.property(fc.array(scalarArb, { maxLength: 6 }), fc.array(scalarArb, { maxLength: 6 }), (xs, ys) => {
          const a = xs.reduce((r, s) => r.add(Resources.scalars({ [s.name]: s.value }, s.role)), Resources.EMPTY);
          const b = ys.reduce((r, s) => r.add(Resources.scalars({ [s.name]: s.value }, s.role)), Resources.EMPTY);
          return a.add(b).subtract(b).equals(a);
        }),
      );
      // Ranges and sets are sets of values: adding a port already held adds nothing, so the law
      // holds for a b that shares no port or item with a (its scalars may be anything).
      fc.assert(
        fc.property(resourcesArb, resourcesArb, (a, b) => {
          const disjoint = b.subtract(a);
          return a.add(disjoint).subtract(disjoint).equals(a);
        }),
      );
    });

    it('add is commutative and associative', () => {
      fc.assert(fc.property(resourcesArb, resourcesArb, resourcesArb, (a, b, c) => a.add(b).equals(b.add(a)) && a.add(b).add(c).equals(a.add(b.add(c)))));
    });

    it('contains agrees with subtract: a contains b exactly when (a - b) + b equals a', () => {
      fc.assert(fc.property(resourcesArb, resourcesArb, (a, b) => a.contains(b) === a.subtract(b).add(b).equals(a)));
      fc.assert(fc.property(resourcesArb, resourcesArb, (a, b) => a.add(b).contains(b) && a.add(b).contains(a)));
    });

    it('ranges merge and split like the sets of values they stand for', () => {
      const flatArb = fc.array(rangeArb, { maxLength: 6 }).map((rs) => normalizeRanges(rs.flat()));
      fc.assert(
        fc.property(flatArb, flatArb, (a, b) => {
          const va = values(a);
          const vb = values(b);
          const union = values(unionRanges(a, b));
          const diff = values(subtractRanges(a, b));
          const expectUnion = new Set([...va, ...vb]);
          const expectDiff = new Set([...va].filter((v) => !vb.has(v)));
          const contains = [...vb].every((v) => va.has(v));
          // Normalized: sorted, and no two ranges touch or overlap.
          const n = unionRanges(a, b);
          for (let i = 2; i < n.length; i += 2) if (n[i]! <= n[i - 1]! + 1) return false;
          return (
            union.size === expectUnion.size && [...expectUnion].every((v) => union.has(v)) &&
            diff.size === expectDiff.size && [...expectDiff].every((v) => diff.has(v)) &&
            containsRanges(a, b) === contains
          );
        }),
      );
    });

    it('survives a round trip through JSON and through the agent syntax', () => {
      fc.assert(fc.property(resourcesArb, (a) => Resources.fromJSON(a.toJSON()).equals(a) && Resources.parse(a.toString()).equals(a)));
    });
  });
});
