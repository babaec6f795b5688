import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder, processesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';
import { runToken } from '../src/sim/bench-token.ts';

// Jenkins's remote API as the clients teams already have use it: the npm `jenkins` package (a
// real client nobody here wrote) against `slipway up`, over a git repository with a pipeline.

/** What this test uses of the `jenkins` package (v1), which ships no types. */
interface JenkinsClient {
  info(): Promise<{ _class: string; jobs: { name: string; url: string; color: string }[] }>;
  job: {
    build(name: string): Promise<number>;
    get(name: string): Promise<JobJson>;
    exists(name: string): Promise<boolean>;
    list(): Promise<{ name: string; url: string; color: string }[]>;
  };
  queue: {
    item(id: number): Promise<QueueItemJson>;
    cancel(id: number): Promise<void>;
  };
  build: {
    get(name: string, n: number | string): Promise<BuildJson>;
    log(name: string, n: number, opts: { start: number; meta: true }): Promise<{ text?: string; more: boolean; size?: string }>;
    log(name: string, n: number): Promise<string>;
    logStream(name: string, n: number, opts?: { delay?: number }): EventEmitter;
    stop(name: string, n: number): Promise<void>;
  };
}
interface Ref {
  number: number;
  url: string;
}
interface JobJson {
  _class: string;
  name: string;
  url: string;
  color: string;
  buildable: boolean;
  builds: Ref[];
  lastBuild: Ref | null;
  lastCompletedBuild: Ref | null;
  lastSuccessfulBuild: Ref | null;
  lastFailedBuild: Ref | null;
  nextBuildNumber: number;
  inQueue: boolean;
}
interface QueueItemJson {
  _class: string;
  id: number;
  why: string | null;
  blocked: boolean;
  buildable: boolean;
  cancelled: boolean;
  task: { name: string; url: string };
  executable: Ref | null;
}
interface BuildJson {
  _class: string;
  number: number;
  url: string;
  building: boolean;
  result: 'SUCCESS' | 'FAILURE' | 'ABORTED' | null;
  duration: number;
  estimatedDuration: number;
  timestamp: number;
  id: string;
  displayName: string;
  fullDisplayName: string;
  queueId: number;
}
type JenkinsError = Error & { notFound?: boolean; res?: { statusCode: number } };

const require = createRequire(import.meta.url);
const Jenkins = require('jenkins') as new (options: { baseUrl: string }) => JenkinsClient;

