import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { unauthenticatedFetch } from './support/auth-preload.ts';
import { freePort, SlipwayProcess, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 12 over real processes: `slipway up` on a new data dir, as a new user starts it (no token
// of the test run in its environment), attacked as the issue's report did.

const dir = tempDir('security');
const dataDir = join(dir, 'data');
let url = '';
let up: SlipwayProcess;
let admin = '';

/** The environment of a new user: none of the test run's tokens. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['SLIPWAY_TOKEN'];
  delete env['SLIPWAY_BOOTSTRAP_TOKEN'];
  delete env['SLIPWAY_RUN_TOKEN'];
  return env;
}

async function call(method: string, path: string, o: { token?: string; body?: unknown; headers?: Record<string, string>; basic?: boolean } = {}) {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token !== undefined) headers['authorization'] = o.basic === true ? `Basic ${Buffer.from(`user:${o.token}`).toString('base64')}` : `Bearer ${o.token}`;
  if (o.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  const r = await unauthenticatedFetch(`${url}${path}`, { method, headers, ...(o.body !== undefined ? { body: typeof o.body === 'string' ? o.body : JSON.stringify(o.body) } : {}) });
  const text = await r.text();
  return { status: r.status, text, headers: r.headers };
}

async function token(name: string, policies: string[]): Promise<{ id: string; token: string }> {
  const r = await call('POST', '/auth/v1/tokens', { token: admin, body: { name, policies } });
  assert.equal(r.status, 201, r.text);
  return JSON.parse(r.text) as { id: string; token: string };
}

/** Opens the agents' stream with `auth` and sends `first`; resolves with what the master answered, or the refusal of the upgrade. */
function agentStream(auth: string | undefined, first?: unknown): Promise<{ refusedWith?: number; messages: unknown[] }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/agent`, auth !== undefined ? { headers: { Authorization: `Bearer ${auth}` } } : {});
    const messages: unknown[] = [];
    ws.on('unexpected-response', (_req, res) => {
      resolve({ refusedWith: res.statusCode ?? 0, messages });
      ws.terminate();
    });
    ws.on('open', () => ws.send(JSON.stringify(first)));
    ws.on('message', (d) => messages.push(JSON.parse(String(d))));
    ws.on('close', () => resolve({ messages }));
    ws.on('error', () => resolve({ messages }));
  });
}

const subscribe = (name: string, id?: string) => ({
  type: 'SUBSCRIBE',
  ...(id !== undefined ? { framework_id: { value: id } } : {}),
  subscribe: { framework_info: { user: 'nobody', name, roles: ['*'], failover_timeout: 60, ...(id !== undefined ? { id: { value: id } } : {}) } },
});

describe('security (issue 12): a new `slipway up`, attacked', { timeout: 120_000 }, () => {
  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    up = new SlipwayProcess('up', ['up', '--port', String(port), '--data-dir', dataDir, '--containerizers', 'process', '--resources', 'cpus:2;mem:1024;ports:[36100-36199]'], join(dir, 'up.log'), cleanEnv());
    up.start();
    await waitForHttp(`${url}/health`);
    admin = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    await waitUntil(async () => {
      const r = await call('POST', '/api/v1', { token: admin, body: { type: 'GET_AGENTS' } });
      return (JSON.parse(r.text) as { get_agents: { agents: unknown[] } }).get_agents.agents.length === 1;
    }, 'the agent of up to register with its join token');
  });

  after(async () => {
    await up?.interrupt();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('creates the admin token on the first start, 0600, and says where it is', async () => {
    assert.match(admin, /^slw_[0-9a-f]{12}_/);
    assert.equal(statSync(join(dataDir, 'admin.token')).mode & 0o777, 0o600);
    // The banner comes once `up` has started everything, which may be after its agent registered.
    const banner = new RegExp(`admin token +${join(dataDir, 'admin.token').replace(/[.]/g, '\\.')}`);
    await waitUntil(() => banner.test(readFileSync(join(dir, 'up.log'), 'utf8')), 'the banner naming the admin token file');
  });

  it('refuses unauthenticated requests on every API with 401 and WWW-Authenticate; /health and /ping stay open', async () => {
    const routes: [string, string, unknown?][] = [
      ['POST', '/v2/apps', { id: '/pwn', cmd: 'id > /tmp/pwned; cat /etc/shadow' }],
      ['GET', '/v2/apps'],
      ['GET', '/v2/info'],
      ['POST', '/api/v1', { type: 'GET_STATE' }],
      ['POST', '/api/v1/scheduler', subscribe('rogue')],
      ['GET', '/master/state'],
      ['GET', '/metrics'],
      ['GET', '/files/browse?framework_id=x&task_id=y&path=/'],
      ['PUT', '/ci/v1/jobs/x', { repo: '/tmp' }],
      ['GET', '/ci/v1/jobs'],
      ['POST', '/jenkins/job/x/build'],
      ['GET', '/jenkins/api/json'],
      ['GET', '/auth/v1/whoami'],
      ['GET', '/auth/v1/tokens'],
    ];
    for (const [method, path, body] of routes) {
      const r = await call(method, path, body !== undefined ? { body } : {});
      assert.equal(r.status, 401, `${method} ${path}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('www-authenticate') ?? '', /Bearer realm="slipway"/, `${method} ${path}`);
      assert.match(r.text, /authentication required/);
    }
    const bad = await call('GET', '/v2/apps', { token: 'slw_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(bad.status, 401);
    assert.match(bad.text, /not valid/);
    assert.equal((await call('GET', '/health')).status, 200);
    assert.equal((await call('GET', '/ping')).text, 'pong');
    // Nothing of the attempts was created.
    assert.deepEqual(JSON.parse((await call('GET', '/v2/apps', { token: admin })).text), { apps: [] });
  });

  it('takes the token as Bearer, and as the password of Basic (Marathon and Jenkins clients)', async () => {
    assert.equal((await call('GET', '/v2/apps', { token: admin })).status, 200);
    assert.equal((await call('GET', '/jenkins/api/json', { token: admin, basic: true })).status, 200);
    const me = JSON.parse((await call('GET', '/auth/v1/whoami', { token: admin, basic: true })).text) as { name: string; policies: string[] };
    assert.deepEqual([me.name, me.policies], ['admin', ['admin']]);
  });

  it('gives a token only what its policies grant (default deny), and forgets a revoked one', async () => {
    const viewer = await token('vera', ['viewer']);
    assert.equal((await call('GET', '/v2/apps', { token: viewer.token })).status, 200);
    const deploy = await call('POST', '/v2/apps', { token: viewer.token, body: { id: '/nope', cmd: 'sleep 1', instances: 0 } });
    assert.equal(deploy.status, 403);
    assert.match(deploy.text, /vera: no policy grants deploy on apps '\/nope'/);
    assert.equal((await call('PUT', '/ci/v1/jobs/x', { token: viewer.token, body: { repo: '/tmp' } })).status, 403);
    assert.equal((await call('POST', '/api/v1', { token: viewer.token, body: { type: 'DRAIN_AGENT', drain_agent: { agent_id: { value: 'x' } } } })).status, 403);
    assert.equal((await call('GET', '/auth/v1/tokens', { token: viewer.token })).status, 403, 'a viewer does not list tokens');
    assert.equal((await call('DELETE', `/auth/v1/tokens/${viewer.id}`, { token: admin })).status, 200);
    assert.equal((await call('GET', '/v2/apps', { token: viewer.token })).status, 401, 'revoked');
    // A token's list shows no secret.
    const list = (await call('GET', '/auth/v1/tokens', { token: admin })).text;
    assert.ok(!list.includes(viewer.token.split('_')[2]!));
  });

  it('confines a team to its apps and its task user with a written policy (least privilege, the whole object checked)', async () => {
    const put = await call('PUT', '/auth/v1/policies/team-a', {
      token: admin,
      body: {
        description: 'team a deploys its own apps, as nobody, within limits, and reads its CI jobs',
        rules: [
          { kind: 'apps', match: '/team-a/*', capabilities: ['read', 'deploy', 'delete'], taskUsers: ['nobody'], maxInstances: 2 },
          { kind: 'ci', match: 'team-a-*', capabilities: ['read'] },
        ],
      },
    });
    assert.equal(put.status, 201, put.text);
    const team = await token('team-a-ci', ['team-a']);
    const app = (id: string, extra: Record<string, unknown> = {}) => ({ id, cmd: 'sleep 100', cpus: 0.1, mem: 16, instances: 0, user: 'nobody', ...extra });
    const ok = await call('POST', '/v2/apps', { token: team.token, body: app('/team-a/web') });
    assert.equal(ok.status, 201, ok.text);
    // Another team's app that cannot be placed (more cpus than the agent has): it stays queued,
    // its deployment in progress.
    assert.equal((await call('POST', '/v2/apps', { token: admin, body: app('/other-team/x', { instances: 1, cpus: 50 }) })).status, 201);
    const listed = JSON.parse((await call('GET', '/v2/apps', { token: team.token })).text) as { apps: { id: string }[] };
    assert.deepEqual(listed.apps.map((a) => a.id), ['/team-a/web'], 'the list holds only the apps the team may read');
    assert.equal((await call('GET', '/v2/apps/other-team/x', { token: team.token })).status, 403);
    // The other lists too: groups, deployments, tasks, queue hold only what the team may read.
    const groups = JSON.parse((await call('GET', '/v2/groups', { token: team.token })).text) as { groups: { id: string }[] };
    assert.deepEqual(groups.groups.map((g) => g.id), ['/team-a'], 'the group tree holds only the team\'s part');
    assert.equal((await call('GET', '/v2/groups/other-team', { token: team.token })).status, 404, 'a group of another team is not found');
    const adminGroups = JSON.parse((await call('GET', '/v2/groups', { token: admin })).text) as { groups: { id: string }[] };
    assert.deepEqual(adminGroups.groups.map((g) => g.id).sort(), ['/other-team', '/team-a']);
    await waitUntil(async () => (await call('GET', '/v2/queue', { token: admin })).text.includes('/other-team/x'), 'the other team\'s app in the queue');
    for (const path of ['/v2/deployments', '/v2/queue']) assert.ok((await call('GET', path, { token: admin })).text.includes('/other-team/x'), `${path} of the admin shows it`);
    for (const path of ['/v2/deployments', '/v2/tasks', '/v2/queue']) {
      const r = await call('GET', path, { token: team.token });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.ok(!r.text.includes('/other-team'), `${path} shows another team's app: ${r.text}`);
    }
    assert.equal((await call('DELETE', '/v2/apps/other-team/x?force=true', { token: admin })).status, 200);
    for (const job of ['team-a-build', 'other-build']) assert.equal((await call('PUT', `/ci/v1/jobs/${job}`, { token: admin, body: { repo: dir } })).status, 201);
    const jobs = JSON.parse((await call('GET', '/ci/v1/jobs', { token: team.token })).text) as { jobs: { name: string }[] };
    assert.deepEqual(jobs.jobs.map((j) => j.name), ['team-a-build'], 'the CI job list holds only the team\'s jobs');
    const jenkins = JSON.parse((await call('GET', '/jenkins/api/json', { token: team.token })).text) as { jobs: { name: string }[] };
    assert.deepEqual(jenkins.jobs.map((j) => j.name), ['team-a-build'], 'Jenkins\'s job list too');
    assert.equal((await call('GET', '/ci/v1/queue', { token: team.token })).status, 200);
    assert.equal((await call('GET', '/ci/v1/jobs/other-build', { token: team.token })).status, 403);
    for (const job of ['team-a-build', 'other-build']) assert.equal((await call('DELETE', `/ci/v1/jobs/${job}`, { token: admin })).status, 204);
    const other = await call('POST', '/v2/apps', { token: team.token, body: app('/team-b/web') });
    assert.equal(other.status, 403);
    assert.match(other.text, /no policy grants deploy on apps '\/team-b\/web'/);
    const dotdot = await call('POST', '/v2/apps', { token: team.token, body: app('/team-a/../team-b/web') });
    assert.equal(dotdot.status, 403, 'the canonical id is checked: /team-b/web');
    const root = await call('PUT', '/v2/apps/team-a/web', { token: team.token, body: { user: 'root' } });
    assert.equal(root.status, 403);
    assert.match(root.text, /may not run tasks as user 'root' \(allowed: nobody\)/);
    const many = await call('PUT', '/v2/apps/team-a/web', { token: team.token, body: { instances: 3 } });
    assert.equal(many.status, 403);
    assert.match(many.text, /more than 2 instances/);
    const inGroup = await call('POST', '/v2/groups', { token: team.token, body: { id: '/team-a/g', apps: [app('ok'), app('/team-b/sneaky')] } });
    assert.equal(inGroup.status, 403, 'every app of a group is checked');
    assert.equal((await call('DELETE', '/v2/apps/team-a/web', { token: team.token })).status, 200);
    const whoami = JSON.parse((await call('GET', '/auth/v1/whoami', { token: team.token })).text) as { policies: string[] };
    assert.deepEqual(whoami.policies, ['team-a']);
    // A policy changed applies at once; a deleted one grants nothing.
    assert.equal((await call('DELETE', '/auth/v1/policies/team-a', { token: admin })).status, 204);
    assert.equal((await call('GET', '/v2/apps/team-a/web', { token: team.token })).status, 403);
    assert.equal((await call('PUT', '/auth/v1/policies/admin', { token: admin, body: { rules: [{ kind: '*', capabilities: ['read'] }] } })).status, 400, 'built-in policies cannot be replaced');
  });

  it('refuses a rogue agent: no token, or a token that may not register agents', async () => {
    const register = { type: 'REGISTER', hostname: 'rogue', resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 64 } }], attributes: [], tasks: [], frameworks: [] };
    assert.equal((await agentStream(undefined, register)).refusedWith, 401);
    const viewer = await token('viewer-2', ['viewer']);
    assert.equal((await agentStream(viewer.token, register)).refusedWith, 403);
    const agents = JSON.parse((await call('POST', '/api/v1', { token: admin, body: { type: 'GET_AGENTS' } })).text) as { get_agents: { agents: { agent_info: { hostname: string } }[] } };
    assert.deepEqual(agents.get_agents.agents.map((a) => a.agent_info.hostname).filter((h) => h === 'rogue'), []);
  });

  it('refuses a REGISTER that names a real agent with another credential (no takeover of its tasks)', async () => {
    const agents = JSON.parse((await call('POST', '/api/v1', { token: admin, body: { type: 'GET_AGENTS' } })).text) as { get_agents: { agents: { agent_info: { id: { value: string }; hostname: string } }[] } };
    const real = agents.get_agents.agents[0]!.agent_info;
    const other = await token('other-agent', ['agent']);
    const answer = await agentStream(other.token, { type: 'REGISTER', agent_id: real.id, hostname: real.hostname, resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 } }], attributes: [], tasks: [], frameworks: [] });
    assert.equal(answer.refusedWith, undefined, 'a join token opens the stream');
    assert.deepEqual(answer.messages, [{ type: 'ERROR', message: `agent ${real.id.value} (${real.hostname}) registered with another credential: refused` }]);
    assert.match(readFileSync(join(dir, 'up.log'), 'utf8'), /refused an agent stream from .* \(token [0-9a-f]{12} 'other-agent'\)/, 'and logged');
    const after = JSON.parse((await call('POST', '/api/v1', { token: admin, body: { type: 'GET_AGENTS' } })).text) as { get_agents: { agents: { active: boolean; agent_info: { id: { value: string } } }[] } };
    assert.equal(after.get_agents.agents.find((a) => a.agent_info.id.value === real.id.value)?.active, true, 'the real agent is still the one connected');
  });

  it("refuses a framework that subscribes with another principal's framework id, and its calls on that framework", async () => {
    const a = await token('team-a-scheduler', ['framework']);
    const b = await token('team-b-scheduler', ['framework']);
    const abort = new AbortController();
    const r = await unauthenticatedFetch(`${url}/api/v1/scheduler`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${a.token}` }, body: JSON.stringify(subscribe('team-a')), signal: abort.signal });
    assert.equal(r.status, 200);
    const streamId = r.headers.get('mesos-stream-id')!;
    const reader = r.body!.getReader();
    let text = '';
    while (!text.includes('SUBSCRIBED')) text += new TextDecoder().decode((await reader.read()).value);
    const frameworkId = /"framework_id":\{"value":"([^"]+)"/.exec(text)![1]!;
    try {
      const takeover = await call('POST', '/api/v1/scheduler', { token: b.token, body: subscribe('team-a', frameworkId) });
      assert.equal(takeover.status, 403, takeover.text);
      assert.match(takeover.text, /belongs to principal 'team-a-scheduler', not to 'team-b-scheduler'/);
      const teardown = await call('POST', '/api/v1/scheduler', { token: b.token, body: { type: 'TEARDOWN', framework_id: { value: frameworkId } }, headers: { 'mesos-stream-id': streamId } });
      assert.equal(teardown.status, 403, teardown.text);
      const forged = await call('POST', '/api/v1/scheduler', { token: b.token, body: { ...subscribe('x'), subscribe: { framework_info: { user: 'nobody', name: 'x', roles: ['*'], principal: 'team-a-scheduler' } } } });
      assert.equal(forged.status, 403, 'a principal that is not the caller\'s');
      // The built-in services framework is out of reach too.
      const info = JSON.parse((await call('GET', '/v2/info', { token: admin })).text) as { frameworkId: string };
      assert.equal((await call('POST', '/api/v1/scheduler', { token: b.token, body: subscribe('slipway-apps', info.frameworkId) })).status, 403);
      // Its own calls go through.
      const own = await call('POST', '/api/v1/scheduler', { token: a.token, body: { type: 'REVIVE', framework_id: { value: frameworkId } }, headers: { 'mesos-stream-id': streamId } });
      assert.equal(own.status, 202, own.text);
    } finally {
      abort.abort();
    }
  });

  it('refuses cross-site requests that change things, and Host names it does not serve (DNS rebinding)', async () => {
    const form = await call('POST', '/jenkins/job/x/build', { token: admin, body: 'json=%7B%7D', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 403);
    assert.match(form.text, /cross-site form/);
    const text = await call('POST', '/v2/apps', { token: admin, body: '{"id":"/x","cmd":"x"}', headers: { 'content-type': 'text/plain' } });
    assert.equal(text.status, 403);
    const origin = await call('POST', '/v2/apps', { token: admin, body: { id: '/x', cmd: 'x', instances: 0 }, headers: { origin: 'http://evil.example' } });
    assert.equal(origin.status, 403);
    assert.match(origin.text, /origin http:\/\/evil\.example/);
    const fetchSite = await call('DELETE', '/v2/apps/x', { token: admin, headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(fetchSite.status, 403);
    // The same with a custom header, as Jenkins clients send their crumb: allowed.
    const crumb = await call('POST', '/jenkins/job/nope/build', { token: admin, body: 'x=1', headers: { 'content-type': 'application/x-www-form-urlencoded', 'jenkins-crumb': 'c' } });
    assert.equal(crumb.status, 404, crumb.text);
    // fetch does not let a caller set Host: node:http does, as a rebinding browser would send it.
    const withHost = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${url}/v2/apps`, { headers: { host, authorization: `Bearer ${admin}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await withHost('attacker.example:5050'), 421);
    assert.equal(await withHost(`localhost:${new URL(url).port}`), 200);
    assert.deepEqual(JSON.parse((await call('GET', '/v2/apps', { token: admin })).text), { apps: [] }, 'nothing was created');
  });

  it('keeps an audit log of every change: who, what, when, from where, with its status', async () => {
    const created = await call('POST', '/v2/apps', { token: admin, body: { id: '/audited', cmd: 'sleep 100', cpus: 0.1, mem: 16, instances: 0 } });
    assert.equal(created.status, 201, created.text);
    const log = JSON.parse((await call('GET', '/auth/v1/audit?limit=50', { token: admin })).text) as { entries: { name: string; method: string; path: string; status: number; remote: string; requestId: string; at: string }[] };
    const entry = log.entries.find((e) => e.path === '/v2/apps' && e.status === 201);
    assert.ok(entry !== undefined, JSON.stringify(log.entries.slice(0, 5)));
    assert.equal(entry.name, 'admin');
    assert.equal(entry.method, 'POST');
    assert.equal(entry.remote, '127.0.0.1');
    assert.ok(Date.now() - Date.parse(entry.at) < 60_000);
    assert.ok(log.entries.some((e) => e.name === 'vera' && e.status === 403), 'refusals are in it too');
    assert.ok(!log.entries.some((e) => e.method === 'GET'), 'reads are not');
    const viewer = await token('auditor', ['viewer']);
    assert.equal((await call('GET', '/auth/v1/audit', { token: viewer.token })).status, 403);

    // A part apart from the master (`slipway apps`) reports its entries with its framework token;
    // they are kept with `via`, its name. A viewer may not report; a bad report is a 400.
    const part = await token('apps-part', ['framework']);
    const report = { at: Date.now(), tokenId: 'abc123', name: 'dev', method: 'PUT', path: '/v2/apps/reported', status: 200, remote: '10.0.0.9', requestId: 'req-1' };
    assert.equal((await call('POST', '/auth/v1/audit', { token: part.token, body: { entries: [report] } })).status, 204);
    assert.equal((await call('POST', '/auth/v1/audit', { token: viewer.token, body: { entries: [report] } })).status, 403);
    for (const bad of [{}, { entries: [{ ...report, status: 'ok' }] }, { entries: [{ ...report, path: 'x'.repeat(3000) }] }, { entries: new Array(1001).fill(report) }]) {
      const r = await call('POST', '/auth/v1/audit', { token: part.token, body: bad });
      assert.equal(r.status, 400, r.text);
    }
    const reportedEntry = (JSON.parse((await call('GET', '/auth/v1/audit?limit=50', { token: admin })).text) as { entries: { path: string; via?: string; name: string }[] }).entries.find((e) => e.path === '/v2/apps/reported');
    assert.equal(reportedEntry?.via, 'apps-part');
    assert.equal(reportedEntry?.name, 'dev');
  });
});
