import type { BuildEvent, CommandsStep, PipelineStep } from './pipeline.ts';

// The environment variables CI gives every step, documented for users in docs/pipelines.md
// ("Variables CI sets"). Names follow Woodpecker's where the meaning is the same; Slipway's unit of
// work is a build (as in Jenkins), so its variables are CI_BUILD_*, with Woodpecker's CI_PIPELINE_*
// names beside them for scripts written for Woodpecker.

/** What a build knows when it runs a step; the engine fills it in. */
export interface CiBuildContext {
  jobName: string;
  buildNumber: number;
  event: BuildEvent;
  /** The job's `repo`, as configured. */
  repo: string;
  /** The full SHA of the commit built. */
  commitSha: string;
  /** The branch built (the repository's default branch when the job names none); absent for a tag build. */
  branch?: string;
  /** The tag built; only for `tag` builds. */
  tag?: string;
  /** The workspace's absolute path: the same in process and image steps (an image step has it mounted at that path). */
  workspace: string;
  /** The executor label the build runs on. */
  executorLabel: string;
  /** When the build started running. */
  startedAt: Date;
}

/** Every name CI sets, in the order of docs/pipelines.md. */
export const CI_VARIABLE_NAMES = [
  'CI',
  'CI_SYSTEM_NAME',
  'CI_JOB_NAME',
  'CI_REPO_CLONE_URL',
  'CI_BUILD_NUMBER',
  'CI_PIPELINE_NUMBER',
  'CI_BUILD_EVENT',
  'CI_PIPELINE_EVENT',
  'CI_BUILD_STARTED',
  'CI_PIPELINE_STARTED',
  'CI_COMMIT_SHA',
  'CI_COMMIT_REF',
  'CI_COMMIT_BRANCH',
  'CI_COMMIT_TAG',
  'CI_WORKSPACE',
  'CI_STEP_NAME',
  'CI_EXECUTOR_LABEL',
] as const;

export type CiVariableName = (typeof CI_VARIABLE_NAMES)[number];

/**
 * `CI` and every `CI_*` name belong to CI: a step's `environment` and a job's `env` may not set
 * them (refused when the pipeline or job is parsed), so a variable a script reads is always CI's.
 * Woodpecker does the same by letting its own values win silently; a refusal says it up front.
 */
export function isReservedVariableName(name: string): boolean {
  return name === 'CI' || name.startsWith('CI_');
}

/** The CI_* variables of one step of a build. Variables with no value (CI_COMMIT_TAG of a push) are empty strings. */
export function ciVariables(build: CiBuildContext, step: Pick<PipelineStep, 'name'>): Record<CiVariableName, string> {
  const started = String(Math.floor(build.startedAt.getTime() / 1000));
  const ref = build.tag !== undefined ? `refs/tags/${build.tag}` : build.branch !== undefined ? `refs/heads/${build.branch}` : '';
  return {
    CI: 'true',
    CI_SYSTEM_NAME: 'slipway',
    CI_JOB_NAME: build.jobName,
    CI_REPO_CLONE_URL: build.repo,
    CI_BUILD_NUMBER: String(build.buildNumber),
    CI_PIPELINE_NUMBER: String(build.buildNumber),
    CI_BUILD_EVENT: build.event,
    CI_PIPELINE_EVENT: build.event,
    CI_BUILD_STARTED: started,
    CI_PIPELINE_STARTED: started,
    CI_COMMIT_SHA: build.commitSha,
    CI_COMMIT_REF: ref,
    CI_COMMIT_BRANCH: build.tag !== undefined ? '' : (build.branch ?? ''),
    CI_COMMIT_TAG: build.tag ?? '',
    CI_WORKSPACE: build.workspace,
    CI_STEP_NAME: step.name,
    CI_EXECUTOR_LABEL: build.executorLabel,
  };
}

/**
 * The whole environment of a step, lowest first: the job's `env`, then the step's `environment`,
 * then CI's variables (which neither may set).
 */
export function stepEnvironment(
  build: CiBuildContext,
  step: Pick<CommandsStep, 'name' | 'environment'>,
  jobEnv: Readonly<Record<string, string>>,
): Record<string, string> {
  return { ...jobEnv, ...step.environment, ...ciVariables(build, step) };
}
