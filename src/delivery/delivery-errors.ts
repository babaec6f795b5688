import { SlipwayError } from '../core/errors.ts';

// Failures of delivery, each with its code and HTTP status. Input checks carry every problem
// found, each naming its field; the answer body is `{code, message, details?: [{field, message}]}`.

export interface DeliveryProblem {
  /** The field, dotted (`gate.healthyMinutes`), or '' for the body. */
  field: string;
  message: string;
}

/** A request body or parameter that is not what delivery takes. */
export class InvalidDelivery extends SlipwayError {
  readonly code = 'INVALID_DELIVERY';
  readonly status = 400;

  constructor(readonly problems: readonly DeliveryProblem[]) {
    super(problems.map((p) => (p.field === '' ? p.message : `${p.field}: ${p.message}`)).join('; '));
  }

  override get body(): unknown {
    return { code: this.code, message: this.message, details: this.problems };
  }
}

/** A service, environment, release or promotion that does not exist. */
export class DeliveryNotFound extends SlipwayError {
  readonly code = 'DELIVERY_NOT_FOUND';
  readonly status = 404;
}

/**
 * A request that does not fit the state: a promotion while another runs in the environment, a
 * frozen environment, an approval by the release's author, a preflight that says it cannot be
 * placed (`details` then holds the reasons).
 */
export class DeliveryConflict extends SlipwayError {
  readonly code = 'DELIVERY_CONFLICT';
  readonly status = 409;

  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  override get body(): unknown {
    return { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) };
  }
}

/** The services framework refused what a promotion asked of it (its definition is wrong). */
export class DeploymentRefused extends SlipwayError {
  readonly code = 'DEPLOYMENT_REFUSED';
  readonly status = 422;

  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  override get body(): unknown {
    return { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) };
  }
}
