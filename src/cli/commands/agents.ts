import type { Command } from 'commander';
import { OperatorClient, type OperatorAgent } from '../../sdk/operator-client.ts';
import { positiveNumber } from '../options.ts';

/**
 * `slipway agents`: the master's agents and their maintenance, through its operator API (Mesos's
 * DEACTIVATE_AGENT, DRAIN_AGENT, REACTIVATE_AGENT). `slipway agent` (singular) is the daemon.
 *
 *   slipway agents                      list them: id, hostname, state, maintenance
 *   slipway agents maintain <agent>     no new tasks there; its tasks run on (deactivate)
 *   slipway agents drain <agent>        no new tasks, and its tasks are killed so that their
 *                                       frameworks place them elsewhere
 *   slipway agents reactivate <agent>   back in service after either
 *
 * <agent> is an agent id or a hostname. Exit code 0 when the master did it, 1 otherwise.
 */
export function registerAgents(program: Command): void {
  const agents = program
    .command('agents')
    .description('list the agents of a master; maintain, drain or reactivate one (`slipway agent` runs an agent)')
    .option('--master <url>', 'the master', 'http://127.0.0.1:5050')
    .action(async (o: { master: string }) => {
      await run(async () => {
        const list = await new OperatorClient(o.master).agents();
        if (list.length === 0) {
          process.stdout.write('no agents\n');
          return;
        }
        const rows = list.map((a) => [a.agent_info.id.value, a.agent_info.hostname, a.state ?? (a.active ? 'ACTIVE' : 'INACTIVE'), mode(a)]);
        const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['ID', 'HOSTNAME', 'STATE'][i]!.length));
        const line = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd() + '\n';
        process.stdout.write(line(['ID', 'HOSTNAME', 'STATE', 'MAINTENANCE']) + rows.map(line).join(''));
      });
    });

  /** `--master` may come before the subcommand (`agents`' own) or after it (the subcommand's). */
  const client = (o: { master?: string }) => new OperatorClient(o.master ?? (agents.opts() as { master: string }).master);
  const MASTER = ['--master <url>', 'the master (default: http://127.0.0.1:5050)'] as const;

  agents
    .command('maintain <agent>')
    .description('deactivate an agent: it gets no new tasks; those it runs go on (Mesos DEACTIVATE_AGENT)')
    .option(...MASTER)
    .action(async (name: string, o: { master?: string }) => {
      await run(async () => {
        const c = client(o);
        const agent = await c.findAgent(name);
        await c.deactivate(agent.agent_info.id.value);
        process.stdout.write(`agent ${describe(agent)} is deactivated: no new tasks; its tasks run on. \`slipway agents reactivate ${name}\` ends it\n`);
      });
    });

  agents
    .command('drain <agent>')
    .description('drain an agent: no new tasks, and its tasks are killed so that their frameworks move them (Mesos DRAIN_AGENT)')
    .option('--max-grace-period <seconds>', 'at most this long between SIGTERM and SIGKILL for its tasks', positiveNumber('--max-grace-period'))
    .option('--mark-gone', 'once drained, remove the agent for good (it may never register again)')
    .option(...MASTER)
    .action(async (name: string, o: { maxGracePeriod?: number; markGone?: boolean; master?: string }) => {
      await run(async () => {
        const c = client(o);
        const agent = await c.findAgent(name);
        await c.drain(agent.agent_info.id.value, { ...(o.maxGracePeriod !== undefined ? { maxGracePeriodSeconds: o.maxGracePeriod } : {}), ...(o.markGone === true ? { markGone: true } : {}) });
        process.stdout.write(`agent ${describe(agent)} is draining: its tasks are being killed (\`slipway agents\` shows DRAINED once they all ended)\n`);
      });
    });

  agents
    .command('reactivate <agent>')
    .description('put an agent back in service after maintain or drain (Mesos REACTIVATE_AGENT)')
    .option(...MASTER)
    .action(async (name: string, o: { master?: string }) => {
      await run(async () => {
        const c = client(o);
        const agent = await c.findAgent(name);
        await c.reactivate(agent.agent_info.id.value);
        process.stdout.write(`agent ${describe(agent)} is active again\n`);
      });
    });
}

function describe(a: OperatorAgent): string {
  return `${a.agent_info.id.value} (${a.agent_info.hostname})`;
}

function mode(a: OperatorAgent): string {
  const parts: string[] = [];
  if (a.drain_info !== undefined) parts.push(a.drain_info.state + (a.drain_info.config.mark_gone === true ? ' (then gone)' : ''));
  else if (a.deactivated === true) parts.push('DEACTIVATED');
  if (a.planned_restart !== undefined) parts.push('RESTARTING');
  return parts.join(', ') || '-';
}

/** Runs a client action: a failure is one line on stderr and exit code 1. */
async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
