import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { WebSocketServer, type WebSocket } from 'ws';
import { SystemClock } from '../core/clock.ts';
import { Resources } from '../core/resources.ts';
import type { TaskState } from '../core/task-state.ts';
import type { AgentToMaster, MasterToAgent } from '../protocol/agent.ts';
import type { FrameworkInfo, TaskInfo, TaskStatus } from '../protocol/mesos.ts';
import { waitUntil } from '../../test/support/wait.ts';
import { ensureBusyboxImage } from '../sim/busybox-image.ts';
import { Agent, type AgentOptions } from './agent.ts';
import type { Containerizer } from './containerizer.ts';
import { DockerContainerizer, LABELS } from './containerizers/docker-containerizer.ts';
import { ProcessContainerizer } from './containerizers/process-containerizer.ts';
import { TaskCgroups } from './containerizers/task-cgroups.ts';
import { pathSegment } from './path-segment.ts';

/**
 * The agent daemon against a stand-in master: a real WebSocket server on /api/v1/agent that
 * speaks the agent protocol (REGISTERED, LAUNCH, KILL, ACKNOWLEDGE, SHUTDOWN_FRAMEWORK) and
 * records what the agent says, with real tasks in the process containerizer and real files.
 * The master refuses odd ids on its own; the agent must be safe without it.
 */
class StandInMaster {
  readonly registers: Extract<AgentToMaster, { type: 'REGISTER' }>[] = [];
  readonly updates: { frameworkId: string; status: TaskStatus & { uuid: string } }[] = [];
  /** Acknowledge every update as it arrives. */
  autoAck = true;
  private readonly server: WebSocketServer;
  private socket: WebSocket | undefined;

  private constructor(server: WebSocketServer) {
    this.server = server;
    server.on('connection', (socket) => {
      this.socket = socket;
      socket.on('message', (data) => {
        const m = JSON.parse(String(data)) as AgentToMaster;
        if (m.type === 'REGISTER') {
          this.registers.push(m);
          this.send({ type: 'REGISTERED', agent_id: { value: m.agent_id?.value ?? 'agent-1' }, heartbeat_interval_seconds: 60 });
        } else if (m.type === 'STATUS_UPDATE') {
          this.updates.push({ frameworkId: m.framework_id.value, status: m.status });
          if (this.autoAck) this.send({ type: 'ACKNOWLEDGE', framework_id: m.framework_id, task_id: m.status.task_id, uuid: m.status.uuid });
        }
      });
    });
  }

  static async start(): Promise<StandInMaster> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/api/v1/agent' });
    await new Promise((r) => server.once('listening', r));
    return new StandInMaster(server);
  }

  get url(): string {
    const address = this.server.address();
    return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  }

  send(m: MasterToAgent): void {
    this.socket?.send(JSON.stringify(m));
  }

  states(taskId: string, frameworkId?: string): TaskState[] {
    return this.updates.filter((u) => u.status.task_id.value === taskId && (frameworkId === undefined || u.frameworkId === frameworkId)).map((u) => u.status.state);
  }

  async waitForState(taskId: string, state: TaskState, frameworkId?: string): Promise<TaskStatus> {
    return waitUntil(() => this.updates.find((u) => u.status.task_id.value === taskId && u.status.state === state && (frameworkId === undefined || u.frameworkId === frameworkId))?.status, `task ${JSON.stringify(taskId)} to reach ${state} (has ${this.states(taskId).join(', ')})`, 10_000);
  }

  async close(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    await new Promise((r) => this.server.close(r));
  }
}

const framework = (id: string): FrameworkInfo & { id: { value: string } } => ({ name: 'test', id: { value: id } });

function task(id: string, command: string, over: Partial<TaskInfo> = {}): TaskInfo {
  return { name: 't', task_id: { value: id }, agent_id: { value: 'agent-1' }, resources: Resources.parse('cpus:0.1;mem:32').toJSON(), command: { value: command }, ...over };
}

function processContainerizer(): Containerizer {
  return new ProcessContainerizer({ cgroups: TaskCgroups.disabled('not needed by these tests'), pollIntervalMs: 25 });
}

async function startAgent(master: StandInMaster, workDir: string, containerizers: Containerizer[] = [processContainerizer()], log: string[] = []): Promise<Agent> {
  return startAgentWith(master, workDir, { containerizers }, log);
}

