import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Resources } from '../../../core/resources.ts';
import type { AppConstraint } from '../app-definition.ts';
import { planPlacements, type Location, type Placement, type PlacementApp, type PlacementInput, type PlacementOffer } from './placement.ts';

function app(over: Partial<PlacementApp> = {}): PlacementApp {
  return { id: '/web', cpus: 1, mem: 128, disk: 0, ports: 0, constraints: [], ...over };
}

function offer(id: string, over: Partial<PlacementOffer> & { text?: string } = {}): PlacementOffer {
  const { text, ...rest } = over;
  return {
    id: `o-${id}`,
    agentId: `a-${id}`,
    hostname: `${id}.example`,
    attributes: {},
    resources: Resources.parse(text ?? 'cpus:16;mem:16384;disk:1000;ports:[31000-31099]'),
    ...rest,
  };
}

function plan(over: Partial<PlacementInput>): Placement[] {
  return planPlacements({ app: app(), wanted: 1, offers: [], running: [], seed: 1, ...over });
}

function c(fieldName: string, operator: AppConstraint['operator'], value?: string): AppConstraint {
  return value === undefined ? { fieldName, operator } : { fieldName, operator, value };
}

/** Instances per value of `key` (an offer's agentId, hostname or attribute). */
function countBy(placements: readonly Placement[], offers: readonly PlacementOffer[], key: (o: PlacementOffer) => string | undefined): Map<string | undefined, number> {
  const out = new Map<string | undefined, number>();
  for (const p of placements) {
    const o = offers.find((x) => x.id === p.offerId);
    assert.ok(o !== undefined, `placement on unknown offer ${p.offerId}`);
    const k = key(o);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

function assertNotOvercommitted(placements: readonly Placement[], offers: readonly PlacementOffer[]): void {
  for (const o of offers) {
    const taken = placements.filter((p) => p.offerId === o.id).reduce((sum, p) => sum.add(p.resources), Resources.EMPTY);
    assert.ok(o.resources.contains(taken), `offer ${o.id} overcommitted: ${taken.toString()} > ${o.resources.toString()}`);
  }
}

const RACKS = [
  offer('h1', { attributes: { rack: 'a' } }),
  offer('h2', { attributes: { rack: 'a' } }),
  offer('h3', { attributes: { rack: 'a' } }),
  offer('h4', { attributes: { rack: 'b' } }),
  offer('h5', { attributes: { rack: 'c' } }),
  offer('h6') /* no rack attribute */,
];

describe('planPlacements', () => {
  it('spreads 9 instances evenly over 3 agents', () => {
    const offers = [offer('h1'), offer('h2'), offer('h3')];
    const placements = plan({ wanted: 9, offers });
    assert.equal(placements.length, 9);
    assert.deepEqual([...countBy(placements, offers, (o) => o.agentId).values()], [3, 3, 3]);
  });

  it('places only what fits and never more than wanted', () => {
    const offers = [offer('h1', { text: 'cpus:2;mem:1024' })];
    assert.equal(plan({ wanted: 5, offers }).length, 2);
    assert.equal(plan({ wanted: 0, offers }).length, 0);
  });

  it('never puts two instances on one host with UNIQUE hostname, and places only as many as hosts', () => {
    const offers = [offer('h1'), offer('h2'), offer('h3')];
    const placements = plan({ app: app({ constraints: [c('hostname', 'UNIQUE')] }), wanted: 5, offers });
    assert.equal(placements.length, 3);
    assert.equal(new Set(placements.map((p) => p.agentId)).size, 3);
  });

  it('treats two offers of one host as one host for UNIQUE hostname', () => {
    const offers = [offer('h1'), offer('h1b', { hostname: 'h1.example' })];
    assert.equal(plan({ app: app({ constraints: [c('hostname', 'UNIQUE')] }), wanted: 2, offers }).length, 1);
  });

  it('places only on rack a with CLUSTER rack:a', () => {
    const placements = plan({ app: app({ constraints: [c('rack', 'CLUSTER', 'a')] }), wanted: 7, offers: RACKS });
    assert.equal(placements.length, 7);
    assert.deepEqual([...countBy(placements, RACKS, (o) => o.attributes.rack).keys()], ['a']);
  });

  it('follows the first instance with CLUSTER and no value', () => {
    const running: Location[] = [{ agentId: 'x', hostname: 'x.example', attributes: { rack: 'b' } }];
    const placements = plan({ app: app({ constraints: [c('rack', 'CLUSTER')] }), wanted: 3, offers: RACKS, running });
    assert.deepEqual([...countBy(placements, RACKS, (o) => o.attributes.rack).entries()], [['b', 3]]);
    const fresh = plan({ app: app({ constraints: [c('rack', 'CLUSTER')] }), wanted: 4, offers: RACKS });
    assert.equal(countBy(fresh, RACKS, (o) => o.attributes.rack).size, 1);
  });

  it('spreads evenly over racks with GROUP_BY rack, skipping agents without the attribute', () => {
    for (const value of [undefined, '3']) {
      const placements = plan({ app: app({ constraints: [c('rack', 'GROUP_BY', value)] }), wanted: 6, offers: RACKS });
      assert.equal(placements.length, 6);
      const byRack = countBy(placements, RACKS, (o) => o.attributes.rack);
      assert.deepEqual([...byRack.keys()].sort(), ['a', 'b', 'c']);
      assert.deepEqual([...byRack.values()], [2, 2, 2]);
    }
  });

  it('counts running instances for GROUP_BY', () => {
    const running: Location[] = [
      { agentId: 'a-h1', hostname: 'h1.example', attributes: { rack: 'a' } },
      { agentId: 'a-h2', hostname: 'h2.example', attributes: { rack: 'a' } },
    ];
    const placements = plan({ app: app({ constraints: [c('rack', 'GROUP_BY', '3')] }), wanted: 4, offers: RACKS, running });
    const byRack = countBy(placements, RACKS, (o) => o.attributes.rack);
    assert.equal(byRack.get('a'), undefined);
    assert.equal(byRack.get('b'), 2);
    assert.equal(byRack.get('c'), 2);
  });

  it('puts at most 2 instances on a host with MAX_PER hostname:2', () => {
    const offers = [offer('h1'), offer('h2')];
    const running: Location[] = [{ agentId: 'a-h1', hostname: 'h1.example', attributes: {} }];
    const placements = plan({ app: app({ constraints: [c('hostname', 'MAX_PER', '2')] }), wanted: 10, offers, running });
    const byHost = countBy(placements, offers, (o) => o.hostname);
    assert.equal(byHost.get('h1.example'), 1);
    assert.equal(byHost.get('h2.example'), 2);
  });

  it('matches LIKE and UNLIKE regexes against the whole value', () => {
    const offers = [offer('web1'), offer('web12'), offer('db1'), offer('xweb1')];
    const like = plan({ app: app({ constraints: [c('hostname', 'LIKE', 'web[0-9].example')] }), wanted: 10, offers });
    assert.deepEqual([...countBy(like, offers, (o) => o.hostname).keys()], ['web1.example']);
    const unlike = plan({ app: app({ constraints: [c('hostname', 'UNLIKE', 'web.*')] }), wanted: 10, offers });
    assert.deepEqual([...countBy(unlike, offers, (o) => o.hostname).keys()].sort(), ['db1.example', 'xweb1.example']);
  });

  it('lets only UNLIKE pass on an agent without the attribute', () => {
    const offers = [offer('h1', { attributes: { rack: 'a' } }), offer('h2')];
    const unlike = plan({ app: app({ constraints: [c('rack', 'UNLIKE', 'a')] }), wanted: 4, offers });
    assert.deepEqual([...countBy(unlike, offers, (o) => o.agentId).keys()], ['a-h2']);
    for (const op of ['LIKE', 'IS', 'UNIQUE', 'MAX_PER'] as const) {
      const placements = plan({ app: app({ constraints: [c('rack', op, op === 'MAX_PER' ? '9' : 'a')] }), wanted: 4, offers });
      assert.ok(placements.every((p) => p.agentId === 'a-h1'), op);
    }
  });

  it('places only where the attribute equals the value with IS', () => {
    const offers = [offer('h1', { attributes: { zone: 'east' } }), offer('h2', { attributes: { zone: 'eastern' } })];
    const placements = plan({ app: app({ constraints: [c('zone', 'IS', 'east')] }), wanted: 3, offers });
    assert.equal(placements.length, 3);
    assert.ok(placements.every((p) => p.agentId === 'a-h1'));
  });

  it('never overcommits an offer', () => {
    const offers = [offer('h1', { text: 'cpus:2.5;mem:1000;disk:10;ports:[31000-31004]' }), offer('h2', { text: 'cpus:1;mem:300;ports:[31000-31000]' })];
    const placements = plan({ app: app({ cpus: 0.5, mem: 300, disk: 3, ports: 2 }), wanted: 20, offers });
    assertNotOvercommitted(placements, offers);
    // h1: mem allows 3, disk 3, ports 2; h2 has no disk.
    assert.equal(placements.length, 2);
  });

  it('picks ports from the offer ranges, all distinct on one offer', () => {
    const offers = [offer('h1', { text: 'cpus:8;mem:8192;ports:[100-101,200-205]' })];
    const placements = plan({ app: app({ ports: 3 }), wanted: 3, offers });
    assert.equal(placements.length, 2);
    assert.deepEqual(placements.map((p) => p.ports), [[100, 101, 200], [201, 202, 203]]);
    assert.deepEqual(placements[0]!.resources.ranges('ports'), [[100, 101], [200, 200]]);
  });

  it('uses requirePorts only on offers holding every fixed port, once per offer', () => {
    const offers = [offer('h1', { text: 'cpus:8;mem:8192;ports:[80-80,443-443]' }), offer('h2', { text: 'cpus:8;mem:8192;ports:[80-80]' })];
    const placements = plan({ app: app({ ports: 2, requirePorts: [443, 80] }), wanted: 3, offers });
    assert.equal(placements.length, 1);
    assert.equal(placements[0]!.agentId, 'a-h1');
    assert.deepEqual(placements[0]!.ports, [443, 80]);
    assert.deepEqual(placements[0]!.resources.ranges('ports'), [[80, 80], [443, 443]]);
  });

  it('takes reserved resources of accepted roles and keeps their role', () => {
    const offers = [offer('h1', { text: 'cpus:1;mem:256;cpus(web):1;mem(web):256;ports(web):[9000-9000]' })];
    const placements = plan({ app: app({ ports: 1, acceptedResourceRoles: ['web'] }), wanted: 2, offers });
    assert.equal(placements.length, 1);
    assert.ok(placements[0]!.resources.equals(Resources.parse('cpus(web):1;mem(web):128;ports(web):[9000-9000]')));
    const unreserved = plan({ app: app({ cpus: 0.5, acceptedResourceRoles: ['*'] }), wanted: 3, offers });
    assert.equal(unreserved.length, 2);
    assert.ok(unreserved.every((p) => p.resources.reservationRoles().length === 0));
  });

  it('gives the same plan for the same seed', () => {
    const offers = Array.from({ length: 10 }, (_, i) => offer(`h${i}`, { text: 'cpus:2;mem:1024' }));
    const input = { app: app(), wanted: 7, offers, running: [] };
    const a = planPlacements({ ...input, seed: 42 }).map((p) => p.offerId);
    assert.deepEqual(planPlacements({ ...input, seed: 42 }).map((p) => p.offerId), a);
    const others = [1, 2, 3, 4, 5].map((seed) => planPlacements({ ...input, seed }).map((p) => p.offerId).join());
    assert.ok(others.some((o) => o !== a.join()), 'different seeds should break ties differently');
  });

  it('respects instances already running when spreading', () => {
    const offers = [offer('h1'), offer('h2'), offer('h3')];
    const running: Location[] = [
      { agentId: 'a-h1', hostname: 'h1.example', attributes: {} },
      { agentId: 'a-h1', hostname: 'h1.example', attributes: {} },
      { agentId: 'a-h2', hostname: 'h2.example', attributes: {} },
    ];
    const placements = plan({ wanted: 3, offers, running });
    const byAgent = countBy(placements, offers, (o) => o.agentId);
    assert.equal(byAgent.get('a-h1'), undefined);
    assert.equal(byAgent.get('a-h2'), 1);
    assert.equal(byAgent.get('a-h3'), 2);
    const unique = plan({ app: app({ constraints: [c('hostname', 'UNIQUE')] }), wanted: 3, offers, running });
    assert.deepEqual(unique.map((p) => p.agentId), ['a-h3']);
  });

  it('keeps UNIQUE hostnames and never overcommits for random offers', () => {
    const offerArb = fc.record({
      host: fc.integer({ min: 0, max: 5 }),
      cpus: fc.integer({ min: 0, max: 8 }),
      mem: fc.integer({ min: 0, max: 2048 }),
      portBegin: fc.integer({ min: 1000, max: 1010 }),
      portLen: fc.integer({ min: 0, max: 4 }),
    });
    fc.assert(
      fc.property(
        fc.array(offerArb, { maxLength: 12 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 8 }), { maxLength: 4 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer(),
        (specs, runningHosts, wanted, ports, seed) => {
          const offers = specs.map((s, i) =>
            offer(`o${i}`, {
              agentId: `a${s.host}`,
              hostname: `h${s.host}`,
              text: `cpus:${s.cpus};mem:${s.mem};ports:[${s.portBegin}-${s.portBegin + s.portLen}]`,
            }),
          );
          const running = runningHosts.map((h) => ({ agentId: `a${h}`, hostname: `h${h}`, attributes: {} }));
          const placements = planPlacements({
            app: app({ cpus: 0.5, mem: 100, ports, constraints: [c('hostname', 'UNIQUE')] }),
            wanted,
            offers,
            running,
            seed,
          });
          assert.ok(placements.length <= wanted);
          const hosts = [...running.map((r) => r.hostname), ...placements.map((p) => offers.find((o) => o.id === p.offerId)!.hostname)];
          assert.equal(new Set(hosts).size, hosts.length, `hostnames repeat: ${hosts.join()}`);
          assertNotOvercommitted(placements, offers);
          for (const p of placements) assert.equal(new Set(p.ports).size, ports);
        },
      ),
      { numRuns: 300 },
    );
  });
});
