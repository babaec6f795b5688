import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, type Policy } from './policy.ts';
import { InvalidPolicy, PolicyRegistry, readPolicy, type PolicyStore } from './policy-registry.ts';

function memory(): PolicyStore & { rows: Map<string, Policy> } {
  const rows = new Map<string, Policy>();
  return {
    rows,
    loadPolicies: () => Promise.resolve([...rows.values()]),
    savePolicy: (p) => {
      rows.set(p.name, p);
      return Promise.resolve();
    },
    deletePolicy: (n) => {
      rows.delete(n);
      return Promise.resolve();
    },
  };
}

describe('written policies', () => {
  it('reads a policy document, and refuses each kind of mistake with a message naming it', () => {
    const p = readPolicy('team-a', { description: 'team a', rules: [{ kind: 'apps', match: '/team-a/*', capabilities: ['read', 'deploy'], taskUsers: ['team-a'], maxCpus: 4 }] });
    assert.deepEqual(p.rules[0], { kind: 'apps', match: '/team-a/*', capabilities: ['read', 'deploy'], taskUsers: ['team-a'], maxCpus: 4 });
    const bad: [string, unknown, RegExp][] = [
      ['admin', { rules: [{ kind: 'apps', capabilities: ['read'] }] }, /built-in policy/],
      ['Team', { rules: [{ kind: 'apps', capabilities: ['read'] }] }, /lowercase/],
      ['t', { rules: [] }, /1 to 100 rules/],
      ['t', { rules: [{ kind: 'planets', capabilities: ['read'] }] }, /rules\[0\]\.kind/],
      ['t', { rules: [{ kind: 'apps', capabilities: ['fly'] }] }, /'fly' is not one of/],
      ['t', { rules: [{ kind: 'apps', match: '/a*/b', capabilities: ['read'] }] }, /only at its end/],
      ['t', { rules: [{ kind: 'apps', capabilities: ['read'], maxCpus: -1 }] }, /maxCpus must be a number >= 0/],
      ['t', { rules: [{ kind: 'apps', capabilities: ['read'], taskUsers: ['-o root'] }] }, /taskUsers/],
      ['t', { rules: [{ kind: 'apps', capabilities: ['read'], extra: 1 }] }, /unknown field 'extra'/],
      ['t', { rules: [{ kind: 'apps', capabilities: ['read'] }], __proto__: { x: 1 }, other: 1 }, /unknown field 'other'/],
      ['t', 'rules', /must be a JSON object/],
    ];
    for (const [name, doc, message] of bad) assert.throws(() => readPolicy(name, doc), (e: unknown) => e instanceof InvalidPolicy && e.status === 400 && message.test(e.message), `${name} ${JSON.stringify(doc)}`);
  });

  it('keeps written policies across a restart, lists the built-in ones first, and deletes', async () => {
    const store = memory();
    const r = await PolicyRegistry.open(store);
    assert.equal((await r.put('team-a', { rules: [{ kind: 'apps', match: '/team-a/*', capabilities: ['deploy'] }] })).created, true);
    assert.equal((await r.put('team-a', { rules: [{ kind: 'apps', match: '/team-a/*', capabilities: ['read', 'deploy'] }] })).created, false);
    const again = await PolicyRegistry.open(store);
    const p = again.get('team-a')!;
    assert.equal(decide([p], 'deploy', { kind: 'apps', name: '/team-a/web' }).allowed, true);
    assert.equal(decide([p], 'deploy', { kind: 'apps', name: '/team-b/web' }).allowed, false);
    assert.equal(again.get('admin')?.name, 'admin');
    assert.equal(again.get('constructor'), undefined);
    assert.deepEqual(again.list().map((x) => [x.name, x.builtIn]).slice(-1), [['team-a', false]]);
    await again.delete('team-a');
    assert.equal(again.get('team-a'), undefined);
    await assert.rejects(again.delete('admin'), /built-in/);
    await assert.rejects(again.delete('nope'), /no policy 'nope'/);
  });
});
