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

/**
 * What a step does (`kind:` in the YAML, default `commands`):
 * - `commands`: shell commands, as a process on the executor's host or in `image`;
 * - `build-image`: build a runtime image from a Dockerfile in the workspace and push it to a registry of the job;
 * - `deploy`: deploy the image built to an environment, as a promotion;
 * - `publish`: upload workspace files to an artifact store of the job (an HTTP origin that takes PUT).
 * The engine runs each; a deploy step needs the CI server's delivery access (a token scoped to
 * its service, given to the executor for the step).
 */
export type StepKind = 'commands' | 'build-image' | 'deploy' | 'publish';

/** What every kind of step has. */
interface StepCommon {
  /** Unique in the pipeline; `[a-zA-Z0-9_.-]+`. */
  name: string;
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

/** A step of shell commands (the only kind before `kind:` existed). */
export interface CommandsStep extends StepCommon {
  kind: 'commands';
  /** Docker image the commands run in, with the workspace mounted; absent: a process on the executor's host. */
  image?: string;
  /** Shell commands, run one after another by `sh -e` (the first that fails fails the step). */
  commands: string[];
  /** Variables for this step, on top of the build's (job env, CI_* variables). */
  environment: Record<string, string>;
}

/**
 * Builds an image with the host's engine and pushes it. Paths are relative to the workspace, the
 * Dockerfile inside the context; `tags` are templates (`{{tag}}`, `{{commit}}`, `{{build}}`:
 * step-template.ts) of `REPOSITORY:TAG` (`web:{{tag}}`, `team/web:sha-{{commit}}`), each pushed
 * as `<registry address>/REPOSITORY:TAG`.
 */
export interface BuildImageStep extends StepCommon {
  kind: 'build-image';
  dockerfile: string;
  context: string;
  /** `REPOSITORY:TAG` templates, the repository under the registry's address. */
  tags: string[];
  /** The name of a registry configured in the job. */
  registry: string;
  buildArgs: Record<string, string>;
}

/** Deploys the image built to an environment (`to`), following the deployment to its end or its deadline. */
export interface DeployStep extends StepCommon {
  kind: 'deploy';
  service: string;
  to: string;
  deadlineSeconds?: number;
}

/**
 * Uploads the workspace files matching `files` (globs) to the artifact store `store` of the job,
 * under `target` (a template; ending in `/`: a directory, each file under its workspace path) and
 * under `sha256/<hex>` of its content.
 */
export interface PublishStep extends StepCommon {
  kind: 'publish';
  store: string;
  files: string[];
  target: string;
}

export type PipelineStep = CommandsStep | BuildImageStep | DeployStep | PublishStep;

/**
 * What a step made that outlives the build, recorded on the build (its `outputs`), by `kind`: a
 * file published to an artifact store, or an image pushed to a registry.
 */
export type StepOutput = ArtifactOutput | ImageOutput | ReleaseOutput;

/** A file a publish step stored: `url` is where it is by name, `contentUrl` where it is by content hash. */
export interface ArtifactOutput {
  kind: 'artifact';
  step: string;
  store: string;
  name: string;
  sha256: string;
  size: number;
  url: string;
  contentUrl: string;
}

/**
 * An image a build-image step pushed: `name` is the full reference pushed
 * (`127.0.0.1:5000/web:v1.2.0`), `digest` the manifest's digest in that registry
 * (`sha256:...`), so `<address>/<repository>@<digest>` names exactly these bytes.
 */
export interface ImageOutput {
  kind: 'image';
  step: string;
  registry: string;
  name: string;
  digest: string;
}

/**
 * The release a deploy step made of the build's images (or found with the same images: a build
 * run again), `name` its version, and its promotion to `env`: its id and the state it ended in
 * (`succeeded`, `failed`, `rejected`; or the last seen when the step was cancelled).
 */
export interface ReleaseOutput {
  kind: 'release';
  step: string;
  service: string;
  name: string;
  env: string;
  promotion: string;
  state: string;
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
