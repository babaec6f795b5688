import { SlipwayError } from '../core/errors.ts';

/**
 * The errors a store raises on purpose. Each keeps the driver's error as `cause`, and says in its
 * message what failed in words an operator can act on (which migration, which change of a batch).
 *
 * All three answer 503 Service Unavailable when they reach an API: the store is out (full disk,
 * read-only or locked file, closing server), which is neither the caller's fault (4xx) nor a bug
 * (500); the same request may succeed once the store is back.
 */

/** A migration could not be applied, or the database was written by a newer Slipway. */
export class StoreMigrationFailed extends SlipwayError {
  readonly code = 'STORE_MIGRATION_FAILED';
  // 503 too: the server cannot serve from this database until an operator acts (restores a
  // backup, runs the newer Slipway); the request itself was fine. It is raised at start-up, so
  // an API should never see it.
  readonly status = 503;

  constructor(message: string, cause: unknown) {
    super(message);
    this.cause = cause;
  }
}

/**
 * A batch could not be written. The store guarantees that nothing of the batch was applied (the
 * transaction was rolled back), so the caller may write the same changes again, ahead of newer
 * ones. A change the database rejects (see the message) will fail again on every retry.
 */
export class StoreWriteFailed extends SlipwayError {
  readonly code = 'STORE_WRITE_FAILED';
  readonly status = 503;

  constructor(message: string, cause: unknown) {
    super(message);
    this.cause = cause;
  }
}

/** `load` or `write` after `close`. */
export class StoreClosed extends SlipwayError {
  readonly code = 'STORE_CLOSED';
  // 503: the server is shutting down (a request that arrives during close).
  readonly status = 503;
}
