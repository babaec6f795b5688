/**
 * Options, defaults and targets of `slipway bench ci` (bench/ci.ts), apart so that the CLI can
 * show its defaults without loading the benchmark.
 */

export type CiBenchPart = 'warm' | 'cold' | 'docker' | 'docker-executor' | 'throughput' | 'profile';

export const CI_BENCH_PARTS: readonly CiBenchPart[] = ['warm', 'cold', 'docker', 'docker-executor', 'throughput', 'profile'];

export interface CiBenchOptions {
  /** Real agents (`slipway agent`, process containerizer), each a process of its own. */
  agents: number;
  /** Builds triggered at once for totalSeconds. */
  builds: number;
  /** Cold samples (process step): each needs its executor launched from an offer. */
  coldSamples: number;
  /** Cold samples with an image step, and cold samples on an executor in a container (each). */
  dockerSamples: number;
  /** Warm samples: an idle executor of the label is there. */
  warmSamples: number;
  /** Executors each agent has room for (the throughput label's maxExecutors is agents × this). */
  executorsPerAgent: number;
  /** Resources of one executor. */
  executorCpus: number;
  executorMem: number;
  skip: CiBenchPart[];
}

export const CI_BENCH_DEFAULTS: CiBenchOptions = {
  agents: 3,
  builds: 100,
  coldSamples: 5,
  dockerSamples: 5,
  warmSamples: 10,
  executorsPerAgent: 4,
  executorCpus: 0.5,
  executorMem: 512,
  skip: [],
};

export const CI_BENCH_TARGETS = {
  coldStartP50Ms: 1000,
  coldStartDockerP50Ms: 2000,
  warmStartP50Ms: 200,
  totalSeconds: 60,
  /** No agent runs more than this share of the builds. */
  maxAgentShare: 0.5,
};
