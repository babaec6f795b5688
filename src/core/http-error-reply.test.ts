import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SchedulerCallRefused, SlipwayError } from './errors.ts';
import { httpErrorReply } from './http-error-reply.ts';

class Teapot extends SlipwayError {
  readonly code = 'TEAPOT';
  readonly status = 418;
}

/** An error whose class broke the contract (a refusal relayed with a redirect's status, say). */
class Misdeclared extends SlipwayError {
  readonly code = 'MISDECLARED';
  readonly status = 302;
}

describe('httpErrorReply', () => {
  it('answers a SlipwayError with the status its class declares and its message', () => {
    assert.deepEqual(httpErrorReply(new Teapot('short and stout')), { status: 418, message: 'short and stout', internal: false });
  });

  it('answers a refused scheduler call with the status the master gave', () => {
    assert.deepEqual(httpErrorReply(new SchedulerCallRefused(403, 'framework f1 is not subscribed')), { status: 403, message: 'framework f1 is not subscribed', internal: false });
  });

  it("keeps the 4xx status and message of the HTTP framework's own refusals (malformed JSON)", () => {
    const fastifyError = Object.assign(new SyntaxError('Unexpected end of JSON input'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    assert.deepEqual(httpErrorReply(fastifyError), { status: 400, message: 'Unexpected end of JSON input', internal: false });
  });

  it('answers a bug 500 without its message, and flags it for the log', () => {
    assert.deepEqual(httpErrorReply(new TypeError("cannot read properties of undefined (reading 'id')")), { status: 500, message: 'internal error', internal: true });
    assert.deepEqual(httpErrorReply('a thrown string'), { status: 500, message: 'internal error', internal: true });
    assert.deepEqual(httpErrorReply(null), { status: 500, message: 'internal error', internal: true });
  });

  it('never sends a status out of 400-599 as if it were an answer', () => {
    assert.deepEqual(httpErrorReply(new Misdeclared('moved')), { status: 500, message: 'internal error', internal: true });
    assert.deepEqual(httpErrorReply(new SchedulerCallRefused(0, 'no answer')), { status: 500, message: 'internal error', internal: true });
  });
});
