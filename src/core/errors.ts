/**
 * The base of every error Slipway raises on purpose. Each failure has its own subclass with a
 * stable `code` and the HTTP `status` it answers with, both declared by the subclass, in the layer
 * that raises it (as Nomad's HTTPCodedError): the layer that knows what went wrong knows whether it
 * is the caller's fault (4xx) or the server's (5xx). The HTTP layers only shape the answer (plain
 * text, Marathon's JSON, CI's JSON; see core/http-error-reply.ts and each API's reply function),
 * so nothing below them imports HTTP, and no table anywhere lists other layers' codes.
 *
 * Contract for subclasses:
 * - `code`: upper snake case, stable once released (clients and tests match on it). Several
 *   classes may share one code (a not-found of the same API), and then they share its status.
 * - `status`: 400-599. 4xx when the request cannot succeed as sent, 5xx when the server cannot
 *   serve it now (503 when trying again later may work). Never 500: 500 means a bug, which is
 *   not an error raised on purpose.
 * - `body`: only for errors whose answer says more than the message (Marathon's 422 details, CI's
 *   list of problems), in the shape of the API of the layer that raises them; the reply function
 *   of that API sends it as is. Left undefined, the API's reply is built from the message.
 */
export abstract class SlipwayError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }

  /** The whole answer body, when the message alone is not the answer (see the class comment). */
  get body(): unknown {
    return undefined;
  }
}

/** Text or JSON that does not describe valid resources (bad syntax, negative values, ...). */
export class InvalidResources extends SlipwayError {
  readonly code = 'INVALID_RESOURCES';
  readonly status = 400;
}

/** Agent attributes that are not of the form `name:value;...`. */
export class InvalidAttributes extends SlipwayError {
  readonly code = 'INVALID_ATTRIBUTES';
  readonly status = 400;
}

/**
 * The master refused a scheduler call; `status` is the HTTP status it answered (or, in process,
 * would have): a route that made the call answers with the master's status and message.
 */
export class SchedulerCallRefused extends SlipwayError {
  readonly code = 'SCHEDULER_CALL_REFUSED';

  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
