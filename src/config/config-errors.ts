import { SlipwayError } from '../core/errors.ts';

// Failures of the config center, each with its code and HTTP status. Input checks carry every
// problem found, each naming its field, so that a user fixes a request in one go; the answer body
// is `{code, message, details?: [{field, message}]}` (http/config-routes.ts).

export interface ConfigProblem {
  /** The field, dotted (`files[0].destination`), or '' for the body. */
  field: string;
  message: string;
}

/** A request body or parameter that is not what the config center takes. */
export class InvalidConfig extends SlipwayError {
  readonly code = 'INVALID_CONFIG';
  readonly status = 400;

  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map((p) => (p.field === '' ? p.message : `${p.field}: ${p.message}`)).join('; '));
  }

  override get body(): unknown {
    return { code: this.code, message: this.message, details: this.problems };
  }
}

/** A service, environment, release or file that does not exist. */
export class ConfigNotFound extends SlipwayError {
  readonly code = 'CONFIG_NOT_FOUND';
  readonly status = 404;
}

/** A request that does not fit the state (an environment in use, a release while another runs). */
export class ConfigConflict extends SlipwayError {
  readonly code = 'CONFIG_CONFLICT';
  readonly status = 409;
}

/**
 * Templates that do not render: an undefined variable, a syntax error, a rendered file that is not
 * valid JSON/YAML/TOML/properties. Each problem names the file (and the template's line).
 */
export class RenderFailed extends SlipwayError {
  readonly code = 'RENDER_FAILED';
  readonly status = 422;

  constructor(readonly problems: readonly ConfigProblem[]) {
    super(`the templates do not render: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
  }

  override get body(): unknown {
    return { code: this.code, message: this.message, details: this.problems };
  }
}

/** The templates' git repository or ref cannot be read. */
export class TemplateSourceFailed extends SlipwayError {
  readonly code = 'TEMPLATE_SOURCE_FAILED';
  // The repository (another server, or a path) failed: a bad gateway, not a bug of ours.
  readonly status = 502;
}

/** A file fetch whose signed URL is not this config center's, or has expired. */
export class FetchRefused extends SlipwayError {
  readonly code = 'CONFIG_FETCH_REFUSED';
  readonly status = 403;
}
