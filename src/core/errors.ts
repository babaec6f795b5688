/**
 * The base of every error Slipway raises on purpose. Each failure has its own subclass with a
 * stable `code`; the HTTP layer maps codes to status and body in one place, so nothing below it
 * knows about HTTP.
 */
export abstract class SlipwayError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Text or JSON that does not describe valid resources (bad syntax, negative values, ...). */
export class InvalidResources extends SlipwayError {
  readonly code = 'INVALID_RESOURCES';
}

/** Agent attributes that are not of the form `name:value;...`. */
export class InvalidAttributes extends SlipwayError {
  readonly code = 'INVALID_ATTRIBUTES';
}

/** The master refused a scheduler call; `status` is the HTTP status it answered (or would have). */
export class SchedulerCallRefused extends SlipwayError {
  readonly code = 'SCHEDULER_CALL_REFUSED';

  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
