import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { childPath, readYamlTree, type YamlValue } from './yaml-tree.ts';

/** The tree as plain values, to compare in one assertion. */
function plain(v: YamlValue | undefined): unknown {
  if (v === undefined) return undefined;
  if (v.kind === 'scalar') return v.value;
  if (v.kind === 'seq') return v.items.map(plain);
  return Object.fromEntries(v.entries.map((e) => [e.key, plain(e.value)]));
}

describe('YAML tree', () => {
  it('writes paths as a reader would type them', () => {
    assert.equal(childPath('', 'steps'), 'steps');
    assert.equal(childPath('steps', 2), 'steps[2]');
    assert.equal(childPath('steps', 'build'), 'steps.build');
    assert.equal(childPath('steps', 'v1.2'), 'steps["v1.2"]');
    assert.equal(childPath('', 'a b'), '["a b"]');
  });

  it('gives 1-based positions, also on a text of one line', () => {
    const { root } = readYamlTree('steps: 5');
    assert.ok(root?.kind === 'map');
    assert.deepEqual(root.entries[0]?.keyPos, { line: 1, column: 1 });
    assert.deepEqual(root.entries[0]?.value.pos, { line: 1, column: 8 });
  });

  it('places merged keys where the << stands, own keys winning wherever they are', () => {
    const { root, problems } = readYamlTree('d: &d {a: 1, b: 2, c: 3}\nm:\n  x: 0\n  <<: *d\n  b: own\n');
    assert.deepEqual(problems, []);
    assert.ok(root?.kind === 'map');
    const m = root.entries[1]?.value;
    assert.ok(m?.kind === 'map');
    assert.deepEqual(
      m.entries.map((e) => e.key),
      ['x', 'a', 'c', 'b'],
    );
    assert.deepEqual(plain(m), { x: 0, a: 1, c: 3, b: 'own' });
  });

  it('keeps the position of the anchored text for an aliased value', () => {
    const { root } = readYamlTree('a: &img alpine\nb: *img\n');
    assert.ok(root?.kind === 'map');
    assert.deepEqual(root.entries[1]?.value.pos, { line: 1, column: 9 }); // `alpine`, after its anchor
  });

  it('refuses keys that differ in YAML but not as names', () => {
    const { problems } = readYamlTree('1: a\n"1": b\n');
    assert.deepEqual(problems, [{ path: '["1"]', message: 'this key is given twice in the same map', line: 2, column: 1 }]);
  });

  it('refuses empty and collection keys', () => {
    const { problems } = readYamlTree('? [a]\n: x\n"": y\n');
    assert.equal(problems.length, 2);
    assert.ok(problems.every((p) => p.message.includes('a key must be')));
  });
});
