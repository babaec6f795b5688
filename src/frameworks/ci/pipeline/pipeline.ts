/**
 * A CI pipeline, as parsed from `.slipway.yml` (or a job's inline YAML), in the convention of
 * container-native CI (Woodpecker, Drone): steps with an image (run in that Docker image with the
 * workspace mounted) or without (run as a process in the workspace on the executor's host),
 * their commands, environment and conditions, a DAG by `depends_on` (without it, steps run in
 * order), and the artifacts kept after the build. The user's documentation is docs/pipelines.md.
 *
 * This module holds only the model; `parsePipeline` (parse-pipeline.ts) builds it from YAML, the
 * pipeline engine runs it. Neither knows the CI server.
 */

/** What started a build. */
export type BuildEvent = 'manual' | 'push' | 'tag' | 'cron';

export type StepStatus = 'pending' | 'running' | 'success' | 'failure' | 'skipped' | 'cancelled' | 'error';

/**
 * One condition of a step's `when`. Every field given must match (AND); a field's list matches if
 * any entry does (OR). Branch patterns are globs (`release/*`). `status` is about the steps
 * upstream of this one: `success` (the default: none failed, `failure: ignore` aside) or
 * `failure` (one failed), or both.
 */
export interface StepCondition {
  event?: BuildEvent[];
  branch?: string[];
  status?: ('success' | 'failure')[];
}

export interface PipelineStep {
  /** Unique in the pipeline; `[a-zA-Z0-9_.-]+`. */
  name: string;
  /** Docker image the commands run in, with the workspace mounted; absent: a process on the executor's host. */
  image?: string;
  /** Shell commands, run one after another by `sh -e` (the first that fails fails the step). */
  commands: string[];
  /** Variables for this step, on top of the build's (job env, CI_* variables). */
  environment: Record<string, string>;
  /** Conditions: the step runs when any of them holds (Woodpecker's rule); empty: when the steps upstream succeeded. */
  when: StepCondition[];
  /**
   * Names of the steps this one waits for, resolved by the parser: when no step of the pipeline
   * has `depends_on`, each step waits for the one before it in file order; when any has, steps
   * without it wait for nothing and start at once (Woodpecker's rule). Always a DAG.
   */
  dependsOn: string[];
  /** `ignore`: a failure of this step does not fail the build nor stop its dependents. */
  failure: 'fail' | 'ignore';
}

export interface Pipeline {
  steps: PipelineStep[];
  /** Paths (relative to the workspace, globs allowed) kept after the build and served by CI. */
  artifacts: string[];
  /** The executor label the pipeline needs; a job's own `executor` wins over it; neither: `default`. */
  executor?: string;
}

/** Where a problem is in the YAML text: 1-based line and column. */
export interface SourcePosition {
  line: number;
  column: number;
}
