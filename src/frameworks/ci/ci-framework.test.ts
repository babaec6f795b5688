import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { meetsConstraints } from './ci-framework.ts';

const at = (hostname: string, attributes: Record<string, string> = {}) => ({ hostname, attributes });

describe('executor constraints', () => {
  it('places by hostname and attributes with IS, LIKE and UNLIKE (whole values)', () => {
    assert.equal(meetsConstraints([{ field: 'rack', operator: 'IS', value: 'a' }], at('h1', { rack: 'a' }), []), true);
    assert.equal(meetsConstraints([{ field: 'rack', operator: 'IS', value: 'a' }], at('h1', { rack: 'ab' }), []), false);
    assert.equal(meetsConstraints([{ field: 'hostname', operator: 'LIKE', value: 'build-.*' }], at('build-1'), []), true);
    assert.equal(meetsConstraints([{ field: 'hostname', operator: 'LIKE', value: 'build' }], at('build-1'), []), false);
    assert.equal(meetsConstraints([{ field: 'rack', operator: 'UNLIKE', value: 'b' }], at('h1'), []), true, 'no attribute: passes UNLIKE');
    assert.equal(meetsConstraints([{ field: 'rack', operator: 'LIKE', value: '.*' }], at('h1'), []), false, 'no attribute: fails LIKE');
  });

  it('spreads with UNIQUE and MAX_PER over the executors of the label', () => {
    const existing = [at('h1'), at('h1'), at('h2')];
    assert.equal(meetsConstraints([{ field: 'hostname', operator: 'UNIQUE' }], at('h2'), existing), false);
    assert.equal(meetsConstraints([{ field: 'hostname', operator: 'UNIQUE' }], at('h3'), existing), true);
    assert.equal(meetsConstraints([{ field: 'hostname', operator: 'MAX_PER', value: '2' }], at('h1'), existing), false);
    assert.equal(meetsConstraints([{ field: 'hostname', operator: 'MAX_PER', value: '2' }], at('h2'), existing), true);
  });
});
