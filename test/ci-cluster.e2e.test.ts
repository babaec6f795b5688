import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { RecordingProxy } from './support/recording-proxy.ts';
import { SlipwayProcess, activeAgents, freePort, tempDir, waitForHttp } from './support/processes.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder, processesUnder, type SandboxProcess } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

/**
 * CI over real processes (a master, `slipway ci` and two agents, each its own process, the
 * executors tasks of the agents), driven through /ci/v1 as its users would, with builds of a
 * local git repository: what happens to builds and executors when `slipway ci`, an executor or
 * an agent is killed with -9, and how executors spread over the agents and go away when idle.
 * Every check looks at CI's view (/ci/v1), the master's (/master/state) and the processes
 * themselves (/proc), and what CI tells the master is recorded by a proxy between them.
 */

const root = tempDir('ci-cluster');
const spawned: SlipwayProcess[] = [];
let failed = false;

function run(name: string, args: string[]): SlipwayProcess {
  const p = new SlipwayProcess(name, args, join(root, `${name}.log`));
  p.start();
  spawned.push(p);
  return p;
}

/**
 * Runs a test body; on failure prints the end of every process's log and keeps the temp dir
 * (not for a `todo` test, whose failure is known).
 */
function body<C = TestContext>(fn: (t: C) => Promise<void>, o: { todo?: boolean } = {}): (t: C) => Promise<void> {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      if (o.todo === true) throw e;
      failed = true;
      for (const logFile of new Set(spawned.map((p) => p.logFile))) {
        let text: string;
        try {
          text = readFileSync(logFile, 'utf8');
        } catch {
          continue;
        }
        process.stderr.write(`----- ${basename(logFile)} (last 40 lines) -----\n${text.split('\n').slice(-41).join('\n')}\n`);
      }
      throw e;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Views: CI's, the master's, the processes'
// ---------------------------------------------------------------------------------------------

type BuildStatus = 'queued' | 'running' | 'success' | 'failure' | 'cancelled' | 'error';

interface Build {
  job: string;
  number: number;
  status: BuildStatus;
  executorId?: string;
  hostname?: string;
  error?: string;
  startedAt?: number;
  finishedAt?: number;
  /** The highest report sequence number CI applied. */
  seq: number;
  steps: { name: string; status: string; exitCode?: number }[];
}

interface Executor {
  id: string;
  label: string;
  taskId: string;
  hostname: string;
  state: string;
  build?: string;
}

interface MasterTask {
  task_id: { value: string };
  framework_id: { value: string };
  state: string;
}

interface MasterState {
  frameworks: { framework_info: { id: { value: string }; name: string }; connected: boolean; offers: number }[];
  tasks: MasterTask[];
  unreachable_tasks: MasterTask[];
  completed_tasks: MasterTask[];
}

const finished = (b: Build | undefined): boolean => b !== undefined && b.status !== 'queued' && b.status !== 'running';

class Ci {
  constructor(readonly url: string) {}

  async request(method: string, path: string, json?: unknown): Promise<{ status: number; body: unknown }> {
    const r = await fetch(this.url + path, { method, ...(json !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(json) } : {}) });
    const text = await r.text();
    return { status: r.status, body: (r.headers.get('content-type') ?? '').includes('json') && text !== '' ? (JSON.parse(text) as unknown) : text };
  }

  async put(path: string, json: unknown): Promise<void> {
    const r = await this.request('PUT', path, json);
    assert.ok(r.status === 200 || r.status === 201, `PUT ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  async trigger(job: string): Promise<Build> {
    const r = await this.request('POST', `/ci/v1/jobs/${job}/builds`);
    assert.equal(r.status, 201, `POST /ci/v1/jobs/${job}/builds: ${JSON.stringify(r.body)}`);
    return r.body as Build;
  }

  /** The build, or undefined while CI does not answer (it may be restarting). */
  async build(job: string, n: number): Promise<Build | undefined> {
    try {
      const r = await this.request('GET', `/ci/v1/jobs/${job}/builds/${n}`);
      return r.status === 200 ? (r.body as Build) : undefined;
    } catch {
      return undefined;
    }
  }

  async builds(job: string): Promise<Build[]> {
    return ((await this.request('GET', `/ci/v1/jobs/${job}/builds`)).body as { builds: Build[] }).builds;
  }

  async log(job: string, n: number): Promise<string | undefined> {
    try {
      const r = await this.request('GET', `/ci/v1/jobs/${job}/builds/${n}/log`);
      return r.status === 200 ? String(r.body) : undefined;
    } catch {
      return undefined;
    }
  }

  async executors(): Promise<Executor[] | undefined> {
    try {
      const r = await this.request('GET', '/ci/v1/executors');
      return r.status === 200 ? (r.body as { executors: Executor[] }).executors : undefined;
    } catch {
      return undefined;
    }
  }

  async queue(): Promise<{ job: string; number: number; why: string }[]> {
    return ((await this.request('GET', '/ci/v1/queue')).body as { queue: { job: string; number: number; why: string }[] }).queue;
  }

  /** Waits until the build is in a state `accept` likes; answers it. */
  async waitFor(job: string, n: number, what: string, accept: (b: Build) => boolean, timeoutMs: number): Promise<Build> {
    let last: Build | undefined;
    return waitUntil(
      async () => {
        last = (await this.build(job, n)) ?? last;
        return last !== undefined && accept(last) ? last : undefined;
      },
      `${job} #${n} ${what}`,
      timeoutMs,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last)}`);
    });
  }

  waitEnd(job: string, n: number, timeoutMs: number): Promise<Build> {
    return this.waitFor(job, n, 'to end', finished, timeoutMs);
  }

  /** Waits until the build runs and its log has `text` (its step is under way). */
  async waitLog(job: string, n: number, text: string, timeoutMs: number): Promise<void> {
    await waitUntil(async () => (await this.log(job, n))?.includes(text), `the log of ${job} #${n} to show ${JSON.stringify(text)}`, timeoutMs);
  }
}

