import { SlipwayError } from '../../core/errors.ts';

// Failures of the CI framework's input checks, each with its own code (mapped to HTTP in
// src/core/http-status.ts). Each carries every problem found, not only the first, so that a user
// fixes a file or a request in one go; and each Error message spells them all out, so that a log
// line or a failed test says what is wrong.

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

  constructor(readonly problems: PipelineProblem[]) {
    super(`invalid pipeline: ${listed(problems.map(formatPipelineProblem))}`);
  }

  /** The answer body of the HTTP layer: `{code, message, details}`. */
  get body(): CiErrorBody<PipelineProblem> {
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

  constructor(readonly details: FieldProblem[]) {
    super(`invalid job: ${listed(details.map(formatFieldProblem))}`);
  }

  get body(): CiErrorBody<FieldProblem> {
    return { code: this.code, message: 'invalid job', details: this.details.map((d) => ({ ...d })) };
  }
}

/** An executor spec (`PUT /ci/v1/executors/{label}`) that cannot be saved. */
export class InvalidExecutorSpec extends SlipwayError {
  readonly code = 'INVALID_EXECUTOR_SPEC';

  constructor(readonly details: FieldProblem[]) {
    super(`invalid executor spec: ${listed(details.map(formatFieldProblem))}`);
  }

  get body(): CiErrorBody<FieldProblem> {
    return { code: this.code, message: 'invalid executor spec', details: this.details.map((d) => ({ ...d })) };
  }
}

/** The JSON body CI's HTTP layer answers a refused input with (status from the code's entry in http-status.ts). */
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

/** A job or build that does not exist (404). */
export class JobNotFound extends SlipwayError {
  readonly code = 'CI_NOT_FOUND';
}
