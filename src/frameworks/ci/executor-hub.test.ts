import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { tokenDigest } from '../../lib/token-digest.ts';
import { ExecutorHub, type ExecutorConnection, type ExecutorTokenKind } from './executor-hub.ts';
import type { ExecutorRecord } from './executor-record.ts';
import type { ServerToExecutor } from './executor-protocol.ts';

const TTL = 10 * 60_000;

/** A hub over two executors CI launched now, with the hellos it passed on. */
function hub() {
  const clock = new ManualClock();
  const records = new Map<string, ExecutorRecord>();
  for (const id of ['e1', 'e2']) {
    records.set(id, {
      id,
      label: 'default',
      launchTokenDigest: tokenDigest(`launch-${id}`),
      launchTokenExpiresAt: clock.now() + TTL,
      taskId: `task-${id}`,
      agentId: 'a1',
      hostname: 'h1',
      state: 'launching',
      launchedAt: clock.now(),
    });
  }
  const hellos: { id: string; via: ExecutorTokenKind }[] = [];
  const h = new ExecutorHub({ clock, executor: (id) => records.get(id), onHello: (hello, via) => hellos.push({ id: hello.executorId, via }), onReport: () => undefined });
  const connect = (id: string, token: string) => {
    const sent: ServerToExecutor[] = [];
    let closed = false;
    const conn: ExecutorConnection = { send: (m) => sent.push(m), close: () => (closed = true) };
    const taken = h.connected({ type: 'HELLO', executorId: id, label: 'default', hostname: 'h1' }, token, conn);
    return { taken, sent, closed: () => closed };
  };
  return { clock, records, hellos, hub: h, connect };
}

describe('ExecutorHub: executor tokens', () => {
  it('takes the launch token of that executor only, before its TTL, and says it was the launch token', () => {
    const w = hub();
    assert.equal(w.connect('e1', 'launch-e1').taken, true);
    assert.deepEqual(w.hellos, [{ id: 'e1', via: 'launch' }]);
    // Bound to its executor: e2's token does not prove e1, nor a token of another length or one character off.
    for (const wrong of ['launch-e2', 'launch-e', 'launch-e1x', 'launch-e0', '']) {
      const c = w.connect('e1', wrong);
      assert.equal(c.taken, false, wrong);
      assert.equal(c.closed(), true);
      assert.match(JSON.stringify(c.sent), /unknown executor e1, or its token is wrong or expired/);
    }
    assert.equal(w.connect('nobody', 'launch-e1').taken, false);
  });

  it('refuses the launch token once its TTL is past', () => {
    const w = hub();
    w.clock.advance(TTL - 1);
    assert.ok(w.hub.authenticate('e1', 'launch-e1') !== undefined);
    w.clock.advance(1);
    assert.equal(w.hub.authenticate('e1', 'launch-e1'), undefined);
    assert.equal(w.connect('e1', 'launch-e1').taken, false);
  });

  it('takes the session token for as long as the executor lives, past the TTL, and nothing once it ended', () => {
    const w = hub();
    w.records.set('e1', { ...w.records.get('e1')!, sessionTokenDigest: tokenDigest('session-e1') });
    w.clock.advance(TTL * 10);
    assert.equal(w.connect('e1', 'session-e1').taken, true);
    assert.deepEqual(w.hellos, [{ id: 'e1', via: 'session' }]);
    assert.equal(w.hub.authenticate('e2', 'session-e1'), undefined, 'bound to e1');
    // The executor ended: its record is gone, and so is what its tokens proved.
    w.records.delete('e1');
    assert.equal(w.hub.authenticate('e1', 'session-e1'), undefined);
    assert.equal(w.connect('e1', 'session-e1').taken, false);
  });
});
