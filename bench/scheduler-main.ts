import { formatSchedulerBench, runSchedulerBench, type SchedulerBenchOptions } from './scheduler.ts';

/**
 * Entry of the scheduler benchmark's own process (started by `slipway bench scheduler`), so that
 * each run starts with a fresh heap and the V8 flags the master is meant to run with.
 * argv[2]: the options as JSON; argv[3]: `json` for one JSON object on stdout.
 */
const options = JSON.parse(process.argv[2] ?? '{}') as SchedulerBenchOptions;
const json = process.argv[3] === 'json';
if (!json) process.stderr.write(`placing ${options.tasks} tasks on ${options.agents} simulated agents...\n`);
const result = await runSchedulerBench(options, json ? undefined : (line) => process.stderr.write(line + '\n'));
process.stdout.write(json ? JSON.stringify(result) + '\n' : formatSchedulerBench(result) + '\n');
