import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { afterEach, describe, it } from 'node:test';
import type { FrameworkCall } from '../../protocol/scheduler.ts';
import type { SchedulerTransport } from '../../protocol/scheduler-transport.ts';
import { InProcessScheduler } from '../../server/in-process-scheduler.ts';
import type { SimAgent } from '../../sim/sim-agent.ts';
import type { SimCluster } from '../../sim/sim-cluster.ts';
import { SimHost } from '../../sim/sim-host.ts';
import type { SimRunner } from '../../sim/sim-runner.ts';
import { KyselyCiStore } from '../../store/kysely-ci-store.ts';
import { sqliteDatabases } from '../../store/sqlite-database.ts';
import { SecretBox } from '../../lib/secret-box.ts';
import { tokenDigest } from '../../lib/token-digest.ts';
import { DEFAULT_EXECUTOR_TOKEN_TTL_MS } from './executor-record.ts';
import { StoreUnavailable } from '../../lib/write-queue.ts';
import { WriteFaults } from '../../sim/write-faults.ts';
import { REVIVE_RETRY_MS } from '../kit/offer-manners.ts';
import { CiFramework } from './ci-framework.ts';
import type { ExecutorConnection, ExecutorReport } from './executor-hub.ts';
import type { ServerToExecutor } from './executor-protocol.ts';
import { parseExecutorSpec, parseJobDefinition } from './job-definition.ts';

// CI on simulated time: a real master core, simulated agents (src/sim), the real framework with
// its real SQLite store, and simulated executors that speak the executor protocol to CI's hub the
// way `slipway ci-executor` does over its stream (a real fake, like Woodpecker's dummy backend).

const AGENT = 'cpus:4;mem:4096;disk:16384;ports:[31000-32000]';
/** One key for every CI of a test (a restarted CI opens what the one before sealed). */
const box = SecretBox.random();
const COMMIT = 'a'.repeat(40);

/**
 * Simulated executors: each executor task the agents run says HELLO with its token, runs every
 * BUILD it is given (one step, one log line, success), and exits on SHUTDOWN (its task finishes).
 */
class SimExecutors {
  readonly received: { executorId: string; message: ServerToExecutor }[] = [];
  private readonly connected = new Set<string>();

  constructor(
    private readonly ci: CiFramework,
    private readonly agents: readonly SimAgent[],
  ) {}

  /** One round: new executor tasks running connect. */
  async step(): Promise<void> {
    for (const e of this.ci.view.executors.values()) {
      if (this.connected.has(e.id) || e.state !== 'launching') continue;
      const agent = this.agents.find((a) => a.taskState(e.taskId) === 'TASK_RUNNING');
      if (agent === undefined) continue;
      this.connected.add(e.id);
      let seq = 0;
      const conn: ExecutorConnection = {
        send: (message) => {
          this.received.push({ executorId: e.id, message });
          if (message.type === 'BUILD') {
            const { job, number } = message.build;
            const step = message.build.pipeline.steps[0]!.name;
            const at = Date.now();
            const reports: ExecutorReport[] = [
              { type: 'STEP_STARTED', job, number, seq: ++seq, step, at },
              { type: 'LOG', job, number, seq: ++seq, step, at, text: 'hello\n' },
              { type: 'STEP_FINISHED', job, number, seq: ++seq, step, at, status: 'success', exitCode: 0 },
              { type: 'BUILD_DONE', job, number, seq: ++seq, at, status: 'success', artifacts: [] },
            ];
            for (const report of reports) this.ci.hub.message(e.id, conn, report);
          }
          if (message.type === 'SHUTDOWN') agent.finishTask(e.taskId);
        },
        close: () => undefined,
      };
      // The launch token the framework made with the id (`token: () => token-<n>` below).
      this.ci.hub.connected({ type: 'HELLO', executorId: e.id, label: e.label, hostname: e.hostname }, e.id.replace('exec-', 'token-'), conn);
    }
  }
}

