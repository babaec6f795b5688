import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../core/document-reader-test-support.ts';
import { readTaskCheckpoint, type TaskCheckpoint } from './task-checkpoint.ts';

const CHECKPOINT: TaskCheckpoint = {
  framework: { name: 'marathon', id: { value: 'fw-1' }, roles: ['web'] },
  info: {
    name: 'web',
    task_id: { value: 'web.1' },
    agent_id: { value: 'agent-1' },
    resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 0.5 } }],
    command: { value: 'sleep 1000' },
  },
  sandbox: '/var/lib/slipway/sandboxes/fw-1/web.1',
  containerizer: 'process',
  ref: { kind: 'process', pid: 4242, startTime: '123456', sandbox: '/var/lib/slipway/sandboxes/fw-1/web.1', meta: '/var/lib/slipway/meta/tasks/fw-1/web.1/container' },
  state: 'TASK_RUNNING',
  killRequested: true,
  killGraceMs: 3_000,
  killReason: 'health check failed',
  killStatusReason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED',
  frameworkShutDown: false,
  user: { name: 'nobody', uid: 65534, gid: 65534, groups: [65534], home: '/nonexistent' },
};

describe('readTaskCheckpoint', () => {
  const read = (doc: unknown) => readTaskCheckpoint(doc, '/meta/tasks/fw-1/web.1');

  it('reads a checkpoint back equal, and names the checkpoint and the field of one that does not match', () => {
    assertReaderChecksEveryField(read, CHECKPOINT, {
      kind: 'task checkpoint',
      optional: ['containerizer', 'ref', 'killRequested', 'killGraceMs', 'killReason', 'killStatusReason', 'frameworkShutDown', 'user'],
    });
    const docker: TaskCheckpoint = { ...CHECKPOINT, containerizer: 'docker', ref: { kind: 'docker', containerId: 'c0ffee', name: 'slipway-web.1', sandbox: '/s' } };
    assert.deepEqual(read(JSON.parse(JSON.stringify(docker))), docker);
  });

  it('names the field of its framework, task info or container that does not match', () => {
    const noId = failureOf(() => read({ ...CHECKPOINT, framework: { name: 'marathon' } }));
    assert.equal(noId.document, 'task checkpoint /meta/tasks/fw-1/web.1');
    assert.equal(noId.field, 'framework.id');
    assert.equal(failureOf(() => read({ ...CHECKPOINT, info: { ...CHECKPOINT.info, task_id: {} } })).field, 'info.task_id.value');
    assert.equal(failureOf(() => read({ ...CHECKPOINT, ref: { kind: 'process', pid: 'x', startTime: '1', sandbox: '/s' } })).field, 'ref.pid');
    assert.equal(failureOf(() => read({ ...CHECKPOINT, killStatusReason: 'BECAUSE' })).field, 'killStatusReason');
    assert.equal(failureOf(() => read({ ...CHECKPOINT, ref: { ...CHECKPOINT.ref, meta: 7 } })).field, 'ref.meta');
    assert.equal(failureOf(() => read({ ...CHECKPOINT, user: { ...CHECKPOINT.user, uid: '65534' } })).field, 'user.uid');
  });
});
