import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { meetsConstraints, wholeValuePattern, type Constraint } from './constraints.ts';
import { InstanceTally, type Location } from './instance-tally.ts';

const at = (hostname: string, attributes: Record<string, string> = {}): Location => ({ agentId: hostname, hostname, attributes });

/** Whether `candidate` meets `constraints` given the tasks placed at `existing`. */
function meets(constraints: Constraint[], candidate: Location, existing: Location[] = []): boolean {
  const patterns = constraints.map((c) => (c.operator === 'LIKE' || c.operator === 'UNLIKE' ? wholeValuePattern(c.value) : undefined));
  return meetsConstraints(constraints, patterns, candidate, new InstanceTally([...new Set(constraints.map((c) => c.fieldName))], existing));
}

describe('constraints (Marathon semantics, for apps and CI executors)', () => {
  it('places by hostname and attributes with IS, LIKE and UNLIKE (whole values)', () => {
    assert.equal(meets([{ fieldName: 'rack', operator: 'IS', value: 'a' }], at('h1', { rack: 'a' })), true);
    assert.equal(meets([{ fieldName: 'rack', operator: 'IS', value: 'a' }], at('h1', { rack: 'ab' })), false);
    assert.equal(meets([{ fieldName: 'hostname', operator: 'LIKE', value: 'build-.*' }], at('build-1')), true);
    assert.equal(meets([{ fieldName: 'hostname', operator: 'LIKE', value: 'build' }], at('build-1')), false);
    assert.equal(meets([{ fieldName: 'rack', operator: 'UNLIKE', value: 'b' }], at('h1')), true, 'no attribute: passes UNLIKE');
    assert.equal(meets([{ fieldName: 'rack', operator: 'LIKE', value: '.*' }], at('h1')), false, 'no attribute: fails LIKE');
    assert.equal(meets([{ fieldName: 'rack', operator: 'LIKE', value: '(' }], at('h1', { rack: '(' })), false, 'a pattern that does not compile meets nothing');
  });

  it('spreads with UNIQUE and MAX_PER over the tasks placed', () => {
    const existing = [at('h1'), at('h1'), at('h2')];
    assert.equal(meets([{ fieldName: 'hostname', operator: 'UNIQUE' }], at('h2'), existing), false);
    assert.equal(meets([{ fieldName: 'hostname', operator: 'UNIQUE' }], at('h3'), existing), true);
    assert.equal(meets([{ fieldName: 'hostname', operator: 'MAX_PER', value: '2' }], at('h1'), existing), false);
    assert.equal(meets([{ fieldName: 'hostname', operator: 'MAX_PER', value: '2' }], at('h2'), existing), true);
  });

  it('keeps to one value with CLUSTER and balances with GROUP_BY', () => {
    const inA = [at('h1', { rack: 'a' })];
    assert.equal(meets([{ fieldName: 'rack', operator: 'CLUSTER' }], at('h2', { rack: 'a' }), inA), true);
    assert.equal(meets([{ fieldName: 'rack', operator: 'CLUSTER' }], at('h3', { rack: 'b' }), inA), false);
    assert.equal(meets([{ fieldName: 'rack', operator: 'GROUP_BY', value: '2' }], at('h2', { rack: 'a' }), inA), false, 'fewer groups than asked: a new value first');
    assert.equal(meets([{ fieldName: 'rack', operator: 'GROUP_BY', value: '2' }], at('h3', { rack: 'b' }), inA), true);
  });
});
