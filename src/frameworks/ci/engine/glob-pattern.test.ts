import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasGlobSyntax, matchesGlob } from './glob-pattern.ts';

describe('matchesGlob', () => {
  const cases: [pattern: string, matches: string[], misses: string[]][] = [
    ['main', ['main'], ['main2', 'xmain', 'feature/main']],
    ['release/*', ['release/1.2', 'release/'], ['release', 'release/1/2', 'xrelease/1']],
    ['release/**', ['release/1.2', 'release/1/2/3'], ['release', 'releases/1']],
    ['**/*.tar.gz', ['app.tar.gz', 'dist/app.tar.gz', 'a/b/c.tar.gz'], ['app.tar', 'app.tar.gz/x']],
    ['dist/**/*.js', ['dist/a.js', 'dist/x/y/a.js'], ['dist.js', 'src/a.js']],
    ['**', ['a', 'a/b/c'], []],
    ['v?.?', ['v1.2'], ['v1.22', 'v1/2']],
    ['feature-[0-9]*', ['feature-1', 'feature-42-x'], ['feature-x', 'feature-']],
    ['[!a]*', ['bcd'], ['abc', '/x']],
    ['{main,develop}', ['main', 'develop'], ['mai', 'maindevelop']],
    ['{release/*,hotfix-{1,2}}', ['release/x', 'hotfix-1', 'hotfix-2'], ['hotfix-3']],
    ['a.b+c(d)', ['a.b+c(d)'], ['aXb+c(d)', 'a.bbc(d)']],
    ['literal\\*', ['literal*'], ['literalx']],
    ['unclosed[', ['unclosed['], ['unclosedx']],
    ['brace{', ['brace{'], ['brace']],
    ['.*', ['.env'], ['env']],
  ];
  for (const [pattern, matches, misses] of cases) {
    it(`matches ${pattern} against ${[...matches, ...misses].join(', ')}`, () => {
      for (const path of matches) assert.ok(matchesGlob(path, pattern), `${pattern} matches ${path}`);
      for (const path of misses) assert.ok(!matchesGlob(path, pattern), `${pattern} does not match ${path}`);
    });
  }

  it('tells plain names from patterns', () => {
    assert.equal(hasGlobSyntax('dist'), false);
    assert.equal(hasGlobSyntax('app-1.2.tar.gz'), false);
    for (const p of ['*.js', 'v?', '[ab]', '{a,b}', 'a\\b']) assert.equal(hasGlobSyntax(p), true, p);
  });
});
