import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../src/core/clock.ts';
import { SchedulerCallRefused } from '../src/core/errors.ts';
import { Resources } from '../src/core/resources.ts';
import { buildMasterApp } from '../src/master/http/master-app.ts';
import { Master } from '../src/master/master.ts';
import type { Event, SubscribeCall } from '../src/protocol/scheduler.ts';
import type { SchedulerTransport } from '../src/protocol/scheduler-transport.ts';
import { HttpScheduler } from '../src/sdk/http-scheduler.ts';
import { InProcessScheduler } from '../src/server/in-process-scheduler.ts';
import { waitUntil } from './support/wait.ts';
import { memoryAuth } from './support/memory-auth.ts';

/**
 * One suite for both carriers of the scheduler API: a framework must see the same calls, events
 * and errors in process (built-in frameworks) and over HTTP (everyone else).
 */
const TRANSPORTS: [string, (master: Master) => Promise<{ transport: SchedulerTransport; close: () => Promise<void> }>][] = [
  ['in process', async (master) => ({ transport: new InProcessScheduler(master), close: async () => undefined })],
  [
    'over HTTP',
    async (master) => {
      const { auth, adminToken } = await memoryAuth();
      const app: FastifyInstance = await buildMasterApp(master, { version: 'test', auth });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      return { transport: new HttpScheduler(`http://127.0.0.1:${port}`, adminToken), close: () => app.close() };
    },
  ],
];

const subscribeCall = (name: string, id?: string): SubscribeCall => ({
  type: 'SUBSCRIBE',
  ...(id !== undefined ? { framework_id: { value: id } } : {}),
  subscribe: { framework_info: { user: 't', name, roles: ['*'], failover_timeout: 60, ...(id !== undefined ? { id: { value: id } } : {}) } },
});

for (const [name, make] of TRANSPORTS) {
  describe(`the scheduler API ${name}`, () => {
    let master: Master;
    let close: () => Promise<void>;
    let transport: SchedulerTransport;

    before(async () => {
      master = new Master({ clock: new SystemClock(), masterId: 'conf', heartbeatIntervalSeconds: 3600 });
      master.start();
      master.registerAgent({ type: 'REGISTER', hostname: 'h1', resources: Resources.parse('cpus:2;mem:1024').toJSON(), attributes: [], tasks: [], frameworks: [] }, { send: () => undefined, close: () => undefined });
      ({ transport, close } = await make(master));
    });

    after(async () => {
      master.stop();
      await close();
    });

    it('resolves subscribe after SUBSCRIBED, then delivers offers in order', async () => {
      const events: Event[] = [];
      const sub = await transport.subscribe(subscribeCall('a'), { onEvent: (e) => events.push(e), onClose: () => undefined });
      assert.equal(events[0]?.type, 'SUBSCRIBED');
      assert.ok(sub.frameworkId.startsWith('conf-'));
      const offers = await waitUntil(() => events.find((e) => e.type === 'OFFERS'), 'an offer');
      assert.equal(offers.type === 'OFFERS' && offers.offers.offers[0]?.hostname, 'h1');
      await sub.call({ type: 'TEARDOWN', framework_id: { value: sub.frameworkId } });
    });

    it('delivers the offers that follow SUBSCRIBED only once subscribe has resolved, so they can be declined', async () => {
      let resolved = false;
      let offersBeforeResolved = 0;
      const events: Event[] = [];
      const sub = await transport.subscribe(subscribeCall('early'), {
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'OFFERS' && !resolved) offersBeforeResolved++;
        },
        onClose: () => undefined,
      });
      resolved = true;
      const offers = await waitUntil(() => events.find((e) => e.type === 'OFFERS'), 'an offer');
      assert.equal(offersBeforeResolved, 0);
      assert.ok(offers.type === 'OFFERS');
      await sub.call({ type: 'DECLINE', framework_id: { value: sub.frameworkId }, decline: { offer_ids: offers.offers.offers.map((o) => o.id) } });
      await sub.call({ type: 'TEARDOWN', framework_id: { value: sub.frameworkId } });
    });

    it('never delivers an event from inside a call', async () => {
      let inCall = false;
      let reentered = false;
      const events: Event[] = [];
      const sub = await transport.subscribe(subscribeCall('b'), {
        onEvent: (e) => {
          if (inCall) reentered = true;
          events.push(e);
        },
        onClose: () => undefined,
      });
      const offer = await waitUntil(() => events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []))[0], 'an offer');
      inCall = true;
      const pending = sub.call({ type: 'DECLINE', framework_id: { value: sub.frameworkId }, decline: { offer_ids: [offer.id], filters: { refuse_seconds: 0 } } });
      inCall = false;
      await pending;
      assert.equal(reentered, false);
      await sub.call({ type: 'TEARDOWN', framework_id: { value: sub.frameworkId } });
    });

    it('refuses a bad call with the status and message the HTTP API gives', async () => {
      const sub = await transport.subscribe(subscribeCall('c'), { onEvent: () => undefined, onClose: () => undefined });
      const bad = { type: 'ACCEPT', framework_id: { value: sub.frameworkId }, accept: { offer_ids: 'nope', operations: [] } } as unknown as Parameters<typeof sub.call>[0];
      await assert.rejects(sub.call(bad), (e: unknown) => e instanceof SchedulerCallRefused && e.status === 400 && /accept\.offer_ids/.test(e.message));
      const badRole: SubscribeCall = { type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x', roles: ['no such role!'] } } };
      await assert.rejects(transport.subscribe(badRole, { onEvent: () => undefined, onClose: () => undefined }), (e: unknown) => e instanceof SchedulerCallRefused && e.status === 400 && /not a valid role/.test(e.message));
      await sub.call({ type: 'TEARDOWN', framework_id: { value: sub.frameworkId } });
    });

    it('ends the stream with the reason on TEARDOWN and on failover', async () => {
      let reason = '';
      const sub = await transport.subscribe(subscribeCall('d'), { onEvent: () => undefined, onClose: (r) => (reason = r) });
      const again = await transport.subscribe(subscribeCall('d', sub.frameworkId), { onEvent: () => undefined, onClose: () => undefined });
      await waitUntil(() => reason !== '' || undefined, 'the old stream to end');
      assert.match(reason, /failed over/);
      await assert.rejects(sub.call({ type: 'REVIVE', framework_id: { value: sub.frameworkId } }), (e: unknown) => e instanceof SchedulerCallRefused && e.status === 403);
      let closed = '';
      const third = await transport.subscribe(subscribeCall('e'), { onEvent: () => undefined, onClose: (r) => (closed = r) });
      await third.call({ type: 'TEARDOWN', framework_id: { value: third.frameworkId } });
      await waitUntil(() => closed !== '' || undefined, 'the stream to end');
      assert.match(closed, /torn down/);
      again.close();
      await waitUntil(() => master.frameworkView(again.frameworkId)?.connected === false || undefined, 'the master to see the framework disconnected');
    });
  });
}
