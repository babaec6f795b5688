import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DropReason } from './marathon-event-bus.ts';
import { MarathonEventBus } from './marathon-event-bus.ts';
import type { MarathonEvent } from './marathon-events.ts';
import {
  MARATHON_EVENT_TYPES,
  appTerminatedEvent,
  deploymentInfo,
  deploymentPlanJson,
  deploymentSuccess,
  eventStreamAttached,
  schedulerDisconnectedEvent,
  unhealthyInstanceKillEvent,
} from './marathon-events.ts';

const T0 = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
const terminated = (appId: string) => appTerminatedEvent({ appId }, T0);
const ids = (events: MarathonEvent[]) => events.map((e) => ('appId' in e ? e.appId : e.eventType));

describe('Marathon events', () => {
  it('carries its own fields first and eventType, timestamp last, as Marathon writes them', () => {
    const e = eventStreamAttached({ remoteAddress: '127.0.0.1' }, T0);
    assert.equal(JSON.stringify(e), '{"remoteAddress":"127.0.0.1","eventType":"event_stream_attached","timestamp":"2024-01-02T03:04:05.678Z"}');
  });

  it('stamps events with the current time unless told when they happened', () => {
    const before = Date.now();
    const e = schedulerDisconnectedEvent({});
    assert.ok(Date.parse(e.timestamp) >= before && Date.parse(e.timestamp) <= Date.now());
    assert.equal(appTerminatedEvent({ appId: '/a' }, '2015-09-30T12:44:45.681Z').timestamp, '2015-09-30T12:44:45.681Z');
  });

  it('leaves an unknown agent out of unhealthy_instance_kill_event, as Marathon does', () => {
    const e = unhealthyInstanceKillEvent({ appId: '/a', taskId: 't', instanceId: 'i', version: 'v', reason: '500', host: 'h' }, T0);
    assert.equal('slaveId' in JSON.parse(JSON.stringify(e)), false);
  });

  it('writes deployment plans in the light format: id, steps and version only', () => {
    const plan = deploymentPlanJson({
      id: 'p1',
      version: '2024-01-02T03:04:05.678Z',
      steps: [{ actions: [{ action: 'StartApplication', app: '/a' }] }],
      // What the planner's DeploymentPlan also has: not written.
      ...{ original: new Map(), target: new Map(), affectedApps: ['/a'] },
    });
    assert.deepEqual(plan, { id: 'p1', steps: [{ actions: [{ action: 'StartApplication', app: '/a' }] }], version: '2024-01-02T03:04:05.678Z' });
    assert.deepEqual(Object.keys(deploymentSuccess({ id: 'p1', plan }, T0)), ['id', 'plan', 'eventType', 'timestamp']);
  });

  it('lists every event type once', () => {
    assert.equal(new Set(MARATHON_EVENT_TYPES).size, MARATHON_EVENT_TYPES.length);
    assert.ok(MARATHON_EVENT_TYPES.includes('instance_health_changed_event'));
  });
});

