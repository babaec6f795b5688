import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ShiftedClock } from '../src/core/clock.ts';
import { up, type Up } from '../src/server/up.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Build triggers as CI users meet them, on `slipway up` with real git repositories: a working
// repository that pushes to a bare "remote", the job's repo. Git polling (each new tag built once,
// nothing at the first look, nothing again after a restart, a tag pushed while CI was down built
// at the first poll after it), webhooks in GitHub's, Gitea's, GitLab's and the generic format
// (with their secrets), and cron on a clock run ahead so that minutes pass in seconds.

const RESOURCES = 'cpus:4;mem:8192;disk:20000;ports:[34400-34499]';
const PIPELINE = ['steps:', '  - name: show', '    commands:', `      - 'echo "at $(git rev-parse HEAD) tag=$CI_COMMIT_TAG event=$CI_BUILD_EVENT branch=$CI_COMMIT_BRANCH"'`, ''].join('\n');

interface BuildJson {
  number: number;
  status: string;
  event: string;
  cause: { kind: string; description: string };
  commit?: string;
  tag?: string;
  branch?: string;
  error?: string;
}

/** A working repository with a bare remote (`origin`, the job's repo). */
function gitRepos(dir: string) {
  const origin = join(dir, 'origin.git');
  const work = join(dir, 'work');
  const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' };
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env }).toString().trim();
  execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', origin]);
  mkdirSync(work);
  git('init', '--quiet', '--initial-branch=main');
  git('remote', 'add', 'origin', origin);
  writeFileSync(join(work, '.slipway.yml'), PIPELINE);
  let n = 0;
  const commit = () => {
    writeFileSync(join(work, 'file.txt'), `change ${++n}\n`);
    git('add', '.');
    git('commit', '--quiet', '-m', `change ${n}`);
    return git('rev-parse', 'HEAD');
  };
  const push = (...refs: string[]) => git('push', '--quiet', '--force', 'origin', ...refs);
  return { origin, work, git, commit, push };
}

