import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import WebSocket from 'ws';
import { Resources } from '../src/core/resources.ts';
import { pathSegment } from '../src/agent/path-segment.ts';
import type { Offer, TaskInfo } from '../src/protocol/mesos.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { SchedulerClient } from '../src/sdk/scheduler-client.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';
import { SlipwayProcess, activeAgents, freePort, operator, tearDownFramework, tempDir, waitForHttp } from './support/processes.ts';
import { runAuthorization } from '../src/sim/bench-token.ts';

/**
 * A master and three agents as real processes on 127.0.0.1, driven through the HTTP scheduler
 * API as a third-party framework would: process and Docker tasks, logs, kills, bad input, and
 * kill -9 of an agent and of the master.
 */

const dir = tempDir('cluster');
let masterPort = 0;
let masterUrl = '';
let master: SlipwayProcess;
const agents: SlipwayProcess[] = [];
let agentIds = new Map<string, string>();
let dockerImage: string | undefined;
let dockerSkip: string | false = false;

function startMaster(): SlipwayProcess {
  const p = new SlipwayProcess('master', ['master', '--port', String(masterPort), '--data-dir', join(dir, 'master'), '--heartbeat', '2'], join(dir, 'master.log'));
  p.start();
  return p;
}

function agentProcess(i: number, containerizers: string): SlipwayProcess {
  return new SlipwayProcess(
    `agent-${i}`,
    ['agent', '--master', masterUrl, '--work-dir', join(dir, `agent-${i}`), '--resources', `cpus:2;mem:1024;disk:1000;ports:[3${i}000-3${i}099]`, '--attributes', `rack:r${i};zone:z1`, '--containerizers', containerizers, '--hostname', `agent-${i}`],
    join(dir, `agent-${i}.log`),
  );
}

function task(offer: Offer, id: string, over: Partial<TaskInfo> = {}): TaskInfo {
  return {
    name: id,
    task_id: { value: id },
    agent_id: offer.agent_id,
    resources: [...Resources.scalars({ cpus: 0.1, mem: 32 }).toJSON(), { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: offer.resources.find((r) => r.name === 'ports')!.ranges!.range[0]!.begin, end: offer.resources.find((r) => r.name === 'ports')!.ranges!.range[0]!.begin }] } }],
    command: { value: 'echo "hello from $MESOS_TASK_ID on port $PORT0"; exec sleep 300' },
    ...over,
  };
}

async function launchOn(fw: SchedulerClient, hostname: string, tasks: (o: Offer) => TaskInfo[]): Promise<void> {
  const offer = await fw.waitFor(() => fw.offers().findLast((o) => o.hostname === hostname && !used.has(o.id.value)), `an offer of ${hostname}`);
  used.add(offer.id.value);
  const r = await fw.call({ type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: tasks(offer) } }], filters: { refuse_seconds: 0 } } });
  assert.equal(r.status, 202, r.text);
}
const used = new Set<string>();

async function readLog(fw: SchedulerClient, taskId: string, file = 'stdout'): Promise<string> {
  const response = await fetch(`${masterUrl}/files/read?framework_id=${fw.frameworkId}&task_id=${taskId}&path=${file}`);
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { data: string }).data;
}

