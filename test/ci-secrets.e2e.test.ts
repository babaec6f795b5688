import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Sqlite from 'better-sqlite3';
import WebSocket from 'ws';
import { secretForms } from '../src/lib/secret-mask.ts';
import { takeExecutorToken } from '../src/server/ci-executor-main.ts';
import { up, type Up } from '../src/server/up.ts';
import { createTestRepo } from './support/git-repo.ts';
import { killProcessesUnder, processesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 12, section 4 (and the executor token of section 3), on `slipway up` over real
// processes: a job's secrets are write-only through every API that shows a job, encrypted in
// CI's database, masked in the build's log as stored and as followed (the value, its base64 and
// its URL-encoded forms, also written in two parts); the executor's token is on no command line,
// in no API answer, not in the steps' environment, and refused once its executor ended.

const SECRET = 'tok/3f9a 71c2+x?&';
const HOOK_SECRET = 'hook-s3cret-9f1e';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('CI secrets and executor tokens on `slipway up`', { timeout: 180_000 }, () => {
  let dir: string;
  let server: Up;
  let base: string;
  let repo: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-ci-secrets-'));
    const r = createTestRepo(join(dir, 'repo'));
    repo = r.path;
    r.commit({
      '.slipway.yml': [
        'steps:',
        '  - name: leak',
        '    commands:',
        // Time for the test to start following the log before anything is printed.
        '      - sleep 2',
        `      - 'echo "plain: $DEPLOY_TOKEN"'`,
        `      - 'echo -n "$DEPLOY_TOKEN" | base64'`,
        `      - 'echo "$DEPLOY_TOKEN" | base64'`,
        `      - 'node -e "console.log(encodeURIComponent(process.env.DEPLOY_TOKEN))"'`,
        // Half of it, a pause past the log's partial-line flush, then the rest.
        `      - 'printf "split: %s" "$(printf %s "$DEPLOY_TOKEN" | cut -c1-6)"; sleep 0.6; printf "%s\\n" "$(printf %s "$DEPLOY_TOKEN" | cut -c7-)"'`,
        `      - 'printf "sha: %s\\n" "$(printf %s "$DEPLOY_TOKEN" | sha256sum | cut -c1-64)"'`,
        `      - 'echo "executor token in the step: $(env | grep -c SLIPWAY_EXECUTOR_TOKEN)"'`,
        `      - 'echo "env: $STAGE"'`,
        '',
      ].join('\n'),
    });
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:4;mem:8192;disk:20000;ports:[34200-34299]', ciUser: 'root' });
    base = server.master.url;
  });

  after(async () => {
    await server?.close();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  const clearValues = [...secretForms(SECRET), HOOK_SECRET];
  const assertNoSecret = (what: string, text: string) => {
    for (const v of clearValues) assert.ok(!text.includes(v), `${JSON.stringify(v)} in ${what}:\n${text}`);
  };

  it('shows secrets as "***" in every answer that shows a job, and keeps them when a GET answer is PUT back', async () => {
    const put = await api('PUT', '/ci/v1/jobs/leaky', { repo, env: { STAGE: 'one' }, secrets: { DEPLOY_TOKEN: SECRET }, triggers: { webhook: { secret: HOOK_SECRET } } });
    assert.equal(put.status, 201, put.text);
    assertNoSecret('the PUT answer', put.text);
    assert.deepEqual(put.json()['secrets'], { DEPLOY_TOKEN: '***' });
    const list = await api('GET', '/ci/v1/jobs');
    const one = await api('GET', '/ci/v1/jobs/leaky');
    for (const [what, r] of [['GET /ci/v1/jobs', list], ['GET /ci/v1/jobs/leaky', one], ['Jenkins job api/json', await api('GET', '/jenkins/job/leaky/api/json')], ['Jenkins api/json', await api('GET', '/jenkins/api/json')], ['triggers', await api('GET', '/ci/v1/jobs/leaky/triggers')]] as const) {
      assert.equal(r.status, 200, `${what}: ${r.text}`);
      assertNoSecret(what, r.text);
    }
    const shown = one.json();
    assert.deepEqual(shown['secrets'], { DEPLOY_TOKEN: '***' });
    assert.deepEqual((shown['triggers'] as { webhook: unknown }).webhook, { secret: '***', tags: true, branch: true });

    // GET, edit, PUT: the secrets sent back as "***" keep their values.
    const edited = { ...shown, env: { STAGE: 'two' } };
    const again = await api('PUT', '/ci/v1/jobs/leaky', edited);
    assert.equal(again.status, 200, again.text);
    assert.equal(server.ci.framework.view.jobs.get('leaky')?.secrets['DEPLOY_TOKEN'], SECRET);
    assert.equal(server.ci.framework.view.jobs.get('leaky')?.triggers.webhook?.secret, HOOK_SECRET);
    // "***" for a secret the job does not have is refused, not stored as the value.
    const refused = await api('PUT', '/ci/v1/jobs/leaky', { ...edited, secrets: { DEPLOY_TOKEN: '***', OTHER: '***' } });
    assert.equal(refused.status, 422, refused.text);
    assert.match(refused.text, /secrets\.OTHER/);

    // The webhook still checks the real secret.
    const hook = (token: string) => fetch(`${base}/ci/v1/hooks/leaky`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Slipway-Token': token }, body: JSON.stringify({ ref: 'refs/heads/nope' }) });
    assert.equal((await hook('***')).status, 403);
    assert.notEqual((await hook(HOOK_SECRET)).status, 403);

    // At rest: sealed in CI's database.
    const db = new Sqlite(join(dir, 'data', 'ci', 'ci.db'), { readonly: true });
    try {
      const docs = (db.prepare('SELECT doc FROM jobs').all() as { doc: string }[]).map((r) => r.doc).join('\n');
      assertNoSecret('ci.db', docs);
      assert.match(docs, /"DEPLOY_TOKEN":\{"encrypted":"v1:/);
    } finally {
      db.close();
    }
  });

  it('masks the secret, its base64 and its URL-encoded forms in the log as stored and as followed, and keeps the executor token off command lines, answers and steps', async () => {
    const trig = await api('POST', '/ci/v1/jobs/leaky/builds');
    assert.equal(trig.status, 201, trig.text);
    const number = trig.json()['number'] as number;
    await waitUntil(async () => (await api('GET', `/ci/v1/jobs/leaky/builds/${number}`)).json()['status'] === 'running', 'the build to run', 60_000);

    // Follow the log live while the step sleeps, before it prints anything.
    const followed = fetch(`${base}/ci/v1/jobs/leaky/builds/${number}/log?follow=true`).then(async (r) => {
      const chunks: string[] = [];
      const decoder = new TextDecoder();
      for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) chunks.push(decoder.decode(c, { stream: true }));
      return chunks;
    });

    // The executor process, while it runs the build: its token is not on its command line.
    const executor = await waitUntil(
      () =>
        processesUnder(dir)
          .filter((p) => p.comm === 'node')
          .map((p) => ({ pid: p.pid, argv: readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0') }))
          .find((p) => p.argv.includes('ci-executor')),
      'the executor process',
    );
    const environ = readFileSync(`/proc/${executor.pid}/environ`, 'utf8').split('\0');
    const token = environ.find((v) => v.startsWith('SLIPWAY_EXECUTOR_TOKEN='))?.slice('SLIPWAY_EXECUTOR_TOKEN='.length);
    assert.ok(token !== undefined && token.length >= 32, 'the launch token came in the task\'s environment');
    assert.ok(!executor.argv.includes('--token') && !executor.argv.some((a) => a.includes(token)), `the command line: ${executor.argv.join(' ')}`);
    const executorId = executor.argv[executor.argv.indexOf('--id') + 1]!;
    // Nor in what the APIs answer about tasks and executors.
    for (const [what, text] of [
      ['GET /master/state', (await api('GET', '/master/state')).text],
      ['GET_TASKS', await (await fetch(`${base}/api/v1`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'GET_TASKS' }) })).text()],
      ['GET_STATE', await (await fetch(`${base}/api/v1`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'GET_STATE' }) })).text()],
      ['GET /ci/v1/executors', (await api('GET', '/ci/v1/executors')).text],
      ['GET /v2/tasks', (await api('GET', '/v2/tasks')).text],
    ] as const) {
      assert.ok(!text.includes(token), `the executor token in ${what}`);
    }

    const build = await waitUntil(
      async () => {
        const b = (await api('GET', `/ci/v1/jobs/leaky/builds/${number}`)).json() as { status: string };
        return b.status !== 'running' && b.status !== 'queued' ? b : undefined;
      },
      'the build to end',
      60_000,
    );
    assert.equal(build.status, 'success', JSON.stringify(build));

    const stored = (await api('GET', `/ci/v1/jobs/leaky/builds/${number}/log`)).text;
    const live = (await followed).join('');
    for (const [what, text] of [
      ['GET of the log', stored],
      ['the followed log', live],
      ['the step\'s log', (await api('GET', `/ci/v1/jobs/leaky/builds/${number}/log?step=leak`)).text],
      ['Jenkins consoleText', (await api('GET', `/jenkins/job/leaky/${number}/consoleText`)).text],
      ['Jenkins progressiveText', (await api('GET', `/jenkins/job/leaky/${number}/logText/progressiveText?start=0`)).text],
      ['the log file', readFileSync(join(dir, 'data', 'ci', 'logs', 'leaky', String(number), 'build.log'), 'utf8')],
    ] as const) {
      assertNoSecret(what, text);
      // Its halves were printed apart: neither shows either.
      assert.ok(!text.includes('tok/3f') && !text.includes('9a 71c2'), `a half of the secret in ${what}:\n${text}`);
    }
    for (const text of [stored, live]) {
      assert.match(text, /plain: \*\*\*\*\n/);
      assert.match(text, /split: \*\*\*\*\n/);
      assert.match(text, /env: two\n/, 'the edited env reached the step');
      assert.match(text, new RegExp(`sha: ${sha256(SECRET)}\\n`), 'the step got the secret itself');
      assert.match(text, /executor token in the step: 0\n/);
    }
    assert.equal(live, stored, 'the follower saw what is stored');

    // Once its executor has ended, its token proves nothing: no stream, no upload.
    assert.equal((await api('PUT', '/ci/v1/executors/default', { idleTerminationSeconds: 0 })).status, 200);
    await waitUntil(async () => ((await api('GET', '/ci/v1/executors')).json()['executors'] as unknown[]).length === 0, 'the executor to be stopped', 60_000);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ci/v1/executor-stream?executor=${executorId}&token=${token}`);
    const answer = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'HELLO', executorId, label: 'default', hostname: 'x' })));
      ws.on('message', (d) => resolve(String(d)));
      ws.on('error', reject);
    });
    ws.close();
    assert.match(answer, /"type":"ERROR".*its token is wrong or expired/);
    const upload = await fetch(`${base}/ci/v1/jobs/leaky/builds/${number}/artifacts/x.txt?executor=${executorId}&token=${token}`, { method: 'PUT', body: 'x' });
    assert.equal(upload.status, 403);
  });

  it('gives a build the secret-store secrets its job names in `credentials`, masked, and fails one whose secret is gone', async () => {
    const STORED = 'store-cr3d/9a+b';
    assert.equal((await api('PUT', '/auth/v1/secrets/ci/deploy-key', { value: STORED })).status, 201);
    const pipeline = ['steps:', '  - name: use', '    commands:', `      - 'echo "key: $DEPLOY_KEY"'`, `      - 'printf "sha: %s\\n" "$(printf %s "$DEPLOY_KEY" | sha256sum | cut -c1-64)"'`, ''].join('\n');
    const put = await api('PUT', '/ci/v1/jobs/creds', { repo, pipeline, credentials: { DEPLOY_KEY: '/ci/deploy-key' } });
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.json()['credentials'], { DEPLOY_KEY: 'ci/deploy-key' }, 'shown as the name of the secret');
    assert.ok(!put.text.includes(STORED));
    const bad = await api('PUT', '/ci/v1/jobs/creds-bad', { repo, pipeline, credentials: { DEPLOY_KEY: 'a b' }, env: { X: '1' } });
    assert.equal(bad.status, 422, bad.text);
    assert.match(bad.text, /credentials\.DEPLOY_KEY/);

    const ended = async (job: string) => {
      const trig = await api('POST', `/ci/v1/jobs/${job}/builds`);
      assert.equal(trig.status, 201, trig.text);
      const number = trig.json()['number'] as number;
      const b = await waitUntil(
        async () => {
          const x = (await api('GET', `/ci/v1/jobs/${job}/builds/${number}`)).json() as { status: string; error?: string };
          return x.status !== 'running' && x.status !== 'queued' ? x : undefined;
        },
        `build ${number} of ${job} to end`,
        90_000,
      );
      return { build: b, log: (await api('GET', `/ci/v1/jobs/${job}/builds/${number}/log`)).text };
    };
    const ok = await ended('creds');
    assert.equal(ok.build.status, 'success', JSON.stringify(ok.build));
    assert.ok(!ok.log.includes(STORED), ok.log);
    assert.match(ok.log, /key: \*\*\*\*\n/);
    assert.match(ok.log, new RegExp(`sha: ${sha256(STORED)}\\n`), 'the step got the stored secret');

    assert.equal((await api('DELETE', '/auth/v1/secrets/ci/deploy-key')).status, 204);
    const gone = await ended('creds');
    assert.equal(gone.build.status, 'error');
    assert.match(gone.build.error ?? '', /credentials not in the secret store: DEPLOY_KEY \(secret 'ci\/deploy-key'\)/);
  });

  it('takes the executor token out of the environment it read it from', () => {
    const env: NodeJS.ProcessEnv = { SLIPWAY_EXECUTOR_TOKEN: 'abc', PATH: '/bin' };
    assert.equal(takeExecutorToken(env), 'abc');
    assert.deepEqual(env, { PATH: '/bin' });
    assert.throws(() => takeExecutorToken({}), /SLIPWAY_EXECUTOR_TOKEN is not set/);
  });
});
