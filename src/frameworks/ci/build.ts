import type { BuildEvent, Pipeline, StepStatus } from './pipeline/pipeline.ts';

/**
 * A build, as CI keeps it (the document the store holds for it).
 *
 * Lifecycle:
 *
 *   queued ──assigned to an executor──► running ──BUILD_DONE──► success | failure | cancelled | error
 *     │                                    │
 *     ├── cancel ──► cancelled             ├── cancel ──► (CANCEL sent) … ► cancelled
 *     └── no pipeline / bad pipeline ──► error      └── its executor ends or is lost ──► error
 *
 * A build that could not even be planned (no pipeline file at the commit, invalid YAML) is
 * created in `error` with the reason, so the user sees why a trigger did nothing.
 */
export type BuildStatus = 'queued' | 'running' | 'success' | 'failure' | 'cancelled' | 'error';

export const FINISHED: ReadonlySet<BuildStatus> = new Set<BuildStatus>(['success', 'failure', 'cancelled', 'error']);

/** What started a build: `manual` (API, CLI, Jenkins API), `tag` v1.2.3, `push` of a commit, `cron`, `webhook`, `rebuild` of #n. */
export interface BuildCause {
  kind: 'manual' | 'tag' | 'push' | 'cron' | 'webhook' | 'rebuild';
  /** Human words: "tag v1.2.3", "commit 1a2b3c4 on main", "rebuild of #12", "manual (by the API)". */
  description: string;
}

export interface BuildStep {
  name: string;
  status: StepStatus;
  exitCode?: number;
  startedAt?: number;
  finishedAt?: number;
  durationMs?: number;
  error?: string;
}

export interface Build {
  job: string;
  number: number;
  status: BuildStatus;
  cause: BuildCause;
  event: BuildEvent;
  repo: string;
  commit?: string;
  branch?: string;
  tag?: string;
  /** The executor label it needs. */
  label: string;
  /** The pipeline as it was when the build was queued (a rebuild runs the same). */
  pipeline?: Pipeline;
  steps: BuildStep[];
  queuedAt: number;
  startedAt?: number;
  finishedAt?: number;
  executorId?: string;
  agentId?: string;
  hostname?: string;
  error?: string;
  artifacts: string[];
  /** Set once a cancel was asked for a running build. */
  cancelRequested?: boolean;
  /** The highest report sequence number applied (executor protocol). */
  seq: number;
  /** Bytes of the whole log and of each step's log as of `seq` (to cut a log back after a crash). */
  logBytes?: { whole: number; steps: Record<string, number> };
}

export function buildKey(job: string, number: number): string {
  return `${job}#${number}`;
}

export function isFinished(b: Build): boolean {
  return FINISHED.has(b.status);
}