/** The in-process scheduler, except that REVIVE calls are lost while `dropRevives` is set (they "reach" nobody). */
class LossyTransport implements SchedulerTransport {
  dropRevives = false;
  readonly sent: FrameworkCall['type'][] = [];
  constructor(private readonly inner: SchedulerTransport) {}
  async subscribe(...args: Parameters<SchedulerTransport['subscribe']>) {
    const sub = await this.inner.subscribe(...args);
    return {
      frameworkId: sub.frameworkId,
      close: () => sub.close(),
      call: async (c: FrameworkCall) => {
        this.sent.push(c.type);
        if (c.type === 'REVIVE' && this.dropRevives) return;
        await sub.call(c);
      },
    };
  }
}

type Host = SimHost<CiFramework, KyselyCiStore>;

interface World {
  host: Host;
  ci: CiFramework;
  runner: SimRunner;
  cluster: SimCluster;
  agents: readonly SimAgent[];
  executors: SimExecutors;
  transport: LossyTransport;
  /** CI stops and a new one starts on the same data dir and cluster. */
  restart(): Promise<World>;
}

/** CI on `agents` simulated agents, with the job `hello` (one step, inline pipeline). */
async function world(agents: number, faults?: WriteFaults): Promise<World> {
  const w = await ci(agents, faults);
  await w.ci.putJob(parseJobDefinition('hello', { repo: '/srv/git/hello.git', pipeline: 'steps:\n  - name: greet\n    commands: [echo hello]\n' }));
  return w;
}

async function ci(agents: number, faults?: WriteFaults): Promise<World> {
  const parts = new Map<CiFramework, { executors: SimExecutors; transport: LossyTransport }>();
  const host = await SimHost.start<CiFramework, KyselyCiStore>({
    agents,
    resources: AGENT,
    openStore: (dir) => KyselyCiStore.open(sqliteDatabases(dir)),
    framework: (cluster, store, dir, list) => {
      const transport = new LossyTransport(new InProcessScheduler(cluster.master));
      let n = 0;
      const framework = new CiFramework({
        transport,
        store: faults !== undefined ? faults.wrap(store) : store,
        dataDir: dir,
        clock: cluster.clock,
        uuid: () => `exec-${++n}`,
        token: () => `token-${n}`,
        executorProgram: () => ({ command: { shell: true, value: 'sim-executor' } }),
        secrets: box,
        // One attempt: a retry would wait on the simulated clock, which moves only between turns.
        ...(faults !== undefined ? { writeAttempts: 1 } : {}),
      });
      parts.set(framework, { executors: new SimExecutors(framework, list), transport });
      return framework;
    },
    settled: (framework) => () => parts.get(framework)!.executors.step(),
  });
  const made = (h: Host): World => ({ host: h, ci: h.framework, runner: h.runner, cluster: h.cluster, agents: h.agents, ...parts.get(h.framework)!, restart: async () => made(await h.restart()) });
  return made(host);
}

const trigger = (ci: CiFramework) => ci.trigger('hello', { cause: { kind: 'manual', description: 'test' }, event: 'manual', commit: COMMIT });

