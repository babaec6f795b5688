import { SchedulerCallRefused, SlipwayError } from '../core/errors.ts';
import { httpErrorReply, type HttpErrorReply } from '../core/http-error-reply.ts';

/**
 * How the scheduler API (`POST /api/v1/scheduler`) answers a call that fails, as Mesos's master
 * does: the status the error declares (400 for a call it cannot read or a missing stream id, 403
 * for a framework not subscribed on this stream or removed, 503 for a store that is out...) and
 * the message as a plain-text body. A bug answers 500 `internal error` (`internal`: log it).
 *
 * One function for both transports: the master's HTTP route sends this reply, and the in-process
 * transport rejects with the same status and message (schedulerCallRefusal), so a framework sees
 * the same refusal whichever way it is connected (scheduler-transport.ts's contract).
 */
export function schedulerErrorReply(error: unknown): HttpErrorReply {
  return httpErrorReply(error);
}

/**
 * The in-process form of schedulerErrorReply: the SchedulerCallRefused (status and message) that
 * an HTTP client of the scheduler API would have built from the answer. A SchedulerCallRefused is
 * passed on as is; an error that is not a SlipwayError (a bug) too, so that its stack survives.
 */
export function schedulerCallRefusal(error: unknown): unknown {
  if (!(error instanceof SlipwayError) || error instanceof SchedulerCallRefused) return error;
  const { status, message } = schedulerErrorReply(error);
  return new SchedulerCallRefused(status, message);
}
