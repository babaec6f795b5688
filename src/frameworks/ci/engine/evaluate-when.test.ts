import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateWhen } from './evaluate-when.ts';

describe('evaluateWhen', () => {
  const push = { event: 'push' as const, branch: 'main', upstreamFailed: false };
  const failed = { ...push, upstreamFailed: true };

  it('runs a step without conditions when nothing upstream failed, and skips it when something did', () => {
    assert.deepEqual(evaluateWhen([], push), { run: true });
    assert.deepEqual(evaluateWhen([], failed), { run: false, reason: 'a step it depends on failed' });
    assert.deepEqual(evaluateWhen([{ event: ['push'] }], failed), { run: false, reason: 'a step it depends on failed' });
  });

  it('runs a step when any condition of the list holds, a condition holding when all its fields do', () => {
    assert.deepEqual(evaluateWhen([{ event: ['push'], branch: ['main'] }], push), { run: true });
    assert.deepEqual(evaluateWhen([{ event: ['push'], branch: ['dev'] }], push), { run: false, reason: 'when: branch is main, not dev' });
    assert.deepEqual(evaluateWhen([{ event: ['tag'] }, { branch: ['main'] }], push), { run: true });
    assert.deepEqual(evaluateWhen([{ event: ['tag'] }, { event: ['push'], branch: ['release/*'] }], push), {
      run: false,
      reason: 'when: event is push, not tag; when: branch is main, not release/*',
    });
  });

  it('runs a step with status failure only after a failure upstream, and with both statuses always', () => {
    assert.equal(evaluateWhen([{ status: ['failure'] }], push).run, false);
    assert.equal(evaluateWhen([{ status: ['failure'] }], failed).run, true);
    assert.equal(evaluateWhen([{ status: ['success', 'failure'] }], push).run, true);
    assert.equal(evaluateWhen([{ status: ['success', 'failure'] }], failed).run, true);
    assert.equal(evaluateWhen([{ status: ['failure'], branch: ['main'] }], failed).run, true);
    assert.equal(evaluateWhen([{ status: ['failure'], branch: ['dev'] }], failed).run, false);
  });

  it('takes each condition without status as status success', () => {
    // The second condition would hold on event and branch, but says nothing of status: success only.
    assert.equal(evaluateWhen([{ status: ['failure'], event: ['tag'] }, { event: ['push'] }], failed).run, false);
    assert.equal(evaluateWhen([{ status: ['failure'], event: ['push'] }, { event: ['tag'] }], failed).run, true);
  });
});
