import { SlipwayError } from '../core/errors.ts';

/** A call for a framework that has no subscribed stream (never subscribed, or disconnected). HTTP 403. */
export class FrameworkNotSubscribed extends SlipwayError {
  readonly code = 'FRAMEWORK_NOT_SUBSCRIBED';
  readonly status = 403;
}

/** A SUBSCRIBE with the id of a framework that was torn down or timed out. HTTP 403. */
export class FrameworkRemoved extends SlipwayError {
  readonly code = 'FRAMEWORK_REMOVED';
  readonly status = 403;
}

/** A call whose content the master cannot act on (bad role names, ...). HTTP 400. */
export class InvalidRequest extends SlipwayError {
  readonly code = 'INVALID_REQUEST';
  readonly status = 400;
}

/** An agent that tries to register with the id of an agent removed by the operator. HTTP 403. */
export class AgentGone extends SlipwayError {
  readonly code = 'AGENT_GONE';
  readonly status = 403;
}

/** A message from or about an agent the master does not know. HTTP 404. */
export class AgentNotFound extends SlipwayError {
  readonly code = 'AGENT_NOT_FOUND';
  readonly status = 404;
}

/** A scheduler call other than SUBSCRIBE without the `Mesos-Stream-Id` header. HTTP 400. */
export class MissingStreamId extends SlipwayError {
  readonly code = 'MISSING_STREAM_ID';
  readonly status = 400;
}

/** A call whose `Mesos-Stream-Id` is not the framework's current stream. HTTP 403. */
export class StreamIdMismatch extends SlipwayError {
  readonly code = 'STREAM_ID_MISMATCH';
  readonly status = 403;
}

/** A task the master does not know (files API). HTTP 404. */
export class TaskNotFound extends SlipwayError {
  readonly code = 'TASK_NOT_FOUND';
  readonly status = 404;
}

/** An agent that cannot be reached to serve a request (files API). HTTP 503. */
export class AgentUnavailable extends SlipwayError {
  readonly code = 'AGENT_UNAVAILABLE';
  readonly status = 503;
}

/** A REGISTER naming a known agent id with another credential than the one the id is bound to. */
export class AgentCredentialMismatch extends SlipwayError {
  readonly code = 'AGENT_CREDENTIAL_MISMATCH';
  readonly status = 403;
}