describe('Jenkins remote API on `slipway up`, driven by the npm `jenkins` client', { timeout: 180_000 }, () => {
  let server: Up;
  let dir: string;
  let repo: string;
  let base: string;
  let jenkins: JenkinsClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-jenkins-'));
    repo = join(dir, 'repo');
    createTestRepo(repo).commit({
      '.slipway.yml': [
        'steps:',
        '  - name: build',
        '    commands:',
        `      - 'echo "building $CI_JOB_NAME #$CI_BUILD_NUMBER"'`,
        '  - name: test',
        '    commands:',
        '      - echo tests passed',
        '',
      ].join('\n'),
    });
    // CI executors as root, explicitly: they clone the test's repositories, which are root's (git
    // refuses another user's repository: "dubious ownership"); other tasks run as nobody.
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:8192;disk:20000;ports:[34100-34199]', ciUser: 'root' });
    base = server.master.url;
    // As Jenkins clients authenticate: user:apiToken in the URL (Basic, the token as password).
    jenkins = new Jenkins({ baseUrl: `${base.replace('http://', `http://admin:${runToken()}@`)}/jenkins` });
    const put = async (name: string, body: unknown) => {
      const r = await fetch(`${base}/ci/v1/jobs/${name}`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(r.status, 201, await r.text());
    };
    await put('green', { repo });
    await put('red', { repo, pipeline: 'steps:\n  - name: fail\n    commands:\n      - echo about to fail\n      - exit 3\n' });
    await put('slow', { repo, pipeline: 'steps:\n  - name: wait\n    commands:\n      - echo started waiting\n      - sleep 30\n      - echo never printed\n' });
  });

  after(async () => {
    await server?.close();
    if (dir !== undefined) {
      killProcessesUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Triggers `job`, follows its queue item until it names a build, and gives that build's number. */
  const triggerAndFollow = async (job: string): Promise<{ queueId: number; number: number; firstItem: QueueItemJson }> => {
    const queueId = await jenkins.job.build(job);
    assert.equal(typeof queueId, 'number', 'job.build gives the queue item id from the Location header');
    const firstItem = await jenkins.queue.item(queueId);
    const item = await waitUntil(async () => {
      const it = await jenkins.queue.item(queueId);
      return it.executable !== null ? it : undefined;
    }, `queue item ${queueId} of ${job} to have an executable`, 60_000);
    assert.equal(item._class, 'hudson.model.Queue$LeftItem');
    assert.equal(item.cancelled, false);
    assert.equal(item.why, null);
    assert.equal(item.task.name, job);
    assert.equal(item.executable?.url, `${base}/jenkins/job/${job}/${item.executable?.number}/`);
    return { queueId, number: item.executable!.number, firstItem };
  };

  const waitFinished = (job: string, n: number, timeoutMs = 60_000) =>
    waitUntil(async () => {
      const b = await jenkins.build.get(job, n);
      return b.building ? undefined : b;
    }, `${job} #${n} to finish`, timeoutMs);

  it('triggers a build, follows its queue item to the build, waits for SUCCESS and reads its log', async () => {
    const { queueId, number, firstItem } = await triggerAndFollow('green');
    assert.equal(firstItem.id, queueId);
    if (firstItem.executable === null) {
      // Still waiting when first asked (an executor is being started): Jenkins says why.
      assert.equal(typeof firstItem.why, 'string');
      assert.equal(firstItem.cancelled, false);
    }
    assert.equal(number, 1);

    const b = await waitFinished('green', number);
    assert.equal(b._class, 'hudson.model.FreeStyleBuild');
    assert.equal(b.result, 'SUCCESS');
    assert.equal(b.number, 1);
    assert.equal(b.id, '1');
    assert.equal(b.displayName, '#1');
    assert.equal(b.fullDisplayName, 'green #1');
    assert.equal(b.queueId, queueId);
    assert.equal(b.url, `${base}/jenkins/job/green/1/`);
    assert.ok(b.duration > 0, `duration ${b.duration}`);
    assert.ok(b.timestamp > 0 && b.timestamp <= Date.now());

    // The whole log at once, then from an offset.
    const log = await jenkins.build.log('green', 1);
    assert.match(log, /building green #1/);
    assert.match(log, /tests passed/);
    assert.match(log, /Finished: SUCCESS\n$/);
    const whole = await jenkins.build.log('green', 1, { start: 0, meta: true });
    assert.equal(whole.text, log);
    assert.equal(whole.more, false, 'no X-More-Data once the build ended');
    assert.equal(Number(whole.size), Buffer.byteLength(log));
    const at = Buffer.byteLength(log) - Buffer.byteLength('Finished: SUCCESS\n');
    const tail = await jenkins.build.log('green', 1, { start: at, meta: true });
    assert.equal(tail.text, 'Finished: SUCCESS\n');
    assert.equal(Number(tail.size), Buffer.byteLength(log));
    const nothing = await jenkins.build.log('green', 1, { start: Buffer.byteLength(log), meta: true });
    assert.equal(nothing.text ?? '', '');
    assert.equal(nothing.more, false);

    // The log stream (progressiveText in a loop) gives the same text and ends.
    const streamed = await new Promise<string>((resolve, reject) => {
      let text = '';
      const s = jenkins.build.logStream('green', 1, { delay: 50 });
      s.on('data', (t: string) => (text += t));
      s.on('error', reject);
      s.on('end', () => resolve(text));
    });
    assert.equal(streamed, log);

    // The second build goes the same way; the job and the server list them.
    const second = await triggerAndFollow('green');
    assert.equal(second.number, 2);
    assert.notEqual(second.queueId, queueId);
    assert.equal((await waitFinished('green', 2)).result, 'SUCCESS');
    const job = await jenkins.job.get('green');
    assert.equal(job._class, 'hudson.model.FreeStyleProject');
    assert.equal(job.name, 'green');
    assert.equal(job.url, `${base}/jenkins/job/green/`);
    assert.equal(job.color, 'blue');
    assert.equal(job.buildable, true);
    assert.equal(job.inQueue, false);
    assert.equal(job.nextBuildNumber, 3);
    assert.deepEqual(
      job.builds.map((r) => r.number),
      [2, 1],
    );
    assert.equal(job.lastBuild?.number, 2);
    assert.equal(job.lastCompletedBuild?.number, 2);
    assert.equal(job.lastSuccessfulBuild?.number, 2);
    assert.equal(job.lastFailedBuild, null);
    assert.equal((await jenkins.build.get('green', 'lastSuccessfulBuild')).number, 2);
    const estimated = (await jenkins.build.get('green', 2)).estimatedDuration;
    assert.ok(estimated > 0, `estimatedDuration ${estimated}`);
    const info = await jenkins.info();
    assert.equal(info._class, 'hudson.model.Hudson');
    assert.deepEqual(
      (await jenkins.job.list()).map((j) => [j.name, j.color]),
      [
        ['green', 'blue'],
        ['red', 'notbuilt'],
        ['slow', 'notbuilt'],
      ],
    );
  });

  it('reports a failing build as FAILURE, with its log', async () => {
    const { number } = await triggerAndFollow('red');
    const b = await waitFinished('red', number);
    assert.equal(b.result, 'FAILURE');
    const log = await jenkins.build.log('red', number);
    assert.match(log, /about to fail/);
    assert.match(log, /Finished: FAILURE\n$/);
    const job = await jenkins.job.get('red');
    assert.equal(job.color, 'red');
    assert.equal(job.lastFailedBuild?.number, number);
    assert.equal(job.lastSuccessfulBuild, null);
    assert.equal((await jenkins.build.get('red', 'lastBuild')).result, 'FAILURE');
  });

  it('follows the log of a running build, stops it, and reports it ABORTED', async () => {
    const { number } = await triggerAndFollow('slow');
    // While it runs: building, no result, and the log says there is more to come.
    const running = await waitUntil(async () => {
      const part = await jenkins.build.log('slow', number, { start: 0, meta: true });
      // The shell's trace of `sleep 30` is the last line before 30 s of silence (waiting for
      // `started waiting` raced: the trace `+ echo started waiting` comes before the echo's own line).
      return /^\+ sleep 30$/m.test(part.text ?? '') ? part : undefined;
    }, 'the slow build to start waiting', 60_000);
    assert.match(running.text ?? '', /^started waiting$/m);
    assert.equal(running.more, true, 'X-More-Data while the build runs');
    assert.doesNotMatch(running.text ?? '', /Finished:/);
    const during = await jenkins.build.get('slow', number);
    assert.equal(during.building, true);
    assert.equal(during.result, null);
    assert.equal(during.duration, 0);
    assert.match((await jenkins.job.get('slow')).color, /_anime$/);
    // Asking again from where it stopped gives nothing new yet, and still more to come.
    const again = await jenkins.build.log('slow', number, { start: Number(running.size), meta: true });
    assert.equal(again.text ?? '', '');
    assert.equal(again.more, true);
    assert.equal(Number(again.size), Number(running.size));

    // A second build of the job waits: one at a time (concurrency 1). Its queue item says why,
    // and cancelling it leaves a cancelled item that never becomes a build.
    const waitingId = await jenkins.job.build('slow');
    const waiting = await jenkins.queue.item(waitingId);
    assert.equal(waiting._class, 'hudson.model.Queue$BlockedItem');
    assert.equal(waiting.blocked, true);
    assert.equal(waiting.buildable, false);
    assert.equal(waiting.cancelled, false);
    assert.equal(waiting.executable, null);
    assert.match(waiting.why ?? '', /concurrency/);
    assert.equal((await jenkins.job.get('slow')).inQueue, true);
    await jenkins.queue.cancel(waitingId);
    const cancelled = await jenkins.queue.item(waitingId);
    assert.equal(cancelled._class, 'hudson.model.Queue$LeftItem');
    assert.equal(cancelled.cancelled, true);
    assert.equal(cancelled.executable, null);
    assert.equal((await jenkins.job.get('slow')).inQueue, false);
    await assert.rejects(jenkins.build.get('slow', number + 1), (e: JenkinsError) => e.notFound === true);

    // A log stream started now ends once the stopped build has ended.
    const streamed = new Promise<string>((resolve, reject) => {
      let text = '';
      const s = jenkins.build.logStream('slow', number, { delay: 100 });
      s.on('data', (t: string) => (text += t));
      s.on('error', reject);
      s.on('end', () => resolve(text));
    });
    const stoppedAt = Date.now();
    await jenkins.build.stop('slow', number);
    const b = await waitFinished('slow', number, 20_000);
    assert.equal(b.result, 'ABORTED');
    assert.ok(Date.now() - stoppedAt < 20_000);
    const text = await streamed;
    assert.match(text, /started waiting/);
    assert.doesNotMatch(text, /never printed/);
    assert.match(text, /Finished: ABORTED\n$/);
    await waitUntil(() => !processesUnder(dir).some((p) => p.comm === 'sleep'), 'the stopped step`s sleep to be gone', 10_000);
    assert.equal((await jenkins.job.get('slow')).color, 'aborted');
    // Stopping an ended build changes nothing.
    await jenkins.build.stop('slow', number);
    assert.equal((await jenkins.build.get('slow', number)).result, 'ABORTED');
  });

  // The client turns a 404 into an error with `notFound` where it expects one; elsewhere its error carries the answer.
  it('answers 404 for an unknown job, build or queue item, as the client expects', async () => {
    await assert.rejects(jenkins.job.build('nope'), (e: JenkinsError) => e.notFound === true && /nope not found/.test(e.message));
    await assert.rejects(jenkins.job.get('nope'), (e: JenkinsError) => e.notFound === true);
    assert.equal(await jenkins.job.exists('nope'), false);
    assert.equal(await jenkins.job.exists('green'), true);
    await assert.rejects(jenkins.build.get('green', 999), (e: JenkinsError) => e.notFound === true);
    await assert.rejects(jenkins.build.get('nope', 1), (e: JenkinsError) => e.notFound === true);
    await assert.rejects(jenkins.build.log('green', 999), (e: JenkinsError) => e.notFound === true);
    await assert.rejects(jenkins.build.stop('green', 999), (e: JenkinsError) => e.notFound === true);
    await assert.rejects(jenkins.queue.item(12345), (e: JenkinsError) => e.res?.statusCode === 404);
    await assert.rejects(jenkins.build.get('red', 'lastSuccessfulBuild'), (e: JenkinsError) => e.notFound === true);
  });
});
