import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ManualClock } from '../../../core/clock.ts';
import type { Build } from '../build.ts';
import type { CiChange } from '../ci-store.ts';
import type { RemoteRefs } from '../git/git-source.ts';
import { parseJobDefinition as parseJobInput, type JobDefinition } from '../job-definition.ts';
import { resolveJobSecrets } from '../job-secrets.ts';
import { TriggerRunner, type TriggerHost } from './trigger-runner.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const REPO = '/srv/git/app.git';

/** A job as CI keeps it in memory (its secrets read, none of them sealed here). */
function parseJobDefinition(name: string, json: unknown): JobDefinition {
  return resolveJobSecrets(parseJobInput(name, json), undefined, { open: () => assert.fail('nothing sealed here') });
}

/**
 * CI as the runner sees it, with a store in memory that applies each write whole or not at all
 * (`failWrites` makes the next writes fail: a crash before them, as far as the store knows).
 */
class FakeCi implements TriggerHost {
  readonly jobMap = new Map<string, JobDefinition>();
  /** What the store holds: trigger states and builds. */
  readonly states = new Map<string, unknown>();
  readonly builds: { job: string; description: string; event: string; commit?: string; tag?: string; branch?: string }[] = [];
  failWrites = 0;
  readonly clock = new ManualClock(Date.parse('2024-05-01T00:00:30Z'));

  jobs() {
    return this.jobMap.values();
  }
  job(name: string) {
    return this.jobMap.get(name);
  }
  async trigger(job: string, opts: Parameters<TriggerHost['trigger']>[1]): Promise<Build> {
    const number = this.builds.filter((b) => b.job === job).length + 1;
    await this.write([], () => this.builds.push({ job, description: opts.cause.description, event: opts.event, ...(opts.commit !== undefined ? { commit: opts.commit } : {}), ...(opts.tag !== undefined ? { tag: opts.tag } : {}), ...(opts.branch !== undefined ? { branch: opts.branch } : {}) }), opts.alsoWrite);
    return { job, number } as Build;
  }
  async write(changes: CiChange[], also?: () => void, more: CiChange[] = []): Promise<void> {
    await Promise.resolve();
    if (this.failWrites > 0) {
      this.failWrites--;
      throw new Error('the store is gone');
    }
    also?.();
    for (const c of [...changes, ...more]) if (c.type === 'TRIGGER_STATE_SAVED') this.states.set(c.job, JSON.parse(JSON.stringify(c.doc)));
  }
  log() {}
  stored() {
    return [...this.states].map(([job, doc]) => ({ job, doc }));
  }
}

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const refs = (tags: Record<string, string>, main = A): RemoteRefs => ({ tags: new Map(Object.entries(tags)), branches: new Map([['main', main]]), head: 'main' });

