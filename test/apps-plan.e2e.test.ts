import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { up, type Up } from '../src/server/up.ts';
import { SlipwayProcess, activeAgents, tempDir } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 14, section 2: the placement preflight. `POST /v2/plan` on `slipway up` with its own agent
// (cpus 2, ports 32400-32409) and a second agent process (hostname a2, cpus 1, ports
// 32500-32509): what a deployment would do and why instances cannot be placed, per agent, from
// the master's GET_AGENTS; nothing deployed by it; a promotion whose app cannot be placed is 409.

interface AppPreview {
  id: string;
  start: number;
  stop: number;
  restart: number;
  unplaced: number;
  message?: string;
  reasons: { agentId: string; hostname: string; reasons: string[] }[];
}
interface PlanAnswer {
  fits: boolean;
  steps: { action: string; app: string }[][];
  apps: AppPreview[];
  lockedBy: string[];
}

const sleeper = (id: string, over: Record<string, unknown> = {}) => ({ id, cmd: 'sleep 100000', cpus: 0.1, mem: 16, instances: 1, portDefinitions: [], ...over });

describe('POST /v2/plan on `slipway up` with two agents', { timeout: 120_000 }, () => {
  const dir = tempDir('apps-plan');
  let server: Up;
  let agent: SlipwayProcess;
  let failed = false;

  async function api(method: string, path: string, body?: unknown, token?: string) {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token !== undefined) headers['Authorization'] = `Bearer ${token}`;
    const r = await fetch(`${server.master.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  }
  async function plan(body: unknown): Promise<PlanAnswer> {
    const r = await api('POST', '/v2/plan', body);
    assert.equal(r.status, 200, r.text);
    return r.json() as unknown as PlanAnswer;
  }

  before(async () => {
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process'], resources: 'cpus:2;mem:1024;disk:1000;ports:[32400-32409]' });
    agent = new SlipwayProcess('a2', ['agent', '--master', server.master.url, '--work-dir', join(dir, 'a2'), '--resources', 'cpus:1;mem:512;disk:500;ports:[32500-32509]', '--containerizers', 'process', '--hostname', 'a2'], join(dir, 'a2.log'));
    agent.start();
    await activeAgents(server.master.url, 2);
  });

  after(async () => {
    // Kill what the tests started, and wait until the master has no task left.
    await api('DELETE', '/v2/apps/plan/holder?force=true').catch(() => undefined);
    await waitUntil(async () => ((await api('GET', '/v2/tasks')).json()['tasks'] as unknown[]).length === 0, 'the tasks to be gone', 20_000).catch(() => undefined);
    await server?.close();
    await agent?.kill9();
    killProcessesUnder(dir);
    if (failed) {
      process.stderr.write(`apps-plan e2e: kept ${dir}\n----- a2.log -----\n${readFileSync(join(dir, 'a2.log'), 'utf8').split('\n').slice(-30).join('\n')}\n`);
    } else rmSync(dir, { recursive: true, force: true });
  });

  const body = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  };

  it('answers what a new app would start, that it fits, and deploys nothing', body(async () => {
    const p = await plan(sleeper('/plan/fits', { instances: 3 }));
    assert.equal(p.fits, true, JSON.stringify(p));
    assert.deepEqual(p.steps, [[{ action: 'StartApplication', app: '/plan/fits' }], [{ action: 'ScaleApplication', app: '/plan/fits' }]]);
    assert.deepEqual(p.apps, [{ id: '/plan/fits', start: 3, stop: 0, restart: 0, unplaced: 0, reasons: [] }]);
    assert.equal((await api('GET', '/v2/apps/plan/fits')).status, 404, 'no app was made');
    assert.deepEqual((await api('GET', '/v2/deployments')).json(), [], 'no deployment was started');
  }));

  it('names the cpus each agent has free when the app asks for more than any has', body(async () => {
    const p = await plan(sleeper('/plan/huge', { cpus: 64 }));
    assert.equal(p.fits, false);
    const app = p.apps[0]!;
    assert.equal(app.unplaced, 1);
    assert.equal(app.reasons.length, 2, JSON.stringify(app));
    for (const r of app.reasons) assert.match(r.reasons.join('; '), /^cpus: [\d.]+ free, 64 wanted$/, JSON.stringify(r));
    assert.ok(app.reasons.some((r) => r.hostname === 'a2' && r.reasons[0] === 'cpus: 1 free, 64 wanted'), JSON.stringify(app.reasons));
  }));

  it('cannot place hostname:UNIQUE instances beyond one per agent, and says so on each agent', body(async () => {
    const p = await plan(sleeper('/plan/unique', { instances: 3, constraints: [['hostname', 'UNIQUE']] }));
    assert.equal(p.fits, false);
    const app = p.apps[0]!;
    assert.equal(app.start, 3);
    assert.equal(app.unplaced, 1);
    assert.deepEqual(app.reasons.map((r) => r.reasons), [['constraint hostname:UNIQUE already has an instance on this agent'], ['constraint hostname:UNIQUE already has an instance on this agent']]);
  }));

  it('says a required port is in use on the agent whose task holds it, and not offered by the other', body(async () => {
    const holder = await api('POST', '/v2/apps', sleeper('/plan/holder', { requirePorts: true, portDefinitions: [{ port: 32405 }] }));
    assert.equal(holder.status, 201, holder.text);
    await waitUntil(async () => {
      const tasks = (await api('GET', '/v2/apps/plan/holder/tasks')).json()['tasks'] as { state: string }[];
      return tasks.length === 1 && tasks[0]!.state === 'TASK_RUNNING';
    }, '/plan/holder running on port 32405');
    const p = await plan(sleeper('/plan/second', { requirePorts: true, portDefinitions: [{ port: 32405 }] }));
    assert.equal(p.fits, false);
    const byHost = new Map(p.apps[0]!.reasons.map((r) => [r.hostname, r.reasons]));
    assert.deepEqual(byHost.get('a2'), ['port 32405 is not offered by this agent (its ports: 32500-32509)']);
    const local = [...byHost.entries()].find(([h]) => h !== 'a2');
    assert.deepEqual(local?.[1], ['port 32405 in use'], JSON.stringify(p.apps[0]));
    // A group that replaces the holder by the second app frees the port first.
    const swap = await plan({ id: '/plan', apps: [sleeper('/plan/second', { requirePorts: true, portDefinitions: [{ port: 32405 }] })] });
    assert.equal(swap.fits, true, JSON.stringify(swap));
    assert.deepEqual(swap.apps.map((a) => [a.id, a.start, a.stop]), [['/plan/holder', 0, 1], ['/plan/second', 1, 0]]);
  }));

  it('refuses a bad definition with 422 as POST /v2/apps does', body(async () => {
    const bad = { id: '/plan/bad', cmd: 'true', cpus: -1 };
    const r = await api('POST', '/v2/plan', bad);
    const ref = await api('POST', '/v2/apps', bad);
    assert.equal(r.status, 422, r.text);
    assert.equal(ref.status, 422);
    assert.deepEqual(r.json(), ref.json());
    assert.equal((await api('POST', '/v2/plan', [1, 2])).status, 422);
  }));

  it('asks deploy on the app of the caller', body(async () => {
    const viewer = (await api('POST', '/auth/v1/tokens', { name: 'plan-viewer', policies: ['viewer'] })).json()['token'] as string;
    const r = await api('POST', '/v2/plan', sleeper('/plan/fits'), viewer);
    assert.equal(r.status, 403, r.text);
  }));

  it('refuses a promotion whose app cannot be placed with 409 and the reasons, and starts no deployment', body(async () => {
    assert.equal((await api('PUT', '/deliver/v1/environments/big', { order: 1 })).status, 201);
    const svc = await api('PUT', '/deliver/v1/services/huge', { image: 'huge', app: { cmd: 'true', container: { type: 'DOCKER', docker: { network: 'HOST' } }, cpus: 64, mem: 32, instances: 1 } });
    assert.equal(svc.status, 201, svc.text);
    const rel = await api('POST', '/deliver/v1/services/huge/releases', { version: 'v1', images: [{ name: '127.0.0.1:5000/huge:v1', digest: `sha256:${'0'.repeat(64)}` }] });
    assert.equal(rel.status, 201, rel.text);
    const r = await api('POST', '/deliver/v1/services/huge/promotions', { release: 'v1', to: 'big' });
    assert.equal(r.status, 409, r.text);
    const answer = r.json() as { message: string; details: { id: string; unplaced: number; reasons: { hostname: string; reasons: string[] }[] }[] };
    assert.match(answer.message, /app \/big\/huge cannot be placed now/);
    assert.equal(answer.details[0]!.id, '/big/huge');
    assert.equal(answer.details[0]!.unplaced, 1);
    assert.ok(answer.details[0]!.reasons.some((x) => x.hostname === 'a2' && x.reasons.includes('cpus: 1 free, 64 wanted')), JSON.stringify(answer.details));
    assert.deepEqual((await api('GET', '/v2/deployments')).json(), []);
    assert.equal((await api('GET', '/v2/apps/big/huge')).status, 404);
  }));
});