function api(base: () => string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const raw = typeof body === 'string' || body === undefined ? body : JSON.stringify(body);
    const r = await fetch(`${base()}${path}`, { method, headers: { ...(raw !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers }, ...(raw !== undefined ? { body: raw } : {}) });
    const text = await r.text();
    return { status: r.status, body: (text !== '' && (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text) as Record<string, unknown> };
  };
}

describe('git polling and webhooks on `slipway up`', { timeout: 180_000 }, () => {
  let server: Up | undefined;
  let dir: string;
  let repos: ReturnType<typeof gitRepos>;
  const call = api(() => server!.master.url);
  const start = async () => {
    // CI executors as root, explicitly: they clone the test's repositories, which are root's (git
    // refuses another user's repository: "dubious ownership"); other tasks run as nobody.
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: RESOURCES, ciUser: 'root' });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-triggers-'));
    repos = gitRepos(dir);
    await start();
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const builds = async (job: string) => ((await call('GET', `/ci/v1/jobs/${job}/builds?limit=1000`)).body['builds'] as BuildJson[]).slice().reverse();
  const polls = async (job: string) => ((await call('GET', `/ci/v1/jobs/${job}/triggers`)).body['poll'] as { polls: number } | undefined)?.polls ?? 0;
  /** Waits until the job was polled `n` more times than now (each poll begun after this call saw the remote as it is now). */
  const pollsMore = async (job: string, n: number) => {
    const from = await polls(job);
    await waitUntil(async () => (await polls(job)) >= from + n + 1 || undefined, `${n} more polls of ${job}`, 20_000);
  };
  const buildCount = async (job: string, n: number) => waitUntil(async () => ((await builds(job)).length >= n ? builds(job) : undefined), `${n} builds of ${job}`, 30_000);
  const summary = (b: BuildJson) => `${b.event} ${b.tag ?? b.branch ?? ''}@${b.commit?.slice(0, 7)}: ${b.cause.description}`;
  const allFinish = async (job: string) =>
    waitUntil(
      async () => {
        const bs = await builds(job);
        return bs.every((b) => b.status !== 'queued' && b.status !== 'running') ? bs : undefined;
      },
      `every build of ${job} to end`,
      90_000,
    );
  const log = async (job: string, n: number) => (await call('GET', `/ci/v1/jobs/${job}/builds/${n}/log`)).body as unknown as string;

  it('builds nothing at the first poll, then each new tag and each new head of the branch exactly once, at its commit', async () => {
    const c1 = repos.commit();
    repos.git('tag', 'v0.1');
    repos.push('main', '--tags');

    const put = await call('PUT', '/ci/v1/jobs/poller', { repo: repos.origin, branch: 'main', triggers: { poll: { intervalSeconds: 1, branch: true } } });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    await pollsMore('poller', 1);
    const status = (await call('GET', '/ci/v1/jobs/poller/triggers')).body as { seen: { tags: Record<string, string>; heads: Record<string, string> } };
    assert.deepEqual(status.seen.tags, { 'v0.1': c1 });
    assert.deepEqual(status.seen.heads, { main: c1 });
    assert.equal((await builds('poller')).length, 0, 'the first poll records what is there and builds nothing');

    // An annotated tag on the old commit; a new commit with a tag on it.
    repos.git('tag', '-a', '-m', 'release 0.2', 'v0.2', c1);
    const c2 = repos.commit();
    repos.git('tag', 'v0.3');
    repos.push('main', '--tags');
    await buildCount('poller', 3);
    await pollsMore('poller', 2);
    assert.deepEqual((await builds('poller')).map(summary).sort(), [`push main@${c2.slice(0, 7)}: commit ${c2.slice(0, 7)} on main`, `tag v0.2@${c1.slice(0, 7)}: tag v0.2`, `tag v0.3@${c2.slice(0, 7)}: tag v0.3`].sort());

    // A tag moved to another commit is built again; a deleted one is forgotten, and built again when it comes back.
    repos.git('tag', '-f', 'v0.3', c1);
    repos.push('refs/tags/v0.3');
    repos.git('push', '--quiet', 'origin', ':refs/tags/v0.2');
    await buildCount('poller', 4);
    await pollsMore('poller', 2);
    repos.push('refs/tags/v0.2');
    await buildCount('poller', 5);
    await pollsMore('poller', 2);
    const all = await builds('poller');
    assert.deepEqual(all.slice(3).map(summary), [`tag v0.3@${c1.slice(0, 7)}: tag v0.3 (moved from ${c2.slice(0, 7)} to ${c1.slice(0, 7)})`, `tag v0.2@${c1.slice(0, 7)}: tag v0.2`]);

    // The builds run, each checked out at its commit.
    const done = await allFinish('poller');
    for (const b of done) {
      assert.equal(b.status, 'success', JSON.stringify(b));
      assert.match(await log('poller', b.number), new RegExp(`at ${b.commit} tag=${b.tag ?? ''} event=${b.event}`));
    }
  });

  it('after a restart, builds neither old tags again nor misses the one pushed while CI was down', async () => {
    const before = (await builds('poller')).length;
    await server!.close();
    server = undefined;
    const c3 = repos.commit();
    repos.git('tag', 'v0.4');
    repos.push('main', '--tags');
    await start();
    await buildCount('poller', before + 2);
    await pollsMore('poller', 3);
    const all = await builds('poller');
    assert.deepEqual(all.slice(before).map(summary).sort(), [`push main@${c3.slice(0, 7)}: commit ${c3.slice(0, 7)} on main`, `tag v0.4@${c3.slice(0, 7)}: tag v0.4`].sort());
  });

  it('builds a push from each of GitHub, Gitea, GitLab and the generic payload at the commit it names, once', async () => {
    const secret = 'a long random string';
    const put = await call('PUT', '/ci/v1/jobs/hooked', { repo: repos.origin, branch: 'main', triggers: { webhook: { secret } } });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const hook = (headers: Record<string, string>, payload: unknown) => call('POST', '/ci/v1/hooks/hooked', JSON.stringify(payload), headers);
    const hmac = (payload: unknown) => createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex');

    // GitHub: an annotated tag; `after` is the tag object, head_commit the commit.
    const c4 = repos.commit();
    repos.git('tag', '-a', '-m', 'release 1.0', 'v1.0');
    repos.push('main', '--tags');
    const github = { ref: 'refs/tags/v1.0', before: '0'.repeat(40), after: repos.git('rev-parse', 'v1.0'), created: true, deleted: false, head_commit: { id: c4 } };
    const gh = await hook({ 'X-GitHub-Event': 'push', 'X-Hub-Signature-256': `sha256=${hmac(github)}` }, github);
    assert.equal(gh.status, 201, JSON.stringify(gh.body));
    assert.match(String(gh.body['message']), /tag v1\.0/);
    const redelivered = await hook({ 'X-GitHub-Event': 'push', 'X-Hub-Signature-256': `sha256=${hmac(github)}` }, github);
    assert.equal(redelivered.status, 202, JSON.stringify(redelivered.body));
    assert.match(String(redelivered.body['message']), /seen already/);

    // Gitea: a push to the branch.
    const c5 = repos.commit();
    repos.push('main');
    const gitea = { ref: 'refs/heads/main', before: c4, after: c5, head_commit: { id: c5 }, commits: [{ id: c5 }] };
    const gt = await hook({ 'X-Gitea-Event': 'push', 'X-GitHub-Event': 'push', 'X-Gitea-Signature': hmac(gitea) }, gitea);
    assert.equal(gt.status, 201, JSON.stringify(gt.body));

    // GitLab: a tag push, the commit in checkout_sha.
    const c6 = repos.commit();
    repos.git('tag', '-a', '-m', 'release 2.0', 'v2.0');
    repos.push('main', '--tags');
    const gitlab = { object_kind: 'tag_push', ref: 'refs/tags/v2.0', before: '0'.repeat(40), after: repos.git('rev-parse', 'v2.0'), checkout_sha: c6 };
    const gl = await hook({ 'X-Gitlab-Event': 'Tag Push Hook', 'X-Gitlab-Token': secret }, gitlab);
    assert.equal(gl.status, 201, JSON.stringify(gl.body));

    // Generic: a tag by name; CI looks its commit up.
    repos.git('tag', 'v3.0', c5);
    repos.push('--tags');
    const gn = await hook({ 'X-Slipway-Token': secret }, { tag: 'v3.0' });
    assert.equal(gn.status, 201, JSON.stringify(gn.body));

    const all = await builds('hooked');
    assert.deepEqual(all.map(summary), [
      `tag v1.0@${c4.slice(0, 7)}: tag v1.0 (GitHub webhook)`,
      `push main@${c5.slice(0, 7)}: commit ${c5.slice(0, 7)} on main (Gitea webhook)`,
      `tag v2.0@${c6.slice(0, 7)}: tag v2.0 (GitLab webhook)`,
      `tag v3.0@${c5.slice(0, 7)}: tag v3.0 (generic webhook)`,
    ]);
    assert.deepEqual(((gh.body['builds'] as BuildJson[])[0] as BuildJson).number, all[0]?.number);
    const done = await allFinish('hooked');
    for (const b of done) {
      assert.equal(b.status, 'success', JSON.stringify(b));
      assert.match(await log('hooked', b.number), new RegExp(`at ${b.commit} tag=${b.tag ?? ''} event=${b.event}`));
    }
  });

  it('refuses calls without the secret, to jobs without webhooks and with bad payloads, and ignores other branches', async () => {
    const good = { ref: 'refs/heads/main', after: 'f'.repeat(40) };
    const cases: [string, number, RegExp, Record<string, string>, unknown][] = [
      ['a wrong GitHub signature', 403, /X-Hub-Signature-256 does not match/, { 'X-GitHub-Event': 'push', 'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}` }, good],
      ['no GitHub signature', 403, /must be signed/, { 'X-GitHub-Event': 'push' }, good],
      ['a wrong Gitea signature', 403, /X-Gitea-Signature/, { 'X-Gitea-Event': 'push', 'X-Gitea-Signature': 'abc' }, good],
      ['a wrong GitLab token', 403, /X-Gitlab-Token/, { 'X-Gitlab-Event': 'Push Hook', 'X-Gitlab-Token': 'nope' }, good],
      ['a generic call without its token', 403, /X-Slipway-Token/, {}, { tag: 'v1.0' }],
      ['a generic call with an unknown field', 400, /unknown field "tg"/, { 'X-Slipway-Token': 'a long random string' }, { tg: 'v9' }],
      ['a tag that does not exist', 400, /tag v9 is not in/, { 'X-Slipway-Token': 'a long random string' }, { tag: 'v9' }],
    ];
    for (const [what, status, why, headers, payload] of cases) {
      const r = await call('POST', '/ci/v1/hooks/hooked', JSON.stringify(payload), headers);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body['message']), why, what);
    }
    const other = await call('POST', '/ci/v1/hooks/hooked', { branch: 'feature/x', commit: 'e'.repeat(40) }, { 'X-Slipway-Token': 'a long random string' });
    assert.equal(other.status, 202, JSON.stringify(other.body));
    assert.match(String(other.body['message']), /push to feature\/x ignored: job hooked builds main/);
    const off = await call('POST', '/ci/v1/hooks/poller', {});
    assert.equal(off.status, 403, JSON.stringify(off.body));
    assert.equal(off.body['code'], 'WEBHOOK_DISABLED');
    assert.equal((await call('POST', '/ci/v1/hooks/nope', {})).status, 404);
    assert.equal((await builds('hooked')).length, 4, 'nothing refused or ignored was built');
  });

  it('builds a tag once when both polling and a webhook see it', async () => {
    const put = await call('PUT', '/ci/v1/jobs/both', { repo: repos.origin, branch: 'main', triggers: { poll: { intervalSeconds: 1 }, webhook: true } });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    await pollsMore('both', 1);
    for (const tag of ['v5.0', 'v5.1', 'v5.2']) {
      const c = repos.commit();
      repos.git('tag', tag);
      repos.push('main', '--tags');
      const r = await call('POST', '/ci/v1/hooks/both', { ref: `refs/tags/${tag}`, after: c }, { 'X-GitHub-Event': 'push' });
      assert.ok(r.status === 201 || r.status === 202, JSON.stringify(r.body));
    }
    await buildCount('both', 3);
    await pollsMore('both', 2);
    assert.deepEqual((await builds('both')).map((b) => b.tag), ['v5.0', 'v5.1', 'v5.2']);
  });
});

