import { SlipwayError } from '../../../core/errors.ts';
import { httpErrorReply } from '../../../core/http-error-reply.ts';

/** CI's JSON error body (`/ci/v1`): a stable code, a message, and the problems when there are several. */
export interface CiErrorReplyBody {
  code: string;
  message: string;
  details?: unknown[];
}

/**
 * How CI's REST API answers a failed request: the error's status, and as JSON the body the error
 * provides (InvalidJob's, InvalidPipeline's and InvalidExecutorSpec's `{code, message, details}`)
 * or else `{code, message}`. An error that is not ours keeps the 4xx of the HTTP framework
 * (`HTTP_ERROR`, e.g. malformed JSON); a bug answers 500 `{code: HTTP_ERROR, message: internal
 * error}` and is logged by the caller (`internal`).
 */
export function ciErrorReply(error: unknown): { status: number; body: CiErrorReplyBody; internal: boolean } {
  const { status, message, internal } = httpErrorReply(error);
  if (!(error instanceof SlipwayError) || internal) return { status, body: { code: 'HTTP_ERROR', message }, internal };
  // The errors raised in CI give CI's shape (see ci-errors.ts).
  const own = error.body as CiErrorReplyBody | undefined;
  return { status, body: own ?? { code: error.code, message }, internal };
}
