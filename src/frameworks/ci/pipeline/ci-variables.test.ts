import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CI_VARIABLE_NAMES, ciVariables, isReservedVariableName, stepEnvironment } from './ci-variables.ts';
import type { CiBuildContext } from './ci-variables.ts';

const build: CiBuildContext = {
  jobName: 'app',
  buildNumber: 7,
  event: 'tag',
  repo: 'https://git.example.com/team/app.git',
  commitSha: '0123456789abcdef0123456789abcdef01234567',
  tag: 'v1.2.3',
  workspace: '/var/lib/slipway/ws/app-7',
  executorLabel: 'default',
  startedAt: new Date('2024-05-01T10:00:00.900Z'),
};

describe('CI variables', () => {
  it('gives every listed variable, tag builds with a tag ref and no branch', () => {
    const vars = ciVariables(build, { name: 'test' });
    assert.deepEqual(Object.keys(vars), [...CI_VARIABLE_NAMES]);
    assert.equal(vars.CI, 'true');
    assert.equal(vars.CI_BUILD_NUMBER, '7');
    assert.equal(vars.CI_PIPELINE_NUMBER, '7');
    assert.equal(vars.CI_BUILD_EVENT, 'tag');
    assert.equal(vars.CI_COMMIT_REF, 'refs/tags/v1.2.3');
    assert.equal(vars.CI_COMMIT_TAG, 'v1.2.3');
    assert.equal(vars.CI_COMMIT_BRANCH, '');
    assert.equal(vars.CI_BUILD_STARTED, String(Date.UTC(2024, 4, 1, 10) / 1000));
    assert.equal(vars.CI_STEP_NAME, 'test');
  });

  it('gives a branch build its branch and ref, and an empty tag', () => {
    const vars = ciVariables({ ...build, event: 'push', tag: undefined, branch: 'main' } as CiBuildContext, { name: 's' });
    assert.equal(vars.CI_COMMIT_BRANCH, 'main');
    assert.equal(vars.CI_COMMIT_REF, 'refs/heads/main');
    assert.equal(vars.CI_COMMIT_TAG, '');
  });

  it('layers the job env, the step environment and CI variables, CI last', () => {
    const env = stepEnvironment(build, { name: 's', environment: { A: 'step', B: 'step' } }, { A: 'job', C: 'job' });
    assert.equal(env['A'], 'step');
    assert.equal(env['B'], 'step');
    assert.equal(env['C'], 'job');
    assert.equal(env['CI_JOB_NAME'], 'app');
  });

  it('reserves CI and CI_* only', () => {
    assert.ok(isReservedVariableName('CI'));
    assert.ok(isReservedVariableName('CI_ANYTHING'));
    assert.ok(!isReservedVariableName('CIRCLE'));
    assert.ok(!isReservedVariableName('MY_CI'));
  });

  it('is the list docs/pipelines.md gives', () => {
    const doc = readFileSync(new URL('../../../../docs/pipelines.md', import.meta.url), 'utf8');
    const documented = [...doc.matchAll(/^\| `(CI(?:_[A-Z_]+)?)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented, [...CI_VARIABLE_NAMES]);
  });
});
