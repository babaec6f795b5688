import { fileURLToPath } from 'node:url';

/**
 * The pieces of CI that `slipway bench ci` times on their own, outside a cluster (its "profile"
 * part): the git work of CI's trigger (`resolveRef`, then `readFileAt` of the pipeline file) and
 * of an executor (`checkoutCommit`), and the module an executor process loads.
 *
 * bench/ may not import a framework's internals (.dependency-cruiser.cjs,
 * `bench-imports-only-public-layers`); the server, which wires CI, may. This is the one place
 * that names them for the bench, so when CI's git source or executor move, this file follows and
 * the bench does not change.
 */
export { checkoutCommit, readFileAt, resolveRef } from '../frameworks/ci/git/git-source.ts';

/** The executor's module alone: what a lazily loading `slipway ci-executor` would cost to import. */
export const CI_EXECUTOR_MODULE = fileURLToPath(new URL('../frameworks/ci/executor/ci-executor.ts', import.meta.url));
