import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../core/clock.ts';
import { Resources } from '../core/resources.ts';
import type { MasterToAgent } from '../protocol/agent.ts';
import type { Offer, TaskInfo, TaskStatus } from '../protocol/mesos.ts';
import type { Event, FrameworkCall } from '../protocol/scheduler.ts';
import { SimCluster } from '../sim/sim-cluster.ts';
import { AgentNotFound, FrameworkNotSubscribed, FrameworkRemoved, InvalidRequest } from './errors.ts';
import { Master } from './master.ts';

/**
 * The master driven directly: a recording framework connection and recording agent connections
 * on a ManualClock, so every event can be checked. Scale and fairness run on the simulator.
 */
class Harness {
  readonly clock = new ManualClock();
  // Agents of this harness do not heartbeat; tests of liveness use their own master.
  readonly master: Master;
  readonly agentInbox = new Map<string, MasterToAgent[]>();

  constructor(o: { secrets?: Record<string, string> } = {}) {
    const secrets = o.secrets;
    this.master = new Master({ clock: this.clock, masterId: 'm', agentHeartbeatIntervalMs: 3_600_000, ...(secrets !== undefined ? { resolveSecret: (n: string) => (Object.hasOwn(secrets, n) ? secrets[n] : undefined) } : {}) });
    this.master.start();
  }

  addAgent(resources: string, hostname = `host-${this.agentInbox.size}`): string {
    const inbox: MasterToAgent[] = [];
    const id = this.master.registerAgent(
      { type: 'REGISTER', hostname, resources: Resources.parse(resources).toJSON(), attributes: [], tasks: [], frameworks: [] },
      { send: (m) => inbox.push(m), close: () => undefined },
    );
    this.agentInbox.set(id, inbox);
    return id;
  }

  subscribe(name: string, opts: { roles?: string[]; partitionAware?: boolean; failoverTimeout?: number; id?: string } = {}): Fw {
    const fw = new Fw(this);
    fw.id = this.master.subscribe(
      {
        type: 'SUBSCRIBE',
        subscribe: {
          framework_info: {
            name,
            roles: opts.roles ?? ['*'],
            ...(opts.failoverTimeout !== undefined ? { failover_timeout: opts.failoverTimeout } : {}),
            ...(opts.id !== undefined ? { id: { value: opts.id } } : {}),
            capabilities: [{ type: 'MULTI_ROLE' }, ...(opts.partitionAware ? [{ type: 'PARTITION_AWARE' as const }] : [])],
          },
        },
      },
      fw.conn,
    );
    return fw;
  }

  /** Runs what is due now (the coalesced allocation after freed resources). */
  tick(ms = 0): void {
    this.clock.advance(ms);
  }

  /** Sends a status update as agent `agentId` would. */
  update(agentId: string, frameworkId: string, taskId: string, state: TaskStatus['state'], uuid: string): void {
    this.master.agentMessage(agentId, {
      type: 'STATUS_UPDATE',
      framework_id: { value: frameworkId },
      status: { task_id: { value: taskId }, state, uuid, source: 'SOURCE_EXECUTOR', agent_id: { value: agentId } },
      latest_state: state,
    });
  }
}

/** A call without its framework_id, which Fw adds (distributes over the union). */
type CallBody = FrameworkCall extends infer C ? (C extends FrameworkCall ? Omit<C, 'framework_id'> : never) : never;

class Fw {
  id = '';
  events: Event[] = [];
  closed = false;
  readonly conn = { send: (e: Event) => void this.events.push(e), close: () => void (this.closed = true) };

  constructor(private readonly h: Harness) {}

  offers(): Offer[] {
    return this.events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []));
  }

  updates(): TaskStatus[] {
    return this.events.flatMap((e) => (e.type === 'UPDATE' ? [e.update.status] : []));
  }

  take(): Event[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  call(c: CallBody): void {
    this.h.master.call({ ...c, framework_id: { value: this.id } } as FrameworkCall);
  }

  launch(offer: Offer, tasks: Partial<TaskInfo>[], refuseSeconds?: number): void {
    this.call({
      type: 'ACCEPT',
      accept: {
        offer_ids: [offer.id],
        operations: [{ type: 'LAUNCH', launch: { task_infos: tasks.map((t, i) => task(offer, `t${i}`, t)) } }],
        ...(refuseSeconds !== undefined ? { filters: { refuse_seconds: refuseSeconds } } : {}),
      },
    });
  }
}

function task(offer: Offer, id: string, over: Partial<TaskInfo> = {}): TaskInfo {
  return {
    name: id,
    task_id: { value: id },
    agent_id: offer.agent_id,
    resources: Resources.scalars({ cpus: 1, mem: 128 }).toJSON(),
    command: { value: 'sleep 10' },
    ...over,
  };
}

function offered(offers: Offer[]): Resources {
  return offers.reduce((r, o) => r.add(Resources.fromJSON(o.resources)), Resources.EMPTY);
}

