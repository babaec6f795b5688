import { SlipwayError } from '../../../core/errors.ts';
import { httpErrorReply } from '../../../core/http-error-reply.ts';

/** Marathon's error bodies: `{message}`, with `details` (422) or `deployments` (409) when the error has them. */
export type MarathonErrorReplyBody = { message: string } & Record<string, unknown>;

/**
 * How the Marathon routes answer a failed request, as Marathon 1.x does: the error's status, and
 * as JSON the body the error provides (MarathonValidationError's `{message, details:[{path,
 * errors}]}`, AppLocked's `{message, deployments:[{id}]}`) or else `{message}`. A bug answers 500
 * `{"message":"internal error"}` and is logged by the caller (`internal`).
 */
export function marathonErrorReply(error: unknown): { status: number; body: MarathonErrorReplyBody; internal: boolean } {
  const { status, message, internal } = httpErrorReply(error);
  // Only an error that answers as planned sends its own body; one with a status out of range is a bug.
  const own = error instanceof SlipwayError && !internal ? error.body : undefined;
  return { status, body: isMarathonBody(own) ? own : { message }, internal };
}

/** The errors raised in this framework give Marathon's shapes (apps-errors.ts, marathon-error.ts); anything else is not sent. */
function isMarathonBody(body: unknown): body is MarathonErrorReplyBody {
  return typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string';
}
