import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { invalidIdReason } from './ids.ts';

describe('invalidIdReason', () => {
  it('accepts ordinary ids and refuses those that could escape a path or break a line', () => {
    for (const ok of ['task-1', 'web.v2_3', 'ci:build#42', 'a'.repeat(255)]) assert.equal(invalidIdReason(ok), undefined, ok);
    const bad: [string, RegExp][] = [
      ['', /empty/],
      ['.', /must not be '\.'/],
      ['..', /must not be '\.\.'/],
      ['a/b', /must not contain "\/"/],
      ['a\\b', /must not contain/],
      ['a b', /must not contain " "/],
      ['a\nb', /must not contain/],
      ['x\ud800', /well-formed/],
      ['a'.repeat(256), /at most 255/],
    ];
    for (const [id, reason] of bad) assert.match(invalidIdReason(id) ?? '', reason, JSON.stringify(id));
  });
});