describe('a master and three agents as real processes', { timeout: 240_000 }, () => {
  let fw: SchedulerClient;

  before(async () => {
    masterPort = await freePort();
    masterUrl = `http://127.0.0.1:${masterPort}`;
    const docker = new Docker();
    try {
      await docker.ping();
      dockerImage = await ensureBusyboxImage(docker);
    } catch (e) {
      if (process.env['CI']) throw new Error(`CI needs a Docker engine for these tests: ${(e as Error).message}`, { cause: e });
      dockerSkip = `no Docker engine: ${(e as Error).message}`;
    }
    master = startMaster();
    await waitForHttp(`${masterUrl}/health`);
    for (let i = 0; i < 3; i++) {
      const a = agentProcess(i, dockerImage !== undefined ? 'process,docker' : 'process');
      a.start();
      agents.push(a);
    }
    agentIds = await activeAgents(masterUrl, 3);
    fw = new SchedulerClient(masterUrl);
    await fw.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'test', name: 'e2e', roles: ['*'], failover_timeout: 3600, capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }] } } });
  });

  after(async () => {
    // Tear the framework down so that the agents kill its tasks, then stop the processes.
    if (fw !== undefined && master?.child?.exitCode === null) {
      await tearDownFramework(fw, masterUrl);
      await new Promise((r) => setTimeout(r, 500)); // Let the agents deliver the kills they were sent.
    }
    fw?.close();
    for (const a of agents) await a.kill9();
    await master?.kill9();
    killProcessesUnder(dir); // Whatever task the teardown did not reach (tasks outlive agents).
    if (dockerImage !== undefined) {
      const docker = new Docker();
      for (const c of await docker.listContainers({ all: true, filters: { label: ['slipway.agent_id'] } })) {
        if ([...agentIds.values()].includes(c.Labels['slipway.agent_id'] ?? '')) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('offers every agent with its resources and attributes', async () => {
    const offers = await fw.waitFor(() => {
      const hosts = new Set(fw.offers().map((o) => o.hostname));
      return hosts.size === 3 ? fw.offers() : undefined;
    }, 'offers of three agents');
    const o = offers.find((x) => x.hostname === 'agent-1')!;
    assert.ok(Resources.fromJSON(o.resources).contains(Resources.parse('cpus:2;mem:1024;ports:[31000-31099]')));
    assert.deepEqual(o.attributes.find((a) => a.name === 'rack'), { name: 'rack', type: 'TEXT', text: { value: 'r1' } });
  });

  it('runs a process task, serves its stdout through the master and kills it', async () => {
    await launchOn(fw, 'agent-0', (o) => [task(o, 'proc-1')]);
    const running = await fw.waitForState('proc-1', 'TASK_RUNNING');
    assert.equal(running.agent_id?.value, agentIds.get('agent-0'));
    await waitUntil(async () => (await readLog(fw, 'proc-1')).includes('hello from proc-1 on port 30000'), 'the task to print its greeting');
    const browse = (await (await fetch(`${masterUrl}/files/browse?framework_id=${fw.frameworkId}&task_id=proc-1`)).json()) as { path: string }[];
    assert.ok(browse.some((f) => f.path === 'stdout') && browse.some((f) => f.path === 'stderr'));
    assert.equal((await fw.call({ type: 'KILL', kill: { task_id: { value: 'proc-1' } } })).status, 202);
    const killed = await fw.waitForState('proc-1', 'TASK_KILLED');
    assert.equal(killed.source, 'SOURCE_EXECUTOR');
  });

  it('reports a failing command as TASK_FAILED with its exit code', async () => {
    await launchOn(fw, 'agent-1', (o) => [task(o, 'fails', { command: { value: 'echo oops >&2; exit 3' } })]);
    const failed = await fw.waitForState('fails', 'TASK_FAILED');
    assert.match(failed.message ?? '', /status 3/);
    assert.match(await readLog(fw, 'fails', 'stderr'), /oops/);
  });

  it('follows a log until the task ends', async () => {
    await launchOn(fw, 'agent-2', (o) => [task(o, 'counter', { command: { value: 'for i in 1 2 3; do echo line $i; sleep 0.2; done' } })]);
    await fw.waitForState('counter', 'TASK_RUNNING');
    const text = await (await fetch(`${masterUrl}/files/follow?framework_id=${fw.frameworkId}&task_id=counter&path=stdout`)).text();
    assert.equal(text, 'line 1\nline 2\nline 3\n');
    await fw.waitForState('counter', 'TASK_FINISHED');
  });

  it('runs health checks on the agent: healthy updates, and a kill after consecutive failures', async () => {
    await launchOn(fw, 'agent-0', (o) => [
      task(o, 'web', {
        command: { value: 'exec python3 -m http.server $PORT0 --bind 127.0.0.1' },
        health_check: { type: 'HTTP', http: { port: Number(o.resources.find((r) => r.name === 'ports')!.ranges!.range[0]!.begin), path: '/' }, delay_seconds: 0, interval_seconds: 0.2, timeout_seconds: 1, grace_period_seconds: 10 },
      }),
    ]);
    const healthy = await fw.waitFor(() => fw.updates('web').find((u) => u.healthy === true), 'a healthy update of web');
    assert.equal(healthy.state, 'TASK_RUNNING');
    assert.equal(healthy.reason, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
    await fw.call({ type: 'KILL', kill: { task_id: { value: 'web' } } });
    await fw.waitForState('web', 'TASK_KILLED');

    await launchOn(fw, 'agent-1', (o) => [
      task(o, 'sick', { health_check: { type: 'COMMAND', command: { value: 'test -f $MESOS_SANDBOX/never' }, delay_seconds: 0, interval_seconds: 0.1, timeout_seconds: 1, consecutive_failures: 2, grace_period_seconds: 0 } }),
    ]);
    const killed = await fw.waitForState('sick', 'TASK_KILLED');
    assert.match(killed.message ?? '', /Task killed after 2 consecutive health check failures/);
    assert.ok(fw.updates('sick').some((u) => u.healthy === false), 'the framework heard it was unhealthy first');
  });

  it('reports a task that died while its agent was down when the agent comes back', async () => {
    await launchOn(fw, 'agent-1', (o) => [task(o, 'doomed', { command: { value: 'echo $$ > pid; exec sleep 300' } })]);
    await fw.waitForState('doomed', 'TASK_RUNNING');
    const pidFile = join(dir, 'agent-1', 'sandboxes', pathSegment(fw.frameworkId), pathSegment('doomed'), 'pid');
    const pid = await waitUntil(() => {
      try {
        return Number(readFileSync(pidFile, 'utf8').trim()) || undefined;
      } catch {
        return undefined;
      }
    }, 'the task to write its pid');
    await agents[1]!.kill9();
    process.kill(pid, 'SIGKILL');
    agents[1] = agentProcess(1, dockerImage !== undefined ? 'process,docker' : 'process');
    agents[1].start();
    const failed = await fw.waitForState('doomed', 'TASK_FAILED', 20_000);
    assert.match(failed.message ?? '', /SIGKILL|signal 9|while the agent was down/, failed.message);
    await activeAgents(masterUrl, 3);
  });

  it('runs a Docker task with host networking and the offer\'s port', { skip: dockerSkip }, async () => {
    await launchOn(fw, 'agent-1', (o) => [
      task(o, 'docker-1', { container: { type: 'DOCKER', docker: { image: dockerImage!, network: 'HOST' } }, command: { value: 'echo "in docker port $PORT0 sandbox $MESOS_SANDBOX"; exec sleep 300' } }),
    ]);
    await fw.waitForState('docker-1', 'TASK_RUNNING', 60_000);
    await waitUntil(async () => (await readLog(fw, 'docker-1')).includes('in docker port 31000 sandbox /mnt/mesos/sandbox'), 'the container to print');
    const docker = new Docker();
    const containers = await docker.listContainers({ filters: { label: [`slipway.task_id=docker-1`] } });
    assert.equal(containers.length, 1);
    assert.equal(containers[0]!.HostConfig.NetworkMode, 'host');
    assert.equal((await fw.call({ type: 'KILL', kill: { task_id: { value: 'docker-1' } } })).status, 202);
    await fw.waitForState('docker-1', 'TASK_KILLED', 30_000);
  });

  it('answers bad input with 4xx and a message, never 500', async () => {
    const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
      const r = await fetch(masterUrl + path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
      return { status: r.status, text: await r.text() };
    };
    const cases: [string, string, Record<string, string>, number, RegExp][] = [
      ['/api/v1/scheduler', '{not json', {}, 400, /JSON/i],
      ['/api/v1/scheduler', '{"type":"NOPE"}', {}, 400, /'type' must be one of/],
      ['/api/v1/scheduler', JSON.stringify({ type: 'REVIVE', framework_id: { value: 'nobody' } }), {}, 403, /not subscribed/],
      ['/api/v1/scheduler', JSON.stringify({ type: 'REVIVE', framework_id: { value: fw.frameworkId } }), {}, 400, /Mesos-Stream-Id/],
      ['/api/v1/scheduler', JSON.stringify({ type: 'REVIVE', framework_id: { value: fw.frameworkId } }), { 'Mesos-Stream-Id': 'wrong' }, 403, /not the current stream/],
      ['/api/v1/scheduler', JSON.stringify({ type: 'ACCEPT', framework_id: { value: fw.frameworkId }, accept: { offer_ids: [] } }), { 'Mesos-Stream-Id': fw.streamId }, 400, /accept\./],
      ['/api/v1/scheduler', JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x', roles: ['bad role'] } } }), {}, 400, /not a valid role/],
      ['/api/v1', '{"type":"GET_NOTHING"}', {}, 400, /not supported/],
      ['/api/v1', '[]', {}, 400, /operator call/],
      ['/api/v1', JSON.stringify({ type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'a', weight: -1 }] } }), {}, 400, /must be > 0/],
    ];
    for (const [path, body, headers, status, message] of cases) {
      const r = await post(path, body, headers);
      assert.equal(r.status, status, `${path} ${body}: ${r.text}`);
      assert.match(r.text, message, `${path} ${body}`);
    }
    const get = async (path: string) => {
      const r = await fetch(masterUrl + path);
      return { status: r.status, text: await r.text() };
    };
    assert.equal((await get('/files/read?task_id=x')).status, 400);
    assert.equal((await get(`/files/read?framework_id=${fw.frameworkId}&task_id=nope`)).status, 404);
    assert.equal((await get('/no/such/route')).status, 404);
    const escape = await get(`/files/read?framework_id=${fw.frameworkId}&task_id=fails&path=../../../../etc/passwd`);
    assert.equal(escape.status, 400, escape.text);
    assert.match(escape.text, /outside the task's sandbox/);
    // An agent stream that does not start with REGISTER is refused with an ERROR message.
    const ws = new WebSocket(`ws://127.0.0.1:${masterPort}/api/v1/agent`, { headers: { authorization: runAuthorization() } });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'HEARTBEAT' })));
      ws.on('message', (d) => resolve(d.toString()));
      ws.on('error', reject);
    });
    assert.match(reply, /"type":"ERROR".*must be REGISTER/);
    ws.close();
  });

  it('serves health, metrics, state and weights', async () => {
    assert.equal(await (await fetch(`${masterUrl}/health`)).text(), 'OK');
    const metrics = await (await fetch(`${masterUrl}/metrics`)).text();
    assert.match(metrics, /slipway_agents\{state="ACTIVE"\} 3/);
    assert.match(metrics, /slipway_allocation_run_seconds_count \d+/);
    const state = (await (await fetch(`${masterUrl}/master/state`)).json()) as { activated_slaves: number };
    assert.equal(state.activated_slaves, 3);
    await operator(masterUrl, 'UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'ci', weight: 2.5 }] } });
    const weights = (await operator(masterUrl, 'GET_WEIGHTS')) as { get_weights: { weight_infos: { role: string; weight: number }[] } };
    assert.deepEqual(weights.get_weights.weight_infos.find((w) => w.role === 'ci'), { role: 'ci', weight: 2.5 });
    const agentsAnswer = (await operator(masterUrl, 'GET_AGENTS')) as { get_agents: { agents: { containerizers: { kind: string; limits: { enforced: boolean; reason?: string } }[] }[] } };
    for (const a of agentsAnswer.get_agents.agents) {
      const processInfo = a.containerizers.find((c) => c.kind === 'process');
      assert.ok(processInfo !== undefined, 'the agent says which containerizers it has');
      assert.ok(processInfo.limits.enforced || (processInfo.limits.reason ?? '').length > 0, 'and whether limits are enforced, or why not');
    }
    const version = (await operator(masterUrl, 'GET_VERSION')) as { get_version: { version_info: { version: string } } };
    assert.match(version.get_version.version_info.version, /^\d+\.\d+\.\d+$/);
  });

  it('reports the tasks of an agent killed with -9 within the grace period plus 1 s', async () => {
    await launchOn(fw, 'agent-2', (o) => [task(o, 'on-doomed')]);
    await fw.waitForState('on-doomed', 'TASK_RUNNING');
    const killedAt = Date.now();
    await agents[2]!.kill9();
    const update = await fw.waitFor(() => fw.updates('on-doomed').find((u) => u.state === 'TASK_UNREACHABLE'), 'TASK_UNREACHABLE', 15_000);
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed <= 5_000 + 1_000, `reported after ${elapsed} ms`);
    assert.equal(update.source, 'SOURCE_MASTER');
    assert.ok(fw.events.some((e) => e.type === 'FAILURE' && e.failure.agent_id?.value === agentIds.get('agent-2')));
    // The task kept running behind the "partition": when its agent comes back, so does the task.
    agents[2] = agentProcess(2, dockerImage !== undefined ? 'process,docker' : 'process');
    agents[2].start();
    const back = await fw.waitFor(() => fw.updates('on-doomed').find((u) => u.reason === 'REASON_AGENT_REREGISTERED'), 'the task to come back', 20_000);
    assert.equal(back.state, 'TASK_RUNNING');
    await activeAgents(masterUrl, 3);
  });

  it('keeps tasks running across a kill -9 and restart of their agent', async () => {
    await launchOn(fw, 'agent-0', (o) => [task(o, 'survivor', { command: { value: 'echo started; exec sleep 300' } })]);
    await fw.waitForState('survivor', 'TASK_RUNNING');
    const before = fw.updates('survivor').length;
    const urlOf = async () => {
      const answer = (await operator(masterUrl, 'GET_AGENTS')) as { get_agents: { agents: { agent_info: { id: { value: string } }; url: string; active: boolean }[] } };
      return answer.get_agents.agents.find((a) => a.agent_info.id.value === agentIds.get('agent-0'));
    };
    const oldUrl = (await urlOf())!.url;
    await agents[0]!.kill9();
    agents[0] = agentProcess(0, dockerImage !== undefined ? 'process,docker' : 'process');
    agents[0].start();
    // The restarted agent serves its files on a new port: seeing it proves it reregistered.
    const back = await waitUntil(async () => {
      const a = await urlOf();
      return a !== undefined && a.active && a.url !== oldUrl ? a : undefined;
    }, 'agent-0 to reregister from its new process');
    assert.equal(back.agent_info.id.value, agentIds.get('agent-0'), 'the agent kept its id');
    const tasks = (await operator(masterUrl, 'GET_TASKS')) as { get_tasks: { tasks: { task_id: { value: string }; state: string }[] } };
    assert.deepEqual(tasks.get_tasks.tasks.filter((t) => t.task_id.value === 'survivor').map((t) => t.state), ['TASK_RUNNING']);
    assert.ok(fw.updates('survivor').slice(before).every((u) => u.state === 'TASK_RUNNING'), 'no terminal update for the survivor');
    assert.equal(readFileSync(join(dir, 'agent-0', 'sandboxes', pathSegment(fw.frameworkId), pathSegment('survivor'), 'stdout'), 'utf8'), 'started\n', 'it was not started again');
  });

  it('keeps its state across a kill -9 and restart of the master', async () => {
    await master.kill9();
    master = startMaster();
    await waitForHttp(`${masterUrl}/health`);
    await activeAgents(masterUrl, 3);
    fw.close();
    const again = new SchedulerClient(masterUrl);
    await again.subscribe({ type: 'SUBSCRIBE', framework_id: { value: fw.frameworkId }, subscribe: { framework_info: { id: { value: fw.frameworkId }, user: 'test', name: 'e2e', roles: ['*'], failover_timeout: 3600, capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }] } } });
    assert.equal(again.frameworkId, fw.frameworkId);
    const tasks = (await operator(masterUrl, 'GET_TASKS')) as { get_tasks: { tasks: { task_id: { value: string }; state: string }[] } };
    const survivors = tasks.get_tasks.tasks.filter((t) => t.task_id.value === 'survivor');
    assert.deepEqual(survivors.map((t) => t.state), ['TASK_RUNNING'], 'known once, still running');
    assert.equal((await again.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 'survivor' } }] } })).status, 202);
    const reconciled = await again.waitFor(() => again.updates('survivor').find((u) => u.reason === 'REASON_RECONCILIATION'), 'reconciliation');
    assert.equal(reconciled.state, 'TASK_RUNNING');
    fw = again;
  });
});
