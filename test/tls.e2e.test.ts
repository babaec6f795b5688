import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runToken } from '../src/sim/bench-token.ts';
import { freePort, SlipwayProcess, tempDir } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 12: `--tls-cert/--tls-key` serve HTTPS; an agent given the CA (`--ca`) verifies the
// master's certificate, one without it does not connect, and says why.

const dir = tempDir('tls');
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let url = '';
const processes: SlipwayProcess[] = [];

/** A request over HTTPS trusting `ca`, with the run's token. */
function send(method: string, base: string, path: string, ca: Buffer | undefined, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${runToken()}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
    const req = request(`${base}${path}`, { method, headers, ...(ca !== undefined ? { ca } : {}) }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body !== undefined ? JSON.stringify(body) : undefined);
  });
}

const get = (path: string, ca: Buffer | undefined) => send('GET', url, path, ca);

describe('HTTPS (issue 12): a master with a certificate, agents that verify it', { timeout: 150_000 }, () => {
  before(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const port = await freePort();
    url = `https://127.0.0.1:${port}`;
    const master = new SlipwayProcess('master', ['master', '--port', String(port), '--data-dir', join(dir, 'master'), '--tls-cert', cert, '--tls-key', key], join(dir, 'master.log'));
    master.start();
    processes.push(master);
    const ca = readFileSync(cert);
    await waitUntil(async () => (await get('/health', ca).catch(() => ({ status: 0 }))).status === 200, 'the master to answer over HTTPS');
  });

  after(async () => {
    for (const p of processes.reverse()) await p.kill9();
    killProcessesUnder(dir);
    if (process.env['KEEP_TLS_DIR'] === undefined) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    else process.stderr.write(`kept ${dir}\n`);
  });

  it('serves HTTPS only, with its certificate', async () => {
    const ca = readFileSync(cert);
    assert.equal((await get('/auth/v1/whoami', ca)).status, 200);
    await assert.rejects(get('/health', undefined), /self-signed|certificate/i, 'a client that does not trust the certificate is refused by TLS');
    await assert.rejects(fetch(url.replace('https', 'http') + '/health'), 'plain HTTP gets no answer');
  });

  it('an agent given the CA joins; one without it does not, and says why', async () => {
    const agent = (name: string, ...extra: string[]) =>
      new SlipwayProcess(name, ['agent', '--master', url, '--work-dir', join(dir, name), '--resources', 'cpus:1;mem:256', '--containerizers', 'process', '--hostname', name, ...extra], join(dir, `${name}.log`));
    const trusting = agent('trusting', '--ca', cert);
    const blind = agent('blind');
    trusting.start();
    blind.start();
    processes.push(trusting, blind);
    const ca = readFileSync(cert);
    const hostnames = async () => (JSON.parse((await get('/master/state', ca)).text) as { slaves: { agent_info: { hostname: string }; active: boolean }[] }).slaves.filter((s) => s.active).map((s) => s.agent_info.hostname);
    await waitUntil(async () => (await hostnames()).includes('trusting'), 'the agent with the CA to register');
    const said = await waitUntil(() => {
      const log = readFileSync(join(dir, 'blind.log'), 'utf8');
      return /cannot connect to the master at https:.*(self-signed|certificate).*--ca FILE/i.test(log) ? log : undefined;
    }, 'the agent without the CA to say why it cannot connect');
    assert.ok(said.length > 0);
    assert.deepEqual((await hostnames()).filter((h) => h === 'blind'), []);
  });

  it("an agent with --tls-cert serves its files over HTTPS, and resolves callers' tokens through the master with its --ca", async () => {
    const port = await freePort();
    const secure = new SlipwayProcess('secure', ['agent', '--master', url, '--work-dir', join(dir, 'secure'), '--resources', 'cpus:1;mem:256', '--containerizers', 'process', '--hostname', 'secure', '--port', String(port), '--ca', cert, '--tls-cert', cert, '--tls-key', key], join(dir, 'secure.log'));
    secure.start();
    processes.push(secure);
    const ca = readFileSync(cert);
    const agentUrl = `https://127.0.0.1:${port}`;
    await waitUntil(async () => (await send('GET', agentUrl, '/files/browse?framework_id=f&task_id=t', ca).catch(() => ({ status: 0 }))).status !== 0, 'the agent to serve HTTPS');
    // Authenticated through the master over HTTPS (the agent's CA), then: no such sandbox.
    const r = await send('GET', agentUrl, '/files/browse?framework_id=f&task_id=t', ca);
    assert.equal(r.status, 404, r.text);
    assert.match(r.text, /no sandbox/);
    await assert.rejects(send('GET', agentUrl, '/files/browse?framework_id=f&task_id=t', undefined), /self-signed|certificate/i);
    await assert.rejects(fetch(agentUrl.replace('https', 'http') + '/files/browse?framework_id=f&task_id=t'), 'plain HTTP gets no answer');
  });

  it("`slipway up` with --tls-cert: its agent serves files over HTTPS, which the master proxies (a task's stdout)", async () => {
    const port = await freePort();
    const upUrl = `https://127.0.0.1:${port}`;
    const up = new SlipwayProcess('up', ['up', '--port', String(port), '--data-dir', join(dir, 'up'), '--containerizers', 'process', '--resources', 'cpus:2;mem:512;ports:[36500-36599]', '--tls-cert', cert, '--tls-key', key], join(dir, 'up.log'));
    up.start();
    processes.push(up);
    const ca = readFileSync(cert);
    await waitUntil(async () => {
      const r = await send('POST', upUrl, '/api/v1', ca, { type: 'GET_AGENTS' }).catch(() => undefined);
      return r !== undefined && r.status === 200 && (JSON.parse(r.text) as { get_agents: { agents: unknown[] } }).get_agents.agents.length === 1;
    }, 'up and its agent');
    const state = JSON.parse((await send('GET', upUrl, '/master/state', ca)).text) as { slaves: { pid?: string; url?: string }[] };
    assert.ok(JSON.stringify(state.slaves).includes('https://'), `the agent's files server is HTTPS: ${JSON.stringify(state.slaves)}`);
    const created = await send('POST', upUrl, '/v2/apps', ca, { id: '/tls-hello', cmd: 'echo hello-over-tls; exec sleep 300', cpus: 0.1, mem: 16 });
    assert.equal(created.status, 201, created.text);
    const taskId = await waitUntil(async () => {
      const t = JSON.parse((await send('GET', upUrl, '/v2/apps/tls-hello/tasks', ca)).text) as { tasks: { id: string; state: string }[] };
      return t.tasks.find((x) => x.state === 'TASK_RUNNING')?.id;
    }, 'the task to run');
    const tasks = JSON.parse((await send('POST', upUrl, '/api/v1', ca, { type: 'GET_TASKS' })).text) as { get_tasks: { tasks: { task_id: { value: string }; framework_id: { value: string } }[] } };
    const fw = tasks.get_tasks.tasks.find((x) => x.task_id.value === taskId)!.framework_id.value;
    const out = await waitUntil(async () => {
      const r = await send('GET', upUrl, `/files/read?framework_id=${encodeURIComponent(fw)}&task_id=${encodeURIComponent(taskId)}&path=stdout&offset=0`, ca);
      return r.status === 200 && r.text.includes('hello-over-tls') ? r : undefined;
    }, 'the stdout through the master');
    assert.equal(out.status, 200);
    assert.equal((await send('DELETE', upUrl, '/v2/apps/tls-hello?force=true', ca)).status, 200);
  });
});
