import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { hashToken, InvalidToken, TokenRegistry, type StoredToken, type TokenStore } from './tokens.ts';

/** A token store in memory: what the registry writes, as a database would keep it. */
function memoryStore(): TokenStore & { rows: Map<string, StoredToken> } {
  const rows = new Map<string, StoredToken>();
  return {
    rows,
    loadTokens: () => Promise.resolve([...rows.values()].map((t) => ({ ...t }))),
    saveToken: (t) => {
      rows.set(t.id, { ...t });
      return Promise.resolve();
    },
  };
}

describe('TokenRegistry', () => {
  it('creates a token that resolves to its policies, keeps only its hash, and lists it without secret', async () => {
    const store = memoryStore();
    const r = await TokenRegistry.open(store, new ManualClock());
    assert.equal(r.hasLiveTokens, false);
    const { token, view } = await r.create({ name: 'alice', policies: ['developer'] });
    assert.match(token, /^slw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const who = r.resolve(token);
    assert.equal(who?.name, 'alice');
    assert.deepEqual(who?.policies.map((p) => p.name), ['developer']);
    const row = store.rows.get(view.id)!;
    assert.equal(row.hash, hashToken(token));
    assert.ok(!JSON.stringify(row).includes(token.split('_')[2]!), 'the secret is not stored');
    assert.ok(!JSON.stringify(r.list()).includes(row.hash), 'nor shown');
    assert.equal(r.hasLiveTokens, true);
  });

  it('refuses unknown, altered, revoked and expired tokens, after a restart too', async () => {
    const clock = new ManualClock();
    const store = memoryStore();
    const r = await TokenRegistry.open(store, clock);
    const a = await r.create({ name: 'a', policies: ['viewer'] });
    const b = await r.create({ name: 'b', policies: ['viewer'], ttlMs: 60_000 });
    const altered = a.token.slice(0, -1) + (a.token.endsWith('A') ? 'B' : 'A');
    assert.equal(r.resolve(altered), undefined);
    assert.equal(r.resolve('slw_000000000000_' + 'x'.repeat(43)), undefined);
    assert.equal(r.resolve('not a token'), undefined);
    await r.revoke(a.view.id);
    assert.equal(r.resolve(a.token), undefined);
    assert.equal(r.resolve(b.token)?.name, 'b');
    clock.advance(60_000);
    assert.equal(r.resolve(b.token), undefined, 'expired');
    const again = await TokenRegistry.open(store, clock);
    assert.equal(again.resolve(a.token), undefined, 'revoked for good');
    assert.equal(again.list().find((t) => t.id === a.view.id)?.revoked, true);
  });

  it('says what is wrong with a token asked for', async () => {
    const r = await TokenRegistry.open(memoryStore(), new ManualClock());
    await assert.rejects(r.create({ name: 'x', policies: ['superuser'] }), (e: unknown) => e instanceof InvalidToken && /unknown policy 'superuser'/.test(e.message));
    await assert.rejects(r.create({ name: '', policies: ['viewer'] }), InvalidToken);
    await assert.rejects(r.create({ name: 'x', policies: [] }), /at least one policy/);
    await assert.rejects(r.create({ name: 'x', policies: ['viewer'], ttlMs: -1 }), /ttl/);
  });
});
