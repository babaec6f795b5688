import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { percentile } from './percentile.ts';

describe('percentile', () => {
  it('answers the value of nearest rank ceil(p × n / 100), one of the values', () => {
    const ten = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
    assert.equal(percentile(ten, 50), 50);
    assert.equal(percentile(ten, 51), 60);
    assert.equal(percentile(ten, 90), 90);
    assert.equal(percentile(ten, 99), 100);
    assert.equal(percentile(ten, 100), 100);
    assert.equal(percentile(ten, 0), 10);
    assert.equal(percentile([1, 2, 3, 4], 50), 2, 'the lower median of an even count, not 2.5');
  });

  it('sorts a copy: unsorted input gives the same answer and is left as it was', () => {
    const values = [5, 1, 4, 2, 3];
    assert.equal(percentile(values, 50), 3);
    assert.equal(percentile(values, 20), 1);
    assert.deepEqual(values, [5, 1, 4, 2, 3]);
    // Numerically, not as strings (the default sort would put 100 before 20).
    assert.equal(percentile([100, 20, 3], 50), 20);
  });

  it('does not skip a rank where p / 100 is inexact in binary', () => {
    // 0.07 × 100 is 7.000000000000001 in floating point: rank 8 instead of 7.
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(hundred, 7), 7);
    assert.equal(percentile(hundred, 99), 99);
  });

  it('answers NaN for no values, and refuses a p outside [0, 100]', () => {
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], -1), RangeError);
    assert.throws(() => percentile([1], 101), RangeError);
    assert.throws(() => percentile([1], Number.NaN), RangeError);
  });
});
