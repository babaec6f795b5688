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

/** GET over HTTPS trusting `ca`, with the run's token. */
function get(path: string, ca: Buffer | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { authorization: `Bearer ${runToken()}` }, ...(ca !== undefined ? { ca } : {}) }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS (issue 12): a master with a certificate, agents that verify it', { timeout: 90_000 }, () => {
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
});
