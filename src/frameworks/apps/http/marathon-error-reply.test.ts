import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StoreClosed, StoreWriteFailed } from '../../../store/errors.ts';
import { StoreUnavailable } from '../../../lib/write-queue.ts';
import { AppLocked, AppNotFound } from '../apps-errors.ts';
import { MarathonValidationError } from '../marathon-error.ts';
import { marathonErrorReply } from './marathon-error-reply.ts';

describe('marathonErrorReply', () => {
  it("answers an invalid app 422 with Marathon's {message, details:[{path, errors}]}", () => {
    const reply = marathonErrorReply(new MarathonValidationError([{ path: '/cpus', errors: ['must be >= 0'] }]));
    assert.deepEqual(reply, { status: 422, body: { message: 'Object is not valid', details: [{ path: '/cpus', errors: ['must be >= 0'] }] }, internal: false });
  });

  it('answers a locked app 409 with the deployments that hold it', () => {
    const reply = marathonErrorReply(new AppLocked(['d1', 'd2']));
    assert.equal(reply.status, 409);
    assert.deepEqual(reply.body.deployments, [{ id: 'd1' }, { id: 'd2' }]);
    assert.match(reply.body.message, /^App is locked by one or more deployments/);
  });

  it('answers other errors {message} with their status', () => {
    assert.deepEqual(marathonErrorReply(new AppNotFound('/web')), { status: 404, body: { message: "App '/web' does not exist" }, internal: false });
    assert.deepEqual(marathonErrorReply(new StoreUnavailable('the apps store refused a write')), { status: 503, body: { message: 'the apps store refused a write' }, internal: false });
  });

  it('answers a store outage 503, not 500', () => {
    assert.equal(marathonErrorReply(new StoreWriteFailed('apps store: nothing of the batch was written', undefined)).status, 503);
    assert.equal(marathonErrorReply(new StoreClosed('cannot write: the apps store is closed')).status, 503);
  });

  it('keeps the 400 of malformed JSON, and tells nothing of a bug', () => {
    assert.deepEqual(marathonErrorReply(Object.assign(new Error('Unexpected token'), { statusCode: 400 })), { status: 400, body: { message: 'Unexpected token' }, internal: false });
    assert.deepEqual(marathonErrorReply(new Error('secret detail')), { status: 500, body: { message: 'internal error' }, internal: true });
  });
});