async function startAgentWith(master: StandInMaster, workDir: string, more: Partial<AgentOptions>, log: string[] = []): Promise<Agent> {
  const agent = new Agent({
    masterUrl: master.url,
    workDir,
    hostname: 'h',
    resources: Resources.parse('cpus:4;mem:1024'),
    attributes: [],
    containerizers: [processContainerizer()],
    clock: new SystemClock(),
    statusRetryMs: 200,
    defaultKillGraceMs: 200,
    log: (line) => void log.push(line),
    ...more,
  });
  await agent.start();
  await waitUntil(() => agent.connected(), 'the agent to register');
  return agent;
}

/** Directories under `dir`, two levels down (framework / task). */
function taskDirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((fw) => readdirSync(join(dir, fw)).map((t) => `${fw}/${t}`));
}

/**
 * Files for tasks to fetch, on 127.0.0.1: `serve(path, body)`; `hold(path)` keeps the answer
 * back until its `release()`, to see what the agent does while a download goes on.
 */
class UriServer {
  private readonly routes = new Map<string, (res: ServerResponse) => void>();
  private readonly sockets = new Set<Socket>();
  readonly requested: string[] = [];

  private constructor(private readonly server: Server) {
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('request', (req, res) => {
      const path = req.url ?? '/';
      this.requested.push(path);
      const route = this.routes.get(path);
      if (route === undefined) res.writeHead(404).end();
      else route(res);
    });
  }