describe('CI on simulated time', () => {
  let w: World | undefined;
  afterEach(async () => {
    await w?.host.stop();
    w = undefined;
  });

  it('runs a build on an executor started from an offer, and stops the executor after its idle time', async () => {
    w = await world(2);
    const { ci, runner, agents, executors } = w;
    await ci.putExecutorSpec('default', parseExecutorSpec('default', { cpus: 0.5, mem: 256, idleTerminationSeconds: 10 }));
    const build = await trigger(ci);
    await runner.until('the build succeeded', () => ci.view.builds.get(`hello#${build.number}`)?.status === 'success', 20_000);
    const done = ci.view.builds.get(`hello#${build.number}`)!;
    assert.deepEqual(done.steps.map((s) => [s.name, s.status, s.exitCode]), [['greet', 'success', 0]]);
    assert.equal(done.logBytes?.whole, 'hello\n'.length);
    const [executor] = [...ci.view.executors.values()];
    assert.equal(executor?.state, 'idle');
    const idleSince = executor.idleSince!;

    await runner.advance(9_000 - (w.cluster.clock.now() - idleSince));
    assert.equal(ci.view.executors.get(executor.id)?.state, 'idle', 'still idle before its 10 s');
    assert.equal(executors.received.filter((r) => r.message.type === 'SHUTDOWN').length, 0);
    const gone = await runner.until('the executor gone', () => ci.view.executors.get(executor.id) === undefined, 10_000);
    const shutdownAfter = w.cluster.clock.now() - gone - idleSince;
    assert.ok(shutdownAfter >= 9_000, `shut down ${shutdownAfter} ms after it became idle`);
    assert.equal(executors.received.filter((r) => r.executorId === executor.id && r.message.type === 'SHUTDOWN').length, 1);
    assert.equal(agents.reduce((n, a) => n + a.runningTasks(), 0), 0, 'its task ended: its resources are back in the pool');
  });

  it('is never starved: needs that get no offers revive again, even when a REVIVE is lost', async () => {
    w = await world(1);
    const { ci, runner, transport } = w;
    await runner.until('suppressed while nothing waits', () => transport.sent.includes('SUPPRESS'), 5_000);
    transport.dropRevives = true;
    const startedAt = w.cluster.clock.now();
    const build = await trigger(ci);
    await runner.until('a REVIVE (lost)', () => transport.sent.includes('REVIVE'), 5_000);
    // Lost: the master keeps the framework suppressed, so no offer comes.
    await runner.advance(REVIVE_RETRY_MS / 2);
    assert.equal([...ci.view.executors.values()].length, 0, 'no offer while the REVIVE is lost');
    transport.dropRevives = false;
    const took = await runner.until('the build succeeded', () => ci.view.builds.get(`hello#${build.number}`)?.status === 'success', 20_000);
    const total = w.cluster.clock.now() - startedAt;
    assert.ok(transport.sent.filter((t) => t === 'REVIVE').length >= 2, 'revived again');
    assert.ok(total >= REVIVE_RETRY_MS && total <= REVIVE_RETRY_MS + 3_000, `built ${total} ms after the trigger (${took} after the loss ended)`);
  });

  it('keeps a job\'s secrets sealed in its store, opens them after a restart, masks them in the log it stores, and refuses a store sealed with another key', async () => {
    w = await ci(1);
    const secrets = { GREETING: 'hello', API_KEY: 'k-81f0c3d2' };
    await w.ci.putJob(parseJobDefinition('hello', { repo: '/srv/git/hello.git', pipeline: 'steps:\n  - name: greet\n    commands: [echo hello]\n', secrets, triggers: { webhook: { secret: 'hook-93a1' } } }));
    const build = await trigger(w.ci);
    await w.runner.until('the build succeeded', () => w!.ci.view.builds.get(`hello#${build.number}`)?.status === 'success', 20_000);
    const sent = w.executors.received.find((r) => r.message.type === 'BUILD')?.message;
    assert.ok(sent?.type === 'BUILD');
    assert.deepEqual(sent.build.secrets, secrets, 'the executor is given the secrets for its steps');
    // The simulated executor logs "hello\n" unmasked: CI masks what a piece holds whole.
    await w.ci.logs.written('hello', build.number);
    assert.equal(readFileSync(w.ci.logs.path('hello', build.number), 'utf8'), '****\n');
    assert.equal(w.ci.view.builds.get(`hello#${build.number}`)?.logBytes?.whole, '****\n'.length);

    const raw = () => {
      const db = new Sqlite(join(w!.host.dir, 'ci.db'), { readonly: true });
      try {
        return (db.prepare('SELECT doc FROM jobs').all() as { doc: string }[]).map((r) => r.doc).join('\n');
      } finally {
        db.close();
      }
    };
    const stored = raw();
    for (const clear of ['k-81f0c3d2', 'hook-93a1', '"GREETING":"hello"']) assert.ok(!stored.includes(clear), `${clear} in ci.db: ${stored}`);
    assert.match(stored, /"API_KEY":\{"encrypted":"v1:/);

    w = await w.restart();
    await w.runner.quiesce();
    assert.deepEqual(w.ci.view.jobs.get('hello')?.secrets, secrets, 'opened after a restart');
    assert.equal(w.ci.view.jobs.get('hello')?.triggers.webhook?.secret, 'hook-93a1');
    // The same data dir with another key: CI refuses to start rather than run without its jobs.
    const { dir } = w.host;
    await w.ci.stop();
    await w.host.store.close();
    const store = await KyselyCiStore.open(sqliteDatabases(dir));
    const other = new CiFramework({ transport: new InProcessScheduler(w.cluster.master), store, dataDir: dir, clock: w.cluster.clock, executorProgram: () => ({ command: { shell: true, value: 'x' } }), secrets: SecretBox.random() });
    await assert.rejects(other.start(), /do not open with this secret key \(1 job\(s\)\): start CI with the key they were sealed with/);
    await store.close();
    w.cluster.master.stop();
    rmSync(dir, { recursive: true, force: true });
    w = undefined;
  });

  it('gives an executor that proved its launch token a session token in WELCOME, and keeps only their digests', async () => {
    w = await world(1);
    const build = await trigger(w.ci);
    await w.runner.until('the build succeeded', () => w!.ci.view.builds.get(`hello#${build.number}`)?.status === 'success', 20_000);
    const welcome = w.executors.received.find((r) => r.message.type === 'WELCOME');
    assert.ok(welcome?.message.type === 'WELCOME' && welcome.message.token !== undefined, 'a session token');
    const record = w.ci.view.executors.get(welcome.executorId)!;
    assert.equal(record.sessionTokenDigest, tokenDigest(welcome.message.token));
    assert.equal(record.launchTokenDigest, tokenDigest(welcome.executorId.replace('exec-', 'token-')));
    assert.equal(record.launchTokenExpiresAt, record.launchedAt + DEFAULT_EXECUTOR_TOKEN_TTL_MS);
    const db = new Sqlite(join(w.host.dir, 'ci.db'), { readonly: true });
    try {
      const docs = (db.prepare('SELECT doc FROM executors').all() as { doc: string }[]).map((r) => r.doc).join('\n');
      assert.ok(!docs.includes(welcome.message.token) && !docs.includes('"token-'), docs);
    } finally {
      db.close();
    }
  });

  it('keeps the API, memory and disk in agreement while its store refuses writes, and after a restart', async () => {
    const faults = new WriteFaults();
    w = await world(1, faults);
    const { ci, runner } = w;
    const first = await trigger(ci);
    await runner.until('build 1 succeeded', () => ci.view.builds.get(`hello#${first.number}`)?.status === 'success', 20_000);

    faults.fail('no space left on device');
    const refused = async (what: string, call: () => Promise<unknown>) => {
      const e = await call().then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(e instanceof StoreUnavailable, `${what}: refused (${String(e)})`);
      assert.equal(e.status, 503);
    };
    await refused('a new job', () => ci.putJob(parseJobDefinition('other', { repo: '/srv/git/other.git', pipeline: 'steps:\n  - name: a\n    commands: [echo]\n' })));
    await refused('a build', () => trigger(ci));
    await refused('an executor spec', () => ci.putExecutorSpec('big', parseExecutorSpec('big', { cpus: 2, mem: 512 })));
    assert.equal(ci.view.jobs.get('other'), undefined);
    assert.equal(ci.view.lastNumber('hello'), 1, 'no build number given out');
    assert.equal(ci.view.specs.get('big'), undefined);
    assert.deepEqual(ci.view.queue(), []);

    faults.heal();
    const second = await trigger(ci);
    assert.equal(second.number, 2, 'numbers go on from the last stored one');
    await runner.until('build 2 succeeded', () => ci.view.builds.get(`hello#${second.number}`)?.status === 'success', 20_000);

    w = await w.restart();
    await w.runner.quiesce();
    assert.deepEqual([...w.ci.view.jobs.values()].map((j) => j.name), ['hello'], 'after a restart: the jobs the API showed');
    assert.equal(w.ci.view.lastNumber('hello'), 2);
    assert.equal((await w.ci.getBuild('hello', 2))?.status, 'success');
    assert.equal(w.ci.view.specs.get('big'), undefined);
  });
});
