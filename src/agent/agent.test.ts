import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
import { Agent } from './agent.ts';
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
  const agent = new Agent({
    masterUrl: master.url,
    workDir,
    hostname: 'h',
    resources: Resources.parse('cpus:4;mem:1024'),
    attributes: [],
    containerizers,
    clock: new SystemClock(),
    statusRetryMs: 200,
    defaultKillGraceMs: 200,
    log: (line) => void log.push(line),
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
