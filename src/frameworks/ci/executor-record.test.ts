import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../core/document-reader-test-support.ts';
import { tokenDigest } from '../../lib/token-digest.ts';
import { DEFAULT_EXECUTOR_TOKEN_TTL_MS, readExecutorRecord, type ExecutorRecord } from './executor-record.ts';

const EXECUTOR: ExecutorRecord = {
  id: 'exec-1',
  label: 'linux',
  launchTokenDigest: tokenDigest('secret-token'),
  launchTokenExpiresAt: 1_700_000_600_000,
  sessionTokenDigest: tokenDigest('session-token'),
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
    assertReaderChecksEveryField(readExecutorRecord, EXECUTOR, { kind: 'executor', optional: ['idleSince', 'build', 'sessionTokenDigest'] });
  });

  it('reads one stored with its token in clear as its digest, good for the default TTL from its launch, and keeps no clear token', () => {
    const { launchTokenDigest: _d, launchTokenExpiresAt: _e, sessionTokenDigest: _s, ...old } = EXECUTOR;
    const read = readExecutorRecord({ ...old, token: 'secret-token' });
    assert.equal(read.launchTokenDigest, tokenDigest('secret-token'));
    assert.equal(read.launchTokenExpiresAt, EXECUTOR.launchedAt + DEFAULT_EXECUTOR_TOKEN_TTL_MS);
    assert.ok(!('token' in read));
  });

  it('refuses a state the executor pool does not have', () => {
    const e = failureOf(() => readExecutorRecord({ ...EXECUTOR, state: 'sleeping' }));
    assert.equal(e.field, 'state');
    assert.equal(e.document, 'executor exec-1 (label linux)');
  });
});
