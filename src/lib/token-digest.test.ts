import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tokenDigest, tokenMatches } from './token-digest.ts';

describe('tokenDigest and tokenMatches', () => {
  it('keeps a token as a digest that does not show it, and matches only that token', () => {
    const d = tokenDigest('0123456789abcdef');
    assert.match(d, /^[0-9a-f]{64}$/);
    assert.ok(!d.includes('0123456789abcdef'));
    assert.ok(tokenMatches('0123456789abcdef', d));
    for (const other of ['', '0123456789abcdeF', '0123456789abcde', '0123456789abcdef0']) assert.ok(!tokenMatches(other, d), other);
    assert.ok(!tokenMatches('x', 'not hex'));
    assert.ok(!tokenMatches('x', ''));
  });
});
