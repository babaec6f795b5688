import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { runPipeline } from './run-pipeline.ts';
import { BUILD, dag, removeWorkspaces, run, sequential, stamp, step, timed, workspace } from './engine-test-support.ts';

// The engine with process steps: real shells in a real workspace. Image steps: image-step.test.ts.

after(removeWorkspaces);

/** Whether a process runs; a zombie (dead, not yet reaped by an init that takes its time) does not. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

describe('runPipeline with process steps', () => {
  it('runs steps one after another when each waits for the one before, in the workspace', async () => {
    const ws = await workspace();
    await writeFile(join(ws, 'checked-out.txt'), 'code\n');
    const r = await run(sequential(step('a', [...timed('a', 0.2), 'cat checked-out.txt > a.saw']), step('b', timed('b', 0.2))), { workspace: ws });
    assert.equal(r.result.status, 'success');
    assert.deepEqual(r.result.steps.map((s) => [s.name, s.status, s.exitCode]), [['a', 'success', 0], ['b', 'success', 0]]);
    assert.equal(await readFile(join(ws, 'a.saw'), 'utf8'), 'code\n');
    assert.ok((await stamp(ws, 'b.start')) >= (await stamp(ws, 'a.end')), 'b started after a ended');
    const a = r.step('a');
    assert.ok(a.durationMs >= 200 && a.finishedAt - a.startedAt === a.durationMs);
    assert.deepEqual(
      r.events.filter((e) => e.type !== 'log').map((e) => `${e.type} ${e.step}`),
      ['step-started a', 'step-finished a', 'step-started b', 'step-finished b'],
    );
  });

  it('runs the independent steps of a DAG at the same time, and a step waiting for both after them', async () => {
    const ws = await workspace();
    const pipeline = dag(step('a', timed('a', 1)), step('b', timed('b', 1)), step('c', timed('c', 0), { dependsOn: ['a', 'b'] }));
    const r = await run(pipeline, { workspace: ws });
    assert.equal(r.result.status, 'success');
    const [aStart, aEnd, bStart, bEnd, cStart] = await Promise.all(['a.start', 'a.end', 'b.start', 'b.end', 'c.start'].map((f) => stamp(ws, f)));
    assert.ok(aStart! < bEnd! && bStart! < aEnd!, `a [${aStart}, ${aEnd}] and b [${bStart}, ${bEnd}] overlap`);
    assert.ok(cStart! >= Math.max(aEnd!, bEnd!), 'c started after both');
  });

  it('runs at most maxParallel steps at once', async () => {
    const ws = await workspace();
    const r = await run(dag(step('a', timed('a', 0.3)), step('b', timed('b', 0.3))), { workspace: ws, maxParallel: 1 });
    assert.equal(r.result.status, 'success');
    assert.ok((await stamp(ws, 'b.start')) >= (await stamp(ws, 'a.end')), 'b waited for a (pipeline order)');
    await assert.rejects(runPipeline(dag(), { workspace: ws, build: BUILD, maxParallel: 0 }), RangeError);
  });

  it('fails the build when a step fails, stops that step at its failing command, and skips the steps downstream of it', async () => {
    const ws = await workspace();
    const pipeline = dag(
      step('prepare', ['true']),
      step('test', ['echo before', 'exit 3', 'echo after'], { dependsOn: ['prepare'] }),
      step('package', ['touch packaged'], { dependsOn: ['test'] }),
      step('publish', ['touch published'], { dependsOn: ['package'] }),
      step('lint', ['touch linted'], { dependsOn: ['prepare'] }),
    );
    const r = await run(pipeline, { workspace: ws });
    assert.equal(r.result.status, 'failure');
    assert.deepEqual(r.step('test').status, 'failure');
    assert.equal(r.step('test').exitCode, 3);
    assert.match(r.log('test'), /before/);
    assert.doesNotMatch(r.log('test'), /after/);
    for (const name of ['package', 'publish']) {
      assert.equal(r.step(name).status, 'skipped');
      assert.equal(r.step(name).reason, 'a step it depends on failed');
      assert.equal(r.step(name).exitCode, undefined);
    }
    assert.equal(r.step('lint').status, 'success', 'a branch of the DAG that does not depend on the failure goes on');
    assert.ok(existsSync(join(ws, 'linted')) && !existsSync(join(ws, 'packaged')) && !existsSync(join(ws, 'published')));
  });

  it('keeps a build green past a step with failure: ignore, and runs what depends on it', async () => {
    const ws = await workspace();
    const r = await run(sequential(step('flaky', ['exit 1'], { failure: 'ignore' }), step('next', ['touch ran'])), { workspace: ws });
    assert.equal(r.result.status, 'success');
    assert.equal(r.step('flaky').status, 'failure');
    assert.equal(r.step('flaky').exitCode, 1);
    assert.equal(r.step('next').status, 'success');
    assert.ok(existsSync(join(ws, 'ran')));
  });

  it('runs a step only for the events and branch globs of its when', async () => {
    const ws = await workspace();
    const pipeline = dag(
      step('on-push', ['true'], { when: [{ event: ['push'] }] }),
      step('on-tag', ['true'], { when: [{ event: ['tag', 'manual'] }] }),
      step('on-release', ['true'], { when: [{ branch: ['release/*'] }] }),
      step('on-main-or-release', ['true'], { when: [{ branch: ['main', 'release/*'], event: ['push'] }] }),
      step('deep-release', ['true'], { when: [{ branch: ['release/**'] }] }),
      step('main-push-or-manual', ['true'], { when: [{ event: ['push'], branch: ['main'] }, { event: ['manual'] }] }),
    );
    const release = await run(pipeline, { workspace: ws, build: { ...BUILD, branch: 'release/1.2' } });
    assert.deepEqual(
      release.result.steps.map((s) => [s.name, s.status]),
      [['on-push', 'success'], ['on-tag', 'skipped'], ['on-release', 'success'], ['on-main-or-release', 'success'], ['deep-release', 'success'], ['main-push-or-manual', 'skipped']],
    );
    assert.equal(release.step('main-push-or-manual').reason, 'when: branch is release/1.2, not main; when: event is push, not manual');
    assert.equal(release.step('on-tag').reason, 'when: event is push, not tag or manual');
    const nested = await run(pipeline, { workspace: ws, build: { ...BUILD, branch: 'release/1.2/hotfix' } });
    assert.equal(nested.step('on-release').status, 'skipped', '* does not cross a /');
    assert.equal(nested.step('deep-release').status, 'success');
    const tag = await run(pipeline, { workspace: ws, build: { jobName: 'shop', number: 8, event: 'tag', tag: 'v1.2.3', env: {} } });
    assert.deepEqual(tag.result.steps.map((s) => s.status), ['skipped', 'success', 'skipped', 'skipped', 'skipped', 'skipped']);
    const manual = await run(pipeline, { workspace: ws, build: { ...BUILD, event: 'manual', branch: 'feature/x' } });
    assert.equal(manual.step('main-push-or-manual').status, 'success', 'one condition of the list is enough');
    assert.equal(tag.step('on-release').reason, 'when: branch release/*, and the build has no branch');
    assert.equal(tag.result.status, 'success', 'skipped steps do not fail a build');
  });

  it('runs a cleanup step with when: status failure after a failure, and skips it after a success', async () => {
    const ws = await workspace();
    const pipeline = (testCommand: string) =>
      sequential(
        step('test', [testCommand]),
        step('deploy', ['true']),
        step('cleanup', ['echo "cleaning up after $CI_BUILD_EVENT"'], { when: [{ status: ['failure'] }] }),
        step('always', ['true'], { when: [{ status: ['success', 'failure'] }] }),
      );
    const failed = await run(pipeline('false'), { workspace: ws });
    assert.equal(failed.result.status, 'failure');
    assert.deepEqual(failed.result.steps.map((s) => s.status), ['failure', 'skipped', 'success', 'success']);
    assert.match(failed.log('cleanup'), /cleaning up after push/);
    const passed = await run(pipeline('true'), { workspace: ws });
    assert.equal(passed.result.status, 'success');
    assert.deepEqual(passed.result.steps.map((s) => s.status), ['success', 'success', 'skipped', 'success']);
    assert.equal(passed.step('cleanup').reason, 'when: status is failure, and no step it depends on failed');
  });

  it('judges when: status by the steps upstream in the DAG, not by unrelated branches', async () => {
    const ws = await workspace();
    const r = await run(
      dag(
        step('broken', ['false']),
        step('fine', ['true']),
        step('after-fine', ['true'], { dependsOn: ['fine'] }),
        step('report-fine', ['true'], { dependsOn: ['after-fine'], when: [{ status: ['failure'] }] }),
        step('report-broken', ['true'], { dependsOn: ['broken'], when: [{ status: ['failure'] }] }),
      ),
      { workspace: ws },
    );
    assert.deepEqual(r.result.steps.map((s) => [s.name, s.status]), [
      ['broken', 'failure'],
      ['fine', 'success'],
      ['after-fine', 'success'],
      ['report-fine', 'skipped'],
      ['report-broken', 'success'],
    ]);
  });

  it('gives a step PATH, HOME, the CI variables, the job variables and its own, and nothing else of the executor', async () => {
    const ws = await workspace();
    process.env['SLIPWAY_ENGINE_TEST_SECRET'] = 'do-not-leak';
    try {
      const build = { ...BUILD, env: { DEPLOY_TO: 'staging', SHARED: 'job' }, repo: 'https://git.example/shop.git', executorLabel: 'linux' };
      const r = await run(sequential(step('show', ['env > env.txt'], { environment: { SHARED: 'step', ONLY_STEP: 'yes' } })), { workspace: ws, build });
      assert.equal(r.result.status, 'success');
      const env = Object.fromEntries(
        (await readFile(join(ws, 'env.txt'), 'utf8')).split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      assert.equal(env['SLIPWAY_ENGINE_TEST_SECRET'], undefined);
      assert.equal(env['PATH'], process.env['PATH']);
      assert.equal(env['HOME'], process.env['HOME']);
      assert.equal(env['DEPLOY_TO'], 'staging');
      assert.equal(env['SHARED'], 'step', "the step's environment wins over the job's");
      assert.equal(env['ONLY_STEP'], 'yes');
      assert.deepEqual(
        {
          CI: env['CI'],
          CI_JOB_NAME: env['CI_JOB_NAME'],
          CI_BUILD_NUMBER: env['CI_BUILD_NUMBER'],
          CI_BUILD_EVENT: env['CI_BUILD_EVENT'],
          CI_COMMIT_SHA: env['CI_COMMIT_SHA'],
          CI_COMMIT_BRANCH: env['CI_COMMIT_BRANCH'],
          CI_COMMIT_TAG: env['CI_COMMIT_TAG'],
          CI_WORKSPACE: env['CI_WORKSPACE'],
          CI_STEP_NAME: env['CI_STEP_NAME'],
          CI_REPO_CLONE_URL: env['CI_REPO_CLONE_URL'],
          CI_EXECUTOR_LABEL: env['CI_EXECUTOR_LABEL'],
        },
        {
          CI: 'true',
          CI_JOB_NAME: 'shop',
          CI_BUILD_NUMBER: '7',
          CI_BUILD_EVENT: 'push',
          CI_COMMIT_SHA: 'c0ffee',
          CI_COMMIT_BRANCH: 'main',
          CI_COMMIT_TAG: '',
          CI_WORKSPACE: ws,
          CI_STEP_NAME: 'show',
          CI_REPO_CLONE_URL: 'https://git.example/shop.git',
          CI_EXECUTOR_LABEL: 'linux',
        },
      );
    } finally {
      delete process.env['SLIPWAY_ENGINE_TEST_SECRET'];
    }
  });

  it('gives a step the job\'s secrets, and masks them, their base64 and URL-encoded forms in its log, also when written in parts', async () => {
    const ws = await workspace();
    const secret = 'tok/3f9a 71c2+x';
    const build = { ...BUILD, env: { PLAIN: 'visible' }, secrets: { DEPLOY_TOKEN: secret } };
    const commands = [
      'echo "plain: $DEPLOY_TOKEN"',
      'echo -n "$DEPLOY_TOKEN" | base64',
      'echo "$DEPLOY_TOKEN" | base64',
      `node -e 'console.log(encodeURIComponent(process.env.DEPLOY_TOKEN))'`,
      'python3 -c \'import os, urllib.parse; print(urllib.parse.quote(os.environ["DEPLOY_TOKEN"], safe="")); print(urllib.parse.quote_plus(os.environ["DEPLOY_TOKEN"]))\'',
      // Half of it, then a pause past the log's partial-line flush (200 ms), then the rest.
      'printf "split: %s" "$(echo "$DEPLOY_TOKEN" | cut -c1-6)"; sleep 0.5; printf "%s\\n" "$(echo "$DEPLOY_TOKEN" | cut -c7-)"',
      'echo "env: $PLAIN"',
      'echo "$DEPLOY_TOKEN" > seen.txt',
    ];
    const r = await run(sequential(step('leak', commands)), { workspace: ws, build });
    assert.equal(r.result.status, 'success', r.log('leak'));
    const log = r.log('leak');
    assert.equal(await readFile(join(ws, 'seen.txt'), 'utf8'), `${secret}\n`, 'the step got the secret');
    for (const form of [secret, Buffer.from(secret).toString('base64'), Buffer.from(`${secret}\n`).toString('base64'), encodeURIComponent(secret), 'tok%2F3f9a%2071c2%2Bx', 'tok%2F3f9a+71c2%2Bx', 'tok/3f9a', '71c2+x']) {
      assert.ok(!log.includes(form), `${form} in the log:\n${log}`);
    }
    assert.match(log, /plain: \*\*\*\*\n/);
    assert.match(log, /split: \*\*\*\*\n/);
    assert.match(log, /env: visible\n/);
    // Every piece on its own shows nothing either (a follower sees them one by one).
    for (const e of r.events) if (e.type === 'log') assert.ok(!e.text.includes('3f9a'), JSON.stringify(e.text));
  });

  it("logs each step apart, echoing each command, with stdout and stderr in the order written", async () => {
    const ws = await workspace();
    const pipeline = dag(
      step('one', ['echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2', "printf 'no newline'"]),
      step('two', ['for i in 1 2 3; do echo two-$i; sleep 0.05; done']),
    );
    const r = await run(pipeline, { workspace: ws });
    assert.equal(
      r.log('one'),
      "+ echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2\nout-1\nerr-1\nout-2\nerr-2\n+ printf 'no newline'\nno newline",
    );
    assert.equal(r.log('two'), '+ for i in 1 2 3; do echo two-$i; sleep 0.05; done\ntwo-1\ntwo-2\ntwo-3\n');
    const logs = r.events.filter((e) => e.type === 'log');
    assert.ok(logs.every((e) => e.text.endsWith('\n') || e.text === 'no newline'), 'pieces are whole lines');
    for (const name of ['one', 'two']) {
      const mine = r.events.filter((e) => e.step === name);
      assert.equal(mine[0]?.type, 'step-started');
      assert.equal(mine.at(-1)?.type, 'step-finished');
      const times = mine.map((e) => e.at);
      assert.deepEqual(times, [...times].sort((x, y) => x - y), 'timestamps do not go back');
    }
  });

  it('stops a running step when the build is cancelled: process group gone, later steps skipped, build cancelled', async () => {
    const ws = await workspace();
    const controller = new AbortController();
    const pending = run(sequential(step('long', ['sleep 30 & echo $! > sleep.pid; wait']), step('later', ['touch later'])), {
      workspace: ws,
      signal: controller.signal,
      killGraceMs: 5_000,
    });
    await waitFor('the sleep to start', () => existsSync(join(ws, 'sleep.pid')));
    const pid = Number((await readFile(join(ws, 'sleep.pid'), 'utf8')).trim());
    assert.ok(alive(pid));
    const cancelledAt = Date.now();
    controller.abort();
    const r = await pending;
    assert.ok(Date.now() - cancelledAt < 2_000, 'SIGTERM ended it, well before the grace');
    assert.equal(r.result.status, 'cancelled');
    assert.equal(r.step('long').status, 'cancelled');
    assert.equal(r.step('later').status, 'skipped');
    assert.equal(r.step('later').reason, 'the build was cancelled');
    assert.ok(!existsSync(join(ws, 'later')));
    await waitFor('the sleep to be gone', () => !alive(pid), 2_000);
  });

  it('kills a step that ignores SIGTERM once the grace is over', async () => {
    const ws = await workspace();
    const controller = new AbortController();
    const pending = run(sequential(step('stubborn', ["trap '' TERM", 'echo ready > ready', 'sleep 30'])), { workspace: ws, signal: controller.signal, killGraceMs: 300 });
    await waitFor('the step to be ready', () => existsSync(join(ws, 'ready')));
    const cancelledAt = Date.now();
    controller.abort();
    const r = await pending;
    const took = Date.now() - cancelledAt;
    assert.ok(took >= 250 && took < 3_000, `killed after the grace (${took} ms)`);
    assert.equal(r.step('stubborn').status, 'cancelled');
    assert.equal(r.step('stubborn').exitCode, 137);
  });

  it('answers cancelled without running anything when the signal is already aborted', async () => {
    const ws = await workspace();
    const r = await run(sequential(step('a', ['touch a'])), { workspace: ws, signal: AbortSignal.abort() });
    assert.equal(r.result.status, 'cancelled');
    assert.equal(r.step('a').status, 'skipped');
    assert.ok(!existsSync(join(ws, 'a')));
  });

  it('kills what a step left running in the background when the step ends', async () => {
    const ws = await workspace();
    const r = await run(sequential(step('spawner', ['sleep 30 & echo $! > bg.pid'])), { workspace: ws });
    assert.equal(r.result.status, 'success');
    const pid = Number((await readFile(join(ws, 'bg.pid'), 'utf8')).trim());
    await waitFor('the background sleep to be gone', () => !alive(pid), 2_000);
  });

  it('reports a step killed by a signal as a failure with 128 + the signal number', async () => {
    const ws = await workspace();
    const r = await run(sequential(step('suicide', ['kill -KILL $$'])), { workspace: ws });
    assert.equal(r.result.status, 'failure');
    assert.equal(r.step('suicide').exitCode, 137);
    assert.match(r.step('suicide').error ?? '', /SIGKILL/);
  });

  it('ends an image step in error when no Docker engine was given, and the build with it', async () => {
    const ws = await workspace();
    const r = await run(sequential(step('in-image', ['true'], { image: 'slipway-test/busybox:latest' }), step('after', ['true'])), { workspace: ws });
    assert.equal(r.result.status, 'error');
    assert.equal(r.step('in-image').status, 'error');
    assert.match(r.step('in-image').error ?? '', /needs a Docker engine/);
    assert.equal(r.step('after').status, 'skipped');
  });

  it('ends in error without running anything when the workspace or the DAG is not usable', async () => {
    const ws = await workspace();
    const missing = await run(sequential(step('a', ['true'])), { workspace: join(ws, 'nope') });
    assert.equal(missing.result.status, 'error');
    assert.match(missing.result.error ?? '', /is not a directory/);
    assert.equal(missing.step('a').status, 'skipped');
    const unknown = await run(dag(step('a', ['true'], { dependsOn: ['ghost'] })), { workspace: ws });
    assert.match(unknown.result.error ?? '', /depends on ghost/);
    const cycle = await run(dag(step('a', ['true'], { dependsOn: ['b'] }), step('b', ['true'], { dependsOn: ['a'] })), { workspace: ws });
    assert.equal(cycle.result.error, 'depends_on makes a cycle: a -> b -> a');
  });

  it('goes on when the event listener throws', async () => {
    const ws = await workspace();
    const r = await run(sequential(step('a', ['echo hi']), step('b', ['true'])), {
      workspace: ws,
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    assert.equal(r.result.status, 'success');
  });
});
