import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { SystemClock } from '../src/core/clock.ts';
import { percentile } from '../src/core/percentile.ts';
import { SecretBox } from '../src/lib/secret-box.ts';
import { openLocalAuth } from '../src/server/local-auth.ts';

/**
 * `slipway bench gate`: what authentication costs one request (issue 12). The same Fastify route
 * (a POST of a Marathon app definition, parsed and answered 201) is called through Fastify's
 * `inject`, in this process, without and with the HTTP gate that every API of Slipway has: a
 * real token registry and policy decision, and the audit log appended to a real auth.db. Rounds
 * alternate between the two so that the machine's drift falls on both alike; the figure is the
 * process's CPU time per request (user + system), which wall-clock noise of the VM moves less
 * than throughput. The difference is the gate's price, to be set against the cost of one app
 * creation in `slipway bench apps`.
 */

export interface GateBenchOptions {
  requests: number;
  rounds: number;
}

export interface GateBenchResult {
  requests: number;
  rounds: number;
  /** Median over the rounds of CPU µs per request. */
  withoutGateUs: number;
  withGateUs: number;
  gateCostUs: number;
  /** Every round's figure, in order. */
  withoutGateRoundsUs: number[];
  withGateRoundsUs: number[];
}

const APP = JSON.stringify({ id: '/bench/web', cmd: 'python3 -m http.server $PORT0', cpus: 0.1, mem: 64, instances: 2, env: { A: 'b' }, labels: { team: 'bench' } });

function route(app: FastifyInstance): void {
  app.post('/v2/apps', async (req, reply) => reply.code(201).send({ id: (req.body as { id: string }).id }));
}

async function cpuPerRequest(app: FastifyInstance, n: number, headers: Record<string, string>): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const r = await app.inject({ method: 'POST', url: '/v2/apps', headers: { 'content-type': 'application/json', host: '127.0.0.1:5050', ...headers }, payload: APP });
    if (r.statusCode !== 201) throw new Error(`request ${i}: ${r.statusCode} ${r.body}`);
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

export async function runGateBench(o: GateBenchOptions, progress?: (line: string) => void): Promise<GateBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-gate-'));
  const plain = Fastify({ logger: false });
  route(plain);
  const auth = await openLocalAuth({ dataDir: dir, adminTokenFile: join(dir, 'admin.token'), clock: new SystemClock(), secretBox: SecretBox.random() });
  const gated = Fastify({ logger: false });
  try {
    auth.gate.install(gated);
    auth.gate.addRules([{ method: 'POST', url: '/v2/apps', access: () => [{ capability: 'deploy', resource: { kind: 'apps', name: '/bench/web' }, object: { cpus: 0.1, mem: 64, instances: 2 } }] }]);
    route(gated);
    // A developer's token, not the admin's: the decision walks real rules.
    const { token } = await auth.tokens.create({ name: 'bench-developer', policies: ['developer'] });
    const headers = { authorization: `Bearer ${token}` };
    // Warm-up: JIT both paths.
    await cpuPerRequest(plain, Math.min(o.requests, 2000), {});
    await cpuPerRequest(gated, Math.min(o.requests, 2000), headers);
    const without: number[] = [];
    const withGate: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      without.push(await cpuPerRequest(plain, o.requests, {}));
      withGate.push(await cpuPerRequest(gated, o.requests, headers));
      progress?.(`round ${r + 1}/${o.rounds}: ${without.at(-1)!.toFixed(1)} µs without the gate, ${withGate.at(-1)!.toFixed(1)} µs with it`);
    }
    const w = percentile(without, 50);
    const g = percentile(withGate, 50);
    return { requests: o.requests, rounds: o.rounds, withoutGateUs: round(w), withGateUs: round(g), gateCostUs: round(g - w), withoutGateRoundsUs: without.map(round), withGateRoundsUs: withGate.map(round) };
  } finally {
    await plain.close();
    await gated.close();
    await auth.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

export function formatGateBench(r: GateBenchResult): string {
  return [
    `gate bench: ${r.rounds} rounds of ${r.requests} POSTs of an app definition, in process (Fastify inject), CPU time per request, median of rounds`,
    `  without the gate  ${r.withoutGateUs} µs`,
    `  with the gate     ${r.withGateUs} µs (Host and cross-site checks, token hash and lookup, policy decision, audit entry)`,
    `  the gate costs    ${r.gateCostUs} µs per request`,
  ].join('\n');
}
