import { SlipwayError } from '../../core/errors.ts';

/** One entry of Marathon's error body: a field (`/cpus`, `/healthChecks(0)/portIndex`, `/` for the whole app) and what is wrong with it. */
export interface MarathonErrorDetail {
  path: string;
  errors: string[];
}

/** The body Marathon 1.x answers with 422: `{"message":"Object is not valid","details":[...]}`. */
export interface MarathonErrorBody {
  message: string;
  details: MarathonErrorDetail[];
}

/**
 * An app definition that Marathon's rules (or Slipway's list of unsupported fields) refuse. It
 * carries Marathon's body as is, so that the HTTP layer answers 422 with it and deploy scripts
 * written against Marathon read the same fields.
 */
export class MarathonValidationError extends SlipwayError {
  readonly code = 'MARATHON_INVALID_APP';
  readonly status = 422;

  readonly details: MarathonErrorDetail[];

  /**
   * At most MAX_ERROR_DETAILS details are kept, the last of them saying how many more there were
   * (`{"path":"/","errors":["and 999900 more"]}`), and at most MAX_ERROR_DETAILS errors per
   * detail: a request of a million bad elements answers a few kilobytes, not 55 MB.
   */
  constructor(
    details: readonly MarathonErrorDetail[],
    readonly bodyMessage = 'Object is not valid',
  ) {
    const kept = capDetails(details);
    // The Error message spells the details out, so that a log line or a failed test says what is wrong.
    super(`${bodyMessage}: ${kept.map((d) => `${d.path}: ${d.errors.join('; ')}`).join(', ')}`);
    this.details = kept;
  }

  /** The 422 body, exactly as Marathon shapes it. */
  override get body(): MarathonErrorBody {
    return { message: this.bodyMessage, details: this.details.map((d) => ({ path: d.path, errors: [...d.errors] })) };
  }
}

/** How many details (and errors per detail) a MarathonValidationError keeps. */
export const MAX_ERROR_DETAILS = 100;

function capDetails(details: readonly MarathonErrorDetail[]): MarathonErrorDetail[] {
  const capErrors = (d: MarathonErrorDetail): MarathonErrorDetail =>
    d.errors.length <= MAX_ERROR_DETAILS ? d : { path: d.path, errors: [...d.errors.slice(0, MAX_ERROR_DETAILS - 1), `and ${d.errors.length - MAX_ERROR_DETAILS + 1} more`] };
  if (details.length <= MAX_ERROR_DETAILS) return details.map(capErrors);
  const more = details.length - (MAX_ERROR_DETAILS - 1);
  return [...details.slice(0, MAX_ERROR_DETAILS - 1).map(capErrors), { path: '/', errors: [`and ${more} more`] }];
}

/**
 * A field's path as Marathon writes it in error details: properties after `/`, array indices in
 * parentheses (`/healthChecks(0)/portIndex`, `/constraints(1)`), `/` alone for the app itself.
 * Both Marathon's validator (accord) and its JSON reader (Play JsPath) print paths this way.
 */
export function marathonPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `(${s})` : `/${s}`;
  return out === '' ? '/' : out;
}

/**
 * Collects error details by path, in the order they were first seen; Marathon groups all errors
 * of one path into one detail.
 */
export class MarathonErrorCollector {
  readonly #byPath = new Map<string, string[]>();

  add(path: string, error: string): void {
    const errors = this.#byPath.get(path);
    if (errors === undefined) this.#byPath.set(path, [error]);
    else if (!errors.includes(error)) errors.push(error);
  }

  has(path: string): boolean {
    return this.#byPath.has(path);
  }

  /** True when `path` is, or lies under, a path that already has errors. */
  covers(path: string): boolean {
    for (const p of this.#byPath.keys()) {
      if (p === '/' ? false : path === p || path.startsWith(`${p}/`) || path.startsWith(`${p}(`)) return true;
    }
    return false;
  }

  get size(): number {
    return this.#byPath.size;
  }

  details(): MarathonErrorDetail[] {
    return [...this.#byPath].map(([path, errors]) => ({ path, errors: [...errors] }));
  }

  /** Throws a MarathonValidationError with everything collected, if anything was. */
  throwIfAny(): void {
    if (this.#byPath.size > 0) throw new MarathonValidationError(this.details());
  }
}
