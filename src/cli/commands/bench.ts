import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, type Command } from 'commander';
import { APPS_BENCH_DEFAULTS, type AppsBenchPart } from '../../../bench/apps-options.ts';
import { CI_BENCH_DEFAULTS, CI_BENCH_PARTS, type CiBenchPart } from '../../../bench/ci-options.ts';
import { DELIVER_BENCH_DEFAULTS, DELIVER_BENCH_PARTS, type DeliverBenchPart } from '../../../bench/deliver-options.ts';
import { FUZZ_BENCH_DEFAULTS } from '../../../bench/fuzz-options.ts';
import { positiveInt, positiveNumber } from '../options.ts';
import { authenticateLoopbackFetch, runToken } from '../../sim/bench-token.ts';

/** `slipway bench ...`: the benchmarks of bench/, runnable by any user of the installed command. */
export function registerBench(program: Command): void {
  const bench = program.command('bench').description('run a benchmark and print its figures');
  // Benchmarks run with authentication on: one token for the run, which the servers they start
  // take as their admin token and which every request sends (src/sim/bench-token.ts).
  bench.hook('preSubcommand', () => {
    runToken();
    authenticateLoopbackFetch();
  });
  bench
    .command('scheduler')
    .description('place tasks on simulated agents through the real master core (weighted DRF offers)')
    .option('--agents <n>', 'simulated agents (8 cpus, 32768 mem, ports 31000-32000 each)', positiveInt('--agents'), 10_000)
    .option('--frameworks <n>', 'greedy frameworks, in roles of weights 1, 1, 2, ...', positiveInt('--frameworks'), 3)
    .option('--tasks <n>', 'tasks to place, split evenly over the frameworks', positiveInt('--tasks'), 100_000)
    .option('--task-cpus <n>', 'cpus per task', positiveNumber('--task-cpus'), 0.1)
    .option('--task-mem <n>', 'mem (MB) per task', positiveNumber('--task-mem'), 128)
    .option('--seed <n>', 'seed of the allocator', positiveInt('--seed'))
    .option('--slice-ms <ms>', 'an allocation pass runs in slices of about this long (the master\'s default 20; 1e9: one slice per pass)', positiveNumber('--slice-ms'))
    .option('--json', 'print one JSON object on stdout instead of text')
    .option('--semi-space <mb>', "V8's young generation size (MB) for the benchmark process; 0 for Node's default", (v) => Number(v), 32)
    .action(async (opts: { agents: number; frameworks: number; tasks: number; taskCpus: number; taskMem: number; seed?: number; sliceMs?: number; json?: boolean; semiSpace: number }) => {
      const options = {
        agents: opts.agents,
        frameworks: opts.frameworks,
        tasks: opts.tasks,
        taskCpus: opts.taskCpus,
        taskMem: opts.taskMem,
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        ...(opts.sliceMs !== undefined ? { sliceMs: opts.sliceMs } : {}),
      };
      // A process of its own: a fresh heap per run, and the young-generation size the master is
      // meant to run with (the allocation pass makes many short-lived objects).
      const entry = fileURLToPath(new URL('../../../bench/scheduler-main.ts', import.meta.url));
      const flags = opts.semiSpace > 0 ? [`--max-semi-space-size=${opts.semiSpace}`] : [];
      const child = spawn(process.execPath, [...flags, '--import', 'tsx', entry, JSON.stringify(options), opts.json ? 'json' : 'text'], { stdio: 'inherit' });
      const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
      process.exitCode = code;
    });

  bench
    .command('fuzz')
    .description('the hostile-input suite, long: every route of `slipway up` attacked with malformed and heavy requests, its agent and executor streams, slow connections; reports the worst event-loop block (budget 100 ms)')
    .option('--seconds <n>', 'seconds of HTTP requests', positiveInt('--seconds'), FUZZ_BENCH_DEFAULTS.seconds)
    .option('--seed <n>', 'seed of the generated requests (a finding is reproduced with the same seed)', positiveInt('--seed'), FUZZ_BENCH_DEFAULTS.seed)
    .option('--concurrency <n>', 'requests in flight at once', positiveInt('--concurrency'), FUZZ_BENCH_DEFAULTS.concurrency)
    .option('--light', 'light bodies only (as in CI): no million-element arrays or 10 MB ids')
    .option('--slow-connections <n>', 'slow connections held open (one body byte a second)', positiveInt('--slow-connections'), FUZZ_BENCH_DEFAULTS.slowConnections)
    .option('--slow-seconds <n>', 'seconds the slow connections are held', positiveInt('--slow-seconds'), FUZZ_BENCH_DEFAULTS.slowSeconds)
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(async (opts: { seconds: number; seed: number; concurrency: number; light?: boolean; slowConnections: number; slowSeconds: number; json?: boolean }) => {
      const { runFuzzBench, formatFuzzBench } = await import('../../../bench/fuzz.ts');
      const result = await runFuzzBench(
        { seconds: opts.seconds, seed: opts.seed, concurrency: opts.concurrency, heavy: opts.light !== true, slowConnections: opts.slowConnections, slowSeconds: opts.slowSeconds },
        (line) => process.stderr.write(line + '\n'),
      );
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatFuzzBench(result) + '\n');
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

  bench
    .command('config')
    .description('the config center of a real slipway up: render + release of a service of many files, a release reaching many watchers (long poll and SSE), and the rollout of a linked app with HTTP checks and its automatic rollback')
    .option('--watchers <n>', 'watchers of each kind', positiveInt('--watchers'), 1000)
    .option('--files <n>', 'files of the service', positiveInt('--files'), 20)
    .option('--releases <n>', 'timed releases', positiveInt('--releases'), 5)
    .option('--rollout-instances <n>', 'instances of the app rolled out (a good release, then a bad one and its automatic rollback); 0 skips it', nonNegativeInt('--rollout-instances'), 10)
    .option('--rollout-deadline <s>', "the bad release's deadlineSeconds", positiveInt('--rollout-deadline'), 10)
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(async (opts: { watchers: number; files: number; releases: number; rolloutInstances: number; rolloutDeadline: number; json?: boolean }) => {
      const { runConfigBench, formatConfigBench } = await import('../../../bench/config.ts');
      const result = await runConfigBench({ watchers: opts.watchers, files: opts.files, releases: opts.releases, rolloutInstances: opts.rolloutInstances, rolloutDeadlineSeconds: opts.rolloutDeadline }, opts.json ? undefined : (line) => process.stderr.write(line + '\n'));
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatConfigBench(result) + '\n');
    });

  bench
    .command('deliver')
    .description('delivery on a real slipway up with Docker and the registry: tag (webhook) → new version healthy in dev, a promotion dev → demo, an automatic rollback, and many services promoted at once')
    .option('--instances <n>', 'instances of the sample service', positiveInt('--instances'), DELIVER_BENCH_DEFAULTS.instances)
    .option('--services <n>', 'services released and promoted at once (cpus 0.01, mem 16, one instance each)', positiveInt('--services'), DELIVER_BENCH_DEFAULTS.services)
    .option('--rollback-deadline <s>', "dev's deadlineSeconds for the bad release", positiveInt('--rollback-deadline'), DELIVER_BENCH_DEFAULTS.rollbackDeadlineSeconds)
    .option('--skip <parts>', `comma-separated parts to skip: ${DELIVER_BENCH_PARTS.join(', ')} (the tag part runs anyway when another needs its image)`, '')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(async (opts: { instances: number; services: number; rollbackDeadline: number; skip: string; json?: boolean }) => {
      const skip = opts.skip.split(',').map((s) => s.trim()).filter((s) => s !== '');
      for (const s of skip) if (!(DELIVER_BENCH_PARTS as readonly string[]).includes(s)) program.error(`--skip takes ${DELIVER_BENCH_PARTS.join(', ')}; got '${s}'`);
      const { runDeliverBench, formatDeliverBench } = await import('../../../bench/deliver.ts');
      const result = await runDeliverBench(
        { instances: opts.instances, services: opts.services, rollbackDeadlineSeconds: opts.rollbackDeadline, skip: skip as DeliverBenchPart[] },
        // Progress on stderr either way: stdout carries only the figures (or the JSON).
        (line) => process.stderr.write(line + '\n'),
      );
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatDeliverBench(result) + '\n');
    });

  bench
    .command('gate')
    .description('what authentication costs one request: the same POST through Fastify with and without the HTTP gate (token, policy, audit), CPU time per request')
    .option('--requests <n>', 'requests per round', positiveInt('--requests'), 20_000)
    .option('--rounds <n>', 'rounds of each, alternating', positiveInt('--rounds'), 5)
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(async (opts: { requests: number; rounds: number; json?: boolean }) => {
      const { runGateBench, formatGateBench } = await import('../../../bench/gate.ts');
      const result = await runGateBench({ requests: opts.requests, rounds: opts.rounds }, opts.json ? undefined : (line) => process.stderr.write(line + '\n'));
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatGateBench(result) + '\n');
    });

  bench
    .command('apps')
    .description('the services framework (Marathon API) on real agents: scale up, failover after kill -9 of an agent, a rolling upgrade with health checks, and GET /v2/apps at 1,000 apps (simulated agents)')
    .option('--agents <n>', 'real agents (`slipway agent`, process containerizer), each a process of its own', positiveInt('--agents'), APPS_BENCH_DEFAULTS.agents)
    .option('--instances <n>', 'instances of the app scaled up (and failed over)', positiveInt('--instances'), APPS_BENCH_DEFAULTS.instances)
    .option('--upgrade-instances <n>', 'instances of the app upgraded', positiveInt('--upgrade-instances'), APPS_BENCH_DEFAULTS.upgradeInstances)
    .option('--min-health <fraction>', "the upgrade's upgradeStrategy.minimumHealthCapacity", fraction('--min-health'), APPS_BENCH_DEFAULTS.minimumHealthCapacity)
    .option('--max-over <fraction>', "the upgrade's upgradeStrategy.maximumOverCapacity", fraction('--max-over'), APPS_BENCH_DEFAULTS.maximumOverCapacity)
    .option('--list-apps <n>', 'apps for the list part', positiveInt('--list-apps'), APPS_BENCH_DEFAULTS.listApps)
    .option('--list-instances <n>', 'instances per app for the list part', positiveInt('--list-instances'), APPS_BENCH_DEFAULTS.listInstances)
    .option('--list-requests <n>', 'timed GET /v2/apps?embed=apps.tasks requests', positiveInt('--list-requests'), APPS_BENCH_DEFAULTS.listRequests)
    .option('--list-agents <n>', 'simulated agents for the list part', positiveInt('--list-agents'), APPS_BENCH_DEFAULTS.listAgents)
    .option('--topology <kind>', 'embedded (master and services framework in one process, as `slipway up`) or separate (`slipway master` + `slipway apps`)', APPS_BENCH_DEFAULTS.topology)
    .option('--skip <parts>', 'comma-separated parts to skip: scale, failover, upgrade, list, creates (skipping scale skips failover)', '')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(
      async (opts: { agents: number; instances: number; upgradeInstances: number; minHealth: number; maxOver: number; listApps: number; listInstances: number; listRequests: number; listAgents: number; topology: string; skip: string; json?: boolean }) => {
        if (opts.topology !== 'embedded' && opts.topology !== 'separate') program.error(`--topology must be embedded or separate, got '${opts.topology}'`);
        const parts = ['scale', 'failover', 'upgrade', 'list', 'creates'];
        const skip = opts.skip.split(',').map((s) => s.trim()).filter((s) => s !== '');
        for (const s of skip) if (!parts.includes(s)) program.error(`--skip takes ${parts.join(', ')}; got '${s}'`);
        const { runAppsBench, formatAppsBench } = await import('../../../bench/apps.ts');
        const result = await runAppsBench(
          {
            ...APPS_BENCH_DEFAULTS,
            agents: opts.agents,
            instances: opts.instances,
            upgradeInstances: opts.upgradeInstances,
            minimumHealthCapacity: opts.minHealth,
            maximumOverCapacity: opts.maxOver,
            listApps: opts.listApps,
            listInstances: opts.listInstances,
            listRequests: opts.listRequests,
            listAgents: opts.listAgents,
            topology: opts.topology as 'embedded' | 'separate',
            skip: skip as AppsBenchPart[],
          },
          // Progress on stderr either way: stdout carries only the figures (or the JSON).
          (line) => process.stderr.write(line + '\n'),
        );
        process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatAppsBench(result) + '\n');
      },
    );

  bench
    .command('ci')
    .description('CI on real agents: trigger → first step running with no idle executor (cold; process and Docker steps) and with one (warm), and many trivial builds at once')
    .option('--agents <n>', 'real agents (`slipway agent`, process containerizer, distinct hostnames), each a process of its own', positiveInt('--agents'), CI_BENCH_DEFAULTS.agents)
    .option('--builds <n>', 'builds triggered at once (one step, echo)', positiveInt('--builds'), CI_BENCH_DEFAULTS.builds)
    .option('--cold-samples <n>', 'cold starts timed (process step), each launching its executor from an offer', positiveInt('--cold-samples'), CI_BENCH_DEFAULTS.coldSamples)
    .option('--docker-samples <n>', 'cold starts timed with an image step', positiveInt('--docker-samples'), CI_BENCH_DEFAULTS.dockerSamples)
    .option('--warm-samples <n>', 'warm starts timed (an idle executor of the label is there)', positiveInt('--warm-samples'), CI_BENCH_DEFAULTS.warmSamples)
    .option('--executors-per-agent <n>', 'executors each agent has room for; maxExecutors of the throughput label is agents × this', positiveInt('--executors-per-agent'), CI_BENCH_DEFAULTS.executorsPerAgent)
    .option('--executor-cpus <n>', 'cpus of one executor', positiveNumber('--executor-cpus'), CI_BENCH_DEFAULTS.executorCpus)
    .option('--executor-mem <mb>', 'mem (MB) of one executor', positiveNumber('--executor-mem'), CI_BENCH_DEFAULTS.executorMem)
    .option('--skip <parts>', `comma-separated parts to skip: ${CI_BENCH_PARTS.join(', ')}`, '')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(
      async (opts: { agents: number; builds: number; coldSamples: number; dockerSamples: number; warmSamples: number; executorsPerAgent: number; executorCpus: number; executorMem: number; skip: string; json?: boolean }) => {
        if (opts.builds > 1000) program.error(`--builds must be at most 1000 (a job's concurrency limit), got ${opts.builds}`);
        const skip = opts.skip.split(',').map((s) => s.trim()).filter((s) => s !== '');
        for (const s of skip) if (!(CI_BENCH_PARTS as readonly string[]).includes(s)) program.error(`--skip takes ${CI_BENCH_PARTS.join(', ')}; got '${s}'`);
        const { runCiBench, formatCiBench } = await import('../../../bench/ci.ts');
        const result = await runCiBench(
          {
            agents: opts.agents,
            builds: opts.builds,
            coldSamples: opts.coldSamples,
            dockerSamples: opts.dockerSamples,
            warmSamples: opts.warmSamples,
            executorsPerAgent: opts.executorsPerAgent,
            executorCpus: opts.executorCpus,
            executorMem: opts.executorMem,
            skip: skip as CiBenchPart[],
          },
          // Progress on stderr either way: stdout carries only the figures (or the JSON).
          (line) => process.stderr.write(line + '\n'),
        );
        process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : formatCiBench(result) + '\n');
      },
    );
}

function nonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number (0 or more), got '${value}'`);
    return n;
  };
}

function fraction(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} must be a number from 0 to 1, got '${value}'`);
    return n;
  };
}
