import type { Command } from 'commander';
import { positiveInt, positiveNumber } from '../options.ts';

/** `slipway bench ...`: the benchmarks of bench/, runnable by any user of the installed command. */
export function registerBench(program: Command): void {
  const bench = program.command('bench').description('run a benchmark and print its figures');
  bench
    .command('scheduler')
    .description('place tasks on simulated agents through the real master core (weighted DRF offers)')
    .option('--agents <n>', 'simulated agents (8 cpus, 32768 mem, ports 31000-32000 each)', positiveInt('--agents'), 10_000)
    .option('--frameworks <n>', 'greedy frameworks, in roles of weights 1, 1, 2, ...', positiveInt('--frameworks'), 3)
    .option('--tasks <n>', 'tasks to place, split evenly over the frameworks', positiveInt('--tasks'), 100_000)
    .option('--task-cpus <n>', 'cpus per task', positiveNumber('--task-cpus'), 0.1)
    .option('--task-mem <n>', 'mem (MB) per task', positiveNumber('--task-mem'), 128)
    .option('--seed <n>', 'seed of the allocator', positiveInt('--seed'))
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(async (opts: { agents: number; frameworks: number; tasks: number; taskCpus: number; taskMem: number; seed?: number; json?: boolean }) => {
      const { runSchedulerBench, formatSchedulerBench } = await import('../../../bench/scheduler.ts');
      const progress = opts.json ? undefined : (line: string) => process.stderr.write(line + '\n');
      if (!opts.json) process.stderr.write(`placing ${opts.tasks} tasks on ${opts.agents} simulated agents...\n`);
      const result = runSchedulerBench(
        { agents: opts.agents, frameworks: opts.frameworks, tasks: opts.tasks, taskCpus: opts.taskCpus, taskMem: opts.taskMem, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) },
        progress,
      );
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatSchedulerBench(result) + '\n');
    });
}
