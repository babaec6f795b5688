import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { regexBacktrackingRisk } from './regex-risk.ts';

describe('regexBacktrackingRisk', () => {
  it('takes the patterns placement constraints are written with', () => {
    for (const p of ['srv2.*', 'build-[0-9]+\\.example\\.com|ci.*', '(web|api)-[a-z]+', '(?:rack-)?[0-9]{1,3}', 'a{2}b{0,1}', '(?<zone>eu|us)-.*', '[(+*|]+', 'x\\(a+\\)+', '(ab)+', '\\p{L}+']) {
      assert.equal(regexBacktrackingRisk(p), undefined, p);
    }
  });

  it('refuses repeated groups that hold a quantifier or an alternative, back-references, many unbounded quantifiers and long patterns', () => {
    for (const p of ['(a+)+b', '(a|a)*b', '(a*)*b', '(.*a){20}', '(\\w+\\s?)+$', '(a|aa)+$', '((ab)+c)*', '(?:a|b)+', '(a)\\1', '(?<x>a)\\k<x>', 'a*b*c*d*', 'x'.repeat(501)]) {
      assert.notEqual(regexBacktrackingRisk(p), undefined, p);
    }
  });
});
