/**
 * What the CI framework persists, and the narrow port a store implements for it (`src/store`
 * does, over SQLite in the embedded default; PostgreSQL in cluster mode). Build logs and
 * artifacts are files in CI's data dir, not in the store; the store keeps what they belong to.
 *
 * Contract:
 * - `write` applies a batch atomically and in order (a later change of the same key wins) and
 *   resolves once it is durable; a rejected write changed nothing. CI answers an API call, hands
 *   a build to an executor or launches an executor only after the write that records it.
 * - `load` returns what CI needs to run: every job, executor spec and executor, the trigger
 *   states, every build not finished (queued or running), the last finished build of each job,
 *   and each job's highest build number (numbers are never reused, even after deletions).
 * - `builds` pages through a job's history, newest first.
 * - Documents are JSON values CI owns; the store never interprets them beyond the keys named here.
 * - JOB_REMOVED removes the job, its builds and its trigger state.
 */
export interface CiStore {
  load(): Promise<StoredCiState>;
  write(changes: readonly CiChange[]): Promise<void>;
  /** Builds of `job` with a number below `before` (all when absent), newest first, at most `limit`. */
  builds(job: string, options: { limit: number; before?: number }): Promise<StoredBuild[]>;
  close(): Promise<void>;
}

export interface StoredBuild {
  job: string;
  number: number;
  /** Whether the build has ended (success, failure, cancelled, error): what `load` leaves out. */
  finished: boolean;
  doc: unknown;
}

export type CiChange =
  | { type: 'FRAMEWORK_ID'; frameworkId: string }
  | { type: 'JOB_SAVED'; name: string; doc: unknown }
  | { type: 'JOB_REMOVED'; name: string }
  | { type: 'EXECUTOR_SPEC_SAVED'; label: string; doc: unknown }
  | { type: 'EXECUTOR_SPEC_REMOVED'; label: string }
  | { type: 'BUILD_SAVED'; build: StoredBuild }
  | { type: 'EXECUTOR_SAVED'; id: string; doc: unknown }
  | { type: 'EXECUTOR_REMOVED'; id: string }
  /** What a job's triggers have seen (polled tags and commits, last cron run). */
  | { type: 'TRIGGER_STATE_SAVED'; job: string; doc: unknown };

export interface StoredCiState {
  frameworkId?: string;
  jobs: { name: string; doc: unknown }[];
  executorSpecs: { label: string; doc: unknown }[];
  executors: { id: string; doc: unknown }[];
  triggerStates: { job: string; doc: unknown }[];
  /** Builds not finished, and the last finished one of each job. */
  builds: StoredBuild[];
  /** Each job's highest build number ever given. */
  lastNumbers: Map<string, number>;
}
