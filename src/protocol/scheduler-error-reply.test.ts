import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SchedulerCallRefused } from '../core/errors.ts';
import { FrameworkNotSubscribed, MissingStreamId } from '../master/errors.ts';
import { StoreWriteFailed } from '../store/errors.ts';
import { InvalidCall } from './parse-call.ts';
import { schedulerCallRefusal, schedulerErrorReply } from './scheduler-error-reply.ts';

describe('schedulerErrorReply and schedulerCallRefusal', () => {
  it('answers as Mesos does: the status of the error, its message as the body', () => {
    assert.deepEqual(schedulerErrorReply(new InvalidCall("'type' is required")), { status: 400, message: "'type' is required", internal: false });
    assert.deepEqual(schedulerErrorReply(new MissingStreamId('no Mesos-Stream-Id')), { status: 400, message: 'no Mesos-Stream-Id', internal: false });
    assert.deepEqual(schedulerErrorReply(new FrameworkNotSubscribed('framework f1 is not subscribed')), { status: 403, message: 'framework f1 is not subscribed', internal: false });
  });

  it('answers a store outage 503, not 500', () => {
    assert.equal(schedulerErrorReply(new StoreWriteFailed('master store: nothing of the batch was written: disk full', new Error('SQLITE_FULL'))).status, 503);
  });

  it('gives the in-process transport the same status and message as the HTTP answer', () => {
    for (const error of [new InvalidCall('bad call'), new FrameworkNotSubscribed('not subscribed'), new StoreWriteFailed('write failed', undefined)]) {
      const refusal = schedulerCallRefusal(error);
      assert.ok(refusal instanceof SchedulerCallRefused);
      const http = schedulerErrorReply(error);
      assert.deepEqual({ status: refusal.status, message: refusal.message }, { status: http.status, message: http.message });
    }
  });

  it('passes a refusal on as is, and a bug too (its stack kept)', () => {
    const refused = new SchedulerCallRefused(403, 'removed');
    assert.equal(schedulerCallRefusal(refused), refused);
    const bug = new TypeError('oops');
    assert.equal(schedulerCallRefusal(bug), bug);
  });
});
