import type { BuildEvent, CommandsStep } from '../pipeline/pipeline.ts';
import { stepEnvironment as ciStepEnvironment } from '../pipeline/ci-variables.ts';

/** The build a pipeline runs for, as the engine needs it: names, cause, commit, job variables. */
export interface BuildContext {
  jobName: string;
  number: number;
  event: BuildEvent;
  commitSha?: string;
  branch?: string;
  tag?: string;
  /** The job's variables, given to every step (a step's own `environment` wins over them). */
  env: Record<string, string>;
  /**
   * The job's secrets, given to every step as `env` is (after it); every value, and its base64
   * and URL-encoded forms, is masked in the steps' logs.
   */
  secrets?: Record<string, string>;
  /** The job's `repo` (CI_REPO_CLONE_URL). */
  repo?: string;
  /** The executor label the build runs on (CI_EXECUTOR_LABEL). */
  executorLabel?: string;
  /**
   * A name of this build unique on the Docker engine, in the label `slipway.ci.build` of its
   * containers; default `<jobName>#<number>`. Give one when the same job name may exist twice
   * (two CI servers on one engine, a job deleted and made again).
   */
  id?: string;
}

/** PATH for a process step when the executor's own environment has none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The label value that names a build's containers. */
export function buildId(build: BuildContext): string {
  return build.id ?? defaultBuildId(build.jobName, build.number);
}

/** The id of a build whose context gives none: `<job>#<number>`. */
export function defaultBuildId(jobName: string, number: number): string {
  return `${jobName}#${number}`;
}

/**
 * A step's whole environment, later entries winning: for a process step the executor's PATH and
 * HOME (nothing else of the executor's environment leaks into builds), then the job's variables
 * and secrets, the step's `environment`, and CI's variables (ci-variables.ts, the list of docs/pipelines.md).
 * An image step gets no PATH or HOME from the executor: those of its image apply.
 *
 * `workspace` is the same path in both kinds of step: an image step has the workspace mounted
 * where it is on the host (see image-step.ts for why).
 */
export function stepEnvironment(step: CommandsStep, build: BuildContext, workspace: string, startedAt: Date): Record<string, string> {
  const host: Record<string, string> = {};
  if (step.image === undefined) {
    host['PATH'] = process.env['PATH'] ?? DEFAULT_PATH;
    const home = process.env['HOME'];
    if (home !== undefined) host['HOME'] = home;
  }
  const ci = ciStepEnvironment(
    {
      jobName: build.jobName,
      buildNumber: build.number,
      event: build.event,
      repo: build.repo ?? '',
      commitSha: build.commitSha ?? '',
      ...(build.branch !== undefined ? { branch: build.branch } : {}),
      ...(build.tag !== undefined ? { tag: build.tag } : {}),
      workspace,
      executorLabel: build.executorLabel ?? '',
      startedAt,
    },
    step,
    { ...build.env, ...build.secrets },
  );
  return { ...host, ...ci };
}
