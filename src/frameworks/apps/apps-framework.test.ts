import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { InProcessScheduler } from '../../server/in-process-scheduler.ts';
import type { SimCluster } from '../../sim/sim-cluster.ts';
import { SimHost } from '../../sim/sim-host.ts';
import type { SimRunner } from '../../sim/sim-runner.ts';
import type { SimAgent } from '../../sim/sim-agent.ts';
import { KyselyAppsStore } from '../../store/kysely-apps-store.ts';
import { sqliteDatabases } from '../../store/sqlite-database.ts';
import { WriteFaults } from '../../sim/write-faults.ts';
import { StoreUnavailable } from '../../lib/write-queue.ts';
import { parseAppDefinition } from './app-definition.ts';
import { AppsFramework } from './apps-framework.ts';
import type { MarathonEvent } from './events/marathon-events.ts';
import { isHealthy, type Instance } from './instance.ts';

// The services framework on simulated time: a real master core, simulated agents (src/sim), the
// real framework with its real SQLite store, over the in-process scheduler transport; the
// framework's clock is the cluster's ManualClock, so seconds of cluster time take milliseconds.

const AGENT = 'cpus:4;mem:4096;ports:[31000-32000]';

type Host = SimHost<AppsFramework, KyselyAppsStore>;

interface World {
  host: Host;
  fw: AppsFramework;
  runner: SimRunner;
  cluster: SimCluster;
  agents: readonly SimAgent[];
  events: MarathonEvent[];
  /** The framework stops and a new one starts on the same data dir and cluster. */
  restart(): Promise<World>;
}

/** The framework on `agents` simulated agents; `onEvent` sees each Marathon event as it is published. */
async function world(agents: number, onEvent: (e: MarathonEvent, fw: AppsFramework) => void = () => undefined, faults?: WriteFaults): Promise<World> {
  const events: MarathonEvent[] = [];
  let n = 0;
  const host = await SimHost.start<AppsFramework, KyselyAppsStore>({
    agents,
    resources: AGENT,
    openStore: (dir) => KyselyAppsStore.open(sqliteDatabases(dir)),
    framework: (cluster, store) => {
      const fw: AppsFramework = new AppsFramework({
        transport: new InProcessScheduler(cluster.master),
        store: faults !== undefined ? faults.wrap(store) : store,
        clock: cluster.clock,
        // One attempt: a retry would wait on the simulated clock, which moves only between turns.
        ...(faults !== undefined ? { writeAttempts: 1 } : {}),
        uuid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
        events: {
          publish: (e) => {
            events.push(e);
            onEvent(e, fw);
          },
        },
      });
      return fw;
    },
  });
  const made = (h: Host): World => ({ host: h, fw: h.framework, runner: h.runner, cluster: h.cluster, agents: h.agents, events, restart: async () => made(await h.restart()) });
  return made(host);
}

const running = (fw: AppsFramework, appId: string): Instance[] => fw.view.instancesOf(appId).filter((i) => i.state === 'TASK_RUNNING' && i.unreachableSince === undefined && !i.killing);

function perHost(instances: readonly Instance[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of instances) m.set(i.host, (m.get(i.host) ?? 0) + 1);
  return m;
}

const app = (json: Record<string, unknown>) => parseAppDefinition({ cpus: 0.1, mem: 32, cmd: 'sleep 1000', ...json });