  static async start(): Promise<UriServer> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return new UriServer(server);
  }

  url(path: string): string {
    const a = this.server.address();
    return `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}${path}`;
  }

  serve(path: string, body: string): void {
    this.routes.set(path, (res) => res.writeHead(200).end(body));
  }

  hold(path: string, body: string): { release(): void } {
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    this.routes.set(path, (res) => {
      res.writeHead(200).write(body.slice(0, 3));
      void released.then(() => res.end(body.slice(3)));
    });
    return { release: () => release() };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => void unhandled.push(e);

describe('the agent', () => {
  let root: string;
  let master: StandInMaster;
  let uris: UriServer;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'agent-'));
    master = await StandInMaster.start();
    uris = await UriServer.start();
    process.on('unhandledRejection', onUnhandled);
  });
  beforeEach(() => {
    master.updates.length = 0;
    master.registers.length = 0;
    master.autoAck = true;
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await master.close();
    await uris.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('runs tasks whose ids are .., 300 characters long or hold a lone surrogate, each in its own sandbox inside the work dir', async () => {
    const work = join(root, 'odd-ids');
    const agent = await startAgent(master, work);
    const odd = ['..', '.', 'x'.repeat(300), 'x\ud800', 'a/../../b', ''];
    master.send({ type: 'LAUNCH', framework: framework('..'), task: task('keep', 'exec sleep 30') });
    await master.waitForState('keep', 'TASK_RUNNING', '..');
    for (const id of odd) master.send({ type: 'LAUNCH', framework: framework('..'), task: task(id, 'echo "I am $MESOS_TASK_ID"') });
    for (const id of odd) await master.waitForState(id, 'TASK_FINISHED', '..');
    // Every sandbox is a directory of its own, two levels under sandboxes/, holding its task's output.
    const sandboxes = new Set<string>();
    for (const id of odd) {
      const dir = agent.sandboxOf('..', id)!.dir;
      assert.equal(dir, join(work, 'sandboxes', pathSegment('..'), pathSegment(id)));
      assert.equal(readFileSync(join(dir, 'stdout'), 'utf8'), `I am ${id === 'x\ud800' ? 'x\ufffd' : id}\n`);
      sandboxes.add(dir);
    }
    assert.equal(sandboxes.size, odd.length);
    // The ended tasks were forgotten once acknowledged; the running one kept its checkpoint and stream.
    await waitUntil(() => taskDirs(join(work, 'meta', 'tasks')).length === 1, 'the ended tasks to be forgotten');
    assert.deepEqual(taskDirs(join(work, 'meta', 'tasks')), [`${pathSegment('..')}/${pathSegment('keep')}`]);
    assert.ok(existsSync(join(work, 'meta', 'tasks', pathSegment('..'), pathSegment('keep'), 'task.json')));
    assert.ok(existsSync(join(work, 'agent_id')));
    master.send({ type: 'KILL', framework_id: { value: '..' }, task_id: { value: 'keep' } });
    await master.waitForState('keep', 'TASK_KILLED', '..');
    await agent.stop();
    assert.deepEqual(unhandled, []);
  });

  it('reports TASK_FAILED for a launch that throws, and keeps running', async () => {
    const work = join(root, 'bad-launch');
    const agent = await startAgent(master, work);
    // A task the protocol's types allow in no way: resources missing.
    master.send({ type: 'LAUNCH', framework: framework('f'), task: { name: 't', task_id: { value: 'broken' }, agent_id: { value: 'agent-1' }, command: { value: 'true' } } as unknown as TaskInfo });
    const failed = await master.waitForState('broken', 'TASK_FAILED');
    assert.equal(failed.reason, 'REASON_CONTAINER_LAUNCH_FAILED');
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('fine', 'true') });
    await master.waitForState('fine', 'TASK_FINISHED');
    await agent.stop();
    assert.deepEqual(unhandled, []);
  });

  it('kills a task again after a restart when the kill was asked for before it, and reports it TASK_KILLED', async () => {
    const work = join(root, 'kill-restart');
    const first = await startAgent(master, work);
    // Ignores the first SIGTERM (it only notes it), ends on the second.
    const command = 'n=0; trap \'n=$((n+1)); echo term$n >> terms; [ $n -ge 2 ] && exit 0\' TERM; while :; do sleep 0.05; done';
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('stubborn', command) });
    await master.waitForState('stubborn', 'TASK_RUNNING');
    const sandbox = first.sandboxOf('f', 'stubborn')!.dir;
    // A long grace period: the first agent sends SIGTERM and would wait a minute for SIGKILL.
    master.send({ type: 'KILL', framework_id: { value: 'f' }, task_id: { value: 'stubborn' }, kill_policy: { grace_period: { nanoseconds: 60e9 } } });
    await waitUntil(() => existsSync(join(sandbox, 'terms')) && readFileSync(join(sandbox, 'terms'), 'utf8') === 'term1\n', 'the task to get the first SIGTERM');
    await first.stop(); // As if it was killed -9: the task runs on.
    const log: string[] = [];
    const second = await startAgent(master, work, [processContainerizer()], log);
    const killed = await master.waitForState('stubborn', 'TASK_KILLED');
    assert.equal(readFileSync(join(sandbox, 'terms'), 'utf8'), 'term1\nterm2\n', 'the restarted agent signalled it again');
    assert.ok(log.some((l) => l.includes('killing it again')), log.join('\n'));
    assert.equal(killed.source, 'SOURCE_EXECUTOR');
    await second.stop();
  });

  it('reports a state written to the update stream even when the crash came before its checkpoint', async () => {
    const work = join(root, 'crash-between');
    master.autoAck = false;
    try {
      const first = await startAgent(master, work);
      master.send({ type: 'LAUNCH', framework: framework('..'), task: task('..', 'true') });
      await master.waitForState('..', 'TASK_RUNNING', '..');
      await waitUntil(() => first.runningTasks() === 0, 'the task to end');
      await first.stop();
      // The checkpoint as a crash between the two writes of the FINISHED transition leaves it.
      const file = join(work, 'meta', 'tasks', pathSegment('..'), pathSegment('..'), 'task.json');
      const checkpoint = JSON.parse(readFileSync(file, 'utf8')) as { state: string };
      assert.equal(checkpoint.state, 'TASK_FINISHED');
      writeFileSync(file, JSON.stringify({ ...checkpoint, state: 'TASK_RUNNING' }));
      const before = master.updates.length;
      const second = await startAgent(master, work);
      assert.deepEqual(master.registers.at(-1)!.tasks.map((t) => [t.framework_id.value, t.task.task_id.value, t.state]), [['..', '..', 'TASK_FINISHED']]);
      // The unacknowledged RUNNING is resent with FINISHED as the latest state, then FINISHED itself.
      master.autoAck = true;
      await waitUntil(() => master.updates.slice(before).some((u) => u.status.state === 'TASK_FINISHED'), 'FINISHED to be sent again');
      await waitUntil(() => !existsSync(file), 'the task to be forgotten once acknowledged');
      assert.deepEqual([...new Set(master.updates.slice(before).map((u) => u.status.state))], ['TASK_RUNNING', 'TASK_FINISHED']);
      await second.stop();
    } finally {
      master.autoAck = true;
    }
  });

  it('forgets the tasks of a framework shut down once they ended, and does not load them again after a restart', async () => {
    const work = join(root, 'shutdown');
    const first = await startAgent(master, work);
    master.autoAck = false;
    master.send({ type: 'LAUNCH', framework: framework('gone'), task: task('ended', 'true') });
    master.send({ type: 'LAUNCH', framework: framework('gone'), task: task('running', 'exec sleep 30') });
    master.send({ type: 'LAUNCH', framework: framework('stays'), task: task('other', 'exec sleep 30') });
    await master.waitForState('running', 'TASK_RUNNING');
    await master.waitForState('other', 'TASK_RUNNING');
    await waitUntil(() => first.runningTasks() === 2, 'the short task to end');
    master.autoAck = true;
    const before = master.updates.length;
    master.send({ type: 'SHUTDOWN_FRAMEWORK', framework_id: { value: 'gone' } });
    await waitUntil(() => first.runningTasks() === 1, 'the task of the framework to be killed');
    await waitUntil(() => taskDirs(join(work, 'meta', 'tasks')).length === 1 && taskDirs(join(work, 'meta', 'updates')).length <= 1, 'its checkpoints to be removed');
    assert.deepEqual(taskDirs(join(work, 'meta', 'tasks')), [`${pathSegment('stays')}/${pathSegment('other')}`]);
    assert.deepEqual(master.updates.slice(before).filter((u) => u.frameworkId === 'gone'), [], 'no update of a framework shut down');
    await first.stop();
    const second = await startAgent(master, work);
    assert.deepEqual(master.registers.at(-1)!.tasks.map((t) => t.task.task_id.value), ['other']);
    master.send({ type: 'KILL', framework_id: { value: 'stays' }, task_id: { value: 'other' } });
    await master.waitForState('other', 'TASK_KILLED');
    await second.stop();
  });

  it('launches anew a task whose id is that of an ended task it still remembers', async () => {
    const work = join(root, 'reuse');
    const agent = await startAgent(master, work);
    master.autoAck = false;
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('again', 'echo first') });
    await master.waitForState('again', 'TASK_RUNNING');
    await waitUntil(() => agent.runningTasks() === 0, 'the first run to end'); // FINISHED not acknowledged: remembered.
    const before = master.updates.length;
    master.autoAck = true;
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('again', 'echo second; exec sleep 30') });
    await waitUntil(() => agent.runningTasks() === 1, 'the second run to start');
    await waitUntil(() => master.updates.slice(before).some((u) => u.status.state === 'TASK_RUNNING'), 'the second run to be reported');
    assert.deepEqual(master.updates.slice(before).map((u) => u.status.state), ['TASK_RUNNING'], 'nothing of the first run after it');
    await waitUntil(() => readFileSync(join(agent.sandboxOf('f', 'again')!.dir, 'stdout'), 'utf8').includes('second'), 'the second run to print');
    master.send({ type: 'KILL', framework_id: { value: 'f' }, task_id: { value: 'again' } });
    await master.waitForState('again', 'TASK_KILLED');
    await agent.stop();
  });

  it('fetches the URIs of a task into its sandbox before it runs, reporting TASK_STARTING while a download is slow', async () => {
    const work = join(root, 'fetch');
    const agent = await startAgent(master, work);
    const slow = uris.hold('/greeting.txt', 'hello from the fetcher\n');
    uris.serve('/bin/show', '#!/bin/sh\nprintf "shown: "; cat greeting.txt\n');
    master.send({
      type: 'LAUNCH',
      framework: framework('f'),
      task: task('fetching', './show-it', { command: { value: './show-it', uris: [{ value: uris.url('/greeting.txt') }, { value: uris.url('/bin/show'), executable: true, output_file: 'show-it' }] } }),
    });
    await master.waitForState('fetching', 'TASK_STARTING');
    const sandbox = agent.sandboxOf('f', 'fetching')!.dir;
    assert.deepEqual(master.states('fetching'), ['TASK_STARTING']);
    assert.ok(!existsSync(join(sandbox, 'stdout')), 'the task has not started');
    slow.release();
    await master.waitForState('fetching', 'TASK_FINISHED');
    assert.deepEqual(master.states('fetching'), ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED']);
    assert.equal(readFileSync(join(sandbox, 'stdout'), 'utf8'), 'shown: hello from the fetcher\n');
    await agent.stop();
    assert.deepEqual(unhandled, []);
  });

  it('fails a task whose URI cannot be fetched, naming the URI and the cause, and never runs it', async () => {
    const work = join(root, 'fetch-404');
    const agent = await startAgent(master, work);
    uris.serve('/ok.txt', 'fine\n');
    const missing = uris.url('/releases/app-1.2.tar.gz');
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('no-file', 'touch ran', { command: { value: 'touch ran', uris: [{ value: uris.url('/ok.txt') }, { value: missing }] } }) });
    const failed = await master.waitForState('no-file', 'TASK_FAILED');
    assert.equal(failed.message, `Failed to fetch '${missing}': HTTP 404 Not Found`);
    assert.equal(failed.reason, 'REASON_CONTAINER_LAUNCH_FAILED');
    assert.ok(!master.states('no-file').includes('TASK_RUNNING'));
    const sandbox = agent.sandboxOf('f', 'no-file')!.dir;
    assert.ok(existsSync(join(sandbox, 'ok.txt')));
    assert.ok(!existsSync(join(sandbox, 'ran')), 'the command never ran');
    // An unsupported scheme fails the same way.
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('ftp', 'touch ran', { command: { value: 'touch ran', uris: [{ value: 'ftp://example.com/x.tar' }] } }) });
    const ftp = await master.waitForState('ftp', 'TASK_FAILED');
    assert.match(ftp.message ?? '', /^Failed to fetch 'ftp:\/\/example\.com\/x\.tar': the URI scheme ftp:\/\/ is not supported/);
    await agent.stop();
    assert.deepEqual(unhandled, []);
  });

  it('reports TASK_KILLED for a task killed while its URIs were being fetched, and never runs it', async () => {
    const work = join(root, 'fetch-kill');
    const agent = await startAgent(master, work);
    const slow = uris.hold('/big.bin', 'a lot of data');
    try {
      const before = uris.requested.length;
      master.send({ type: 'LAUNCH', framework: framework('f'), task: task('killed-early', 'touch ran', { command: { value: 'touch ran', uris: [{ value: uris.url('/big.bin') }] } }) });
      await waitUntil(() => uris.requested.slice(before).includes('/big.bin'), 'the download to start');
      master.send({ type: 'KILL', framework_id: { value: 'f' }, task_id: { value: 'killed-early' } });
      const killed = await master.waitForState('killed-early', 'TASK_KILLED');
      assert.equal(killed.reason, 'REASON_TASK_KILLED_DURING_LAUNCH');
      assert.ok(!master.states('killed-early').includes('TASK_RUNNING'));
      assert.ok(!existsSync(join(agent.sandboxOf('f', 'killed-early')!.dir, 'ran')));
      assert.equal(agent.runningTasks(), 0);
    } finally {
      slow.release();
      await agent.stop();
    }
    assert.deepEqual(unhandled, []);
  });

  it('fetches the URIs of a docker task into the sandbox the container sees at $MESOS_SANDBOX', async (t) => {
    const docker = new Docker();
    let image: string;
    try {
      await docker.ping();
      image = await ensureBusyboxImage(docker);
    } catch (e) {
      t.skip(`no Docker engine: ${(e as Error).message}`);
      return;
    }
    const work = join(root, 'fetch-docker');
    const agent = await startAgent(master, work, [processContainerizer(), new DockerContainerizer({ docker })]);
    uris.serve('/docker-greeting.txt', 'hello, container\n');
    const command = 'cat "$MESOS_SANDBOX/docker-greeting.txt"';
    master.send({
      type: 'LAUNCH',
      framework: framework('f'),
      task: task('docker-fetch', command, { command: { value: command, uris: [{ value: uris.url('/docker-greeting.txt') }] }, container: { type: 'DOCKER', docker: { image, network: 'HOST' } } }),
    });
    await master.waitForState('docker-fetch', 'TASK_FINISHED');
    const sandbox = agent.sandboxOf('f', 'docker-fetch')!.dir;
    await waitUntil(() => existsSync(join(sandbox, 'stdout')) && readFileSync(join(sandbox, 'stdout'), 'utf8') === 'hello, container\n', 'the container to print the fetched file');
    await agent.stop();
  });

  it('kills the containers of its agent id that no task knows, once it recovered', async (t) => {
    const docker = new Docker();
    let image: string;
    try {
      await docker.ping();
      image = await ensureBusyboxImage(docker);
    } catch (e) {
      t.skip(`no Docker engine: ${(e as Error).message}`);
      return;
    }
    const work = join(root, 'orphans');
    const agentId = `orphans-test-${process.pid}`;
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'agent_id'), agentId + '\n');
    const orphan = await docker.createContainer({ Image: image, Cmd: ['sleep', '60'], Labels: { [LABELS.agentId]: agentId }, name: `slipway-orphan-test-${process.pid}` });
    try {
      await orphan.start();
      const log: string[] = [];
      const agent = await startAgent(master, work, [processContainerizer(), new DockerContainerizer({ docker })], log);
      await waitUntil(async () => (await docker.listContainers({ all: true, filters: { label: [`${LABELS.agentId}=${agentId}`] } })).length === 0, 'the orphan to be removed');
      assert.ok(log.some((l) => l.includes('orphan container')), log.join('\n'));
      await agent.stop();
    } finally {
      await orphan.remove({ force: true }).catch(() => undefined);
    }
  });
});

