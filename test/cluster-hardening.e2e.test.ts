import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { Resources } from '../src/core/resources.ts';
import type { Offer, TaskInfo } from '../src/protocol/mesos.ts';
import { SchedulerClient } from '../src/sdk/scheduler-client.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';
import { SlipwayProcess, activeAgents, freePort, operator, tearDownFramework, tempDir, waitForHttp } from './support/processes.ts';

/**
 * Issue 11 (hardening), over real processes on 127.0.0.1: a master and two agents driven through
 * the HTTP scheduler API and the operator API, as a third-party framework and an operator would.
 */

const dir = tempDir('hardening');
const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
/** The reconnect grace the master runs with: short, so that a restart that is not announced shows. */
const GRACE_MS = 1000;
/** The restart grace the master runs with (`--agent-restart-grace`; the default is 120 s). */
const RESTART_GRACE_MS = 90_000;

/** Runs the `slipway` command as an operator would; resolves with its exit code and output. */
async function slipway(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

interface AgentState {
  agent_info: { id: { value: string }; hostname: string };
  active: boolean;
  url?: string;
  deactivated?: boolean;
  drain_info?: { state: string };
  planned_restart?: { announced_time: { nanoseconds: number }; back_by_time?: { nanoseconds: number } };
}

async function agentState(hostname: string): Promise<AgentState | undefined> {
  const state = (await operator(masterUrl, 'GET_AGENTS')) as { get_agents: { agents: AgentState[] } };
  return state.get_agents.agents.find((a) => a.agent_info.hostname === hostname);
}

/** The number of an offer id (`<master>-O<n>`): later offers have larger numbers. */
const offerNumber = (o: Offer) => Number(o.id.value.slice(o.id.value.lastIndexOf('-O') + 2));
let masterUrl = '';
let master: SlipwayProcess;
const agents: SlipwayProcess[] = [];
const extra: SlipwayProcess[] = [];
let agentIds = new Map<string, string>();
const used = new Set<string>();

function agentProcess(i: number, ...extraArgs: string[]): SlipwayProcess {
  return new SlipwayProcess(
    `agent-${i}`,
    ['agent', '--master', masterUrl, '--work-dir', join(dir, `agent-${i}`), '--resources', `cpus:2;mem:1024;disk:1000;ports:[3${i + 5}000-3${i + 5}099]`, '--containerizers', 'process', '--hostname', `agent-${i}`, ...extraArgs],
    join(dir, `agent-${i}.log`),
  );
}

function task(offer: Offer, id: string, over: Partial<TaskInfo> = {}): TaskInfo {
  return {
    name: id,
    task_id: { value: id },
    agent_id: offer.agent_id,
    resources: Resources.scalars({ cpus: 0.1, mem: 32 }).toJSON(),
    command: { value: 'exec sleep 300' },
    ...over,
  };
}

/** Offers neither used nor rescinded. */
function outstanding(fw: SchedulerClient): Offer[] {
  const rescinded = new Set(fw.events.flatMap((e) => (e.type === 'RESCIND' ? [e.rescind.offer_id.value] : [])));
  return fw.offers().filter((o) => !used.has(o.id.value) && !rescinded.has(o.id.value));
}

async function offerOf(fw: SchedulerClient, hostname: string): Promise<Offer> {
  const offer = await fw.waitFor(() => outstanding(fw).findLast((o) => o.hostname === hostname), `an offer of ${hostname}`);
  used.add(offer.id.value);
  return offer;
}

/** ACCEPT of one offer with the given task infos (any JSON: some tests send what the schema refuses). */
async function accept(fw: SchedulerClient, offer: Offer, taskInfos: unknown[]): Promise<{ status: number; text: string }> {
  return fw.call({ type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: taskInfos as TaskInfo[] } }], filters: { refuse_seconds: 0 } } });
}

