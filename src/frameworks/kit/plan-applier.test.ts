import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlanApplier, type Plan } from './plan-applier.ts';

type Change = { key: string; durable: boolean };

/** An applier over a list "store" and a map "memory", recording the order of what it does. */
function harness() {
  const order: string[] = [];
  const stored: string[] = [];
  const memory = new Map<string, boolean>();
  let refuse = false;
  const applier = new PlanApplier<Change, string, string, Plan<Change, string>>({
    toStore: (c) => (c.durable ? c.key : undefined),
    write: async (keys) => {
      await Promise.resolve();
      if (refuse) throw new Error('refused');
      order.push(`write ${keys.join(',')}`);
      stored.push(...keys);
    },
    apply: (c) => {
      order.push(`apply ${c.key}`);
      memory.set(c.key, true);
    },
    send: (call) => order.push(`send ${call.type}`),
    publish: (e) => order.push(`publish ${e}`),
    log: () => undefined,
  });
  const plan = (...changes: Change[]): Plan<Change, string> => ({ changes, calls: [{ type: 'REVIVE', revive: { roles: ['*'] } }], events: ['e'], log: [], pass: false });
  return { applier, order, stored, memory, plan, refuse: (v: boolean) => (refuse = v) };
}

describe('PlanApplier', () => {
  it('writes the store batch, then applies to memory, then sends the calls, then publishes the events', async () => {
    const h = harness();
    const result = await h.applier.turn(() => ({ plan: h.plan({ key: 'a', durable: true }, { key: 'soft', durable: false }), result: 42 }));
    assert.equal(result, 42);
    assert.deepEqual(h.order, ['write a', 'apply a', 'apply soft', 'send REVIVE', 'publish e']);
  });

  it('applies nothing, sends nothing, when the store refuses the batch', async () => {
    const h = harness();
    h.refuse(true);
    await assert.rejects(h.applier.turn(() => ({ plan: h.plan({ key: 'a', durable: true }, { key: 'soft', durable: false }), result: undefined })), /refused/);
    assert.deepEqual(h.order, []);
    assert.equal(h.memory.size, 0, 'memory never ahead of the store');
  });

  it('runs each decision only once the turns before it are applied', async () => {
    const h = harness();
    const seen: number[] = [];
    const first = h.applier.turn(() => ({ plan: h.plan({ key: 'a', durable: true }), result: undefined }));
    const second = h.applier.turn(() => {
      seen.push(h.memory.size);
      return { plan: h.plan({ key: 'b', durable: true }), result: undefined };
    });
    await Promise.all([first, second]);
    assert.deepEqual(seen, [1], 'the second decision read the first plan applied');
    assert.deepEqual(h.stored, ['a', 'b']);
  });

  it('changes nothing when a decision throws, and goes on with the next turn', async () => {
    const h = harness();
    await assert.rejects(h.applier.turn(() => {
      throw new Error('409 locked');
    }), /409 locked/);
    await h.applier.turn(() => ({ plan: h.plan({ key: 'a', durable: true }), result: undefined }));
    assert.deepEqual(h.stored, ['a']);
    assert.equal(h.applier.idle, true);
  });
});