describe('MarathonEventBus', () => {
  it('delivers every event to every subscriber in publish order', () => {
    const bus = new MarathonEventBus();
    const a: MarathonEvent[] = [];
    const b: MarathonEvent[] = [];
    bus.subscribe(undefined, (e) => void a.push(e));
    bus.subscribe(new Set(), (e) => void b.push(e));
    for (const id of ['/1', '/2', '/3']) bus.publish(terminated(id));
    assert.deepEqual(ids(a), ['/1', '/2', '/3']);
    assert.deepEqual(ids(b), ['/1', '/2', '/3']);
  });

  it('gives a filtered subscriber only the event types it named, known or not', () => {
    const bus = new MarathonEventBus();
    const got: MarathonEvent[] = [];
    bus.subscribe(new Set(['app_terminated_event', 'no_such_event']), (e) => void got.push(e));
    bus.publish(eventStreamAttached({ remoteAddress: 'x' }, T0));
    bus.publish(terminated('/a'));
    assert.deepEqual(ids(got), ['/a']);
  });

  it('keeps one order for all subscribers when a listener publishes', () => {
    const bus = new MarathonEventBus();
    const first: MarathonEvent[] = [];
    const second: MarathonEvent[] = [];
    bus.subscribe(undefined, (e) => {
      first.push(e);
      if ('appId' in e && e.appId === '/1') bus.publish(terminated('/echo'));
    });
    bus.subscribe(undefined, (e) => void second.push(e));
    bus.publish(terminated('/1'));
    bus.publish(terminated('/2'));
    assert.deepEqual(ids(first), ['/1', '/echo', '/2']);
    assert.deepEqual(ids(second), ['/1', '/echo', '/2']);
  });

  it('waits for an asynchronous listener before handing it the next event', async () => {
    const bus = new MarathonEventBus();
    const got: string[] = [];
    let release!: () => void;
    bus.subscribe(undefined, (e) => {
      got.push(ids([e])[0] ?? '');
      if (got.length === 1) return new Promise<void>((resolve) => (release = resolve));
    });
    bus.publish(terminated('/1'));
    bus.publish(terminated('/2'));
    bus.publish(terminated('/3'));
    assert.deepEqual(got, ['/1']);
    release();
    await Promise.resolve();
    assert.deepEqual(got, ['/1', '/2', '/3']);
  });

  it('stops delivering after unsubscribe, which may be called twice', () => {
    const bus = new MarathonEventBus();
    const got: MarathonEvent[] = [];
    const unsubscribe = bus.subscribe(undefined, (e) => void got.push(e));
    assert.equal(bus.subscriberCount, 1);
    unsubscribe();
    unsubscribe();
    assert.equal(bus.subscriberCount, 0);
    bus.publish(terminated('/a'));
    assert.deepEqual(got, []);
  });

  it('drops a subscriber with more than the allowed number of events waiting, and no one else', () => {
    const bus = new MarathonEventBus({ maxQueuedPerSubscriber: 3 });
    const drops: DropReason[] = [];
    let handed = 0;
    // Never finishes with its first event.
    bus.subscribe(undefined, () => {
      handed++;
      return new Promise<void>(() => undefined);
    }, { onDrop: (reason) => drops.push(reason) });
    const fast: MarathonEvent[] = [];
    bus.subscribe(undefined, (e) => void fast.push(e));

    for (let i = 1; i <= 4; i++) bus.publish(terminated(`/${i}`)); // one being handled, three waiting
    assert.equal(bus.subscriberCount, 2);
    assert.deepEqual(drops, []);
    bus.publish(terminated('/5')); // a fourth waiting: dropped
    assert.deepEqual(drops, [{ kind: 'slow-subscriber', queued: 4 }]);
    assert.equal(bus.subscriberCount, 1);
    assert.equal(handed, 1);
    bus.publish(terminated('/6'));
    assert.equal(drops.length, 1, 'onDrop is called once');
    assert.deepEqual(ids(fast), ['/1', '/2', '/3', '/4', '/5', '/6']);
  });

  it('counts only the events a filter lets through against the limit', () => {
    const bus = new MarathonEventBus({ maxQueuedPerSubscriber: 1 });
    const drops: DropReason[] = [];
    bus.subscribe(new Set(['deployment_info']), () => new Promise<void>(() => undefined), { onDrop: (r) => drops.push(r) });
    for (let i = 0; i < 100; i++) bus.publish(terminated(`/${i}`));
    assert.deepEqual(drops, []);
    assert.equal(bus.subscriberCount, 1);
  });

  it('drops a listener that throws or rejects, and goes on with the others', async () => {
    const bus = new MarathonEventBus();
    const drops: DropReason[] = [];
    const boom = new Error('boom');
    bus.subscribe(undefined, () => {
      throw boom;
    }, { onDrop: (r) => drops.push(r) });
    bus.subscribe(undefined, () => Promise.reject(boom), { onDrop: (r) => drops.push(r) });
    const ok: MarathonEvent[] = [];
    bus.subscribe(undefined, (e) => void ok.push(e));
    bus.publish(terminated('/a'));
    await Promise.resolve();
    await Promise.resolve();
    assert.deepEqual(drops, [
      { kind: 'listener-failed', error: boom },
      { kind: 'listener-failed', error: boom },
    ]);
    assert.equal(bus.subscriberCount, 1);
    assert.deepEqual(ids(ok), ['/a']);
  });

  it('delivers a deployment_info event unchanged', () => {
    const bus = new MarathonEventBus();
    const got: MarathonEvent[] = [];
    bus.subscribe(undefined, (e) => void got.push(e));
    const step = { actions: [{ action: 'ScaleApplication' as const, app: '/a' }] };
    const e = deploymentInfo({ plan: { id: 'p', steps: [step], version: 'v' }, currentStep: step }, T0);
    bus.publish(e);
    assert.equal(got[0], e);
  });
});
