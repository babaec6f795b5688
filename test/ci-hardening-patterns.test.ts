import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCron } from '../src/frameworks/ci/cron-schedule.ts';
import { collectArtifacts } from '../src/frameworks/ci/engine/collect-artifacts.ts';
import { evaluateWhen } from '../src/frameworks/ci/engine/evaluate-when.ts';
import { parsePipeline } from '../src/frameworks/ci/pipeline/parse-pipeline.ts';
import { matchesGlob } from '../src/frameworks/ci/engine/glob-pattern.ts';
import { parseExecutorSpec, readExecutorSpecDocument } from '../src/frameworks/ci/job-definition.ts';
import { readWebhook } from '../src/frameworks/ci/triggers/webhook-request.ts';

// Issue 11, finding 2 (CI's part): every pattern CI matches user input with answers in linear
// time, or is refused. Each case below is an input made to backtrack; each must answer within a
// generous bound on the event loop. (Before: the glob of a branch condition took 18 s on 100
// characters, the slashes of an artifact pattern a minute; cron expressions and webhook payloads
// were linear already, and are kept so.)

const BOUND_MS = 1000;

/** Runs `f` (synchronous or not) and fails if it kept the event loop longer than BOUND_MS. */
async function quick(what: string, f: () => unknown): Promise<void> {
  const started = performance.now();
  try {
    await f();
  } catch (e) {
    // Refused is an answer too (the time is what counts here), unless a check of the case failed.
    if (e instanceof assert.AssertionError) throw e;
  }
  const ms = performance.now() - started;
  assert.ok(ms < BOUND_MS, `${what} took ${Math.round(ms)} ms`);
}

describe('CI patterns against adversarial input', () => {
  it('matches globs in linear time: stars, globstars and alternatives that would backtrack', async () => {
    await quick('*a*a*a*a*a*a*b on 80 a', () => assert.equal(matchesGlob('a'.repeat(80), `${'*a'.repeat(6)}b`), false));
    await quick('**/ x6 on 60 segments', () => assert.equal(matchesGlob(`${'a/'.repeat(60)}y`, `${'**/'.repeat(6)}x`), false));
    await quick('{a,a} x27', () => assert.equal(matchesGlob(`${'a'.repeat(27)}c`, `${'{a,a}'.repeat(27)}b`), false));
    await quick('a long path and a long pattern', () => assert.equal(matchesGlob('a'.repeat(100_000), `${'*a'.repeat(50)}*`), true));
  });

  it("evaluates a step's branch condition on an adversarial branch name at once", async () => {
    await quick('when: branch', () => assert.equal(evaluateWhen([{ branch: [`${'*b'.repeat(6)}c`] }], { event: 'push', branch: 'b'.repeat(80), upstreamFailed: false }).run, false));
  });

  it('refuses a branch pattern longer than any branch, when the pipeline is read', () => {
    const text = ['steps:', '  - name: a', '    commands: [echo]', '    when:', `      branch: '${'*a'.repeat(600)}'`, ''].join('\n');
    assert.throws(() => parsePipeline(text), /longer than 1024 characters/);
  });

  it('reads an artifact pattern with a long run of slashes at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slipway-patterns-'));
    try {
      mkdirSync(join(dir, 'ws', 'x'), { recursive: true });
      writeFileSync(join(dir, 'ws', 'x', 'y'), 'y');
      await quick('x////...y', () => collectArtifacts(join(dir, 'ws'), [`x${'/'.repeat(4000)}y`], join(dir, 'out')));
      await quick('x////...y, longer than any path', () => collectArtifacts(join(dir, 'ws'), [`x${'/'.repeat(80_000)}y`], join(dir, 'out')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses adversarial cron expressions and webhook payloads at once', async () => {
    await quick('cron: a long field', () => parseCron(`${'1'.repeat(100_000)}-/x * * * *`));
    await quick('cron: long blanks', () => parseCron(`1${' \t'.repeat(100_000)}x`));
    const ref = `refs/heads/${'a/'.repeat(200_000)}\n`;
    await quick('webhook: a long ref', () => readWebhook('github', { 'x-github-event': 'push' }, Buffer.from(JSON.stringify({ ref, after: '0'.repeat(100_000) + 'x' }))));
  });

  it('refuses executor constraints that would backtrack when matched, given or stored', async () => {
    await quick('(a+)+b', () => assert.throws(() => parseExecutorSpec('x', { constraints: [['hostname', 'LIKE', '(a+)+b']] }), /backtrack/));
    const stored = { ...parseExecutorSpec('x', {}), label: 'x', docVersion: 1, constraints: [{ field: 'hostname', operator: 'UNLIKE', value: '(a|a)*b' }] };
    await quick('a stored (a|a)*b', () => assert.throws(() => readExecutorSpecDocument(stored), /backtrack/));
  });
});