/** A user of this host with a supplementary group (a member in `getent group`), for the groups case. */
function userWithSupplementaryGroup(): { name: string; group: number } | undefined {
  let groups: string;
  try {
    groups = execFileSync('getent', ['group'], { encoding: 'utf8' });
  } catch {
    return undefined;
  }
  for (const line of groups.split('\n')) {
    const [, , gid, members] = line.split(':');
    const name = members?.split(',').find((m) => m !== '' && m !== 'root');
    if (name !== undefined && gid !== undefined) return { name, group: Number(gid) };
  }
  return undefined;
}

const NOBODY = { uid: 65534, gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim()) };
const asRoot = process.getuid?.() === 0;

describe('the users tasks run as', { skip: asRoot ? false : 'the agent switches users only when it runs as root' }, () => {
  let root: string;
  let master: StandInMaster;
  let uris: UriServer;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'agent-users-'));
    // The tasks' users must be able to pass through to their sandboxes (see the warning case).
    chmodSync(root, 0o711);
    master = await StandInMaster.start();
    uris = await UriServer.start();
  });
  beforeEach(() => {
    master.updates.length = 0;
    master.autoAck = true;
  });
  after(async () => {
    await master.close();
    await uris.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('runs a process task as its command.user, in a sandbox of that user with mode 0700', async () => {
    const work = join(root, 'named');
    const agent = await startAgent(master, work);
    uris.serve('/fetched.txt', 'fetched\n');
    const command = 'id -u; id -g; echo written > "$MESOS_SANDBOX/mine"; cat "$MESOS_SANDBOX/mine" fetched.txt';
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('as-nobody', command, { command: { value: command, user: 'nobody', uris: [{ value: uris.url('/fetched.txt') }] } }) });
    await master.waitForState('as-nobody', 'TASK_FINISHED');
    const sandbox = agent.sandboxOf('f', 'as-nobody')!.dir;
    assert.equal(readFileSync(join(sandbox, 'stdout'), 'utf8'), `${NOBODY.uid}\n${NOBODY.gid}\nwritten\nfetched\n`);
    const st = statSync(sandbox);
    assert.deepEqual({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) }, { uid: NOBODY.uid, gid: NOBODY.gid, mode: '700' });
    // What the agent wrote there (the fetched file, the logs) is the task's too.
    assert.equal(statSync(join(sandbox, 'fetched.txt')).uid, NOBODY.uid);
    assert.equal(statSync(join(sandbox, 'stdout')).uid, NOBODY.uid);
    // The agent's own state stays out of the task's reach.
    assert.equal((statSync(join(work, 'meta')).mode & 0o777).toString(8), '700');
    assert.equal((statSync(join(work, 'sandboxes')).mode & 0o777).toString(8), '711');
    await agent.stop();
  });

  it('runs a task that names no user as the default user: nobody unless the agent is told otherwise, root only when named', async () => {
    const work = join(root, 'default');
    const agent = await startAgent(master, work);
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('no-user', 'id -un; id -u') });
    await master.waitForState('no-user', 'TASK_FINISHED');
    assert.equal(readFileSync(join(agent.sandboxOf('f', 'no-user')!.dir, 'stdout'), 'utf8'), `nobody\n${NOBODY.uid}\n`);
    await agent.stop();

    const rootWork = join(root, 'default-root');
    const rooted = await startAgentWith(master, rootWork, { defaultUser: 'root' });
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('no-user-root', 'id -u') });
    await master.waitForState('no-user-root', 'TASK_FINISHED');
    assert.equal(readFileSync(join(rooted.sandboxOf('f', 'no-user-root')!.dir, 'stdout'), 'utf8'), '0\n');
    await rooted.stop();
  });

  it('fails a task whose user does not exist with TASK_ERROR naming the user, and never runs it', async () => {
    const work = join(root, 'unknown');
    const log: string[] = [];
    const agent = await startAgentWith(master, work, { defaultUser: 'slipway-no-such-default' }, log);
    assert.ok(log.some((l) => l.includes('"slipway-no-such-default" does not exist')), log.join('\n'));
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('ghost', 'touch ran', { command: { value: 'touch ran', user: 'slipway-no-such-user' } }) });
    const error = await master.waitForState('ghost', 'TASK_ERROR');
    assert.equal(error.reason, 'REASON_TASK_INVALID');
    assert.match(error.message ?? '', /command\.user: no user "slipway-no-such-user" on this agent/);
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('ghost-default', 'touch ran') });
    const defaultError = await master.waitForState('ghost-default', 'TASK_ERROR');
    assert.match(defaultError.message ?? '', /default task user.*no user "slipway-no-such-default"/);
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('bad-name', 'touch ran', { command: { value: 'touch ran', user: '-o root' } }) });
    assert.match((await master.waitForState('bad-name', 'TASK_ERROR')).message ?? '', /"-o root" is not a valid user name/);
    for (const id of ['ghost', 'ghost-default', 'bad-name']) {
      assert.ok(!master.states(id).includes('TASK_RUNNING'));
      assert.ok(!existsSync(join(agent.sandboxOf('f', id)!.dir, 'ran')));
    }
    await agent.stop();
  });

  it('gives a task its user\'s supplementary groups (what the docker group needs), which spawn\'s uid option would drop', async (t) => {
    const member = userWithSupplementaryGroup();
    if (member === undefined) {
      t.skip('no user of this host has a supplementary group');
      return;
    }
    const work = join(root, 'groups');
    const agent = await startAgentWith(master, work, {});
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('grouped', 'id -G', { command: { value: 'id -G', user: member.name } }) });
    await master.waitForState('grouped', 'TASK_FINISHED');
    const groups = readFileSync(join(agent.sandboxOf('f', 'grouped')!.dir, 'stdout'), 'utf8').trim().split(' ').map(Number);
    assert.ok(groups.includes(member.group), `${member.name} is in group ${member.group}; the task had ${groups.join(' ')}`);
    await agent.stop();
  });

  it('runs COMMAND health checks as the task\'s user', async () => {
    const work = join(root, 'health');
    const agent = await startAgent(master, work);
    const check = { type: 'COMMAND' as const, command: { value: `test "$(id -u)" = ${NOBODY.uid}` }, delay_seconds: 0, interval_seconds: 0.1, grace_period_seconds: 0, consecutive_failures: 1 };
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('checked', 'exec sleep 30', { health_check: check }) });
    await waitUntil(() => master.updates.find((u) => u.status.task_id.value === 'checked' && u.status.healthy !== undefined)?.status, 'a health result');
    const first = master.updates.find((u) => u.status.task_id.value === 'checked' && u.status.healthy !== undefined)!.status;
    assert.equal(first.healthy, true, first.message);
    master.send({ type: 'KILL', framework_id: { value: 'f' }, task_id: { value: 'checked' } });
    await master.waitForState('checked', 'TASK_KILLED');
    await agent.stop();
  });

  it('never writes through a link a task left where its log was, when the task id is launched again', async () => {
    const work = join(root, 'links');
    const victim = join(root, 'victim');
    writeFileSync(victim, 'root only\n', { mode: 0o644 });
    const agent = await startAgent(master, work);
    master.autoAck = false; // Its end unacknowledged, the ended task is remembered: its id is launched again.
    const plant = `rm -f stdout; ln -s ${victim} stdout`;
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('planter', plant, { command: { value: plant, user: 'nobody' } }) });
    await master.waitForState('planter', 'TASK_RUNNING');
    await waitUntil(() => agent.runningTasks() === 0, 'the first run to end');
    const sandbox = agent.sandboxOf('f', 'planter')!.dir;
    assert.ok(lstatSync(join(sandbox, 'stdout')).isSymbolicLink());
    master.autoAck = true;
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('planter', 'echo appended', { command: { value: 'echo appended', user: 'nobody' } }) });
    const failed = await waitUntil(() => master.updates.find((u) => u.status.task_id.value === 'planter' && u.status.state === 'TASK_FAILED')?.status, 'the second launch to fail');
    assert.match(failed.message ?? '', /stdout/);
    assert.equal(readFileSync(victim, 'utf8'), 'root only\n');
    await agent.stop();
  });

  it('says at start when the default user cannot reach the sandboxes by path', async () => {
    const closed = mkdtempSync(join(tmpdir(), 'agent-closed-'));
    try {
      const log: string[] = [];
      const agent = await startAgentWith(master, join(closed, 'work'), {}, log);
      assert.ok(log.some((l) => l.includes('tasks of user nobody cannot reach their sandbox') && l.includes(`${closed} (mode 0700`)), log.join('\n'));
      await agent.stop();
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });

  it('runs a docker task as its user: User uid:gid, in a sandbox it may write', async (t) => {
    const docker = new Docker();
    let image: string;
    try {
      await docker.ping();
      image = await ensureBusyboxImage(docker);
    } catch (e) {
      t.skip(`no Docker engine: ${(e as Error).message}`);
      return;
    }
    const work = join(root, 'docker');
    const agent = await startAgent(master, work, [processContainerizer(), new DockerContainerizer({ docker })]);
    const container = { type: 'DOCKER' as const, docker: { image, network: 'HOST' as const } };
    const command = 'id -u; id -g; echo ok > /mnt/mesos/sandbox/mine && cat /mnt/mesos/sandbox/mine';
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('docker-nobody', command, { command: { value: command, user: 'nobody' }, container }) });
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('docker-default', 'id -u', { container }) });
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('docker-root', 'id -u', { command: { value: 'id -u', user: 'root' }, container }) });
    const rootParam = { ...container, docker: { ...container.docker, parameters: [{ key: 'user', value: 'root' }] } };
    master.send({ type: 'LAUNCH', framework: framework('f'), task: task('docker-param', 'id -u', { container: rootParam }) });
    for (const id of ['docker-nobody', 'docker-default', 'docker-root']) await master.waitForState(id, 'TASK_FINISHED');
    const out = (id: string) => readFileSync(join(agent.sandboxOf('f', id)!.dir, 'stdout'), 'utf8');
    await waitUntil(() => out('docker-nobody').includes('ok'), 'the container to print');
    assert.equal(out('docker-nobody'), `${NOBODY.uid}\n${NOBODY.gid}\nok\n`);
    await waitUntil(() => out('docker-default') !== '', 'the default-user container to print');
    assert.equal(out('docker-default'), `${NOBODY.uid}\n`);
    await waitUntil(() => out('docker-root') !== '', 'the root container to print');
    assert.equal(out('docker-root'), '0\n');
    // A docker parameter cannot undo the task's user.
    const refused = await master.waitForState('docker-param', 'TASK_FAILED');
    assert.match(refused.message ?? '', /--user root differs from the task's user nobody/);
    await agent.stop();
  });
});