describe('the services framework on simulated time', () => {
  let w: World | undefined;
  afterEach(async () => {
    await w?.host.stop();
    w = undefined;
  });

  it('replaces the instances of a lost agent on the other agents, spread evenly', async () => {
    w = await world(4);
    const { fw, runner, cluster, agents } = w;
    await fw.deploy((t) => t.set('/web', app({ id: '/web', instances: 8 })));
    await runner.until('8 instances running', () => running(fw, '/web').length === 8);
    assert.deepEqual([...perHost(running(fw, '/web')).values()], [2, 2, 2, 2], 'spread over the four agents');

    const lost = agents[0]!;
    cluster.loseAgent(lost);
    const took = await runner.until('8 instances running on the three agents left', () => running(fw, '/web').filter((i) => i.host !== lost.options.hostname).length === 8, 30_000);
    const counts = [...perHost(running(fw, '/web').filter((i) => i.host !== lost.options.hostname)).values()].sort();
    assert.deepEqual(counts, [2, 3, 3], 'the two replacements go to two different agents');
    // The master's grace for a dropped agent (5 s) is most of it.
    assert.ok(took >= 5000 && took <= 8000, `replaced ${took} ms of cluster time after the loss`);
  });

  it('never goes below minimum health, nor above maximum over capacity, in a rolling upgrade', async () => {
    let fewestHealthy = Infinity;
    let mostAlive = 0;
    let upgrading = false;
    w = await world(3, (_e, fw) => {
      if (!upgrading) return;
      const alive = fw.view.instancesOf('/api').filter((i) => i.state !== 'TASK_KILLED' && i.state !== 'TASK_FINISHED' && i.state !== 'TASK_FAILED');
      fewestHealthy = Math.min(fewestHealthy, alive.filter((i) => isHealthy(i) && !i.killing).length);
      mostAlive = Math.max(mostAlive, alive.length);
    });
    const { fw, runner } = w;
    const definition = {
      id: '/api',
      instances: 10,
      portDefinitions: [{ port: 0 }],
      healthChecks: [{ protocol: 'MESOS_HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 1 }],
      upgradeStrategy: { minimumHealthCapacity: 0.8, maximumOverCapacity: 0.2 },
      // The simulated agent reports each instance healthy 2 s after it runs.
      labels: { 'sim.healthy_after_ms': '2000' },
    };
    await fw.deploy((t) => t.set('/api', app(definition)));
    await runner.until('10 healthy instances', () => fw.view.instancesOf('/api').filter(isHealthy).length === 10 && fw.view.deployments().length === 0);
    const first = fw.view.app('/api')!.info.version;

    upgrading = true;
    await fw.deploy((t) => t.set('/api', app({ ...definition, cmd: 'sleep 2000' })));
    const took = await runner.until('the upgrade done', () => fw.view.deployments().length === 0, 120_000);
    upgrading = false;
    const now = fw.view.instancesOf('/api');
    assert.equal(now.length, 10);
    assert.ok(now.every((i) => i.version !== first && isHealthy(i)), 'every instance runs the new version, healthy');
    assert.ok(fewestHealthy >= 8, `at least ceil(10 x 0.8) = 8 healthy at every change (fewest: ${fewestHealthy})`);
    assert.ok(mostAlive <= 12, `at most 10 x 1.2 = 12 alive at every change (most: ${mostAlive})`);
    // Four new at a time (2 over capacity, 2 in place of old ones), each healthy after 2 s: three rounds.
    assert.ok(took >= 3 * 2000, `the upgrade took ${took} ms of cluster time: it waited for health`);
  });

  it('delays the launches of an app that keeps failing, longer each time up to the maximum, and starts over on reset', async () => {
    w = await world(1);
    const { fw, runner, events } = w;
    const launches = () => events.filter((e) => e.eventType === 'status_update_event' && e.taskStatus === 'TASK_RUNNING').map((e) => Date.parse(e.timestamp));
    await fw.deploy((t) =>
      t.set('/crash', app({ id: '/crash', instances: 1, backoffSeconds: 1, backoffFactor: 2, maxLaunchDelaySeconds: 8, labels: { 'sim.duration_ms': '100', 'sim.exit': 'failed' } })),
    );
    await runner.until('six launches', () => launches().length >= 6, 120_000);
    const at = launches();
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // Each failure (100 ms after its launch) waits 1, 2, 4, 8, 8 s; the rest is the next pass and offer (under 2.5 s).
    [1000, 2000, 4000, 8000, 8000].forEach((delay, i) => {
      const gap = gaps[i]!;
      assert.ok(gap >= delay + 100 && gap <= delay + 2600, `launch ${i + 2} came ${gap} ms after the one before (delay ${delay} ms)`);
    });
    assert.equal(fw.view.backoffs.get('/crash')?.delaySeconds, 8, 'held at the maximum');

    // DELETE /v2/queue/{app}/delay: the next launch at once, and the delay starts over at 1 s.
    await runner.until('a failure after the last launch', () => fw.view.backoffs.get('/crash') !== undefined && fw.view.instancesOf('/crash').length === 0, 20_000);
    const before = launches().length;
    const resetAt = w.cluster.clock.now();
    await fw.resetDelay('/crash');
    await runner.until('launched after the reset', () => launches().length > before, 10_000);
    assert.ok(launches()[before]! - resetAt <= 2500, 'launched without the 8 s delay');
    await runner.until('failed again', () => fw.view.backoffs.get('/crash') !== undefined, 10_000);
    assert.equal(fw.view.backoffs.get('/crash')?.delaySeconds, 1, 'the backoff starts over');
  });

  it('replaces the instances of a drained agent at once: a drain is no failure of the app, and starts no backoff', async () => {
    w = await world(2);
    const { fw, runner, cluster, agents } = w;
    await fw.deploy((t) => t.set('/web', app({ id: '/web', instances: 4, backoffSeconds: 600 })));
    await runner.until('4 instances running', () => running(fw, '/web').length === 4);
    const drained = agents[0]!;
    const there = running(fw, '/web').filter((i) => i.host === drained.options.hostname).length;
    assert.equal(there, 2, 'spread over both agents');
    cluster.master.drainAgent(drained.agentId!);
    const took = await runner.until('4 instances running off the drained agent', () => running(fw, '/web').filter((i) => i.host !== drained.options.hostname).length === 4, 30_000);
    assert.ok(took < 10_000, `replaced ${took} ms of cluster time after the drain (a backoff would hold them 600 s)`);
    assert.equal(fw.view.backoffs.get('/web'), undefined, 'no backoff');
    assert.equal(w.events.filter((e) => e.eventType === 'status_update_event' && e.taskStatus === 'TASK_KILLED').length, there);
  });

  it('keeps the API, memory and disk in agreement while its store refuses writes, and after a restart', async () => {
    const faults = new WriteFaults();
    w = await world(2, undefined, faults);
    const { fw, runner, agents } = w;
    await fw.deploy((t) => t.set('/keep', app({ id: '/keep', instances: 2 })));
    await runner.until('2 instances running', () => running(fw, '/keep').length === 2);
    const before = running(fw, '/keep').map((i) => i.taskId).sort();

    faults.fail('no space left on device');
    const refused = async (what: string, call: () => Promise<unknown>) => {
      const outcome = call().then(
        () => undefined,
        (e: unknown) => e,
      );
      await runner.quiesce();
      const e = await outcome;
      assert.ok(e instanceof StoreUnavailable, `${what}: refused (${String(e)})`);
      assert.equal(e.status, 503);
    };
    await refused('a new app', () => fw.deploy((t) => t.set('/new', app({ id: '/new', instances: 1 }))));
    await refused('a scale-up', () => fw.deploy((t) => t.set('/keep', app({ id: '/keep', instances: 4 }))));
    await refused('a kill', () => fw.killTasks(() => [before[0]!]));
    assert.equal(fw.view.app('/new'), undefined, 'no app that was refused');
    assert.equal(fw.view.app('/keep')?.def.instances, 2, 'the scale-up took no effect');
    assert.equal(fw.view.deployments().length, 0, 'no deployment that was refused');
    assert.deepEqual(running(fw, '/keep').map((i) => i.taskId).sort(), before, 'nothing killed, nothing launched');
    // An instance ends meanwhile: its update cannot be stored, so it is not acknowledged (the
    // agent sends it again) and memory still says what the disk says.
    const ending = fw.view.instance(before[1]!)!;
    agents.find((a) => a.options.hostname === ending.host)!.finishTask(ending.taskId, 'TASK_FAILED');
    await runner.advance(3_000);
    assert.equal(fw.view.instance(ending.taskId)?.state, 'TASK_RUNNING', 'memory is not ahead of the store');
    assert.ok(faults.refused > 0);

    faults.heal();
    await runner.until('the ended instance replaced', () => fw.view.instance(ending.taskId) === undefined && running(fw, '/keep').length === 2, 60_000);
    const now = running(fw, '/keep').map((i) => i.taskId).sort();

    w = await w.restart();
    await w.runner.quiesce();
    assert.deepEqual(w.fw.view.apps().map((a) => [a.def.id, a.def.instances]), [['/keep', 2]], 'after a restart: the apps the API showed');
    assert.deepEqual(running(w.fw, '/keep').map((i) => i.taskId).sort(), now, 'after a restart: the same instances, none killed');
  });
});
