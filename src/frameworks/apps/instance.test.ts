import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../core/document-reader-test-support.ts';
import { readInstance, type Instance } from './instance.ts';

const INSTANCE: Instance = {
  taskId: 'web.instance-1',
  appId: '/web',
  version: '2024-01-01T00:00:00.000Z',
  configVersion: '2024-01-01T00:00:00.000Z',
  agentId: 'agent-1',
  host: '127.0.0.1',
  ports: [31000, 31001],
  servicePorts: [10000, 10001],
  state: 'TASK_RUNNING',
  stagedAt: 1_700_000_000_000,
  startedAt: 1_700_000_001_000,
  hasHealthCheck: true,
  healthy: true,
  ready: true,
  killing: false,
  unreachableSince: 1_700_000_002_000,
  message: 'running',
};

describe('readInstance', () => {
  it('reads a stored instance back equal, and names the instance and the field of one that does not match', () => {
    assertReaderChecksEveryField(readInstance, INSTANCE, {
      kind: 'instance',
      optional: ['servicePorts', 'startedAt', 'healthy', 'unreachableSince', 'message'],
    });
  });

  it('reads an instance stored before service ports were kept', () => {
    const { servicePorts: _servicePorts, ...old } = INSTANCE;
    assert.deepEqual(readInstance(JSON.parse(JSON.stringify(old))), old);
  });

  it('refuses a task state Mesos does not have, and a port that is not a number', () => {
    const state = failureOf(() => readInstance({ ...INSTANCE, state: 'TASK_SLEEPING' }));
    assert.equal(state.field, 'state');
    assert.match(state.message, /^stored instance web\.instance-1 of app \/web cannot be read: state must be one of TASK_STAGING/);
    assert.equal(failureOf(() => readInstance({ ...INSTANCE, ports: [31000, '31001'] })).field, 'ports[1]');
  });
});
