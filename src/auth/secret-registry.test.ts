import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { InvalidSecret, SecretNotFound, SecretRegistry, type SecretStore, type StoredSecret } from './secret-registry.ts';

function memoryStore(): SecretStore & { rows: Map<string, StoredSecret> } {
  const rows = new Map<string, StoredSecret>();
  return {
    rows,
    loadSecrets: () => Promise.resolve([...rows.values()]),
    saveSecret: (s) => Promise.resolve(void rows.set(s.name, { ...s })),
    deleteSecret: (n) => Promise.resolve(void rows.delete(n)),
  };
}

describe('SecretRegistry', () => {
  it('keeps values sealed, shows none, and opens one only through value()', async () => {
    const store = memoryStore();
    const box = SecretBox.random();
    const r = await SecretRegistry.open(store, box, new ManualClock(1000));
    const { view, created } = await r.put('/db/password', 'hunter2', 'alice');
    assert.equal(created, true);
    assert.deepEqual(view, { name: 'db/password', version: 1, createdAt: new Date(1000).toISOString(), updatedAt: new Date(1000).toISOString(), updatedBy: 'alice' });
    assert.ok(!JSON.stringify([...store.rows.values()]).includes('hunter2'), 'stored sealed');
    assert.ok(!JSON.stringify(r.list()).includes('hunter2'));
    assert.equal(r.value('db/password'), 'hunter2');
    assert.equal(r.value('/db/password'), 'hunter2', 'a leading / names the same secret');
    assert.equal(r.value('db/other'), undefined);
    assert.equal((await r.put('db/password', 'hunter3', 'bob')).view.version, 2);
    const again = await SecretRegistry.open(store, box, new ManualClock(0));
    assert.equal(again.value('db/password'), 'hunter3', 'read back after a restart');
    await again.delete('db/password');
    await assert.rejects(again.delete('db/password'), SecretNotFound);
  });

  it('refuses bad names and values with 400, and a start with another key', async () => {
    const store = memoryStore();
    const r = await SecretRegistry.open(store, SecretBox.random(), new ManualClock(0));
    for (const name of ['', '/', 'a//b', '../x', 'a b', 'x/', '.hidden', 'a'.repeat(201)]) await assert.rejects(r.put(name, 'v', 'x'), InvalidSecret, name);
    await assert.rejects(r.put('a', 42, 'x'), InvalidSecret);
    await assert.rejects(r.put('a', 'nul\u0000', 'x'), InvalidSecret);
    await assert.rejects(r.put('a', 'x'.repeat(64 * 1024 + 1), 'x'), /at most 65536/);
    await r.put('kept', 'v', 'x');
    await assert.rejects(SecretRegistry.open(store, SecretBox.random(), new ManualClock(0)), /do not open with this secret key \(kept\)/);
  });
});
