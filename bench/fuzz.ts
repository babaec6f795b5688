import { HostileTarget } from '../src/sim/hostile/hostile-target.ts';
import { runHostile, type HostileReport } from '../src/sim/hostile/hostile-run.ts';
import { LOOP_BUDGET_MS, type FuzzBenchOptions } from './fuzz-options.ts';

/**
 * `slipway bench fuzz`: the hostile-input suite's long run. `slipway up` in a process of its own
 * (the event loop measured from inside it), every route of every server attacked for `seconds`
 * with heavy bodies too, then the agent and executor streams, then slow connections. The figure
 * that matters is the worst event-loop block (budget 100 ms: no request, however large or
 * malformed, may hold the loop longer), with what was in flight when it happened. The CI test
 * (test/hostile-input.e2e.test.ts) runs the same suite shorter, with light bodies and a 1 s bound.
 */

export async function runFuzzBench(o: FuzzBenchOptions, progress: (line: string) => void): Promise<HostileReport & { loopBudgetMs: number; machine: Record<string, unknown> }> {
  progress('starting slipway up with the event-loop monitor and a canary app...');
  const target = await HostileTarget.start();
  try {
    const report = await runHostile(target, { ...o, stallMs: 30_000, replayAboveMs: LOOP_BUDGET_MS, progress });
    const { cpus, loadavg, totalmem } = await import('node:os');
    return {
      ...report,
      loopBudgetMs: LOOP_BUDGET_MS,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim(), memoryGb: Math.round(totalmem() / 2 ** 30 * 10) / 10, node: process.version, loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
    };
  } finally {
    await target.close();
  }
}

export function formatFuzzBench(r: HostileReport & { loopBudgetMs: number }): string {
  const lines = [
    `requests: ${r.requests} in ${r.seconds} s over ${r.routesHit}/${r.routes} routes (seed ${r.seed})`,
    `answers: ${Object.entries(r.byStatus).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `event loop: worst block ${r.loopMaxMs} ms (budget ${r.loopBudgetMs} ms: ${r.loopMaxMs <= r.loopBudgetMs ? 'met' : 'NOT met'}), p99 ${r.loopP99Ms} ms`,
    ...r.worstBlocks.map((b) => `  ${b.maxMs} ms during: ${b.during.join('; ') || '(nothing in flight)'}`),
    ...(r.culprits.length > 0 ? ['replayed alone:', ...r.culprits.map((c) => `  ${c.loopMaxMs} ms loop block, ${c.ms} ms answer (${c.status}): ${c.request}`)] : []),
    `server memory: at most ${Math.round(r.rssMaxBytes / 2 ** 20)} MiB`,
    `WebSocket: ${r.webSocket.connections} connections, ${r.webSocket.messages} messages, ${r.webSocket.findings} findings`,
    `slow connections: ${r.slow.connections} held; ${r.slow.pingsDuring} pings meanwhile, slowest ${r.slow.pingMaxMs} ms; ${r.slow.closedByServer} closed by the server`,
    `canary task: ${r.canary ?? 'undisturbed'}`,
    `findings: ${r.findingCount}`,
    ...r.findings.slice(0, 40).map((f) => `  ${f.what}: ${f.method} ${f.path.slice(0, 100)} [${f.kind}]${f.headers !== undefined ? ` headers ${f.headers}` : ''}${f.excerpt !== undefined ? ` ${f.excerpt.slice(0, 120).replace(/\s+/g, ' ')}` : ''}`),
  ];
  if (r.serverExit !== undefined) lines.push(`THE SERVER ${r.serverExit.toUpperCase()}`);
  return lines.join('\n');
}
