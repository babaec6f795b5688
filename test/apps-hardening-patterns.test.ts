import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileValuePattern, constraintPatternProblem, MAX_MATCHED_VALUE_LENGTH, patternHazard } from '../src/frameworks/kit/constraints-pattern.ts';
import { DraftApps } from '../src/frameworks/apps/plan/draft-apps.ts';
import { parseAppDefinition, type AppDefinition } from '../src/frameworks/apps/app-definition.ts';
import { isIdSegment, matchesPathType } from '../src/frameworks/apps/path-id.ts';

// Issue 11: what replaced the regexes that saw user input (ids) and what bounds the regexes users
// give (LIKE / UNLIKE). The one-pass id checks must accept exactly what Marathon's patterns
// accept: they are compared with those patterns on every short string of a small alphabet, where
// backtracking costs nothing.

/** Marathon's ID_PATH_SEGMENT_PATTERN, matched as Java's `matches` does. */
const SEGMENT = /^(?:(?:(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])|\.|\.\.)$/;
/** The schema's pathType pattern, as Ajv ran it. */
const PATH_TYPE = /^(\/?((\.{2})|([a-z0-9][a-z0-9\-.]*[a-z0-9]+)|([a-z0-9]*))($|\/))+$/u;

function* strings(alphabet: string, maxLength: number): Generator<string> {
  let level = [''];
  yield '';
  for (let n = 1; n <= maxLength; n++) {
    const next: string[] = [];
    for (const s of level) for (const c of alphabet) next.push(s + c);
    yield* next;
    level = next;
  }
}

describe('ids are checked in one pass, as Marathon\u2019s patterns would', () => {
  it('accepts exactly the segments Marathon\u2019s ID_PATH_SEGMENT_PATTERN accepts', () => {
    for (const s of strings('a0-.B_', 6)) assert.equal(isIdSegment(s), SEGMENT.test(s), JSON.stringify(s));
  });

  it('accepts exactly the paths the schema\u2019s pathType pattern accepts', () => {
    for (const s of strings('a0-./B', 6)) assert.equal(matchesPathType(s), PATH_TYPE.test(s), JSON.stringify(s));
  });

  it('answers at once for the id that made the pattern backtrack for half a minute, and for a megabyte of slashes', () => {
    const started = performance.now();
    assert.equal(matchesPathType(`${'/'.repeat(42)}!`), false);
    assert.equal(matchesPathType(`${'/'.repeat(1_000_000)}!`), false);
    assert.equal(isIdSegment(`${'a-'.repeat(500_000)}!`), false);
    assert.throws(() => parseAppDefinition({ id: `${'/'.repeat(100_000)}!`, cmd: 'x' }), /must be at most 200 characters/, 'refused by its length, before any pattern');
    assert.throws(() => parseAppDefinition({ id: `${'/'.repeat(4000)}!`, cmd: 'x' }), /must fully match/);
    assert.ok(performance.now() - started < 1000);
  });
});

describe('LIKE and UNLIKE patterns are bounded before they run', () => {
  it('refuses nested quantifiers, backreferences, too many unbounded quantifiers and long patterns', () => {
    for (const p of ['(a+)+', '(a*)*b', '(a|a)*', '(?:x+y?)+', '(a{2,})+', '(\\w+\\s?)*$', '(a)\\1', '(?<n>a)\\k<n>', '.*.*.*.*x', 'a'.repeat(257), 'a)|(b']) {
      assert.notEqual(patternHazard(p), undefined, p);
      assert.notEqual(constraintPatternProblem(p), undefined, p);
      assert.equal(compileValuePattern(p), undefined, p);
    }
  });

  it('accepts the patterns constraints are written with, and matches whole values', () => {
    for (const p of ['rack-[1-3]', 'srv2.*', '.*east.*', 'us-east-1[a-c]', '(a|b|c)', '^(prod|stage)$', '[a-z0-9-]+\\.example\\.com', 'x{1,3}', '(ab)?c+']) {
      assert.equal(patternHazard(p), undefined, p);
      assert.notEqual(compileValuePattern(p), undefined, p);
    }
    assert.equal(compileValuePattern('srv2.*')?.test('srv2-a'), true);
    assert.equal(compileValuePattern('srv2')?.test('srv2-a'), false, 'the whole value');
    assert.equal(compileValuePattern('.*')?.test('x'.repeat(MAX_MATCHED_VALUE_LENGTH + 1)), false, 'values longer than the bound never match');
  });

  it('refuses a dangerous LIKE in an app definition with 422 at its constraint', () => {
    assert.throws(
      () => parseAppDefinition({ id: '/a', cmd: 'x', constraints: [['hostname', 'LIKE', '(a+)+$']] }),
      (e: unknown) => (e as { details: { path: string; errors: string[] }[] }).details.some((d) => d.path === '/constraints(0)' && /nested quantifiers/.test(d.errors[0] ?? '')),
    );
  });

  it('takes milliseconds for the slowest pattern it accepts on the longest value it tries', () => {
    const p = compileValuePattern('.*.*.*x')!;
    const started = performance.now();
    assert.equal(p.test('a'.repeat(MAX_MATCHED_VALUE_LENGTH)), false);
    assert.ok(performance.now() - started < 500);
  });
});

describe('a deploy edits a draft over the declared apps', () => {
  const def = (id: string): AppDefinition => parseAppDefinition({ id, cmd: 'x' });
  it('reads through to the declared apps, keeps writes to itself, and names what changed', () => {
    const base = new Map([['/a', def('/a')], ['/b', def('/b')]]);
    const draft = new DraftApps(base);
    draft.set('/c', def('/c'));
    draft.delete('/a');
    assert.deepEqual([...draft.keys()], ['/b', '/c']);
    assert.equal(draft.size, 2);
    assert.equal(draft.has('/a'), false);
    assert.equal(draft.get('/b'), base.get('/b'));
    assert.deepEqual([...draft.changed].sort(), ['/a', '/c']);
    assert.deepEqual([...base.keys()], ['/a', '/b'], 'the declared apps are untouched');
    draft.set('/a', def('/a'));
    assert.equal(draft.size, 3);
    assert.deepEqual([...draft.keys()], ['/a', '/b', '/c']);
  });
});