describe('Master', () => {
  describe('its store', () => {
    it('makes no offers while its store refuses writes, says why in its health, and offers again once the store takes them', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      h.addAgent('cpus:2;mem:256');
      h.tick();
      assert.equal(fw.offers().length, 1);
      fw.take();
      h.master.setStoreTrouble('no space left on device');
      assert.deepEqual(h.master.health(), { healthy: false, reason: 'the store refuses writes: no space left on device' });
      assert.equal(fw.events.filter((e) => e.type === 'RESCIND').length, 1, 'the outstanding offer is taken back');
      fw.take();
      h.addAgent('cpus:2;mem:256');
      h.tick(5_000);
      assert.equal(fw.offers().length, 0, 'no offer while a launch could not be recorded');
      h.master.setStoreTrouble(undefined);
      assert.deepEqual(h.master.health(), { healthy: true });
      h.tick();
      assert.equal(fw.offers().length, 2, 'both agents are offered again');
    });

    it("forwards a framework's acknowledgement to the agent only once the task state it recorded is durable", () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', journal: true, agentHeartbeatIntervalMs: 3_600_000 });
      master.start();
      const inbox: MasterToAgent[] = [];
      const agent = master.registerAgent({ type: 'REGISTER', hostname: 'h', resources: Resources.parse('cpus:1;mem:128').toJSON(), attributes: [], tasks: [], frameworks: [] }, { send: (m) => inbox.push(m), close: () => undefined });
      const events: Event[] = [];
      const id = master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'a', roles: ['*'] } } }, { send: (e) => void events.push(e), close: () => undefined });
      clock.advance(0);
      const offer = events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []))[0]!;
      master.call({ type: 'ACCEPT', framework_id: { value: id }, accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [task(offer, 't0')] } }] } });
      master.journalDurable(master.journalPosition());
      master.drainChanges();
      master.agentMessage(agent, { type: 'STATUS_UPDATE', framework_id: { value: id }, status: { task_id: { value: 't0' }, state: 'TASK_RUNNING', uuid: 'u1', source: 'SOURCE_EXECUTOR', agent_id: { value: agent } }, latest_state: 'TASK_RUNNING' });
      const position = master.journalPosition();
      const written = master.drainChanges();
      assert.deepEqual(written.map((c) => c.type), ['TASK_SAVED'], 'the new state is journaled');
      master.call({ type: 'ACKNOWLEDGE', framework_id: { value: id }, acknowledge: { agent_id: { value: agent }, task_id: { value: 't0' }, uuid: 'u1' } });
      assert.equal(inbox.filter((m) => m.type === 'ACKNOWLEDGE').length, 0, 'held: the store does not have TASK_RUNNING yet');
      master.journalDurable(position);
      assert.deepEqual(inbox.filter((m) => m.type === 'ACKNOWLEDGE'), [{ type: 'ACKNOWLEDGE', framework_id: { value: id }, task_id: { value: 't0' }, uuid: 'u1' }]);
      master.stop();
    });
  });

  describe('offers', () => {
    it('offers a new agent to a subscribed framework with its resources, role and attributes', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      h.addAgent('cpus:4;mem:1024;ports:[31000-31009]');
      h.tick();
      const [subscribed, ...rest] = fw.events;
      assert.equal(subscribed?.type, 'SUBSCRIBED');
      assert.equal(rest.length, 1);
      const offer = fw.offers()[0]!;
      assert.equal(offer.framework_id.value, fw.id);
      assert.equal(offer.hostname, 'host-0');
      assert.deepEqual(offer.allocation_info, { role: '*' });
      assert.ok(offered([offer]).equals(Resources.parse('cpus:4;mem:1024;ports:[31000-31009]')));
    });

    it('sends HEARTBEAT events every heartbeat interval', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      fw.take();
      h.tick(14_999);
      assert.equal(fw.events.filter((e) => e.type === 'HEARTBEAT').length, 0);
      h.tick(1);
      h.tick(15_000);
      assert.equal(fw.events.filter((e) => e.type === 'HEARTBEAT').length, 2);
    });

    it('offers what an ACCEPT leaves unused to the other frameworks at once', () => {
      const h = new Harness();
      const a = h.subscribe('a');
      const agent = h.addAgent('cpus:4;mem:4096');
      h.tick();
      const b = h.subscribe('b');
      h.tick();
      assert.equal(b.offers().length, 0, 'the whole agent is offered to a');
      a.launch(a.offers()[0]!, [{}]);
      h.tick();
      const leftover = b.offers();
      assert.equal(leftover.length, 1);
      assert.ok(offered(leftover).equals(Resources.parse('cpus:3;mem:3968')));
      assert.equal(leftover[0]!.agent_id.value, agent);
      assert.equal(a.offers().length, 1, 'a gets no new offer: the unused part is filtered for it for 5 s');
    });

    it('never makes two offers that overlap', () => {
      const c = new SimCluster({ seed: 7 });
      for (let i = 0; i < 20; i++) c.addAgent('cpus:4;mem:8192;ports:[31000-31099]');
      for (let i = 0; i < 3; i++) c.addFramework({ name: `f${i}`, tasks: Infinity, taskCpus: 0.5, taskMem: 300, taskDurationMs: 700 + 100 * i });
      for (let step = 0; step < 50; step++) {
        c.advance(200);
        for (const id of c.master.agentIds()) {
          const view = c.master.agentView(id)!;
          // Free + offered + used must be exactly the agent's total, never more.
          const used = c.frameworks.reduce((r, f) => {
            const fv = c.master.frameworkView(f.frameworkId!)!;
            return fv.tasks.filter((t) => t.agentId === id && !t.freed).reduce((x, t) => x.add(t.resources), r);
          }, Resources.EMPTY);
          assert.ok(view.total.contains(used), 'tasks fit the agent');
          assert.ok(view.total.subtract(used).contains(view.free!), 'free is what tasks do not use');
        }
      }
    });

    it('does not offer less than 0.01 cpus or 32 mem', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      h.addAgent('cpus:0.005;mem:16;disk:100');
      h.addAgent('cpus:0.01;mem:0');
      h.addAgent('mem:32');
      h.tick();
      assert.deepEqual(fw.offers().map((o) => o.hostname).sort(), ['host-1', 'host-2']);
    });
  });

  describe('allocation passes in slices', () => {
    it('splits a pass over many agents into slices, deferred one after the other, so that calls are handled between them', () => {
      const clock = new ManualClock();
      const deferred: (() => void)[] = [];
      const passes: [number, number][] = [];
      // A slice of 0 ms: every call to the allocator (500 agents) ends a slice.
      const master = new Master({ clock, masterId: 'm', agentHeartbeatIntervalMs: 3_600_000, allocationSliceMs: 0, defer: (run) => void deferred.push(run), onAllocation: (_ms, offers, longest) => void passes.push([offers, longest]) });
      master.start();
      for (let i = 0; i < 1200; i++) master.registerAgent({ type: 'REGISTER', hostname: `h${i}`, resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], tasks: [], frameworks: [] }, { send: () => undefined, close: () => undefined });
      clock.advance(0);
      const events: Event[] = [];
      const id = master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'a', roles: ['*'] } } }, { send: (e) => void events.push(e), close: () => undefined });
      clock.advance(0);
      const offers = () => events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []));
      assert.equal(offers().length, 0, 'the pass starts on a turn of its own');
      deferred.shift()!();
      assert.equal(offers().length, 500, 'the first slice');
      assert.equal(master.allocating(), true);
      // A call between slices is handled at once, and the pass goes on.
      master.call({ type: 'DECLINE', framework_id: { value: id }, decline: { offer_ids: [offers()[0]!.id], filters: { refuse_seconds: 60 } } });
      deferred.shift()!();
      assert.equal(offers().length, 1000);
      deferred.shift()!();
      assert.equal(offers().length, 1200);
      assert.equal(master.allocating(), false);
      assert.equal(new Set(offers().map((o) => o.agent_id.value)).size, 1200, 'every agent once');
      assert.equal(passes.length, 1);
      assert.equal(passes[0]![0], 1200);
      assert.equal(deferred.length, 0);
      master.stop();
    });
  });

  describe('filters, SUPPRESS and REVIVE', () => {
    it("returns a declined offer's resources to the same framework only after refuse_seconds", () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      h.addAgent('cpus:2;mem:1024');
      h.tick();
      const offers = fw.offers();
      assert.equal(offers.length, 1);
      fw.take();
      fw.call({ type: 'DECLINE', decline: { offer_ids: [offers[0]!.id], filters: { refuse_seconds: 10 } } });
      h.tick(9_999);
      assert.equal(fw.offers().length, 0, 'filtered for 10 s, though batch allocations ran');
      h.tick(1_001); // filter expired at 10 s; the next batch allocation (every 1 s) offers again
      assert.equal(fw.offers().length, 1);
    });

    it('uses a 5 s filter when DECLINE gives none', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.call({ type: 'DECLINE', decline: { offer_ids: [fw.offers()[0]!.id] } });
      fw.take();
      h.tick(4_999);
      assert.equal(fw.offers().length, 0);
      h.tick(1_001);
      assert.equal(fw.offers().length, 1);
    });

    it('offers declined resources to another framework at once', () => {
      const h = new Harness();
      const a = h.subscribe('a');
      h.addAgent('cpus:2;mem:1024');
      h.tick();
      const b = h.subscribe('b');
      h.tick();
      a.call({ type: 'DECLINE', decline: { offer_ids: [a.offers()[0]!.id], filters: { refuse_seconds: 100 } } });
      h.tick();
      assert.equal(b.offers().length, 1);
    });

    it('gives a suppressed framework no offers, and REVIVE brings them back and clears filters', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      fw.call({ type: 'SUPPRESS' });
      h.addAgent('cpus:2;mem:1024');
      h.tick(10_000);
      assert.equal(fw.offers().length, 0);
      fw.call({ type: 'REVIVE' });
      h.tick();
      const first = fw.offers();
      assert.equal(first.length, 1);
      fw.call({ type: 'DECLINE', decline: { offer_ids: [first[0]!.id], filters: { refuse_seconds: 3600 } } });
      fw.take();
      h.tick(2_000);
      assert.equal(fw.offers().length, 0);
      fw.call({ type: 'REVIVE' });
      h.tick();
      assert.equal(fw.offers().length, 1, 'REVIVE cleared the one-hour filter');
    });
  });

  describe('weighted DRF', () => {
    it('ends with dominant shares of 0.25, 0.25 and 0.5 for weights 1, 1 and 2 on a saturated cluster', () => {
      const c = new SimCluster({ seed: 3 });
      for (let i = 0; i < 100; i++) c.addAgent('cpus:8;mem:32768');
      const weights = [1, 1, 2];
      weights.forEach((w, i) => c.master.setWeight(`r${i}`, w));
      // Infinite demand; tasks end after a while, so freed resources keep being re-allocated.
      weights.forEach((_, i) => c.addFramework({ name: `f${i}`, roles: [`r${i}`], tasks: Infinity, taskCpus: 1, taskMem: 1024, taskDurationMs: 4_000 + 300 * i }));
      c.advance(120_000);
      const shares = weights.map((_, i) => c.master.allocator.roleShare(`r${i}`));
      const expected = [0.25, 0.25, 0.5];
      shares.forEach((s, i) => assert.ok(Math.abs(s - expected[i]!) <= 0.02, `role r${i} share ${s}, expected ${expected[i]}`));
      assert.ok(shares.reduce((a, b) => a + b) > 0.95, 'the cluster is saturated');
    });

    it('follows a weight changed at runtime', () => {
      const c = new SimCluster({ seed: 5 });
      for (let i = 0; i < 100; i++) c.addAgent('cpus:8;mem:32768');
      c.addFramework({ name: 'a', roles: ['a'], tasks: Infinity, taskCpus: 1, taskMem: 1024, taskDurationMs: 3_000 });
      c.addFramework({ name: 'b', roles: ['b'], tasks: Infinity, taskCpus: 1, taskMem: 1024, taskDurationMs: 3_100 });
      c.advance(60_000);
      assert.ok(Math.abs(c.master.allocator.roleShare('a') - 0.5) <= 0.02);
      c.master.setWeight('a', 3);
      c.advance(60_000);
      assert.ok(Math.abs(c.master.allocator.roleShare('a') - 0.75) <= 0.02, `share of a: ${c.master.allocator.roleShare('a')}`);
    });

    it('applies DRF among the frameworks of one role', () => {
      const c = new SimCluster({ seed: 9 });
      for (let i = 0; i < 50; i++) c.addAgent('cpus:8;mem:32768');
      c.addFramework({ name: 'x', roles: ['web'], tasks: Infinity, taskCpus: 1, taskMem: 512, taskDurationMs: 3_000 });
      c.addFramework({ name: 'y', roles: ['web'], tasks: Infinity, taskCpus: 1, taskMem: 512, taskDurationMs: 3_000 });
      c.advance(60_000);
      const [x, y] = c.frameworks.map((f) => c.master.allocator.frameworkShare(f.frameworkId!, 'web'));
      assert.ok(Math.abs(x! - y!) <= 0.03, `x ${x} y ${y}`);
    });

    it('keeps a role within its quota limit', () => {
      const c = new SimCluster({ seed: 2 });
      for (let i = 0; i < 10; i++) c.addAgent('cpus:8;mem:32768');
      c.master.setQuota('capped', { cpus: 10 });
      c.addFramework({ name: 'capped', roles: ['capped'], tasks: Infinity, taskCpus: 1, taskMem: 128 });
      c.addFramework({ name: 'free', roles: ['free'], tasks: Infinity, taskCpus: 1, taskMem: 128 });
      c.advance(30_000);
      const capped = c.master.roles().find((r) => r.name === 'capped')!;
      assert.ok((capped.allocated['cpus'] ?? 0) <= 10, `capped role holds ${capped.allocated['cpus']} cpus`);
      assert.equal(c.frameworks[0]!.running, 10);
      assert.equal(c.frameworks[1]!.running, 70);
    });

    it('offers statically reserved resources only to their role', () => {
      const h = new Harness();
      const other = h.subscribe('other', { roles: ['web'] });
      h.addAgent('cpus:2;mem:1024;cpus(ci):4;mem(ci):2048');
      h.tick();
      assert.ok(offered(other.offers()).equals(Resources.parse('cpus:2;mem:1024')));
      const ci = h.subscribe('ci', { roles: ['ci'] });
      h.tick();
      assert.ok(offered(ci.offers()).equals(Resources.parse('cpus(ci):4;mem(ci):2048')));
      assert.equal(ci.offers()[0]!.resources[0]!.reservations?.[0]?.role, 'ci');
    });
  });

  describe('ACCEPT', () => {
    it('refuses tasks that ask for what no containerizer here honours, naming the field', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:8;mem:4096');
      h.tick();
      const offer = fw.offers()[0]!;
      const asks: [Partial<TaskInfo>, RegExp][] = [
        [{ container: { type: 'MESOS', mesos: { image: { type: 'DOCKER', docker: { name: 'busybox' } } } } as unknown as TaskInfo['container'] }, /container\.mesos\.image/],
        [{ container: { type: 'MESOS', volumes: [{ container_path: '/data', host_path: '/srv' }] } }, /container\.volumes/],
        [{ container: { type: 'DOCKER', docker: { image: 'x' }, network_infos: [{}] } as unknown as TaskInfo['container'] }, /container\.network_infos/],
        [{ command: { value: 'true', environment: { variables: [{ name: 'TOKEN', type: 'SECRET' }] } } }, /variables\[0\] \(TOKEN\): a SECRET needs secret\.reference\.name/],
        [{ command: { value: 'true', environment: { variables: [{ name: 'TOKEN', type: 'SECRET', secret: { type: 'VALUE', value: { data: 'c2VjcmV0' } } }] } } }, /only REFERENCE secrets are supported/],
        [{ max_completion_time: { nanoseconds: 1 } } as unknown as Partial<TaskInfo>, /max_completion_time/],
      ];
      fw.launch(offer, [...asks.map(([over]) => over), {}]);
      const errors = fw.updates().filter((s) => s.state === 'TASK_ERROR');
      asks.forEach(([, message], i) => assert.match(errors.find((e) => e.task_id.value === `t${i}`)?.message ?? '', message));
      assert.deepEqual(h.agentInbox.get(agent)!.filter((m) => m.type === 'LAUNCH').map((m) => m.type === 'LAUNCH' && m.task.task_id.value), [`t${asks.length}`]);
    });

    it('hands the values of the secrets a task references to its agent alone, in the LAUNCH, and refuses unknown ones', () => {
      const h = new Harness({ secrets: { 'db/password': 'pw-1', tls: 'key-2' } });
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:8;mem:4096');
      h.tick();
      const offer = fw.offers()[0]!;
      const ref = (name: string) => ({ type: 'REFERENCE' as const, reference: { name } });
      fw.launch(offer, [
        {
          command: { value: 'true', environment: { variables: [{ name: 'DB', type: 'SECRET', secret: ref('/db/password') }, { name: 'PLAIN', value: 'x' }] } },
          container: { type: 'MESOS', volumes: [{ container_path: 'tls/key.pem', source: { type: 'SECRET', secret: ref('tls') } }] },
        },
        { command: { value: 'true', environment: { variables: [{ name: 'X', type: 'SECRET', secret: ref('nope') }] } } },
        { container: { type: 'MESOS', volumes: [{ container_path: '/etc/key', source: { type: 'SECRET', secret: ref('tls') } }] } },
      ]);
      const launches = h.agentInbox.get(agent)!.filter((m) => m.type === 'LAUNCH');
      assert.deepEqual(launches.map((m) => m.type === 'LAUNCH' && [m.task.task_id.value, m.secrets]), [['t0', { 'db/password': 'pw-1', tls: 'key-2' }]]);
      const errors = fw.updates().filter((s) => s.state === 'TASK_ERROR');
      assert.match(errors.find((e) => e.task_id.value === 't1')?.message ?? '', /references secret 'nope', which is not in the secret store/);
      assert.match(errors.find((e) => e.task_id.value === 't2')?.message ?? '', /outside a DOCKER container a secret file goes in the sandbox/);
      // The task the master keeps (and shows) holds the references, never the values.
      const kept = JSON.stringify(h.master.task(fw.id, 't0')?.info);
      assert.ok(kept.includes('db/password') && !kept.includes('pw-1') && !kept.includes('key-2'), `no secret value in the task the master keeps: ${kept}`);
    });

    it('answers TASK_ERROR for a task that does not match TaskInfo, launches the others and returns the rest of the offer', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:4;mem:1024');
      h.tick();
      const offer = fw.offers()[0]!;
      fw.take();
      const bad = { ...task(offer, 'bad'), command: { value: 'true', environment: { variables: [{ name: '', value: 'foo' }] } } };
      // In process, as built-in frameworks call: nothing parsed it before the master.
      fw.call({ type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [bad, task(offer, 'good')] } }], filters: { refuse_seconds: 0 } } });
      const error = fw.updates().find((s) => s.task_id.value === 'bad')!;
      assert.equal(error.state, 'TASK_ERROR');
      assert.match(error.message ?? '', /^task bad: command\.environment\.variables\[0\]\.name: /);
      assert.deepEqual(h.agentInbox.get(agent)!.filter((m) => m.type === 'LAUNCH').map((m) => m.type === 'LAUNCH' && m.task.task_id.value), ['good']);
      h.tick();
      assert.ok(offered(fw.offers()).equals(Resources.parse('cpus:3;mem:896')), 'what the good task does not use is offered again');
    });

    it('refuses an ACCEPT it cannot read as a whole only after returning its offer and launching what it could', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:4;mem:1024');
      h.tick();
      const offer = fw.offers()[0]!;
      fw.take();
      const call = { type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'RESERVE' }, 'x', { type: 'LAUNCH', launch: { task_infos: [{ name: 'no id' }, task(offer, 'good')] } }], filters: { refuse_seconds: 'soon' } } };
      assert.throws(
        () => fw.call(call as unknown as CallBody),
        (e: unknown) => e instanceof InvalidRequest && /filters.*operations\[0\].*RESERVE.*operations\[1\].*operations\[2\]\.launch\.task_infos\[0\]/.test(e.message),
      );
      assert.equal(h.agentInbox.get(agent)!.filter((m) => m.type === 'LAUNCH').length, 1, 'the readable task was launched');
      h.tick(5_000); // Unreadable filters: the default filter (5 s) applies.
      assert.ok(offered(fw.offers()).equals(Resources.parse('cpus:3;mem:896')), 'the rest of the offer is offered again');
      assert.equal(h.master.offerCount(), 1);
    });

    it('launches tasks on the agent and reports a task that fails the checks as TASK_ERROR', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:2;mem:1024');
      h.tick();
      const offer = fw.offers()[0]!;
      fw.call({
        type: 'ACCEPT',
        accept: {
          offer_ids: [offer.id],
          operations: [
            {
              type: 'LAUNCH',
              launch: {
                task_infos: [
                  task(offer, 'ok'),
                  task(offer, 'ok'), // duplicate id
                  task(offer, 'big', { resources: Resources.scalars({ cpus: 5, mem: 10 }).toJSON() }),
                  task(offer, 'nocmd', { command: undefined }),
                  task(offer, 'elsewhere', { agent_id: { value: 'nope' } }),
                  task(offer, 'ok2'),
                  task(offer, 'toomuch'), // only 0 cpus left after ok and ok2
                ],
              },
            },
          ],
        },
      });
      const byTask = new Map(fw.updates().map((u) => [u.task_id.value, u]));
      const launched = h.agentInbox.get(agent)!.filter((m) => m.type === 'LAUNCH').map((m) => (m.type === 'LAUNCH' ? m.task.task_id.value : ''));
      assert.deepEqual(launched, ['ok', 'ok2']);
      for (const [id, pattern] of [
        ['big', /not in the offers/],
        ['nocmd', /needs a command or a container/],
        ['elsewhere', /names agent nope/],
        ['toomuch', /not in the offers/],
      ] as const) {
        const u = byTask.get(id);
        assert.equal(u?.state, 'TASK_ERROR', id);
        assert.equal(u?.reason, 'REASON_TASK_INVALID');
        assert.match(u?.message ?? '', pattern, id);
      }
      const ok = fw.updates().filter((u) => u.task_id.value === 'ok');
      assert.equal(ok.length, 1, 'the valid task gets no update; its duplicate gets one');
      assert.match(ok[0]?.message ?? '', /already used/);
      assert.equal(h.master.task(fw.id, 'ok')?.state, 'TASK_STAGING');
    });

    it('drops the tasks of an unknown or used offer: TASK_DROPPED if partition-aware, else TASK_LOST', () => {
      for (const partitionAware of [true, false]) {
        const h = new Harness();
        const fw = h.subscribe('a', { partitionAware });
        h.addAgent('cpus:2;mem:1024');
        h.tick();
        const offer = fw.offers()[0]!;
        fw.launch(offer, [{}]);
        fw.launch(offer, [{ task_id: { value: 'again' } }]);
        const u = fw.updates().at(-1)!;
        assert.equal(u.state, partitionAware ? 'TASK_DROPPED' : 'TASK_LOST');
        assert.equal(u.reason, 'REASON_INVALID_OFFERS');
        assert.equal(u.uuid, undefined, 'master-made updates need no ack');
      }
    });

    it('refuses offers of two agents in one ACCEPT with TASK_ERROR and gives both back', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      h.addAgent('cpus:2;mem:1024');
      h.addAgent('cpus:2;mem:1024');
      h.tick();
      const [o1, o2] = fw.offers();
      fw.call({ type: 'ACCEPT', accept: { offer_ids: [o1!.id, o2!.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [task(o1!, 'x')] } }], filters: { refuse_seconds: 0 } } });
      assert.equal(fw.updates()[0]?.state, 'TASK_ERROR');
      assert.match(fw.updates()[0]?.message ?? '', /more than one agent/);
      fw.take();
      h.tick();
      assert.equal(fw.offers().length, 2, 'both offers came back');
    });
  });

  describe('task lifecycle', () => {
    it('forwards status updates, frees resources on a terminal state and forgets the task once acknowledged', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:1;mem:128');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      fw.take();
      h.update(agent, fw.id, 't0', 'TASK_RUNNING', 'u1');
      assert.equal(fw.updates()[0]?.state, 'TASK_RUNNING');
      assert.equal(fw.updates()[0]?.uuid, 'u1');
      fw.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: { value: agent }, task_id: { value: 't0' }, uuid: 'u1' } });
      assert.deepEqual(h.agentInbox.get(agent)!.at(-1), { type: 'ACKNOWLEDGE', framework_id: { value: fw.id }, task_id: { value: 't0' }, uuid: 'u1' });
      fw.call({ type: 'KILL', kill: { task_id: { value: 't0' } } });
      assert.equal(h.agentInbox.get(agent)!.at(-1)?.type, 'KILL');
      h.update(agent, fw.id, 't0', 'TASK_KILLED', 'u2');
      h.tick();
      assert.equal(fw.offers().length, 1, 'the killed task freed its resources');
      assert.equal(h.master.task(fw.id, 't0')?.state, 'TASK_KILLED', 'kept until acknowledged');
      // A resent update (no ack yet) reaches the framework again: at least once.
      h.update(agent, fw.id, 't0', 'TASK_KILLED', 'u2');
      assert.equal(fw.updates().filter((u) => u.uuid === 'u2').length, 2);
      fw.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: { value: agent }, task_id: { value: 't0' }, uuid: 'u2' } });
      assert.equal(h.master.task(fw.id, 't0'), undefined);
      assert.equal(h.master.frameworkView(fw.id)!.completed[0]?.state, 'TASK_KILLED');
    });

    it('delivers every update in order per task, resending until acknowledged', () => {
      const c = new SimCluster();
      const agent = c.addAgent('cpus:4;mem:4096', { retryMs: 1_000 });
      const fw = c.addFramework({ name: 'a', tasks: 2, taskCpus: 1, taskMem: 128, taskDurationMs: 5_000 });
      fw.record = true;
      // The framework's acknowledgements are lost for a while: its calls are dropped.
      const call = c.master.call.bind(c.master);
      let dropAcks = true;
      c.master.call = (x) => (dropAcks && x.type === 'ACKNOWLEDGE' ? undefined : call(x));
      c.advance(3_500);
      const startingSeen = fw.events.filter((e) => e.type === 'UPDATE' && e.update.status.state === 'TASK_STARTING').length;
      assert.ok(startingSeen >= 4, `STARTING resent while unacknowledged (seen ${startingSeen} times for 2 tasks)`);
      assert.equal(fw.events.filter((e) => e.type === 'UPDATE' && e.update.status.state === 'TASK_RUNNING').length, 0, 'RUNNING waits for the ack of STARTING');
      dropAcks = false;
      c.advance(20_000);
      for (const id of ['a-0', 'a-1']) {
        const states = fw.events.flatMap((e) => (e.type === 'UPDATE' && e.update.status.task_id.value === id ? [e.update.status.state] : []));
        const firsts = states.filter((s, i) => s !== states[i - 1]);
        assert.deepEqual(firsts, ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED'], `updates of ${id} in order`);
      }
      assert.equal(agent.runningTasks(), 0);
      assert.equal(c.master.frameworkView(fw.frameworkId!)!.tasks.length, 0);
    });

    it('kills a task through its agent: TASK_KILLING then TASK_KILLED for frameworks that ask for it', () => {
      const c = new SimCluster();
      c.addAgent('cpus:2;mem:1024');
      const fw = c.addFramework({ name: 'k', tasks: 1, taskCpus: 1, taskMem: 128, taskKillingState: true });
      fw.record = true;
      c.advance(100);
      c.master.call({ type: 'KILL', framework_id: { value: fw.frameworkId! }, kill: { task_id: { value: 'k-0' } } });
      c.advance(100);
      const states = fw.events.flatMap((e) => (e.type === 'UPDATE' ? [e.update.status.state] : []));
      assert.deepEqual(states, ['TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING', 'TASK_KILLED']);
      assert.equal(c.master.task(fw.frameworkId!, 'k-0'), undefined, 'acknowledged and forgotten');
    });

    it('answers explicit and implicit reconciliation', () => {
      const h = new Harness();
      const fw = h.subscribe('a', { partitionAware: true });
      const agent = h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      h.update(agent, fw.id, 't0', 'TASK_RUNNING', 'u1');
      fw.take();
      fw.call({ type: 'RECONCILE', reconcile: { tasks: [] } });
      assert.deepEqual(fw.updates().map((u) => [u.task_id.value, u.state, u.reason, u.uuid]), [['t0', 'TASK_RUNNING', 'REASON_RECONCILIATION', undefined]]);
      fw.take();
      fw.call({
        type: 'RECONCILE',
        reconcile: {
          tasks: [
            { task_id: { value: 't0' } },
            { task_id: { value: 'gone' }, agent_id: { value: agent } },
            { task_id: { value: 'nowhere' } },
            { task_id: { value: 'far' }, agent_id: { value: 'unknown-agent' } },
          ],
        },
      });
      assert.deepEqual(fw.updates().map((u) => [u.task_id.value, u.state]), [
        ['t0', 'TASK_RUNNING'],
        ['gone', 'TASK_GONE'],
        ['nowhere', 'TASK_UNKNOWN'],
        ['far', 'TASK_UNKNOWN'],
      ]);
      const plain = h.subscribe('b');
      plain.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 'x' } }] } });
      assert.equal(plain.updates()[0]?.state, 'TASK_LOST', 'frameworks that are not partition-aware hear TASK_LOST');
    });
  });

  describe('agents', () => {
    it('rescinds the offers of an unreachable agent and reports its tasks UNREACHABLE or LOST', () => {
      const h = new Harness();
      const aware = h.subscribe('aware', { partitionAware: true });
      const agent = h.addAgent('cpus:4;mem:4096');
      h.tick();
      aware.launch(aware.offers()[0]!, [{}]);
      h.tick();
      const plain = h.subscribe('plain');
      h.tick();
      const plainOffer = plain.offers()[0]!;
      plain.launch(plainOffer, [{ task_id: { value: 'p0' } }], 0);
      h.tick();
      const outstanding = [...aware.offers(), ...plain.offers()].filter((o) => o.id.value !== plainOffer.id.value && o.id.value !== aware.offers()[0]!.id.value);
      assert.ok(outstanding.length >= 1, 'some offer is outstanding');
      aware.take();
      plain.take();
      h.master.markAgentUnreachable(agent);
      const rescinded = [...aware.events, ...plain.events].flatMap((e) => (e.type === 'RESCIND' ? [e.rescind.offer_id.value] : []));
      assert.deepEqual(rescinded.sort(), outstanding.map((o) => o.id.value).sort());
      for (const fw of [aware, plain]) assert.deepEqual(fw.events.find((e) => e.type === 'FAILURE'), { type: 'FAILURE', failure: { agent_id: { value: agent } } });
      assert.deepEqual(aware.updates().map((u) => [u.task_id.value, u.state]), [['t0', 'TASK_UNREACHABLE']]);
      assert.deepEqual(plain.updates().map((u) => [u.task_id.value, u.state]), [['p0', 'TASK_LOST']]);
      assert.equal(h.master.offerCount(), 0);
    });

    it('brings back the tasks of an agent that reregisters and kills those reported lost', () => {
      const c = new SimCluster();
      const a1 = c.addAgent('cpus:2;mem:2048');
      const aware = c.addFramework({ name: 'aware', tasks: 1, taskCpus: 1, taskMem: 128, partitionAware: true });
      const plain = c.addFramework({ name: 'plain', tasks: 1, taskCpus: 1, taskMem: 128 });
      aware.record = plain.record = true;
      c.advance(1_000);
      assert.equal(a1.runningTasks(), 2);
      a1.disconnect();
      c.master.markAgentUnreachable(a1.agentId!);
      c.settle();
      a1.register();
      c.advance(1_000);
      const last = (fw: typeof aware) => fw.events.filter((e) => e.type === 'UPDATE').map((e) => (e.type === 'UPDATE' ? e.update.status.state : '')).slice(-1)[0];
      assert.equal(last(aware), 'TASK_RUNNING', 'the partition-aware task is running again');
      assert.equal(c.master.task(aware.frameworkId!, 'aware-0')?.state, 'TASK_RUNNING');
      assert.equal(a1.taskState('plain-0'), undefined, 'the task reported lost was killed and forgotten');
      assert.equal(c.master.task(plain.frameworkId!, 'plain-0'), undefined);
    });

    it('drops a launched task that a reregistering agent does not report', () => {
      const h = new Harness();
      const fw = h.subscribe('a', { partitionAware: true });
      const agent = h.addAgent('cpus:2;mem:1024', 'h0');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      fw.take();
      // The agent restarts before the LAUNCH reached it: its REGISTER lists no task.
      h.master.registerAgent(
        { type: 'REGISTER', agent_id: { value: agent }, hostname: 'h0', resources: Resources.parse('cpus:2;mem:1024').toJSON(), attributes: [], tasks: [], frameworks: [] },
        { send: () => undefined, close: () => undefined },
      );
      assert.deepEqual(fw.updates().map((u) => [u.task_id.value, u.state, u.reason]), [['t0', 'TASK_DROPPED', 'REASON_AGENT_RESTARTED']]);
      assert.equal(h.master.task(fw.id, 't0'), undefined);
      h.tick();
      assert.ok(offered(fw.offers()).equals(Resources.parse('cpus:2;mem:1024')), 'its resources are offered again, whole');
    });

    it('marks an agent unreachable when its stream drops and it is not back within the grace period', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', agentReconnectGraceMs: 5_000, agentHeartbeatIntervalMs: 1_000_000 });
      master.start();
      const conn = { send: () => undefined, close: () => undefined };
      const register = (c = conn, id?: string) =>
        master.registerAgent({ type: 'REGISTER', hostname: 'h', resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], tasks: [], frameworks: [], ...(id !== undefined ? { agent_id: { value: id } } : {}) }, c);
      const id = register();
      master.agentDisconnected(id, conn);
      clock.advance(4_000);
      const again = { send: () => undefined, close: () => undefined };
      register(again, id);
      clock.advance(10_000);
      assert.equal(master.agentView(id)?.state, 'ACTIVE', 'back within the grace period');
      master.agentDisconnected(id, again);
      clock.advance(4_999);
      assert.equal(master.agentView(id)?.state, 'ACTIVE');
      clock.advance(1);
      assert.equal(master.agentView(id)?.state, 'UNREACHABLE');
    });

    it('marks an agent unreachable after three missed heartbeats', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', agentHeartbeatIntervalMs: 5_000 });
      master.start();
      const id = master.registerAgent({ type: 'REGISTER', hostname: 'h', resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], tasks: [], frameworks: [] }, { send: () => undefined, close: () => undefined });
      for (let i = 0; i < 10; i++) {
        clock.advance(5_000);
        master.agentMessage(id, { type: 'HEARTBEAT' });
      }
      assert.equal(master.agentView(id)?.state, 'ACTIVE', 'heartbeating agents stay');
      clock.advance(15_000);
      assert.equal(master.agentView(id)?.state, 'ACTIVE', 'three intervals without a heartbeat are not yet past');
      clock.advance(5_000);
      assert.equal(master.agentView(id)?.state, 'UNREACHABLE');
    });

    it('reports the tasks of a removed agent TASK_GONE_BY_OPERATOR and refuses its id afterwards', () => {
      const h = new Harness();
      const fw = h.subscribe('a', { partitionAware: true });
      const agent = h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      fw.take();
      h.master.removeAgent(agent);
      assert.equal(fw.updates()[0]?.state, 'TASK_GONE_BY_OPERATOR');
      assert.throws(() => h.master.registerAgent({ type: 'REGISTER', agent_id: { value: agent }, hostname: 'x', resources: [], attributes: [], tasks: [], frameworks: [] }, { send: () => undefined, close: () => undefined }), /removed/);
      fw.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 'z' }, agent_id: { value: agent } }] } });
      assert.equal(fw.updates().at(-1)?.state, 'TASK_GONE_BY_OPERATOR');
    });
  });

  describe('input a client controls', () => {
    it('refuses ids that could escape a path: framework, task and agent ids', () => {
      const h = new Harness();
      assert.throws(() => h.subscribe('a', { id: '..' }), /framework_info.id must not be '\.\.'/);
      const fw = h.subscribe('a');
      h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.launch(fw.offers()[0]!, [{ task_id: { value: '../x' } }]);
      assert.equal(fw.updates()[0]?.state, 'TASK_ERROR');
      assert.match(fw.updates()[0]?.message ?? '', /must not contain "\/"/);
      assert.throws(
        () => h.master.registerAgent({ type: 'REGISTER', agent_id: { value: 'a b' }, hostname: 'x', resources: [], attributes: [], tasks: [], frameworks: [] }, { send: () => undefined, close: () => undefined }),
        /agent_id must not contain " "/,
      );
    });

    it('never hands out an id a client already chose', () => {
      const h = new Harness();
      const squatter = h.subscribe('squatter', { id: 'm-0000' });
      const next = h.subscribe('next');
      assert.notEqual(next.id, squatter.id);
      assert.equal(h.master.frameworkView(squatter.id)?.info.name, 'squatter');
    });

    it('makes no offer of an agent whose stream is down, even within its grace period', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', agentHeartbeatIntervalMs: 3_600_000, agentReconnectGraceMs: 5_000 });
      master.start();
      const conn = { send: () => undefined, close: () => undefined };
      const id = master.registerAgent({ type: 'REGISTER', hostname: 'h', resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], tasks: [], frameworks: [] }, conn);
      master.agentDisconnected(id, conn);
      const events: Event[] = [];
      master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'a' } } }, { send: (e) => events.push(e), close: () => undefined });
      clock.advance(4_000);
      assert.equal(events.filter((e) => e.type === 'OFFERS').length, 0);
      master.registerAgent({ type: 'REGISTER', agent_id: { value: id }, hostname: 'h', resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], tasks: [], frameworks: [] }, conn);
      clock.advance(0);
      assert.equal(events.filter((e) => e.type === 'OFFERS').length, 1, 'offered again once back');
    });

    it('kills a reported copy of a task whose id now runs on another agent, and charges it once', () => {
      const h = new Harness();
      const fw = h.subscribe('f');
      const a1 = h.addAgent('cpus:1;mem:1024', 'a1');
      h.tick();
      const first = fw.offers()[0]!;
      fw.launch(first, [{ task_id: { value: 'dup' } }]);
      h.update(a1, fw.id, 'dup', 'TASK_RUNNING', 'u1');
      h.master.markAgentUnreachable(a1);
      assert.equal(fw.updates().at(-1)?.state, 'TASK_LOST');
      // The framework launches the same id again, on another agent.
      const a2 = h.addAgent('cpus:1;mem:1024', 'a2');
      h.tick();
      const second = fw.offers().find((o) => o.agent_id.value === a2)!;
      fw.launch(second, [{ task_id: { value: 'dup' } }]);
      assert.equal(h.master.task(fw.id, 'dup')?.agentId, a2);
      // The first agent comes back, its old copy still running.
      const inbox: MasterToAgent[] = [];
      const info = { ...task(first, 'dup'), task_id: { value: 'dup' } };
      h.master.registerAgent(
        { type: 'REGISTER', agent_id: { value: a1 }, hostname: 'a1', resources: Resources.parse('cpus:1;mem:1024').toJSON(), attributes: [], tasks: [{ framework_id: { value: fw.id }, task: info, state: 'TASK_RUNNING' }], frameworks: [] },
        { send: (m) => inbox.push(m), close: () => undefined },
      );
      assert.deepEqual(inbox.filter((m) => m.type === 'KILL').map((m) => (m.type === 'KILL' ? m.task_id.value : '')), ['dup'], 'the stale copy is killed');
      assert.equal(h.master.task(fw.id, 'dup')?.agentId, a2, 'the live task stays where it is');
      assert.ok(h.master.agentView(a1)!.used.isEmpty(), 'and nothing is charged on a1');
    });

    it('does not answer reconciliation of an unknown task while its agent has yet to come back', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm' });
      master.recover({ frameworks: [], removedFrameworks: [], agents: [{ id: 'm-S9', hostname: 'h', resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], registeredAt: 0 }], removedAgents: [], tasks: [], weights: {}, quotas: {} });
      master.start();
      const events: Event[] = [];
      const id = master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'a', capabilities: [{ type: 'PARTITION_AWARE' }] } } }, { send: (e) => events.push(e), close: () => undefined });
      master.call({ type: 'RECONCILE', framework_id: { value: id }, reconcile: { tasks: [{ task_id: { value: 't' }, agent_id: { value: 'm-S9' } }, { task_id: { value: 'u' } }] } });
      assert.equal(events.filter((e) => e.type === 'UPDATE').length, 0);
      clock.advance(60_000); // the agent did not come back in time
      master.call({ type: 'RECONCILE', framework_id: { value: id }, reconcile: { tasks: [{ task_id: { value: 't' }, agent_id: { value: 'm-S9' } }] } });
      assert.deepEqual(events.flatMap((e) => (e.type === 'UPDATE' ? [e.update.status.state] : [])), ['TASK_UNREACHABLE']);
    });

    it('gives frameworks known from the store as long to come back as their agents', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', agentReregisterTimeoutMs: 30_000 });
      master.recover({ frameworks: [{ id: 'm-0001', info: { name: 'f' }, registeredAt: 0 }], removedFrameworks: [], agents: [], removedAgents: [], tasks: [], weights: {}, quotas: {} });
      master.start();
      clock.advance(29_000);
      assert.ok(master.frameworkView('m-0001'), 'failover_timeout 0, still kept during the agents\' timeout');
      clock.advance(1_000);
      assert.equal(master.frameworkView('m-0001'), undefined);
    });
  });

  describe('maintenance: deactivation, draining and planned restarts', () => {
    /** A master with real liveness (5 s heartbeats, 5 s reconnect grace), one agent with a running task. */
    function cluster() {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', agentHeartbeatIntervalMs: 5_000, agentReconnectGraceMs: 5_000 });
      master.start();
      const inbox: MasterToAgent[] = [];
      const resources = Resources.parse('cpus:4;mem:1024').toJSON();
      let conn = { send: (m: MasterToAgent) => void inbox.push(m), close: () => undefined };
      const agent = master.registerAgent({ type: 'REGISTER', hostname: 'h0', resources, attributes: [], tasks: [], frameworks: [] }, conn);
      const events: Event[] = [];
      const fwId = master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'a', roles: ['*'], failover_timeout: 3600, capabilities: [{ type: 'PARTITION_AWARE' }] } } }, { send: (e) => void events.push(e), close: () => undefined });
      clock.advance(0);
      const offers = () => events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []));
      const updates = () => events.flatMap((e) => (e.type === 'UPDATE' ? [e.update.status] : []));
      const offer = offers()[0]!;
      const info = { ...task(offer, 't0'), kill_policy: { grace_period: { nanoseconds: 30e9 } } };
      master.call({ type: 'ACCEPT', framework_id: { value: fwId }, accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [info] } }], filters: { refuse_seconds: 0 } } });
      const report = (state: TaskStatus['state'], uuid: string, reason?: TaskStatus['reason']) =>
        master.agentMessage(agent, { type: 'STATUS_UPDATE', framework_id: { value: fwId }, status: { task_id: { value: 't0' }, state, uuid, source: 'SOURCE_EXECUTOR', agent_id: { value: agent }, ...(reason !== undefined ? { reason } : {}) }, latest_state: state });
      report('TASK_RUNNING', 'u1');
      clock.advance(0);
      // Heartbeats as a live agent sends them, for `ms` of simulated time.
      const live = (ms: number) => {
        for (let t = 0; t < ms; t += 1_000) {
          clock.advance(1_000);
          if (master.agentView(agent)?.state === 'ACTIVE' && t % 5_000 === 0) master.agentMessage(agent, { type: 'HEARTBEAT' });
        }
      };
      const reregister = () => {
        conn = { send: (m: MasterToAgent) => void inbox.push(m), close: () => undefined };
        master.registerAgent({ type: 'REGISTER', agent_id: { value: agent }, hostname: 'h0', resources, attributes: [], tasks: [{ framework_id: { value: fwId }, task: info, state: 'TASK_RUNNING' }], frameworks: [] }, conn);
      };
      return { clock, master, agent, fwId, inbox, events, offers, updates, report, live, reregister, conn: () => conn };
    }

    it('DEACTIVATE_AGENT: no offers of the agent, the outstanding one rescinded, its tasks run on; REACTIVATE_AGENT offers it again', () => {
      const c = cluster();
      c.clock.advance(1_000);
      const before = c.offers().length;
      c.master.deactivateAgent(c.agent);
      assert.ok(c.events.some((e) => e.type === 'RESCIND'), 'the outstanding offer is rescinded');
      assert.equal(c.master.offerCount(), 0);
      c.live(10_000);
      assert.equal(c.offers().length, before, 'no offer while deactivated');
      assert.equal(c.master.agentView(c.agent)?.deactivated, true);
      assert.equal(c.master.task(c.fwId, 't0')?.state, 'TASK_RUNNING');
      assert.equal(c.inbox.filter((m) => m.type === 'KILL').length, 0);
      c.master.reactivateAgent(c.agent);
      c.clock.advance(0);
      assert.equal(c.offers().length, before + 1, 'offered again');
      assert.equal(c.master.agentView(c.agent)?.deactivated, false);
      assert.throws(() => c.master.deactivateAgent('nope'), AgentNotFound);
    });

    it('DRAIN_AGENT: kills every task with REASON_AGENT_DRAINING and the grace capped, offers nothing, DRAINED once the kills are acknowledged; mark_gone removes the agent', () => {
      const c = cluster();
      c.master.drainAgent(c.agent, { maxGracePeriodMs: 2_000, markGone: true });
      const kill = c.inbox.find((m) => m.type === 'KILL');
      assert.deepEqual(kill, {
        type: 'KILL',
        framework_id: { value: c.fwId },
        task_id: { value: 't0' },
        kill_policy: { grace_period: { nanoseconds: 2e9 } },
        reason: { status: 'REASON_AGENT_DRAINING', message: `Agent ${c.agent} (h0) is being drained by the operator` },
      });
      assert.equal(c.master.agentView(c.agent)?.drain?.state, 'DRAINING');
      assert.equal(c.master.agentView(c.agent)?.deactivated, true);
      c.report('TASK_KILLED', 'u2', 'REASON_AGENT_DRAINING');
      c.live(3_000);
      assert.equal(c.master.agentView(c.agent)?.drain?.state, 'DRAINING', 'until the framework acknowledged TASK_KILLED');
      assert.equal(c.updates().at(-1)?.reason, 'REASON_AGENT_DRAINING');
      const offersBefore = c.offers().length;
      c.master.call({ type: 'ACKNOWLEDGE', framework_id: { value: c.fwId }, acknowledge: { agent_id: { value: c.agent }, task_id: { value: 't0' }, uuid: 'u2' } });
      c.clock.advance(0);
      assert.equal(c.master.agentView(c.agent), undefined, 'drained, then removed for good (mark_gone)');
      assert.equal(c.offers().length, offersBefore, 'nothing of it was offered');
    });

    it('a restarted master keeps what the operator set: a deactivated agent gets no offers, a drain goes on when the agent returns', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', journal: true, agentHeartbeatIntervalMs: 5_000 });
      master.start();
      const resources = Resources.parse('cpus:4;mem:1024').toJSON();
      const none = { send: () => undefined, close: () => undefined };
      const quiet = master.registerAgent({ type: 'REGISTER', hostname: 'h0', resources, attributes: [], tasks: [], frameworks: [] }, none);
      const draining = master.registerAgent({ type: 'REGISTER', hostname: 'h1', resources, attributes: [], tasks: [], frameworks: [] }, none);
      const plain = master.registerAgent({ type: 'REGISTER', hostname: 'h2', resources, attributes: [], tasks: [], frameworks: [] }, none);
      master.deactivateAgent(quiet);
      master.drainAgent(draining, { maxGracePeriodMs: 1_000 });
      const saved = master.drainChanges().filter((c) => c.type === 'AGENT_SAVED');
      const last = (id: string) => saved.filter((c) => c.type === 'AGENT_SAVED' && c.agent.id === id).at(-1);
      assert.deepEqual(last(quiet)?.type === 'AGENT_SAVED' && last(quiet)?.agent.maintenance, { deactivated: true });
      assert.deepEqual(last(draining)?.type === 'AGENT_SAVED' && last(draining)?.agent.maintenance, { deactivated: true, drain: { state: 'DRAINING', maxGracePeriodMs: 1_000, markGone: false } });
      const agents = [quiet, draining, plain].map((id) => {
        const c = last(id);
        assert.ok(c?.type === 'AGENT_SAVED');
        return c.agent;
      });

      // A new master over the stored state.
      const clock2 = new ManualClock();
      const next = new Master({ clock: clock2, masterId: 'm2', journal: true, agentHeartbeatIntervalMs: 5_000 });
      next.recover({ frameworks: [], removedFrameworks: [], agents, removedAgents: [], tasks: [], weights: {}, quotas: {} });
      next.start();
      assert.equal(next.agentView(quiet)?.deactivated, true);
      assert.equal(next.agentView(draining)?.drain?.state, 'DRAINING');
      for (const [id, hostname] of [[quiet, 'h0'], [draining, 'h1'], [plain, 'h2']] as const) {
        next.registerAgent({ type: 'REGISTER', agent_id: { value: id }, hostname, resources, attributes: [], tasks: [], frameworks: [] }, none);
      }
      const events: Event[] = [];
      next.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'a', roles: ['*'] } } }, { send: (e) => void events.push(e), close: () => undefined });
      clock2.advance(0);
      const offered = events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers.map((o) => o.agent_id.value) : []));
      assert.deepEqual(offered, [plain], 'only the agent the operator left alone is offered');
      assert.equal(next.agentView(draining)?.drain?.state, 'DRAINED', 'nothing ran there: drained once back');
      const after = next.drainChanges().filter((c) => c.type === 'AGENT_SAVED' && c.agent.id === draining).at(-1);
      assert.deepEqual(after?.type === 'AGENT_SAVED' && after.agent.maintenance?.drain?.state, 'DRAINED', 'DRAINED is journaled too');
      next.reactivateAgent(quiet);
      const cleared = next.drainChanges().filter((c) => c.type === 'AGENT_SAVED' && c.agent.id === quiet).at(-1);
      assert.ok(cleared?.type === 'AGENT_SAVED' && cleared.agent.maintenance === undefined, 'REACTIVATE_AGENT clears it in the store');
    });

    it('DRAIN_AGENT of an agent that is away: the kills go out, with their reason, when it registers again', () => {
      const c = cluster();
      c.master.agentDisconnected(c.agent, c.conn());
      c.master.drainAgent(c.agent);
      assert.equal(c.inbox.filter((m) => m.type === 'KILL').length, 0);
      c.clock.advance(1_000);
      c.reregister();
      const kill = c.inbox.find((m) => m.type === 'KILL');
      assert.equal(kill?.type === 'KILL' && kill.reason?.status, 'REASON_AGENT_DRAINING');
      assert.deepEqual(kill?.type === 'KILL' && kill.kill_policy, { grace_period: { nanoseconds: 30e9 } }, "the task's own grace, no cap given");
      c.clock.advance(0);
      assert.equal(c.master.offerCount(), 0, 'still no offers of it');
    });

    it('keeps the tasks of an agent that announced its restart for the restart grace (22 s away), and reports a lost agent after the short grace', () => {
      const c = cluster();
      c.live(6_000);
      c.master.agentMessage(c.agent, { type: 'RESTARTING' });
      c.clock.advance(0);
      assert.equal(c.master.offerCount(), 0, 'nothing is offered of an agent about to restart');
      c.master.agentDisconnected(c.agent, c.conn());
      assert.ok(c.master.agentView(c.agent)?.restart?.backBy !== undefined);
      c.clock.advance(22_000);
      assert.equal(c.master.agentView(c.agent)?.state, 'ACTIVE', 'neither the reconnect grace nor missed heartbeats made it unreachable');
      assert.deepEqual(c.updates().map((u) => u.state), ['TASK_RUNNING']);
      c.reregister();
      c.live(10_000);
      assert.equal(c.master.task(c.fwId, 't0')?.state, 'TASK_RUNNING');
      assert.deepEqual(c.updates().map((u) => u.state), ['TASK_RUNNING'], 'the framework heard of nothing');
      assert.equal(c.master.agentView(c.agent)?.restart, undefined);
      assert.ok(c.master.offerCount() > 0, 'offered again once back');
      // The same agent lost without a word: unreachable after the reconnect grace.
      c.master.agentDisconnected(c.agent, c.conn());
      c.clock.advance(5_000);
      assert.equal(c.master.agentView(c.agent)?.state, 'UNREACHABLE');
      assert.equal(c.updates().at(-1)?.state, 'TASK_UNREACHABLE');
    });

    it('gives up on an agent that announced its restart once the restart grace has passed', () => {
      const clock = new ManualClock();
      const master = new Master({ clock, masterId: 'm', agentRestartGraceMs: 60_000, agentHeartbeatIntervalMs: 5_000 });
      master.start();
      const conn = { send: () => undefined, close: () => undefined };
      const id = master.registerAgent({ type: 'REGISTER', hostname: 'h', resources: Resources.parse('cpus:1;mem:64').toJSON(), attributes: [], tasks: [], frameworks: [] }, conn);
      master.agentMessage(id, { type: 'RESTARTING' });
      master.agentDisconnected(id, conn);
      clock.advance(59_999);
      assert.equal(master.agentView(id)?.state, 'ACTIVE');
      clock.advance(1);
      assert.equal(master.agentView(id)?.state, 'UNREACHABLE');
    });
  });

  describe('frameworks', () => {
    it('keeps the tasks of a framework that resubscribes within its failover timeout', () => {
      const h = new Harness();
      const fw = h.subscribe('a', { failoverTimeout: 60 });
      const agent = h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      h.master.disconnect(fw.id, fw.conn);
      h.tick(59_000);
      const again = h.subscribe('a', { failoverTimeout: 60, id: fw.id });
      assert.equal(again.id, fw.id);
      h.tick(120_000);
      assert.equal(h.master.task(fw.id, 't0')?.state, 'TASK_STAGING');
      assert.equal(h.agentInbox.get(agent)!.filter((m) => m.type === 'SHUTDOWN_FRAMEWORK').length, 0);
    });

    it('kills the tasks of a framework whose failover timeout expires and refuses its id', () => {
      const h = new Harness();
      const fw = h.subscribe('a', { failoverTimeout: 60 });
      const agent = h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      h.master.disconnect(fw.id, fw.conn);
      h.tick(60_000);
      assert.deepEqual(h.agentInbox.get(agent)!.at(-1), { type: 'SHUTDOWN_FRAMEWORK', framework_id: { value: fw.id } });
      assert.equal(h.master.frameworkView(fw.id), undefined);
      assert.throws(() => h.subscribe('a', { id: fw.id }), FrameworkRemoved);
      const other = h.subscribe('b');
      h.tick();
      assert.ok(offered(other.offers()).equals(Resources.parse('cpus:2;mem:1024')), 'its resources are free again');
    });

    it('fails over to a new stream: the old one gets ERROR and is closed', () => {
      const h = new Harness();
      const first = h.subscribe('a', { failoverTimeout: 60 });
      const second = h.subscribe('a', { failoverTimeout: 60, id: first.id });
      assert.equal(first.events.at(-1)?.type, 'ERROR');
      assert.ok(first.closed);
      assert.equal(second.events[0]?.type, 'SUBSCRIBED');
    });

    it('tears a framework down: its tasks are killed, its stream ends and it cannot call again', () => {
      const h = new Harness();
      const fw = h.subscribe('a');
      const agent = h.addAgent('cpus:2;mem:1024');
      h.tick();
      fw.launch(fw.offers()[0]!, [{}]);
      fw.call({ type: 'TEARDOWN' });
      assert.ok(fw.closed);
      assert.equal(h.agentInbox.get(agent)!.at(-1)?.type, 'SHUTDOWN_FRAMEWORK');
      assert.throws(() => fw.call({ type: 'REVIVE' }), FrameworkNotSubscribed);
    });

    it('refuses calls of a framework that is not subscribed', () => {
      const h = new Harness();
      assert.throws(() => h.master.call({ type: 'REVIVE', framework_id: { value: 'nobody' } }), FrameworkNotSubscribed);
    });
  });
});