describe('cluster hardening (issue 11), over real processes', { timeout: 240_000 }, () => {
  let fw: SchedulerClient;

  before(async () => {
    const port = await freePort();
    masterUrl = `http://127.0.0.1:${port}`;
    master = new SlipwayProcess('master', ['master', '--port', String(port), '--data-dir', join(dir, 'master'), '--heartbeat', '2', '--agent-grace', String(GRACE_MS), '--agent-restart-grace', String(RESTART_GRACE_MS)], join(dir, 'master.log'));
    master.start();
    await waitForHttp(`${masterUrl}/health`);
    for (let i = 0; i < 2; i++) {
      const a = agentProcess(i);
      a.start();
      agents.push(a);
    }
    agentIds = await activeAgents(masterUrl, 2);
    fw = new SchedulerClient(masterUrl);
    await fw.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'test', name: 'hardening', roles: ['*'], failover_timeout: 3600, capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }] } } });
  });

  after(async () => {
    if (fw !== undefined && master?.child?.exitCode === null) {
      await tearDownFramework(fw, masterUrl);
    }
    fw?.close();
    for (const p of [...extra, ...agents]) await p.kill9();
    await master?.kill9();
    // Tasks outlive their agents by design: a task the teardown did not reach (an agent that was
    // restarting) is ended here, and the temp dir goes with it.
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('answers TASK_ERROR for a task the master refuses, launches the others of the ACCEPT, and launches later tasks', async () => {
    const offer = await offerOf(fw, 'agent-0');
    const bad = task(offer, 'bad-env', { command: { value: 'exec sleep 300', environment: { variables: [{ name: '', value: 'foo' }] } } });
    const good = task(offer, 'good-1');
    const r = await accept(fw, offer, [bad, good]);
    assert.equal(r.status, 202, r.text);
    const error = await fw.waitForState('bad-env', 'TASK_ERROR');
    assert.equal(error.reason, 'REASON_TASK_INVALID');
    assert.match(error.message ?? '', /command\.environment\.variables\[0\]\.name/);
    await fw.waitForState('good-1', 'TASK_RUNNING');
    // What the ACCEPT did not use comes back in a new offer, and launches there go on.
    const next = await offerOf(fw, 'agent-0');
    assert.equal((await accept(fw, next, [task(next, 'good-2')])).status, 202);
    await fw.waitForState('good-2', 'TASK_RUNNING');
  });

  it('returns the offer of an ACCEPT whose operations it cannot read, and says why with a 400', async () => {
    const offer = await offerOf(fw, 'agent-1');
    const r = await fw.call({ type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'RESERVE' }, { type: 'LAUNCH', launch: { task_infos: [{ name: 'no id' }] } }] } } as unknown as Parameters<SchedulerClient['call']>[0]);
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /operations\[0\].*RESERVE/);
    assert.match(r.text, /operations\[1\]\.launch\.task_infos\[0\]/);
    const next = await offerOf(fw, 'agent-1');
    assert.equal((await accept(fw, next, [task(next, 'after-bad-ops')])).status, 202);
    await fw.waitForState('after-bad-ops', 'TASK_RUNNING');
  });

  it('refuses a MESOS container with an image, which no containerizer here honours: TASK_ERROR naming the field', async () => {
    const offer = await offerOf(fw, 'agent-1');
    const info = task(offer, 'mesos-image', { container: { type: 'MESOS', mesos: { image: { type: 'DOCKER', docker: { name: 'busybox' } } } } as unknown as TaskInfo['container'] });
    assert.equal((await accept(fw, offer, [info])).status, 202);
    const error = await fw.waitForState('mesos-image', 'TASK_ERROR');
    assert.match(error.message ?? '', /container\.mesos\.image/);
    assert.equal(fw.updates('mesos-image').some((s) => s.state === 'TASK_RUNNING'), false);
  });

  // The agents run as root here: a user they do not know fails the task. (An agent that is not
  // root refuses any other user than its own the same way: src/agent/agent.test.ts.)
  it('refuses a process task whose user does not exist on the agent: TASK_ERROR from the agent, naming command.user', async () => {
    const offer = await offerOf(fw, 'agent-1');
    const info = task(offer, 'other-user', { command: { value: 'exec sleep 300', user: 'slipway-no-such-user' } });
    assert.equal((await accept(fw, offer, [info])).status, 202);
    const error = await fw.waitForState('other-user', 'TASK_ERROR');
    assert.equal(error.source, 'SOURCE_EXECUTOR');
    assert.match(error.message ?? '', /command\.user/);
    assert.equal(fw.updates('other-user').some((s) => s.state === 'TASK_RUNNING'), false);
  });

  it('does not serve a hard link to a file outside the sandbox', async () => {
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'not for tasks\n', { mode: 0o600 });
    const offer = await offerOf(fw, 'agent-0');
    // As root, explicitly: nobody (the agents' default task user) may not link a file of root's
    // (protected_hardlinks); the files server must refuse the link whoever made it.
    const info = task(offer, 'hardlink', { command: { value: `ln ${secret} linked && echo done > plain && exec sleep 300`, user: 'root' } });
    assert.equal((await accept(fw, offer, [info])).status, 202);
    await fw.waitForState('hardlink', 'TASK_RUNNING');
    const read = (path: string) => fetch(`${masterUrl}/files/read?framework_id=${fw.frameworkId}&task_id=hardlink&path=${path}`);
    await waitUntil(async () => (await read('plain')).status === 200, 'the task to write plain');
    const linked = await read('linked');
    const text = await linked.text();
    assert.equal(linked.status, 400, text);
    assert.doesNotMatch(text, /not for tasks/);
    assert.match(text, /link/);
    const download = await fetch(`${masterUrl}/files/download?framework_id=${fw.frameworkId}&task_id=hardlink&path=linked`);
    assert.equal(download.status, 400);
  });

  it('does not serve the agent\'s own files, even when a task checkpoint names them as its sandbox', async () => {
    // A checkpoint left by an old agent (or written by anyone) whose sandbox is the work dir.
    const agent = agentProcess(1);
    const oldUrl = await agentFilesUrl('agent-1');
    await agents[1]!.kill9();
    const workDir = join(dir, 'agent-1');
    const fwId = fw.frameworkId;
    const metaDir = join(workDir, 'meta', 'tasks', 'tampered-fw', 'tampered-task');
    mkdirSync(metaDir, { recursive: true });
    writeFileSync(
      join(metaDir, 'task.json'),
      JSON.stringify({ framework: { name: 'hardening', id: { value: fwId } }, info: { name: 't', task_id: { value: 'tampered' }, agent_id: { value: agentIds.get('agent-1')! }, resources: [] }, sandbox: workDir, state: 'TASK_FAILED', killRequested: false }),
    );
    agents[1] = agent;
    agent.start();
    // The restarted agent serves its files on a new port: seeing it proves it reregistered.
    const url = await agentFilesUrl('agent-1', oldUrl);
    const response = await fetch(`${url}/files/read?framework_id=${fwId}&task_id=tampered&path=agent_id`);
    const text = await response.text();
    assert.notEqual(response.status, 200, text);
    assert.doesNotMatch(text, new RegExp(agentIds.get('agent-1')!));
  });

  it('a second agent on the same work dir exits at once, naming the first by its pid', async () => {
    const first = agents[0]!;
    const second = new SlipwayProcess('agent-0-again', ['agent', '--master', masterUrl, '--work-dir', join(dir, 'agent-0'), '--resources', 'cpus:1;mem:256', '--containerizers', 'process', '--hostname', 'agent-0-again'], join(dir, 'agent-0-again.log'));
    extra.push(second);
    second.start();
    const code = await waitUntil(() => (second.child!.exitCode !== null ? second.child!.exitCode : undefined), 'the second agent to exit', 20_000);
    assert.notEqual(code, 0);
    const log = readFileSync(second.logFile, 'utf8');
    assert.match(log, new RegExp(`pid ${first.child!.pid}`), log);
    // The first one goes on, still registered.
    const state = (await operator(masterUrl, 'GET_AGENTS')) as { get_agents: { agents: { agent_info: { hostname: string }; active: boolean }[] } };
    assert.equal(state.get_agents.agents.find((a) => a.agent_info.hostname === 'agent-0')?.active, true);
    assert.equal(state.get_agents.agents.some((a) => a.agent_info.hostname === 'agent-0-again'), false);
  });

  it('drains an agent from the command line: its tasks are killed with a reason, it gets no offers, and reactivate brings it back', async () => {
    const offer = await offerOf(fw, 'agent-0');
    assert.equal((await accept(fw, offer, [task(offer, 'drain-me', { kill_policy: { grace_period: { nanoseconds: 60e9 } }, command: { value: "trap '' TERM; exec sleep 300" } })])).status, 202);
    await fw.waitForState('drain-me', 'TASK_RUNNING');
    const drain = await slipway('agents', 'drain', 'agent-0', '--max-grace-period', '1', '--master', masterUrl);
    assert.equal(drain.code, 0, drain.stderr);
    assert.match(drain.stdout, /is draining/);
    // The task ignores SIGTERM and asked for 60 s: the drain's 1 s cap is what ends it.
    const killed = await fw.waitForState('drain-me', 'TASK_KILLED', 20_000);
    assert.equal(killed.reason, 'REASON_AGENT_DRAINING');
    assert.match(killed.message ?? '', /drained by the operator/);
    await waitUntil(async () => (await agentState('agent-0'))?.drain_info?.state === 'DRAINED', 'agent-0 to be DRAINED');
    const list = await slipway('agents', '--master', masterUrl);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /agent-0 +ACTIVE +DRAINED/);
    // No offers of it: once every offer held is declined, agent-1 is offered again, agent-0 is not.
    const drainedAt = Math.max(...fw.offers().map(offerNumber));
    const held = outstanding(fw);
    for (const o of held) used.add(o.id.value);
    if (held.length > 0) assert.equal((await fw.call({ type: 'DECLINE', decline: { offer_ids: held.map((o) => o.id), filters: { refuse_seconds: 0 } } })).status, 202);
    await fw.waitFor(() => fw.offers().find((o) => o.hostname === 'agent-1' && offerNumber(o) > drainedAt), 'a new offer of agent-1');
    assert.equal(fw.offers().some((o) => o.hostname === 'agent-0' && offerNumber(o) > drainedAt), false, 'no offer of the drained agent');
    const reactivate = await slipway('agents', 'reactivate', agentIds.get('agent-0')!, '--master', masterUrl);
    assert.equal(reactivate.code, 0, reactivate.stderr);
    await fw.waitFor(() => fw.offers().find((o) => o.hostname === 'agent-0' && offerNumber(o) > drainedAt), 'an offer of agent-0 once reactivated');
    assert.equal((await agentState('agent-0'))?.drain_info, undefined);
  });

  it('maintain (DEACTIVATE_AGENT) keeps the tasks of the agent running and offers nothing of it; bad input is a 4xx with a message', async () => {
    const offer = await offerOf(fw, 'agent-0');
    assert.equal((await accept(fw, offer, [task(offer, 'kept')])).status, 202);
    await fw.waitForState('kept', 'TASK_RUNNING');
    const maintain = await slipway('agents', '--master', masterUrl, 'maintain', 'agent-0');
    assert.equal(maintain.code, 0, maintain.stderr);
    assert.equal((await agentState('agent-0'))?.deactivated, true);
    const unknown = await slipway('agents', 'drain', 'no-such-agent', '--master', masterUrl);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no agent has the id or hostname no-such-agent/);
    const post = (body: unknown) => fetch(`${masterUrl}/api/v1`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    for (const [body, status] of [
      [{ type: 'DRAIN_AGENT' }, 400],
      [{ type: 'DRAIN_AGENT', drain_agent: { agent_id: { value: agentIds.get('agent-0') }, max_grace_period: '10mins' } }, 400],
      [{ type: 'DEACTIVATE_AGENT', deactivate_agent: { agent_id: { value: 'nope' } } }, 404],
    ] as const) {
      const r = await post(body);
      assert.equal(r.status, status, await r.text());
    }
    assert.equal(fw.updates('kept').some((u) => u.state !== 'TASK_RUNNING' && u.state !== 'TASK_STARTING'), false, 'the task runs on');
    assert.equal((await slipway('agents', 'reactivate', 'agent-0', '--master', masterUrl)).code, 0);
  });

  it('an agent stopped with SIGTERM announces its restart: the master waits longer than the reconnect grace, and its tasks run on unreported', async () => {
    const offer = await offerOf(fw, 'agent-1');
    assert.equal((await accept(fw, offer, [task(offer, 'survivor')])).status, 202);
    await fw.waitForState('survivor', 'TASK_RUNNING');
    const oldUrl = await agentFilesUrl('agent-1');
    const stopped = agents[1]!;
    const exited = new Promise<number | null>((resolve) => stopped.child!.once('exit', (code) => resolve(code)));
    stopped.child!.kill('SIGTERM');
    assert.equal(await exited, 0);
    const downAt = Date.now();
    const announced = await waitUntil(async () => {
      const a = await agentState('agent-1');
      return a?.planned_restart?.back_by_time !== undefined ? a : undefined;
    }, 'the master to show the planned restart');
    assert.equal(announced.active, true);
    const graceNs = announced.planned_restart!.back_by_time!.nanoseconds - announced.planned_restart!.announced_time.nanoseconds;
    assert.ok(Math.abs(graceNs / 1e6 - RESTART_GRACE_MS) < 5_000, `back by ${graceNs / 1e6} ms after the announcement: the master's --agent-restart-grace`);
    // Down for longer than the reconnect grace: a restart that was not announced would be reported.
    await waitUntil(async () => Date.now() - downAt > 3 * GRACE_MS && (await agentState('agent-1'))?.active === true, `agent-1 to stay active ${3 * GRACE_MS} ms after it stopped`);
    const again = agentProcess(1);
    agents[1] = again;
    again.start();
    await agentFilesUrl('agent-1', oldUrl);
    assert.equal((await agentState('agent-1'))?.planned_restart, undefined);
    assert.deepEqual(fw.updates('survivor').map((u) => u.state).filter((s) => s !== 'TASK_RUNNING'), [], 'nothing but RUNNING was reported');
  });

  it('an agent started with --no-announce-restart and stopped with SIGTERM gets only the reconnect grace: its tasks are reported unreachable', async () => {
    const oldUrl = await agentFilesUrl('agent-1');
    let stopped = agentProcess(1, '--no-announce-restart');
    // The running agent is replaced by one with the flag (its task is adopted: same work dir).
    await agents[1]!.kill9();
    agents[1] = stopped;
    stopped.start();
    const newUrl = await agentFilesUrl('agent-1', oldUrl);
    const offer = await offerOf(fw, 'agent-1');
    assert.equal((await accept(fw, offer, [task(offer, 'unannounced')])).status, 202);
    await fw.waitForState('unannounced', 'TASK_RUNNING');
    const exited = new Promise<number | null>((resolve) => stopped.child!.once('exit', (code) => resolve(code)));
    stopped.child!.kill('SIGTERM');
    assert.equal(await exited, 0);
    await fw.waitForState('unannounced', 'TASK_UNREACHABLE');
    assert.equal((await agentState('agent-1'))?.planned_restart, undefined, 'no restart was announced');
    stopped = agentProcess(1);
    agents[1] = stopped;
    stopped.start();
    await agentFilesUrl('agent-1', newUrl);
  });
});

/** The files URL of an active agent (other than `not`, the one it had before a restart). */
async function agentFilesUrl(hostname: string, not?: string): Promise<string> {
  return waitUntil(async () => {
    const state = (await operator(masterUrl, 'GET_AGENTS')) as { get_agents: { agents: { agent_info: { hostname: string }; active: boolean; url?: string }[] } };
    const url = state.get_agents.agents.find((x) => x.agent_info.hostname === hostname && x.active)?.url;
    return url !== not ? url : undefined;
  }, `the files URL of ${hostname}`);
}
