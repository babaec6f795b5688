/**
 * Options, defaults and targets of `slipway bench apps` (bench/apps.ts), apart so that the CLI
 * can show its defaults without loading the benchmark.
 */

export type AppsBenchPart = 'scale' | 'failover' | 'upgrade' | 'list' | 'creates';

export interface AppsBenchOptions {
  agents: number;
  instances: number;
  instanceCpus: number;
  instanceMem: number;
  upgradeInstances: number;
  minimumHealthCapacity: number;
  maximumOverCapacity: number;
  listApps: number;
  listInstances: number;
  listRequests: number;
  listAgents: number;
  /** The creates part: apps declared before timing, and how many creates are timed. */
  createsBaseApps: number;
  createsSamples: number;
  topology: 'embedded' | 'separate';
  skip: AppsBenchPart[];
}

export const APPS_BENCH_DEFAULTS: AppsBenchOptions = {
  agents: 3,
  instances: 200,
  instanceCpus: 0.01,
  instanceMem: 8,
  upgradeInstances: 50,
  minimumHealthCapacity: 0.8,
  maximumOverCapacity: 0.2,
  listApps: 1000,
  listInstances: 10,
  listRequests: 200,
  listAgents: 100,
  createsBaseApps: 10_000,
  createsSamples: 500,
  topology: 'embedded',
  skip: [],
};

export const APPS_BENCH_TARGETS = {
  scaleUpSeconds: 2,
  failoverSeconds: 8,
  listAppsP50Ms: 50,
  /** Issue 11 §2: at least 500 POST /v2/apps per second with 10,000 apps declared. */
  createsPerSecondAt10k: 500,
};

