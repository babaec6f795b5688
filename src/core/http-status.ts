import { SlipwayError } from './errors.ts';

/**
 * The one place where error codes meet HTTP: every SlipwayError's `code` maps to a status here,
 * and every HTTP layer answers with it. A code missing from the table is a bug (500).
 */
const STATUS_BY_CODE: Record<string, number> = {
  INVALID_RESOURCES: 400,
  INVALID_ATTRIBUTES: 400,
  INVALID_CALL: 400,
  INVALID_REQUEST: 400,
  INVALID_HEALTH_CHECK: 400,
  MARATHON_INVALID_APP: 422,
  DEPLOYMENT_CYCLE: 422,
  INVALID_APPS_REQUEST: 400,
  APP_NOT_FOUND: 404,
  GROUP_NOT_FOUND: 404,
  APP_TASK_NOT_FOUND: 404,
  DEPLOYMENT_NOT_FOUND: 404,
  APP_VERSION_NOT_FOUND: 404,
  APP_ALREADY_EXISTS: 409,
  GROUP_ALREADY_EXISTS: 409,
  STORE_UNAVAILABLE: 503,
  APP_LOCKED: 409,
  SERVICE_PORTS_EXHAUSTED: 409,
  APPS_STORE_UNAVAILABLE: 503,
  MISSING_STREAM_ID: 400,
  FRAMEWORK_NOT_SUBSCRIBED: 403,
  FRAMEWORK_REMOVED: 403,
  STREAM_ID_MISMATCH: 403,
  AGENT_GONE: 403,
  AGENT_NOT_FOUND: 404,
  TASK_NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  AGENT_UNAVAILABLE: 503,
  CONTAINERIZER_UNAVAILABLE: 503,
  INVALID_PIPELINE: 422,
  INVALID_JOB: 422,
  INVALID_ARTIFACT_PATTERN: 422,
  CI_NOT_FOUND: 404,
  CI_CONFLICT: 409,
  CI_BAD_REQUEST: 400,
  GIT_FAILED: 502,
  INVALID_EXECUTOR_SPEC: 422,
  INVALID_CRON: 422,
  INVALID_WEBHOOK_PAYLOAD: 400,
  WEBHOOK_DISABLED: 403,
  WEBHOOK_SIGNATURE_INVALID: 403,
};

export function httpStatusOf(code: string): number {
  return STATUS_BY_CODE[code] ?? 500;
}

/**
 * Status and plain-text body for an error thrown in a request handler: a SlipwayError answers
 * with its code's status and message; a framework error with a 4xx status (malformed JSON) keeps
 * it; anything else is a 500 whose details stay in the log, not in the answer.
 */
export function httpErrorReply(error: unknown): { status: number; message: string; internal: boolean } {
  if (error instanceof SlipwayError) return { status: httpStatusOf(error.code), message: error.message, internal: false };
  const status = (error as { statusCode?: number }).statusCode ?? 500;
  if (status >= 500) return { status, message: 'internal error', internal: true };
  return { status, message: (error as Error).message, internal: false };
}