describe('the trigger runner', () => {
  const runners: TriggerRunner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop();
  });
  const start = (ci: FakeCi, list: (repo: string) => Promise<RemoteRefs>) => {
    const r = new TriggerRunner(ci, { listRemoteRefs: list, tickMs: 250, clock: ci.clock });
    r.load(ci.stored());
    r.start();
    runners.push(r);
    return r;
  };

  it('builds each new tag exactly once across a crash between two builds of one poll', async () => {
    const ci = new FakeCi();
    ci.jobMap.set('app', parseJobDefinition('app', { repo: REPO, triggers: { poll: { intervalSeconds: 1 } } }));
    let remote = refs({ v1: A });
    let looks = 0;
    const list = async () => {
      looks++;
      return remote;
    };
    const first = start(ci, list);
    await until('the first look', () => ci.states.has('app'));
    assert.equal(ci.builds.length, 0);

    remote = refs({ v1: A, v2: B, v3: C });
    ci.failWrites = 0;
    // The write of v2's build goes through, v3's fails (CI dies there).
    const origTrigger = ci.trigger.bind(ci);
    ci.trigger = async (job, opts) => {
      if (opts.tag === 'v3') ci.failWrites = 1;
      return origTrigger(job, opts);
    };
    ci.clock.advance(1000);
    await until('v2 built', () => ci.builds.length === 1);
    await first.stop();
    assert.deepEqual(ci.builds.map((b) => b.tag), ['v2']);

    // A new CI on the same store: v3 is found at its first poll, v2 is not built again.
    ci.trigger = origTrigger;
    start(ci, list);
    const seen = looks;
    await until('v3 built', () => ci.builds.length === 2);
    ci.clock.advance(1000);
    await until('two more looks', () => looks >= seen + 2);
    assert.deepEqual(ci.builds.map((b) => `${b.tag}@${b.commit?.[0]} ${b.description}`), ['v2@b tag v2', 'v3@c tag v3']);
  });

  it('never runs two polls of a job at once, however slow git is', async () => {
    const ci = new FakeCi();
    ci.jobMap.set('app', parseJobDefinition('app', { repo: REPO, triggers: { poll: { intervalSeconds: 1 } } }));
    let running = 0;
    let most = 0;
    let calls = 0;
    let release: () => void = () => undefined;
    const list = async () => {
      calls++;
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => (release = r));
      running--;
      return refs({});
    };
    start(ci, list);
    await until('the first call', () => calls === 1);
    for (let i = 0; i < 5; i++) {
      ci.clock.advance(5000);
      await Promise.resolve();
    }
    assert.equal(calls, 1, 'no call while one is running');
    release();
    await until('the next call', () => calls === 2 || (ci.clock.advance(250), false));
    release();
    assert.equal(most, 1);
  });

  it('shares what was built between webhooks and polling', async () => {
    const ci = new FakeCi();
    ci.jobMap.set('app', parseJobDefinition('app', { repo: REPO, branch: 'main', triggers: { poll: { intervalSeconds: 1, branch: true }, webhook: true } }));
    let remote = refs({ v1: A });
    let looks = 0;
    const list = async () => {
      looks++;
      return remote;
    };
    const runner = start(ci, list);
    await until('the first look', () => ci.states.has('app'));

    // A webhook builds v2 and the new head; polling then sees both and builds neither.
    remote = refs({ v1: A, v2: B }, B);
    const hook = (payload: unknown) => runner.webhook('app', { headers: { 'x-github-event': 'push' }, body: Buffer.from(JSON.stringify(payload)) });
    assert.equal((await hook({ ref: 'refs/tags/v2', after: B })).builds.length, 1);
    assert.equal((await hook({ ref: 'refs/heads/main', after: B })).builds.length, 1);
    assert.match((await hook({ ref: 'refs/heads/main', after: B })).message, /seen already/);
    assert.match((await hook({ ref: 'refs/heads/dev', after: C })).message, /push to dev ignored: job app builds main/);
    const polledBefore = ci.builds.length;
    const looksBefore = looks;
    ci.clock.advance(2000);
    await runner.settled();
    assert.ok(looks > looksBefore, 'a poll ran');
    assert.equal(ci.builds.length, polledBefore, 'polling builds nothing the webhooks built');

    // Polling builds v3 first; the webhook for it (a late delivery) builds nothing.
    remote = refs({ v1: A, v2: B, v3: C }, B);
    ci.clock.advance(2000);
    await until('v3 built by polling', () => ci.builds.some((b) => b.tag === 'v3'));
    assert.match((await hook({ ref: 'refs/tags/v3', after: C })).message, /seen already/);
    assert.deepEqual(
      ci.builds.map((b) => b.description),
      ['tag v2 (GitHub webhook)', 'commit bbbbbbb on main (GitHub webhook)', 'tag v3'],
    );
  });

  it('takes a new first look when polling is turned off and on again', async () => {
    const ci = new FakeCi();
    const withPoll = parseJobDefinition('app', { repo: REPO, triggers: { poll: { intervalSeconds: 1 } } });
    ci.jobMap.set('app', withPoll);
    let remote = refs({ v1: A });
    let looks = 0;
    const list = async () => {
      looks++;
      return remote;
    };
    const runner = start(ci, list);
    await until('the first look', () => ci.states.has('app'));
    const without = parseJobDefinition('app', { repo: REPO });
    ci.jobMap.set('app', without);
    runner.jobSaved(without, false);
    await until('the first look forgotten', () => (ci.states.get('app') as { tagsLooked: boolean }).tagsLooked === false);
    remote = refs({ v1: A, v2: B, v3: C });
    const again = parseJobDefinition('app', { repo: REPO, triggers: { poll: { intervalSeconds: 1 } } });
    ci.jobMap.set('app', again);
    runner.jobSaved(again, false);
    const seen = looks;
    await until('two more looks', () => looks >= seen + 2 || (ci.clock.advance(1000), false));
    assert.deepEqual(ci.builds, [], 'the tags pushed while polling was off are recorded, not built');
  });

  it('builds a cron minute once, also across a restart within it', async () => {
    const ci = new FakeCi();
    const to = (iso: string) => {
      ci.clock.advance(Date.parse(iso) - ci.clock.now());
    };
    ci.jobMap.set('app', parseJobDefinition('app', { repo: REPO, triggers: { cron: '* * * * *' } }));
    const list = async () => refs({});
    const first = start(ci, list);
    await until('the watch recorded', () => ci.states.has('app'));
    to('2024-05-01T00:00:59Z');
    await first.settled();
    assert.equal(ci.builds.length, 0, 'not the minute the job was created in');
    to('2024-05-01T00:01:05Z');
    await until('a cron build', () => ci.builds.length === 1);
    await first.stop();
    to('2024-05-01T00:01:40Z');
    const second = start(ci, list);
    ci.clock.advance(1000);
    await second.settled();
    assert.equal(ci.builds.length, 1, 'the same minute is not built again after a restart');
    to('2024-05-01T00:05:01Z');
    await until('the next cron build', () => ci.builds.length === 2);
    ci.clock.advance(30_000);
    await second.settled();
    assert.deepEqual(
      ci.builds.map((b) => `${b.event}: ${b.description}`),
      ['cron: cron * * * * * (2024-05-01 00:01 UTC)', 'cron: cron * * * * * (2024-05-01 00:05 UTC)'],
    );
  });
});
