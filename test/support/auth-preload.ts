import { authenticateLoopbackFetch, runToken } from '../../src/sim/bench-token.ts';

/**
 * Loaded before every test file (`npm test`: node --import ./test/support/auth-preload.ts):
 * the existing suites run with authentication on (issue 12), as a user with SLIPWAY_TOKEN set.
 *
 * - One admin token per test run, in the environment (src/sim/bench-token.ts): every server a
 *   test starts, in process or as a child process, creates it as its first admin token
 *   (SLIPWAY_BOOTSTRAP_TOKEN); the SDK clients, the CLI and the agents the tests start send it
 *   (SLIPWAY_TOKEN).
 * - `fetch` to loopback sends it too, unless the request has an Authorization header of its own.
 *   Tests of authentication itself use `unauthenticatedFetch` or their own header, and start
 *   their servers without these variables.
 */
runToken();
authenticateLoopbackFetch();

export { unauthenticatedFetch } from '../../src/sim/bench-token.ts';