async function masterState(masterUrl: string): Promise<MasterState | undefined> {
  try {
    const response = await fetch(`${masterUrl}/master/state`);
    return response.ok ? ((await response.json()) as MasterState) : undefined;
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Executor processes (`node ... slipway.js ci-executor --id ID ...`) under `dir`, with their executor id. */
function executorProcesses(dir: string): (SandboxProcess & { executorId: string })[] {
  const out: (SandboxProcess & { executorId: string })[] = [];
  for (const p of processesUnder(dir)) {
    if (p.comm !== 'node') continue;
    const argv = cmdline(p.pid);
    if (!argv.includes('ci-executor')) continue;
    out.push({ ...p, executorId: argv[argv.indexOf('--id') + 1] ?? '' });
  }
  return out;
}

/** Processes of a build's steps: they run in the build's workspace (`workspace/JOB-N` in the executor's sandbox). */
function stepProcesses(dir: string, job: string, n: number): SandboxProcess[] {
  return processesUnder(dir).filter((p) => p.cwd.includes(`/workspace/${job}-${n}`));
}

/**
 * The log of a finished build is `expected`. Read at once, the log of a build that has just
 * finished may still lack its last pieces: GET .../log reads the file without waiting for the
 * pieces CI has received but not yet written (ci-routes.ts does not await
 * `CiFramework.logWritten`). That race is reported, and given a second here, so that this checks
 * what it is about: every line once, in order.
 */
async function fullLog(t: TestContext, ci: Ci, job: string, n: number, expected: string): Promise<void> {
  const first = await ci.log(job, n);
  if (first === expected) return;
  t.diagnostic(`the log of ${job} #${n}, read as soon as the build had finished, lacked its end: ${JSON.stringify(first?.slice(-40))}`);
  let last = first;
  await waitUntil(async () => (last = await ci.log(job, n)) === expected, `the log of ${job} #${n} to be complete`, 1_000).catch(() => assert.equal(last, expected));
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

// ---------------------------------------------------------------------------------------------
// A git repository with pipelines
// ---------------------------------------------------------------------------------------------

/** The command of the long build's first step: six lines, 0.3 s apart. */
const COUNT = 'for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.3; done';
/**
 * Its second step: 6 s more for the first build of the job, so that it still runs when its
 * executor has reconnected to a restarted CI (a restart takes 1 to 2 s, and the executor's
 * reconnect backoff up to 3 s more).
 */
const FINISH = 'if [ "$CI_BUILD_NUMBER" = 1 ]; then sleep 6; fi; echo done';
/** Its whole log, as it must be once it has finished: each line once, in order. */
const COUNT_LOG = ['+ ' + COUNT, ...[1, 2, 3, 4, 5, 6].map((i) => `line ${i}`), '+ ' + FINISH, 'done', ''].join('\n');

const BRIEF_MARK = 'finished.mark';
const CHATTY_LINES = 3000;

/** Files named `name` in the workspaces of `job #n` on the agents under `dir`. */
function workspaceFiles(dir: string, job: string, n: number, name: string): string[] {
  const out: string[] = [];
  for (const agent of ['a1', 'a2']) {
    let entries: string[];
    try {
      entries = readdirSync(join(dir, agent), { recursive: true, encoding: 'utf8' });
    } catch {
      continue;
    }
    for (const e of entries) if (e.endsWith(`/workspace/${job}-${n}/${name}`)) out.push(join(dir, agent, e));
  }
  return out;
}

function makeRepo(dir: string): string {
  // Commands are single-quoted: YAML must not read `#` or `: ` in them.
  const pipeline = (...steps: [string, string[]][]) =>
    ['steps:', ...steps.flatMap(([name, commands]) => [`  - name: ${name}`, '    commands:', ...commands.map((c) => `      - '${c.replaceAll("'", "''")}'`)]), ''].join('\n');
  const repo = createTestRepo(join(dir, 'repo'));
  repo.commit(
    {
      // The default pipeline: a build long enough to kill things in its middle, with a log to check.
      '.slipway.yml': pipeline(['count', [COUNT]], ['finish', [FINISH]]),
      'sleep.yml': pipeline(['work', ['echo started', 'sleep 8']]),
      // The first build of a job with this pipeline hangs (until something is killed), later ones pass.
      'first-hangs.yml': pipeline(['work', ['echo started', 'if [ "$CI_BUILD_NUMBER" = 1 ]; then sleep 60; fi', 'echo ok']]),
      // Leaves a mark in its workspace as its last act: the test sees when it is over without CI.
      'brief.yml': pipeline(['work', ['echo started', 'sleep 1', 'echo finished', `touch ${BRIEF_MARK}`]]),
      // Many small log pieces, fast.
      'chatty.yml': pipeline(['talk', [`for i in $(seq 1 ${CHATTY_LINES}); do echo "line $i"; sleep 0.002; done`]]),
    },
    'pipelines',
  );
  return repo.path;
}

// ---------------------------------------------------------------------------------------------
// A master, `slipway ci` and two agents, each its own process
// ---------------------------------------------------------------------------------------------

class Cluster {
  masterUrl = '';
  ciPort = 0;
  ci!: Ci;
  ciProcess!: SlipwayProcess;
  proxy!: RecordingProxy;
  repo = '';
  frameworkId = '';
  readonly agents = new Map<string, SlipwayProcess>();

  constructor(readonly dir: string) {}

  async start(): Promise<void> {
    this.repo = makeRepo(this.dir);
    const masterPort = await freePort();
    this.masterUrl = `http://127.0.0.1:${masterPort}`;
    run('master', ['master', '--port', String(masterPort), '--data-dir', join(this.dir, 'master')]);
    await waitForHttp(`${this.masterUrl}/health`);
    this.proxy = await RecordingProxy.start(this.masterUrl);
    this.ciPort = await freePort();
    this.ci = new Ci(`http://127.0.0.1:${this.ciPort}`);
    await this.startCi();
    for (const name of ['a1', 'a2']) this.startAgent(name);
    await activeAgents(this.masterUrl, 2);
  }

  /** `slipway ci` on its data dir and port (executors reconnect to the same URL); resolves once it subscribed. */
  async startCi(): Promise<void> {
    // Executors as root, explicitly: they clone the test's repositories, which are root's (git
    // refuses another user's repository: "dubious ownership"); other tasks run as nobody.
    this.ciProcess = run('ci', ['ci', '--master', this.proxy.url, '--port', String(this.ciPort), '--data-dir', join(this.dir, 'ci'), '--ci-user', 'root']);
    await waitForHttp(`${this.ci.url}/ci/v1/jobs`);
    const fw = await waitUntil(async () => (await masterState(this.masterUrl))?.frameworks.find((f) => f.framework_info.name === 'slipway-ci' && f.connected), 'CI to subscribe');
    if (this.frameworkId !== '') assert.equal(fw.framework_info.id.value, this.frameworkId, 'CI comes back as the same framework');
    this.frameworkId = fw.framework_info.id.value;
  }

  startAgent(name: string): void {
    const i = name.slice(1);
    // Room for four executors of 0.5 cpus and 128 MB each, per agent.
    const resources = `cpus:2;mem:1024;disk:1000;ports:[3${i}200-3${i}299]`;
    this.agents.set(name, run(name, ['agent', '--master', this.masterUrl, '--work-dir', join(this.dir, name), '--resources', resources, '--containerizers', 'process', '--hostname', name]));
  }

  /** The master's tasks of CI that have not ended. */
  async liveTasks(): Promise<MasterTask[] | undefined> {
    const state = await masterState(this.masterUrl);
    return state === undefined ? undefined : [...state.tasks, ...state.unreachable_tasks].filter((t) => t.framework_id.value === this.frameworkId);
  }

  /** No executor left in any view: CI lists none, the master runs none of CI's tasks, no executor process runs. */
  async noExecutorLeft(what: string, timeoutMs: number): Promise<void> {
    let last = '';
    await waitUntil(
      async () => {
        const executors = await this.ci.executors();
        const tasks = await this.liveTasks();
        const processes = executorProcesses(this.dir);
        last = `CI lists ${JSON.stringify(executors?.map((e) => [e.id, e.state, e.hostname]))}, the master runs ${JSON.stringify(tasks?.map((t) => [t.task_id.value, t.state]))}, processes ${JSON.stringify(processes.map((p) => [p.pid, p.executorId]))}`;
        return executors?.length === 0 && tasks?.length === 0 && processes.length === 0;
      },
      what,
      timeoutMs,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; last seen: ${last}`);
    });
  }
}

const cluster = new Cluster(join(root, 'cluster'));

after(async () => {
  for (const p of spawned) await p.kill9();
  await cluster.proxy?.close();
  // Executors and their steps are in sessions of their own and outlive their agents: end them too.
  killProcessesUnder(root);
  await waitUntil(() => processesUnder(root).length === 0, 'the tasks to be gone', 5_000).catch(() => undefined);
  // SLIPWAY_KEEP_TEST_DIRS=1 keeps them after a run that passed too.
  if (failed || process.env['SLIPWAY_KEEP_TEST_DIRS'] !== undefined) process.stderr.write(`ci-cluster e2e: logs and work dirs kept in ${root}\n`);
  else rmSync(root, { recursive: true, force: true });
});

describe('CI on a master and two agents, each its own process', { timeout: 170_000 }, () => {
  before(body<unknown>(async () => {
    await cluster.start();
    // Small executors that go soon when idle: four fit on an agent, and tests do not wait long.
    await cluster.ci.put('/ci/v1/executors/default', { cpus: 0.5, mem: 128, disk: 0, maxExecutors: 4, idleTerminationSeconds: 2 });
  }));

  it('starts several executors for several waiting builds, spread over both agents, lets idle ones go and suppresses offers', { timeout: 40_000 }, body(async (t) => {
    const { ci, proxy } = cluster;
    const jobs = ['spread-1', 'spread-2', 'spread-3', 'spread-4'];
    for (const job of jobs) await ci.put(`/ci/v1/jobs/${job}`, { repo: cluster.repo, pipelineFile: 'sleep.yml' });
    const triggeredAt = Date.now();
    await Promise.all(jobs.map((job) => ci.trigger(job)));
    const builds = await Promise.all(jobs.map((job) => ci.waitEnd(job, 1, 30_000)));
    assert.deepEqual(builds.map((b) => b.status), ['success', 'success', 'success', 'success'], JSON.stringify(builds));
    const lastStart = Math.max(...builds.map((b) => b.startedAt!));
    const firstEnd = Math.min(...builds.map((b) => b.finishedAt!));
    t.diagnostic(`4 builds of 4 jobs all running on 4 cold executors ${lastStart - triggeredAt} ms after their triggers`);
    // Each step sleeps 8 s: they ran at the same time, one executor each, two per agent.
    assert.ok(lastStart < firstEnd, `all four ran at once (the last started at ${lastStart}, the first ended at ${firstEnd})`);
    assert.equal(new Set(builds.map((b) => b.executorId)).size, 4, 'one executor each');
    assert.deepEqual(countBy(builds, (b) => b.hostname ?? '?'), { a1: 2, a2: 2 }, 'spread evenly over the agents');
    const taskIds = new Set(builds.map((b) => `ci-executor-default-${b.executorId}`));
    const lastEnd = Math.max(...builds.map((b) => b.finishedAt!));

    // Idle for 2 s, they exit: their tasks end on the master and no process is left.
    await cluster.noExecutorLeft('the idle executors to exit', 15_000);
    t.diagnostic(`idle executors (idleTerminationSeconds 2) all gone ${Date.now() - lastEnd} ms after the last build ended`);
    const state = (await masterState(cluster.masterUrl))!;
    assert.deepEqual(
      state.completed_tasks.filter((x) => taskIds.has(x.task_id.value)).map((x) => x.state),
      ['TASK_FINISHED', 'TASK_FINISHED', 'TASK_FINISHED', 'TASK_FINISHED'],
      'each executor exited 0 when told to shut down',
    );

    // Nothing waits: CI told the master it wants no offers (SUPPRESS after its last REVIVE), and
    // is offered nothing while the resources the executors gave back are free.
    const manners = proxy.callsOf('SUPPRESS', 'REVIVE');
    assert.ok(manners.some((c) => c.type === 'REVIVE'), 'CI revived offers when the builds came');
    assert.equal(manners.at(-1)?.type, 'SUPPRESS', `CI's calls about offers: ${JSON.stringify(manners.map((c) => c.type))}`);
    for (let i = 0; i < 10; i++) {
      const fw = (await masterState(cluster.masterUrl))!.frameworks.find((f) => f.framework_info.id.value === cluster.frameworkId)!;
      assert.equal(fw.offers, 0, 'a suppressed CI is offered nothing');
      await new Promise((r) => setTimeout(r, 100));
    }
  }));

  it('is not starved when a REVIVE is overtaken by an earlier SUPPRESS on the way to the master', { timeout: 60_000 }, body(async (t) => {
    const { ci, proxy } = cluster;
    // Calls over HTTP are separate requests: the network may deliver a SUPPRESS after a REVIVE
    // sent later, and leave CI suppressed at the master while a build waits. The proxy makes that
    // happen: it holds CI's SUPPRESS, lets a later REVIVE through, then delivers the SUPPRESS.
    // Build 2 needs a whole agent (label `big`), and both are busy with a build each when its
    // REVIVE arrives: nothing can start it until an agent is free again, and by then the master
    // has CI suppressed. Only CI's own retry (REVIVE again after REVIVE_RETRY_MS without an offer
    // it could use) starts it.
    await ci.put('/ci/v1/executors/big', { cpus: 2, mem: 128, disk: 0, maxExecutors: 1, idleTerminationSeconds: 0 });
    await ci.put('/ci/v1/jobs/overtaken-a', { repo: cluster.repo, pipelineFile: 'sleep.yml' });
    await ci.put('/ci/v1/jobs/overtaken-b', { repo: cluster.repo, pipelineFile: 'sleep.yml' });
    await ci.put('/ci/v1/jobs/overtaken-big', { repo: cluster.repo, pipelineFile: 'brief.yml', executor: 'big' });
    proxy.hold('SUPPRESS');
    await ci.trigger('overtaken-a');
    await ci.trigger('overtaken-b');
    const running = await waitUntil(async () => {
      const a = await ci.build('overtaken-a', 1);
      const b = await ci.build('overtaken-b', 1);
      return a?.status === 'running' && b?.status === 'running' ? ([a, b] as const) : undefined;
    }, 'both builds to run', 20_000);
    assert.notEqual(running[0].hostname, running[1].hostname, 'one build per agent');
    await waitUntil(() => proxy.holding('SUPPRESS'), 'CI to SUPPRESS once nothing more is needed', 10_000);
    proxy.hold('REVIVE');
    const triggeredAt = Date.now();
    await ci.trigger('overtaken-big');
    await waitUntil(() => proxy.holding('REVIVE'), 'CI to REVIVE for the big build', 10_000);
    const revived = proxy.forwarded.filter((c) => c.type === 'REVIVE').length;
    proxy.release('REVIVE');
    await waitUntil(() => proxy.forwarded.filter((c) => c.type === 'REVIVE').length > revived, 'the REVIVE to reach the master', 5_000);
    const manners = () => proxy.forwarded.filter((c) => c.type === 'SUPPRESS' || c.type === 'REVIVE').map((c) => c.type);
    const before = manners().length;
    proxy.release('SUPPRESS');
    await waitUntil(() => manners().length > before, 'the SUPPRESS to reach the master after the REVIVE', 5_000);
    assert.deepEqual(manners().slice(before - 1, before + 1), ['REVIVE', 'SUPPRESS'], `the master got the REVIVE, then the older SUPPRESS: ${JSON.stringify(manners())}`);

    const build = await ci.waitEnd('overtaken-big', 1, 40_000);
    assert.equal(build.status, 'success', JSON.stringify(build));
    const again = manners().slice(before).filter((c) => c === 'REVIVE').length;
    assert.ok(again >= 1, `CI revived again after the overtaken REVIVE (${JSON.stringify(manners().slice(before))})`);
    t.diagnostic(`the big build started ${build.startedAt! - triggeredAt} ms after its trigger, after ${again} more REVIVE(s)`);
    for (const job of ['overtaken-a', 'overtaken-b']) assert.equal((await ci.waitEnd(job, 1, 25_000)).status, 'success');
  }));

  it('ends a build whose executor process is killed with -9 as an error naming the executor, and runs the next build on a new executor', { timeout: 40_000 }, body(async (t) => {
    const { ci } = cluster;
    await ci.put('/ci/v1/jobs/victim', { repo: cluster.repo, pipelineFile: 'first-hangs.yml' });
    await ci.trigger('victim');
    await waitUntil(() => stepProcesses(cluster.dir, 'victim', 1).some((p) => p.comm === 'sleep'), 'victim #1 to run its step', 20_000);
    const build = (await ci.build('victim', 1))!;
    assert.equal(build.status, 'running');
    const executorId = build.executorId!;
    const [proc] = executorProcesses(cluster.dir).filter((p) => p.executorId === executorId);
    assert.ok(proc !== undefined, `the process of executor ${executorId}`);

    const killedAt = Date.now();
    process.kill(proc.pid, 'SIGKILL');
    const ended = await ci.waitEnd('victim', 1, 10_000);
    t.diagnostic(`build ended ${Date.now() - killedAt} ms after its executor's kill -9: ${ended.status} (${ended.error})`);
    assert.equal(ended.status, 'error');
    assert.match(ended.error ?? '', new RegExp(executorId), 'the reason names the executor');
    assert.ok(ended.steps.every((s) => s.status !== 'running' && s.status !== 'pending'), JSON.stringify(ended.steps));
    await waitUntil(async () => (await ci.executors())?.every((e) => e.id !== executorId), 'CI to forget the dead executor', 5_000);
    // Its build's step processes go with it: nothing of build #1 runs on.
    await waitUntil(() => stepProcesses(cluster.dir, 'victim', 1).length === 0, 'the step processes of the dead executor to end', 5_000).catch(() => {
      throw new Error(`processes of victim #1 outlive their executor: ${JSON.stringify(stepProcesses(cluster.dir, 'victim', 1))}`);
    });

    await ci.trigger('victim');
    const next = await ci.waitEnd('victim', 2, 20_000);
    assert.equal(next.status, 'success', JSON.stringify(next));
    assert.notEqual(next.executorId, executorId, 'a new executor');
  }));

  it('keeps the queue and the running builds across a kill -9 and restart of `slipway ci`', { timeout: 60_000 }, body(async (t) => {
    const { ci } = cluster;
    await ci.put('/ci/v1/jobs/long', { repo: cluster.repo });
    await ci.put('/ci/v1/jobs/doomed', { repo: cluster.repo, pipelineFile: 'first-hangs.yml' });
    // doomed #1 hangs on one executor; long #1 runs on another, #2 and #3 wait behind it (concurrency 1).
    await ci.trigger('doomed');
    await waitUntil(() => stepProcesses(cluster.dir, 'doomed', 1).some((p) => p.comm === 'sleep'), 'doomed #1 to run its step', 20_000);
    for (let i = 1; i <= 3; i++) assert.equal((await ci.trigger('long')).number, i);
    // Killed early in its count: the rest of the lines come while CI is down.
    await ci.waitLog('long', 1, 'line 2', 20_000);
    const long1 = (await ci.build('long', 1))!;
    const doomed1 = (await ci.build('doomed', 1))!;
    assert.equal(long1.status, 'running');
    assert.equal(doomed1.status, 'running');
    assert.notEqual(long1.executorId, doomed1.executorId);
    assert.deepEqual((await ci.queue()).map((q) => `${q.job}#${q.number}`), ['long#2', 'long#3']);

    await cluster.ciProcess.kill9();
    const killedAt = Date.now();
    // While CI is down, doomed's executor dies too; long's goes on with its build.
    const doomedProc = executorProcesses(cluster.dir).find((p) => p.executorId === doomed1.executorId);
    assert.ok(doomedProc !== undefined, 'doomed\'s executor runs');
    process.kill(doomedProc.pid, 'SIGKILL');
    assert.ok(executorProcesses(cluster.dir).some((p) => p.executorId === long1.executorId), 'long\'s executor outlives CI');
    await cluster.startCi();
    t.diagnostic(`CI answered again ${Date.now() - killedAt} ms after its kill -9`);

    // The queue is intact.
    const queue = await ci.queue();
    assert.deepEqual(queue.map((q) => `${q.job}#${q.number}`), ['long#2', 'long#3'], `the queue after the restart: ${JSON.stringify(queue)}`);
    // The build whose executor died ends in error, saying why.
    const doomed = await ci.waitEnd('doomed', 1, 15_000);
    t.diagnostic(`doomed #1 ended ${Date.now() - killedAt} ms after the kill -9 of CI: ${doomed.status} (${doomed.error})`);
    assert.equal(doomed.status, 'error');
    assert.match(doomed.error ?? '', new RegExp(doomed1.executorId!));
    // The build whose executor lives goes on and finishes, with every line of its log once, in order.
    const long = await ci.waitEnd('long', 1, 30_000);
    t.diagnostic(`long #1 ended ${Date.now() - killedAt} ms after the kill -9 of CI: ${long.status}`);
    assert.equal(long.status, 'success', JSON.stringify(long));
    assert.equal(long.executorId, long1.executorId, 'on the executor it started on');
    assert.deepEqual(long.steps.map((s) => [s.name, s.status, s.exitCode]), [['count', 'success', 0], ['finish', 'success', 0]]);
    await fullLog(t, ci, 'long', 1, COUNT_LOG);
    // The queued builds run, with the numbers they had.
    for (const n of [2, 3]) {
      const b = await ci.waitEnd('long', n, 30_000);
      assert.equal(b.status, 'success', JSON.stringify(b));
      await fullLog(t, ci, 'long', n, COUNT_LOG);
    }
    // Numbers are not reused.
    assert.equal((await ci.trigger('long')).number, 4);
    assert.equal((await ci.trigger('doomed')).number, 2);
    assert.equal((await ci.waitEnd('doomed', 2, 20_000)).status, 'success');
    assert.equal((await ci.waitEnd('long', 4, 30_000)).status, 'success');
    // No build stays running, and no executor stays behind.
    for (const job of ['long', 'doomed']) assert.deepEqual((await ci.builds(job)).filter((b) => !finished(b)), [], `${job}'s builds all ended`);
    await cluster.noExecutorLeft('every executor to be gone', 15_000);
    assert.deepEqual(stepProcesses(cluster.dir, 'doomed', 1), [], 'no step process of doomed #1 is left');
  }));

  // The executor says in its HELLO only the build whose pipeline still runs (ci-executor.ts): one
  // that finished while CI was down comes back saying it runs nothing, with BUILD_DONE and the
  // last log pieces unacknowledged. CI then ends the build in `error` ("came back without it")
  // and acknowledges and drops the reports the executor resends (ci-framework.ts,
  // executorConnected and executorMessage): the result and the end of the log are lost.
  it('keeps the result and the whole log of a build that finished while `slipway ci` was down', { timeout: 40_000 }, body(async (t) => {
    const { ci } = cluster;
    await ci.put('/ci/v1/jobs/brief', { repo: cluster.repo, pipelineFile: 'brief.yml' });
    await ci.trigger('brief');
    await ci.waitLog('brief', 1, 'started', 20_000);
    await cluster.ciProcess.kill9();
    // The build ends while CI is down: its last command leaves a mark, then the executor reports BUILD_DONE to no one.
    await waitUntil(() => workspaceFiles(cluster.dir, 'brief', 1, BRIEF_MARK).length > 0, 'brief #1 to finish while CI is down', 10_000);
    await new Promise((r) => setTimeout(r, 500));
    await cluster.startCi();
    const b = await ci.waitEnd('brief', 1, 20_000);
    t.diagnostic(`brief #1: ${b.status} (${b.error})`);
    assert.equal(b.status, 'success', JSON.stringify(b));
    await fullLog(t, ci, 'brief', 1, ['+ echo started', 'started', '+ sleep 1', '+ echo finished', 'finished', `+ touch ${BRIEF_MARK}`, ''].join('\n'));
  }));

  // CI applies a LOG report (in memory, then its sequence number to the store) and acknowledges
  // it once the store has it, but writes its text to the log file on another, slower chain
  // (ci-framework.ts, executorMessage and appendLog): the store and the executor may be ahead of
  // the file. A kill -9 then loses every piece not yet in the file: after the restart CI believes
  // it has them, and the executor dropped them on the ACK. The backlog is largest just after a
  // reconnect, when the executor resends everything CI missed while it was down.
  it('loses no log line and repeats none when `slipway ci` is killed again while an executor resends its reports', { timeout: 60_000 }, body(async (t) => {
    const { ci } = cluster;
    await ci.put('/ci/v1/jobs/chatty', { repo: cluster.repo, pipelineFile: 'chatty.yml' });
    await ci.trigger('chatty');
    await ci.waitLog('chatty', 1, 'line 50', 20_000);
    const seqAtKill = (await ci.build('chatty', 1))!.seq;
    await cluster.ciProcess.kill9();
    // The executor runs on and keeps what CI has not acknowledged: a second of log.
    await new Promise((r) => setTimeout(r, 1000));
    await cluster.startCi();
    // As soon as CI has taken some of the resent reports, it is killed again.
    await waitUntil(async () => ((await ci.build('chatty', 1))?.seq ?? 0) > seqAtKill, 'the executor to resend its reports', 10_000);
    await cluster.ciProcess.kill9();
    await cluster.startCi();
    const b = await ci.waitEnd('chatty', 1, 40_000);
    const lines = (await ci.log('chatty', 1))!.split('\n').filter((l) => l.startsWith('line '));
    const expected = Array.from({ length: CHATTY_LINES }, (_, i) => `line ${i + 1}`);
    const missing = expected.filter((l) => !lines.includes(l));
    const repeated = lines.filter((l, i) => lines.indexOf(l) !== i);
    t.diagnostic(`chatty #1: ${b.status}${b.error !== undefined ? ` (${b.error})` : ""}, ${lines.length} lines in its log, ${missing.length} missing (${missing[0]} to ${missing.at(-1)}), ${repeated.length} repeated`);
    assert.deepEqual(lines, expected);
    assert.equal(b.status, 'success', JSON.stringify(b));
  }));

  it('ends the build of an agent killed with -9 as an error and runs the queued build on the other agent', { timeout: 50_000 }, body(async (t) => {
    const { ci } = cluster;
    await ci.put('/ci/v1/jobs/stranded', { repo: cluster.repo, pipelineFile: 'first-hangs.yml' });
    await ci.trigger('stranded');
    await ci.trigger('stranded');
    await waitUntil(() => stepProcesses(cluster.dir, 'stranded', 1).some((p) => p.comm === 'sleep'), 'stranded #1 to run its step', 20_000);
    const first = (await ci.build('stranded', 1))!;
    const lost = first.hostname!;
    const other = lost === 'a1' ? 'a2' : 'a1';
    assert.equal((await ci.build('stranded', 2))?.status, 'queued', 'the second build waits for the first (concurrency 1)');

    const killedAt = Date.now();
    await cluster.agents.get(lost)!.kill9();
    const ended = await ci.waitEnd('stranded', 1, 20_000);
    const endedMs = Date.now() - killedAt;
    t.diagnostic(`the build of the lost agent ended ${endedMs} ms after its kill -9: ${ended.status} (${ended.error})`);
    assert.equal(ended.status, 'error');
    assert.match(ended.error ?? '', new RegExp(first.executorId!), 'the reason names the executor');
    assert.match(ended.error ?? '', new RegExp(`on ${lost}`), 'and its agent');
    assert.ok(endedMs >= 4_000, `not before the master's 5 s agent grace (${endedMs} ms)`);

    const second = await ci.waitEnd('stranded', 2, 25_000);
    assert.equal(second.status, 'success', JSON.stringify(second));
    assert.equal(second.hostname, other, 'on the agent left');

    // The agent comes back with the executor CI gave up: nothing of it is left running.
    cluster.startAgent(lost);
    await activeAgents(cluster.masterUrl, 2);
    await cluster.noExecutorLeft('the executor of the lost agent to be gone too', 20_000);
    assert.deepEqual(stepProcesses(cluster.dir, 'stranded', 1), [], 'no step process of stranded #1 is left');
  }));
});