describe('an agent that is not root', { skip: asRoot ? false : 'this case starts the agent as nobody, which needs root' }, () => {
  let root: string;
  let master: StandInMaster;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'agent-nonroot-'));
    chmodSync(root, 0o711);
    master = await StandInMaster.start();
  });
  after(async () => {
    await master.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('runs a task that names no user as itself, and refuses a process task that names another user with TASK_ERROR', async () => {
    const work = join(root, 'work');
    mkdirSync(work);
    chownSync(work, NOBODY.uid, NOBODY.gid);
    const code = [
      `const { Agent } = await import(${JSON.stringify(new URL('./agent.ts', import.meta.url).href)});`,
      `const { ProcessContainerizer } = await import(${JSON.stringify(new URL('./containerizers/process-containerizer.ts', import.meta.url).href)});`,
      `const { TaskCgroups } = await import(${JSON.stringify(new URL('./containerizers/task-cgroups.ts', import.meta.url).href)});`,
      `const { Resources } = await import(${JSON.stringify(new URL('../core/resources.ts', import.meta.url).href)});`,
      `const { SystemClock } = await import(${JSON.stringify(new URL('../core/clock.ts', import.meta.url).href)});`,
      `const agent = new Agent({ masterUrl: ${JSON.stringify(master.url)}, workDir: ${JSON.stringify(work)}, hostname: 'h', resources: Resources.parse('cpus:1;mem:128'), attributes: [], clock: new SystemClock(), defaultUser: 'root',`,
      "  containerizers: [new ProcessContainerizer({ cgroups: TaskCgroups.disabled('not needed'), pollIntervalMs: 25 })], log: (l) => console.log(l) });",
      'await agent.start();',
      'setInterval(() => {}, 60_000);',
    ].join('\n');
    const child = spawn('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', '--', process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: new URL('../..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOME: work },
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    try {
      await waitUntil(() => master.registers.length > 0 || child.exitCode !== null, 'the agent to register', 20_000);
      assert.equal(child.exitCode, null, output);
      master.send({ type: 'LAUNCH', framework: framework('f'), task: task('itself', 'id -u') });
      master.send({ type: 'LAUNCH', framework: framework('f'), task: task('other', 'touch ran', { command: { value: 'touch ran', user: 'root' } }) });
      await master.waitForState('itself', 'TASK_FINISHED');
      const sandboxes = join(work, 'sandboxes', pathSegment('f'));
      assert.equal(readFileSync(join(sandboxes, pathSegment('itself'), 'stdout'), 'utf8'), `${NOBODY.uid}\n`);
      const error = await master.waitForState('other', 'TASK_ERROR');
      assert.match(error.message ?? '', /command\.user: this agent runs as nobody, not root, and runs process tasks as nobody, not as "root"/);
      assert.ok(!existsSync(join(sandboxes, pathSegment('other'), 'ran')));
      assert.match(output, /runs as nobody, not root: every task runs as nobody; the default task user "root" is ignored/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
