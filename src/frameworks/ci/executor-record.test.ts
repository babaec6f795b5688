import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../core/document-reader-test-support.ts';
import { readExecutorRecord, type ExecutorRecord } from './executor-record.ts';

const EXECUTOR: ExecutorRecord = {
  id: 'exec-1',
  label: 'linux',
  token: 'secret-token',
  taskId: 'ci-exec-1',
  agentId: 'agent-1',
  hostname: 'host-1',
  state: 'busy',
  launchedAt: 1_700_000_000_000,
  idleSince: 1_700_000_001_000,
  build: 'ci#3',
};

describe('readExecutorRecord', () => {
  it('reads a stored executor back equal, and names the executor and the field of one that does not match', () => {
    assertReaderChecksEveryField(readExecutorRecord, EXECUTOR, { kind: 'executor', optional: ['idleSince', 'build'] });
  });

  it('refuses a state the executor pool does not have', () => {
    const e = failureOf(() => readExecutorRecord({ ...EXECUTOR, state: 'sleeping' }));
    assert.equal(e.field, 'state');
    assert.equal(e.document, 'executor exec-1 (label linux)');
  });
});
