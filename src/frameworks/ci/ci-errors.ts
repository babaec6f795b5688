import { SlipwayError } from '../../core/errors.ts';

// Failures of the CI framework: what does not exist, what conflicts, and its input checks. Each
// has its own code and HTTP status; CI's routes answer them through ciErrorReply (`{code, message,
// details?}`), Jenkins's through the plain-text reply. The input checks carry every problem found,
// not only the first, so that a user fixes a file or a request in one go; and each Error message
// spells them all out, so that a log line or a failed test says what is wrong.

/** A job, build, executor, step, artifact or queue item that does not exist. */
export class CiNotFound extends SlipwayError {
  readonly code = 'CI_NOT_FOUND';
  readonly status = 404;
}

/** A job that does not exist (a verb of the framework, a route, a webhook naming it). */
export class JobNotFound extends CiNotFound {
  constructor(readonly job: string) {
    super(`no job ${job}`);
  }
}

/** A build that does not exist (`rebuild`, a route naming it). */
export class BuildNotFound extends CiNotFound {
  constructor(
    readonly job: string,
    readonly number: number,
  ) {
    super(`no build ${job} #${number}`);
  }
}

/** A request that does not fit the resource's state (cancel an ended build, ...). */
export class CiConflict extends SlipwayError {
  readonly code = 'CI_CONFLICT';
  readonly status = 409;
}

/** A malformed request (a bad number, a path out of bounds). */
export class CiBadRequest extends SlipwayError {
  readonly code = 'CI_BAD_REQUEST';
  readonly status = 400;
}

/** An artifact upload that is not from the executor running the build (no token, a wrong one, another build's). */
export class ArtifactUploadForbidden extends SlipwayError {
  readonly code = 'CI_FORBIDDEN';
  readonly status = 403;
}

/**
 * A deploy token asked for by someone other than the executor running the build, for a build that
 * is not running, for a service the job does not list in `deploys` or no step of its pipeline
 * deploys, or of a CI server without delivery.
 */
export class DeployTokenRefused extends SlipwayError {
  readonly code = 'CI_FORBIDDEN';
  readonly status = 403;
}

/** An artifact larger than the server takes (`maxArtifactBytes`): said by its length, or found while it streams. */
export class ArtifactTooLarge extends SlipwayError {
  readonly code = 'CI_ARTIFACT_TOO_LARGE';
  readonly status = 413;

  constructor(readonly limit: number) {
    super(`an artifact may have at most ${limit} bytes`);
  }
}

/** CI cannot take the request because it is stopping (a trigger that arrives during shutdown). */
export class CiStopping extends SlipwayError {
  readonly code = 'CI_STOPPING';
  readonly status = 503;

  constructor() {
    super('CI is stopping');
  }
}

/**
 * The tag or branch a build asks for is not in the job's repository. The build ends `error` with
 * this message; should it reach an API, 422: the request is well-formed, but names a ref that the
 * repository does not have (the job itself exists, so not 404).
 */
export class RefNotFound extends SlipwayError {
  readonly code = 'CI_REF_NOT_FOUND';
  readonly status = 422;

  constructor(
    readonly repo: string,
    readonly ref: { tag?: string; branch?: string },
  ) {
    super(`${ref.tag !== undefined ? `tag ${ref.tag}` : `branch ${ref.branch ?? 'HEAD'}`} not found in ${repo}`);
  }
}

/**
 * The commit of a build has no pipeline file (`.slipway.yml`, or the job's `pipelineFile`). The
 * build ends `error` with this message; should it reach an API, 422, as for an invalid pipeline.
 */
export class PipelineFileNotFound extends SlipwayError {
  readonly code = 'CI_PIPELINE_FILE_NOT_FOUND';
  readonly status = 422;

  constructor(
    readonly repo: string,
    readonly commit: string,
    readonly file: string,
  ) {
    super(`no ${file} at commit ${commit.slice(0, 12)} of ${repo}`);
  }
}

/**
 * One problem of a pipeline's YAML. `path` names the value (`steps[1].when.event`,
 * `steps.build.image` for Woodpecker's map form, `` for the document itself); `line` and `column`
 * (1-based) point into the YAML text: at the value, at the key of an unknown key, at the map that
 * lacks a required key, or where the YAML syntax error is.
 */
export interface PipelineProblem {
  path: string;
  message: string;
  line: number;
  column: number;
}

/** `line 4, column 7: steps[1].image: must be a string`. */
export function formatPipelineProblem(p: PipelineProblem): string {
  return `line ${p.line}, column ${p.column}: ${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/** A pipeline (`.slipway.yml` or a job's inline YAML) that cannot be run as written. */
export class InvalidPipeline extends SlipwayError {
  readonly code = 'INVALID_PIPELINE';
  readonly status = 422;

  constructor(readonly problems: PipelineProblem[]) {
    super(`invalid pipeline: ${listed(problems.map(formatPipelineProblem))}`);
  }

  /** The answer body of the HTTP layer: `{code, message, details}`. */
  override get body(): CiErrorBody<PipelineProblem> {
    return { code: this.code, message: 'invalid pipeline', details: this.problems.map((p) => ({ ...p })) };
  }
}

/**
 * One problem of a JSON request body. `field` is the field of the body, dotted
 * (`triggers.poll.intervalSeconds`, `env.FOO`, `volumes[0].mode`; `` for the body itself). For a
 * job's inline `pipeline`, `field` is `pipeline`, `path` the path inside the YAML, and `line` and
 * `column` point into the YAML text.
 */
export interface FieldProblem {
  field: string;
  message: string;
  path?: string;
  line?: number;
  column?: number;
}

export function formatFieldProblem(p: FieldProblem): string {
  const where = p.line !== undefined ? ` (line ${p.line}, column ${p.column ?? 1})` : '';
  const inner = p.path !== undefined && p.path !== '' ? `${p.path}: ` : '';
  return `${p.field === '' ? '(body)' : p.field}${where}: ${inner}${p.message}`;
}

/** A job definition (`PUT /ci/v1/jobs/{name}`) that cannot be saved: a bad name, field or inline pipeline. */
export class InvalidJob extends SlipwayError {
  readonly code = 'INVALID_JOB';
  readonly status = 422;

  constructor(readonly details: FieldProblem[]) {
    super(`invalid job: ${listed(details.map(formatFieldProblem))}`);
  }

  override get body(): CiErrorBody<FieldProblem> {
    return { code: this.code, message: 'invalid job', details: this.details.map((d) => ({ ...d })) };
  }
}

/** An executor spec (`PUT /ci/v1/executors/{label}`) that cannot be saved. */
export class InvalidExecutorSpec extends SlipwayError {
  readonly code = 'INVALID_EXECUTOR_SPEC';
  readonly status = 422;

  constructor(readonly details: FieldProblem[]) {
    super(`invalid executor spec: ${listed(details.map(formatFieldProblem))}`);
  }

  override get body(): CiErrorBody<FieldProblem> {
    return { code: this.code, message: 'invalid executor spec', details: this.details.map((d) => ({ ...d })) };
  }
}

/** The JSON body CI's HTTP layer answers a refused input with (with the error's status). */
export interface CiErrorBody<D> {
  code: string;
  message: string;
  details: D[];
}

/** One problem on the same line; several, one per line, so that each reads on its own. */
function listed(lines: string[]): string {
  if (lines.length === 1) return lines[0] ?? '';
  return `${lines.length} problems:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}
