import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Resources } from '../../../core/resources.ts';
import { readMasterAgents, type MasterAgent } from '../../kit/master-agents.ts';
import { parseAppDefinition, type AppDefinition } from '../app-definition.ts';
import type { Instance } from '../instance.ts';
import { planPlacements } from '../placement/placement.ts';
import { MAX_PREVIEW_INSTANCES, freeCapacity, previewDeploy, type PreviewView } from './plan-preview.ts';
import { placementApp } from './plan-launches.ts';

function agent(id: string, over: Omit<Partial<MasterAgent>, 'total' | 'used'> & { totalText?: string; usedText?: string } = {}): MasterAgent {
  const { totalText, usedText, ...rest } = over;
  return {
    id,
    hostname: `${id}.example`,
    attributes: {},
    active: true,
    state: 'ACTIVE',
    deactivated: false,
    total: Resources.parse(totalText ?? 'cpus:2;mem:1024;disk:1000;ports:[31000-31099]'),
    used: usedText !== undefined ? Resources.parse(usedText) : Resources.EMPTY,
    ...rest,
  };
}

function app(json: Record<string, unknown>): AppDefinition {
  return parseAppDefinition({ cmd: 'sleep 1000', cpus: 1, mem: 64, portDefinitions: [], ...json });
}

let taskSeq = 0;
function instance(def: AppDefinition, agentId: string, over: Partial<Instance> = {}): Instance {
  taskSeq++;
  return {
    taskId: `${def.id.slice(1)}.instance-${taskSeq}`,
    appId: def.id,
    version: 'v1',
    configVersion: 'v1',
    agentId,
    host: `${agentId}.example`,
    ports: [],
    state: 'TASK_RUNNING',
    stagedAt: taskSeq,
    hasHealthCheck: false,
    ready: true,
    killing: false,
    ...over,
  };
}

function view(apps: AppDefinition[], instances: Instance[] = []): PreviewView & { declaredMap: Map<string, AppDefinition> } {
  const declaredMap = new Map(apps.map((a) => [a.id, a]));
  return {
    declaredMap,
    declared: () => declaredMap,
    instancesOf: (id) => instances.filter((i) => i.appId === id),
    namesServicePort: (port) => [...declaredMap.values()].some((a) => a.portDefinitions.some((p) => p.port === port)),
    runOf: () => undefined,
  };
}

const put = (def: AppDefinition) => (declared: Map<string, AppDefinition>) => declared.set(def.id, def);

function preview(v: PreviewView, edit: (d: Map<string, AppDefinition>) => ReadonlyMap<string, AppDefinition>, agents: MasterAgent[], seed = 7) {
  return previewDeploy({ view: v, edit, agents, role: 'slipway', now: 1_700_000_000_000, seed });
}

