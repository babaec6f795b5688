import { Command } from 'commander';
import { registerBench } from './commands/bench.ts';
import { registerCluster } from './commands/cluster.ts';

/**
 * The `slipway` command line. Each subcommand lives in `commands/`; this file only assembles
 * them. Exit codes: 0 success, 1 failure, 2 bad usage (commander's own).
 */
export function buildProgram(): Command {
  const program = new Command('slipway')
    .description('One pool of machines for services and CI: cluster manager, services, CI and config center')
    .version('0.1.0')
    .showHelpAfterError();
  registerCluster(program);
  registerBench(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
