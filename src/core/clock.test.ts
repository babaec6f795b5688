import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from './clock.ts';

describe('ManualClock', () => {
  it('runs due timers in time order, including timers set while advancing', () => {
    const clock = new ManualClock(0);
    const seen: string[] = [];
    clock.setTimer(30, () => seen.push(`c@${clock.now()}`));
    clock.setTimer(10, () => {
      seen.push(`a@${clock.now()}`);
      clock.setTimer(5, () => seen.push(`b@${clock.now()}`));
    });
    const cancelled = clock.setTimer(20, () => seen.push('never'));
    cancelled.cancel();
    clock.advance(25);
    assert.deepEqual(seen, ['a@10', 'b@15']);
    assert.equal(clock.now(), 25);
    assert.equal(clock.pending(), 1);
    clock.advance(5);
    assert.deepEqual(seen, ['a@10', 'b@15', 'c@30']);
    assert.equal(clock.nextDue(), undefined);
  });
});
