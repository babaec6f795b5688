import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
    .option('--semi-space <mb>', "V8's young generation size (MB) for the benchmark process; 0 for Node's default", (v) => Number(v), 32)
    .action(async (opts: { agents: number; frameworks: number; tasks: number; taskCpus: number; taskMem: number; seed?: number; json?: boolean; semiSpace: number }) => {
      const options = { agents: opts.agents, frameworks: opts.frameworks, tasks: opts.tasks, taskCpus: opts.taskCpus, taskMem: opts.taskMem, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) };
      // A process of its own: a fresh heap per run, and the young-generation size the master is
      // meant to run with (the allocation pass makes many short-lived objects).
      const entry = fileURLToPath(new URL('../../../bench/scheduler-main.ts', import.meta.url));
      const flags = opts.semiSpace > 0 ? [`--max-semi-space-size=${opts.semiSpace}`] : [];
      const child = spawn(process.execPath, [...flags, '--import', 'tsx', entry, JSON.stringify(options), opts.json ? 'json' : 'text'], { stdio: 'inherit' });
      const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
      process.exitCode = code;
    });

  bench
    .command('launch')
    .description('time from ACCEPT to TASK_RUNNING through the HTTP scheduler API and a real agent, against starting the same tasks directly')
    .option('--tasks <n>', 'tasks to launch', positiveInt('--tasks'), 200)
    .option('--containerizer <kind>', 'process or docker', 'process')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(async (opts: { tasks: number; containerizer: string; json?: boolean }) => {
      if (opts.containerizer !== 'process' && opts.containerizer !== 'docker') {
        program.error(`--containerizer must be process or docker, got '${opts.containerizer}'`);
      }
      const { runLaunchBench, formatLaunchBench } = await import('../../../bench/launch.ts');
      const progress = opts.json ? undefined : (line: string) => process.stderr.write(line + '\n');
      const result = await runLaunchBench({ tasks: opts.tasks, containerizer: opts.containerizer as 'process' | 'docker' }, progress);
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatLaunchBench(result) + '\n');
    });
}
