import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.ts';
import type { TaskState } from '../core/task-state.ts';
import { pathSegment } from './path-segment.ts';
import { StatusUpdateManager, type StatusUpdate } from './status-update-manager.ts';

function status(task: string, state: TaskState, uuid: string): StatusUpdate {
  return { task_id: { value: task }, state, uuid };
}

function manager(dir: string, clock: ManualClock, sent: [string, string, TaskState][], connected = () => true) {
  return new StatusUpdateManager({
    dir,
    clock,
    retryMs: 1000,
    send: (fw, s, latest) => {
      if (!connected()) return false;
      sent.push([fw, s.uuid, latest]);
      return true;
    },
  });
}

describe('StatusUpdateManager', () => {
  it('sends one update per task at a time, in order, the next after each acknowledgement', () => {
    const clock = new ManualClock();
    const sent: [string, string, TaskState][] = [];
    const m = manager(mkdtempSync(join(tmpdir(), 'sum-')), clock, sent);
    m.update('f', status('t', 'TASK_STARTING', 'a'), 'TASK_STARTING', false);
    m.update('f', status('t', 'TASK_RUNNING', 'b'), 'TASK_RUNNING', false);
    m.update('f', status('u', 'TASK_STARTING', 'c'), 'TASK_STARTING', false);
    assert.deepEqual(sent.map((s) => s[1]), ['a', 'c'], 'one in flight per task');
    assert.equal(sent[0]![2], 'TASK_STARTING');
    m.acknowledge('f', 't', 'zzz'); // stale: ignored
    m.acknowledge('f', 't', 'a');
    assert.deepEqual(sent.map((s) => s[1]), ['a', 'c', 'b']);
  });

  it('resends an unacknowledged update with a doubling interval', () => {
    const clock = new ManualClock(0);
    const sent: [string, string, TaskState][] = [];
    const m = manager(mkdtempSync(join(tmpdir(), 'sum-')), clock, sent);
    m.update('f', status('t', 'TASK_RUNNING', 'a'), 'TASK_RUNNING', false);
    clock.advance(1000);
    assert.equal(sent.length, 2);
    clock.advance(1000);
    assert.equal(sent.length, 2, 'the second resend waits twice as long');
    clock.advance(1000);
    assert.equal(sent.length, 3);
    m.acknowledge('f', 't', 'a');
    clock.advance(60_000);
    assert.equal(sent.length, 3, 'nothing more once acknowledged');
  });

  it('recovers its streams from disk after a restart and forgets a finished, acknowledged task', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sum-'));
    const clock = new ManualClock();
    const first: [string, string, TaskState][] = [];
    const m1 = manager(dir, clock, first);
    m1.update('f', status('t', 'TASK_STARTING', 'a'), 'TASK_STARTING', false);
    m1.update('f', status('t', 'TASK_RUNNING', 'b'), 'TASK_RUNNING', false);
    m1.acknowledge('f', 't', 'a');
    m1.update('f', status('t', 'TASK_FINISHED', 'c'), 'TASK_FINISHED', true);
    m1.stop();
    // A new process: it must resend b (unacknowledged), then c, and nothing already acknowledged.
    const second: [string, string, TaskState][] = [];
    const m2 = manager(dir, clock, second);
    m2.recover();
    assert.equal(m2.pending('f', 't'), 2);
    assert.deepEqual(m2.latestStates(), [{ frameworkId: 'f', taskId: 't', latest: 'TASK_FINISHED' }]);
    m2.resendAll();
    assert.deepEqual(second.map((s) => [s[1], s[2]]), [['b', 'TASK_FINISHED']], 'the head goes out with the latest state');
    m2.acknowledge('f', 't', 'b');
    m2.acknowledge('f', 't', 'c');
    assert.equal(m2.pending('f', 't'), 0);
    assert.equal(existsSync(join(dir, pathSegment('f'), pathSegment('t'))), false, 'the stream of an ended, acknowledged task is deleted');
  });

  it('keeps updates while disconnected and sends them on resendAll', () => {
    const clock = new ManualClock();
    const sent: [string, string, TaskState][] = [];
    let up = false;
    const m = manager(mkdtempSync(join(tmpdir(), 'sum-')), clock, sent, () => up);
    m.update('f', status('t', 'TASK_RUNNING', 'a'), 'TASK_RUNNING', false);
    assert.equal(sent.length, 0);
    up = true;
    m.resendAll();
    assert.deepEqual(sent.map((s) => s[1]), ['a']);
  });
});
