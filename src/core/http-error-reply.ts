import { SlipwayError } from './errors.ts';

/** What an HTTP layer answers a failed request with, before it shapes the body for its API. */
export interface HttpErrorReply {
  /** 400-599. */
  status: number;
  /** What the client is told: the error's message, or `internal error` for a bug. */
  message: string;
  /** True for a bug (not an error raised on purpose): log it, and tell the client nothing of it. */
  internal: boolean;
}

/**
 * The status and message of an error thrown in a request handler, read from the error itself,
 * with no knowledge of any layer's codes:
 * - a SlipwayError answers with the status its class declares and its message;
 * - an error of the HTTP framework with a 4xx `statusCode` (malformed JSON, unsupported content
 *   type, body too large) keeps its status and message: the request was bad; one with a 5xx keeps
 *   its status only;
 * - anything else is a bug: 500 `internal error`, its details for the log only.
 *
 * This is also the plain-text reply (the master's and operator's APIs, the agent's files, Jenkins's
 * remote API): they send `message` as text/plain with `status`. Each other API shapes its body in
 * its own reply function (marathonErrorReply, ciErrorReply, schedulerErrorReply) built on this one.
 */
export function httpErrorReply(error: unknown): HttpErrorReply {
  if (error instanceof SlipwayError) {
    // A status outside 400-599 is a bug of the error (a refusal relayed with a 3xx, say): never
    // send it as if it were a success or a redirect.
    if (error.status >= 400 && error.status <= 599) return { status: error.status, message: error.message, internal: false };
    return { status: 500, message: 'internal error', internal: true };
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return { status, message: (error as Error).message, internal: false };
  // A 5xx of the framework (or of a library it calls) keeps its status, but not its message.
  if (typeof status === 'number' && status >= 500 && status <= 599) return { status, message: 'internal error', internal: true };
  return { status: 500, message: 'internal error', internal: true };
}