describe('cron on `slipway up`, on a clock run ahead', { timeout: 120_000 }, () => {
  let server: Up | undefined;
  let dir: string;
  let offset = 0;
  /** A minute of the fake clock, ten minutes ahead of the real one. */
  const m = Math.floor(Date.now() / 60_000) * 60_000 + 10 * 60_000;
  const call = api(() => server!.master.url);
  /** CI's clock: the real one, moved by `offset`, so that the test sets where in a minute CI is. */
  const at = (fake: number) => {
    offset = fake - Date.now();
  };
  const start = async () => {
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: RESOURCES, ciClock: new ShiftedClock(() => offset), ciUser: 'root' });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-cron-'));
    const repos = gitRepos(dir);
    repos.commit();
    repos.push('main');
    await start();
    // The job is created 2 s before minute m (its first minute is m: a minute begun before is not built).
    at(m - 2000);
    const put = await call('PUT', '/ci/v1/jobs/nightly', { repo: repos.origin, branch: 'main', triggers: { cron: '* * * * *' } });
    assert.equal(put.status, 201, JSON.stringify(put.body));
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const causes = async () => (((await call('GET', '/ci/v1/jobs/nightly/builds?limit=100')).body['builds'] as BuildJson[]) ?? []).map((b) => `${b.event}: ${b.cause.description}`).reverse();
  const cronStatus = async () => (await call('GET', '/ci/v1/jobs/nightly/triggers')).body['cron'] as { lastRun?: string; next?: string };
  const minute = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  const restart = async () => {
    await server!.close();
    server = undefined;
    await start();
  };

  it('builds each minute once, not again after a restart within it, and does not catch up minutes CI was down for', async () => {
    await waitUntil(async () => ((await cronStatus()).lastRun !== undefined ? true : undefined), 'the first cron build', 20_000);
    assert.deepEqual(await causes(), [`cron: cron * * * * * (${minute(m)} UTC)`]);

    // A restart within minute m does not build it again; minute m + 1 is built once.
    await restart();
    at(m + 58_000);
    await waitUntil(async () => ((await cronStatus()).lastRun === new Date(m + 60_000).toISOString() ? true : undefined), 'the cron build of m + 1', 20_000);
    // CI is down from m + 1 to m + 5 min 30 s: minutes m + 2 to m + 4 are not caught up; m + 5 is built.
    await restart();
    at(m + 5 * 60_000 + 30_000);
    await waitUntil(async () => ((await cronStatus()).lastRun === new Date(m + 5 * 60_000).toISOString() ? true : undefined), 'the cron build of m + 5', 20_000);
    const status = await cronStatus();
    assert.equal(status.next, new Date(m + 6 * 60_000).toISOString());
    assert.deepEqual(await causes(), [m, m + 60_000, m + 5 * 60_000].map((t) => `cron: cron * * * * * (${minute(t)} UTC)`));
  });
});