describe('previewDeploy (POST /v2/plan)', () => {
  it('answers the steps of a new app and that all its instances fit, changing nothing', () => {
    const v = view([]);
    const p = preview(v, put(app({ id: '/web', instances: 3 })), [agent('a1'), agent('a2')]);
    assert.equal(p.fits, true);
    assert.deepEqual(p.steps, [[{ action: 'StartApplication', app: '/web' }], [{ action: 'ScaleApplication', app: '/web' }]]);
    assert.deepEqual(p.apps, [{ id: '/web', start: 3, stop: 0, restart: 0, unplaced: 0, reasons: [] }]);
    assert.equal(v.declaredMap.size, 0, 'the declared apps are not changed');
  });

  it('says which agents lack cpus, counting what their tasks use', () => {
    const p = preview(view([]), put(app({ id: '/big', cpus: 1 })), [agent('a1', { usedText: 'cpus:1.5' }), agent('a2', { totalText: 'cpus:0.5;mem:1024' })]);
    assert.equal(p.fits, false);
    const web = p.apps[0]!;
    assert.equal(web.unplaced, 1);
    assert.deepEqual(web.reasons, [
      { agentId: 'a1', hostname: 'a1.example', reasons: ['cpus: 0.5 free, 1 wanted'] },
      { agentId: 'a2', hostname: 'a2.example', reasons: ['cpus: 0.5 free, 1 wanted'] },
    ]);
  });

  it('names mem and disk too, and refuses agents that are unreachable, draining or deactivated', () => {
    const agents = [
      agent('a1', { totalText: 'cpus:4;mem:100;disk:10' }),
      agent('a2', { state: 'UNREACHABLE', active: false }),
      agent('a3', { deactivated: true, drain: 'DRAINING' }),
      agent('a4', { deactivated: true }),
    ];
    const p = preview(view([]), put(app({ id: '/db', mem: 512, disk: 100 })), agents);
    assert.equal(p.fits, false);
    assert.deepEqual(
      p.apps[0]!.reasons.map((r) => [r.agentId, r.reasons]),
      [
        ['a1', ['mem: 100 free, 512 wanted', 'disk: 10 free, 100 wanted']],
        ['a2', ['agent is unreachable']],
        ['a3', ['agent is draining']],
        ['a4', ['agent is deactivated']],
      ],
    );
  });

  it('cannot place more hostname:UNIQUE instances than there are agents, and says why on each', () => {
    const p = preview(view([]), put(app({ id: '/u', instances: 3, cpus: 0.1, constraints: [['hostname', 'UNIQUE']] })), [agent('a1'), agent('a2')]);
    assert.equal(p.fits, false);
    assert.equal(p.apps[0]!.start, 3);
    assert.equal(p.apps[0]!.unplaced, 1);
    for (const r of p.apps[0]!.reasons) assert.deepEqual(r.reasons, ['constraint hostname:UNIQUE already has an instance on this agent']);
  });

  it('tells a required port in use from one the agent does not offer', () => {
    const agents = [agent('a1', { totalText: 'cpus:2;mem:1024;ports:[8000-8100]', usedText: 'ports:[8080-8080]' }), agent('a2', { totalText: 'cpus:2;mem:1024;ports:[31000-31099]' })];
    const p = preview(view([]), put(app({ id: '/fixed', requirePorts: true, portDefinitions: [{ port: 8080 }] })), agents);
    assert.equal(p.fits, false);
    assert.deepEqual(
      p.apps[0]!.reasons.map((r) => r.reasons),
      [['port 8080 in use'], ['port 8080 is not offered by this agent (its ports: 31000-31099)']],
    );
  });

  it('counts dynamic ports, and only resources of the accepted roles', () => {
    const agents = [agent('a1', { totalText: 'cpus:2;mem:1024;ports:[31000-31000]' }), agent('a2', { totalText: 'cpus(slipway):0.5;cpus:4;mem:1024;ports:[31000-31099]' })];
    const p = preview(view([]), put(app({ id: '/r', portDefinitions: [{ port: 0 }, { port: 0 }], acceptedResourceRoles: ['slipway'] })), agents);
    assert.equal(p.fits, false);
    assert.deepEqual(
      p.apps[0]!.reasons.map((r) => r.reasons),
      [
        ['cpus: 0 free for roles slipway, 1 wanted', 'mem: 0 free for roles slipway, 64 wanted', 'ports: 0 free for roles slipway, 2 wanted'],
        ['cpus: 0.5 free for roles slipway, 1 wanted', 'mem: 0 free for roles slipway, 64 wanted', 'ports: 0 free for roles slipway, 2 wanted'],
      ],
    );
  });

  it('gives back the resources of a stopped app before the apps that replace it start', () => {
    const old = app({ id: '/g/old', cpus: 2 });
    const agents = [agent('a1', { usedText: 'cpus:2;mem:64' })];
    const v = view([old], [instance(old, 'a1')]);
    const replace = (d: Map<string, AppDefinition>) => {
      d.delete('/g/old');
      return d.set('/g/new', app({ id: '/g/new', cpus: 2 }));
    };
    const p = preview(v, replace, agents);
    assert.equal(p.fits, true, JSON.stringify(p));
    assert.deepEqual(p.apps.map((a) => [a.id, a.start, a.stop]), [['/g/new', 1, 0], ['/g/old', 0, 1]]);
    assert.equal(p.steps[0]![0]!.action, 'StopApplication');
  });

  it('scales down by killing the surplus and up by starting only the missing instances', () => {
    const web = app({ id: '/web', instances: 3, cpus: 1 });
    const v = view([web], [instance(web, 'a1'), instance(web, 'a1'), instance(web, 'a2')]);
    const agents = [agent('a1', { usedText: 'cpus:2;mem:128' }), agent('a2', { usedText: 'cpus:1;mem:64' })];
    const down = preview(v, put({ ...web, instances: 1 }), agents);
    assert.deepEqual(down.apps[0], { id: '/web', start: 0, stop: 2, restart: 0, unplaced: 0, reasons: [] });
    const up = preview(v, put({ ...web, instances: 5 }), agents);
    assert.equal(up.apps[0]!.start, 2);
    assert.equal(up.apps[0]!.unplaced, 1, 'one cpu is left on a2');
    assert.deepEqual(up.steps, [[{ action: 'ScaleApplication', app: '/web' }]]);
  });

  it('simulates a rolling restart: with no room and minimumHealthCapacity 1 it can make no progress; at 0.5 old instances make room', () => {
    const web = app({ id: '/web', instances: 2, cpus: 2, upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 0 } });
    const v = view([web], [instance(web, 'a1'), instance(web, 'a2')]);
    const agents = [agent('a1', { usedText: 'cpus:2;mem:64' }), agent('a2', { usedText: 'cpus:2;mem:64' })];
    const stuck = preview(v, put({ ...web, cmd: 'sleep 2000' }), agents);
    assert.equal(stuck.fits, false);
    assert.deepEqual(stuck.steps, [[{ action: 'RestartApplication', app: '/web' }]]);
    assert.equal(stuck.apps[0]!.restart, 2);
    assert.equal(stuck.apps[0]!.unplaced, 2);
    assert.match(stuck.apps[0]!.message ?? '', /rolling restart can make no progress.*minimumHealthCapacity 1/);
    assert.deepEqual(stuck.apps[0]!.reasons.map((r) => r.reasons), [['cpus: 0 free, 2 wanted'], ['cpus: 0 free, 2 wanted']]);
    const rolled = preview(v, put({ ...web, cmd: 'sleep 2000', upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 } }), agents);
    assert.equal(rolled.fits, true, JSON.stringify(rolled));
    assert.deepEqual(rolled.apps[0], { id: '/web', start: 0, stop: 0, restart: 2, unplaced: 0, reasons: [] });
  });

  it('a restart of a hostname:UNIQUE app on every agent needs room to kill first', () => {
    const web = app({ id: '/u', instances: 2, cpus: 0.1, constraints: [['hostname', 'UNIQUE']] });
    const v = view([web], [instance(web, 'a1'), instance(web, 'a2')]);
    const stuck = preview(v, put({ ...web, cmd: 'sleep 3', upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 } }), [agent('a1'), agent('a2')]);
    assert.equal(stuck.fits, false);
    for (const r of stuck.apps[0]!.reasons) assert.deepEqual(r.reasons, ['constraint hostname:UNIQUE already has an instance on this agent']);
    assert.equal(preview(v, put({ ...web, cmd: 'sleep 3', upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 } }), [agent('a1'), agent('a2')]).fits, true);
  });

  it('refuses to preview more instances of an app than it places one by one (413), however little each asks', () => {
    const tiny = app({ id: '/many', cpus: 0.001, mem: 0, instances: MAX_PREVIEW_INSTANCES + 1 });
    assert.throws(() => preview(view([]), put(tiny), [agent('a1')]), (e: unknown) => (e as { status?: number }).status === 413 && /at most 10000 instances per app/.test((e as Error).message));
    assert.equal(preview(view([]), put({ ...tiny, instances: 50 }), [agent('a1')]).fits, true);
  });

  it('reads GET_AGENTS as the master answers it: free is total - (allocated - offered)', () => {
    const [a] = readMasterAgents([
      {
        agent_info: { id: { value: 'a1' }, hostname: 'h1', attributes: [{ name: 'rack', type: 'TEXT', text: { value: 'r1' } }, { name: 'gen', type: 'SCALAR', scalar: { value: 3 } }] },
        active: true,
        state: 'ACTIVE',
        deactivated: false,
        total_resources: Resources.parse('cpus:4;mem:1024;ports:[31000-31009]').toJSON(),
        allocated_resources: Resources.parse('cpus:3;mem:512;ports:[31000-31001]').toJSON(),
        offered_resources: Resources.parse('cpus:2;mem:256;ports:[31001-31001]').toJSON(),
      },
    ]);
    assert.deepEqual(a!.attributes, { rack: 'r1', gen: '3' });
    assert.equal(freeCapacity(a!, '*').toString(), Resources.parse('cpus:3;mem:768;ports:[31001-31009]').toString());
    assert.throws(() => readMasterAgents([{ agent_info: {} }]), /agents\[0\]: no agent_info\.id\.value/);
    assert.throws(() => readMasterAgents({}), /without get_agents\.agents/);
  });

  it('fits exactly when planPlacements places every instance on the same free capacity (property)', () => {
    const agentArb = fc.record({
      cpus: fc.integer({ min: 0, max: 8 }),
      usedCpus: fc.integer({ min: 0, max: 8 }),
      mem: fc.integer({ min: 0, max: 4096 }),
      rack: fc.constantFrom('r1', 'r2', 'r3'),
      active: fc.boolean(),
    });
    const appArb = fc.record({
      instances: fc.integer({ min: 0, max: 8 }),
      cpus: fc.constantFrom(0.5, 1, 2, 3),
      mem: fc.constantFrom(16, 256, 1024),
      constraint: fc.constantFrom(undefined, ['hostname', 'UNIQUE'], ['rack', 'MAX_PER', '2'], ['rack', 'GROUP_BY']),
    });
    fc.assert(
      fc.property(fc.array(agentArb, { maxLength: 5 }), appArb, fc.integer({ min: 0, max: 1000 }), (specs, a, seed) => {
        const agents = specs.map((s, i) =>
          agent(`a${i}`, {
            totalText: `cpus:${s.cpus};mem:${s.mem};ports:[31000-31009]`,
            usedText: `cpus:${Math.min(s.usedCpus, s.cpus)}`,
            attributes: { rack: s.rack },
            active: s.active,
            state: s.active ? 'ACTIVE' : 'UNREACHABLE',
          }),
        );
        const def = app({ id: '/p', instances: a.instances, cpus: a.cpus, mem: a.mem, ...(a.constraint !== undefined ? { constraints: [a.constraint] } : {}) });
        const p = preview(view([]), put(def), agents, seed);
        const offers = agents.filter((x) => x.active).map((x) => ({ id: x.id, agentId: x.id, hostname: x.hostname, attributes: x.attributes, resources: freeCapacity(x, 'slipway') }));
        const placed = planPlacements({ app: placementApp(def), wanted: def.instances, offers, running: [], seed }).length;
        assert.equal(p.fits, placed === def.instances);
        assert.equal(p.apps[0]!.unplaced, def.instances - placed);
        // Whenever something is unplaced, every agent says why.
        if (!p.fits) assert.equal(p.apps[0]!.reasons.length, agents.length, JSON.stringify(p.apps[0]));
      }),
      { numRuns: 300 },
    );
  });
});
