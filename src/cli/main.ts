import { Command } from 'commander';
import { registerAgents } from './commands/agents.ts';
import { registerBench } from './commands/bench.ts';
import { registerCluster } from './commands/cluster.ts';
import { registerConfig } from './commands/config.ts';
import { registerTokens } from './commands/tokens.ts';
import { useToken } from './token.ts';

/**
 * The `slipway` command line. Each subcommand lives in `commands/`; this file only assembles
 * them. Exit codes: 0 success, 1 failure, 2 bad usage (commander's own).
 */
export function buildProgram(): Command {
  const program = new Command('slipway')
    .description('One pool of machines for services and CI: cluster manager, services, CI and config center')
    .version('0.1.0')
    .option('--token <token>', 'the token to call Slipway with (default: SLIPWAY_TOKEN, else ./.slipway/admin.token)')
    .showHelpAfterError();
  // Before any subcommand runs: every client it makes sends this token (src/sdk/credentials.ts).
  program.hook('preSubcommand', (thisCommand) => useToken((thisCommand.opts() as { token?: string }).token));
  registerCluster(program);
  registerAgents(program);
  registerBench(program);
  registerTokens(program);
  registerConfig(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  // A failure a user can act on (a data dir that cannot be written, a port in use) is said in
  // one line, without a stack trace; SLIPWAY_DEBUG=1 shows the stack.
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`slipway: ${message}\n`);
  if (process.env['SLIPWAY_DEBUG'] !== undefined && e instanceof Error && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
