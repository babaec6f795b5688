/** `slipway bench deliver`'s options and targets, apart from bench/deliver.ts so that the CLI reads them without loading the bench. */

export const DELIVER_BENCH_PARTS = ['tag', 'promote', 'rollback', 'parallel'] as const;
export type DeliverBenchPart = (typeof DELIVER_BENCH_PARTS)[number];

export interface DeliverBenchOptions {
  /** Instances of the sample service (parts tag, promote, rollback). */
  instances: number;
  /** Services released and promoted at once (part parallel). */
  services: number;
  /** dev's `deadlineSeconds` for the bad release (part rollback). */
  rollbackDeadlineSeconds: number;
  skip: DeliverBenchPart[];
}

export const DELIVER_BENCH_DEFAULTS: DeliverBenchOptions = { instances: 3, services: 20, rollbackDeadlineSeconds: 10, skip: [] };

/** Issue 14, section 4. */
export const DELIVER_BENCH_TARGETS = { tagToHealthySeconds: 15, promoteSeconds: 5, rollbackAfterDeadlineSeconds: 5 };
