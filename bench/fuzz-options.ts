// The options of `slipway bench fuzz`, apart from bench/fuzz.ts so that the CLI reads its defaults
// without loading the suite.

export interface FuzzBenchOptions {
  seconds: number;
  seed: number;
  concurrency: number;
  heavy: boolean;
  slowConnections: number;
  slowSeconds: number;
}

export const FUZZ_BENCH_DEFAULTS: FuzzBenchOptions = { seconds: 120, seed: 1, concurrency: 4, heavy: true, slowConnections: 300, slowSeconds: 20 };

/** The event-loop budget of issue 11: no request may block the loop longer. */
export const LOOP_BUDGET_MS = 100;

