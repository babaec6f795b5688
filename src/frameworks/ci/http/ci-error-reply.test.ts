import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StoreWriteFailed } from '../../../store/errors.ts';
import { BuildNotFound, CiConflict, InvalidJob, InvalidPipeline, JobNotFound } from '../ci-errors.ts';
import { ciErrorReply } from './ci-error-reply.ts';

describe('ciErrorReply', () => {
  it('answers an invalid job 422 with {code, message, details}', () => {
    const reply = ciErrorReply(new InvalidJob([{ field: 'repo', message: 'a local path must be absolute' }]));
    assert.deepEqual(reply, { status: 422, body: { code: 'INVALID_JOB', message: 'invalid job', details: [{ field: 'repo', message: 'a local path must be absolute' }] }, internal: false });
  });

  it('answers an invalid pipeline 422 with its problems, line and column', () => {
    const reply = ciErrorReply(new InvalidPipeline([{ path: 'steps[0].image', message: 'must be a string', line: 3, column: 12 }]));
    assert.equal(reply.status, 422);
    assert.deepEqual(reply.body, { code: 'INVALID_PIPELINE', message: 'invalid pipeline', details: [{ path: 'steps[0].image', message: 'must be a string', line: 3, column: 12 }] });
  });

  it('answers other errors {code, message} with their status', () => {
    assert.deepEqual(ciErrorReply(new JobNotFound('hello')), { status: 404, body: { code: 'CI_NOT_FOUND', message: 'no job hello' }, internal: false });
    assert.deepEqual(ciErrorReply(new BuildNotFound('hello', 7)), { status: 404, body: { code: 'CI_NOT_FOUND', message: 'no build hello #7' }, internal: false });
    assert.deepEqual(ciErrorReply(new CiConflict('build hello #1 has ended (success)')).status, 409);
  });

  it('answers a store outage 503 with its code, not 500', () => {
    const reply = ciErrorReply(new StoreWriteFailed('ci store: change 1 of 1 (job hello) failed; nothing of the batch was written: database is locked', undefined));
    assert.equal(reply.status, 503);
    assert.equal(reply.body.code, 'STORE_WRITE_FAILED');
    assert.match(reply.body.message, /nothing of the batch was written/);
  });

  it("keeps the HTTP framework's 4xx as HTTP_ERROR, and tells nothing of a bug", () => {
    assert.deepEqual(ciErrorReply(Object.assign(new Error('Unsupported Media Type'), { statusCode: 415 })), { status: 415, body: { code: 'HTTP_ERROR', message: 'Unsupported Media Type' }, internal: false });
    assert.deepEqual(ciErrorReply(new RangeError('secret detail')), { status: 500, body: { code: 'HTTP_ERROR', message: 'internal error' }, internal: true });
  });
});
