import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidCall, parseCall } from './parse-call.ts';

describe('parseCall', () => {
  it('accepts well-formed calls of every type', () => {
    const fid = { value: 'f1' };
    const calls = [
      { type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'n', roles: ['a'] } } },
      { type: 'TEARDOWN', framework_id: fid },
      { type: 'ACCEPT', framework_id: fid, accept: { offer_ids: [{ value: 'o' }], operations: [], filters: { refuse_seconds: 1 } } },
      { type: 'DECLINE', framework_id: fid, decline: { offer_ids: [{ value: 'o' }] } },
      { type: 'REVIVE', framework_id: fid },
      { type: 'SUPPRESS', framework_id: fid, suppress: { roles: ['a'] } },
      { type: 'KILL', framework_id: fid, kill: { task_id: { value: 't' } } },
      { type: 'ACKNOWLEDGE', framework_id: fid, acknowledge: { agent_id: { value: 'a' }, task_id: { value: 't' }, uuid: 'AAAA' } },
      { type: 'RECONCILE', framework_id: fid, reconcile: { tasks: [] } },
    ];
    for (const c of calls) assert.equal(parseCall(c).type, c.type);
  });

  it("checks only the offers of an ACCEPT: the master answers its operations one by one, so the offers always go back", () => {
    const fid = { value: 'f1' };
    const call = { type: 'ACCEPT', framework_id: fid, accept: { offer_ids: [{ value: 'o' }], operations: [{ type: 'RESERVE' }, { type: 'LAUNCH', launch: { task_infos: [{ name: '' }] } }] } };
    assert.equal(parseCall(call).type, 'ACCEPT');
  });

  it('refuses malformed calls with the path and what was expected', () => {
    const fid = { value: 'f1' };
    const cases: [unknown, RegExp][] = [
      [[], /JSON object/],
      [{ type: 'NOPE' }, /'type' must be one of SUBSCRIBE/],
      [{ type: 'REVIVE' }, /needs 'framework_id'/],
      [{ type: 'REVIVE', framework_id: 'f1' }, /'framework_id' must be an object/],
      [{ type: 'ACCEPT', framework_id: fid }, /needs the 'accept' object/],
      [{ type: 'ACCEPT', framework_id: fid, accept: { offer_ids: 'o', operations: [] } }, /^accept\.offer_ids: Expected array/],
      [{ type: 'ACCEPT', framework_id: fid, accept: { operations: [] } }, /^accept\.offer_ids/],
      [{ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u' } } }, /^subscribe\.framework_info/],
      [{ type: 'SUBSCRIBE', framework_id: fid, subscribe: { framework_info: { name: 'n' } } }, /must equal 'subscribe\.framework_info\.id'/],
      [{ type: 'KILL', framework_id: fid, kill: {} }, /^kill\.task_id/],
    ];
    for (const [body, message] of cases) assert.throws(() => parseCall(body), (e: unknown) => e instanceof InvalidCall && message.test(e.message), JSON.stringify(body));
  });
});
