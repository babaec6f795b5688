import { newTokenText } from '../core/token-text.ts';

/**
 * The token of a benchmark, simulation or test run (issue 12: everything runs with authentication
 * on). Made once per process tree and put in the environment: SLIPWAY_BOOTSTRAP_TOKEN makes the
 * servers the run starts (child processes inherit it) create it as their first admin token, and
 * SLIPWAY_TOKEN makes every SDK client, CLI command and agent the run starts send it. A token
 * already in the environment (a parent run's) is used as it is.
 */
export function runToken(): string {
  const existing = process.env['SLIPWAY_RUN_TOKEN'];
  const token = existing !== undefined && existing !== '' ? existing : newTokenText();
  process.env['SLIPWAY_RUN_TOKEN'] = token;
  process.env['SLIPWAY_BOOTSTRAP_TOKEN'] ??= token;
  process.env['SLIPWAY_TOKEN'] ??= token;
  return token;
}

/** The run's Authorization header, for clients that are not fetch (node:http, ws). */
export function runAuthorization(): string {
  return `Bearer ${runToken()}`;
}

const original = globalThis.fetch;
/** fetch as Node has it: no token added (tests of authentication itself). */
export const unauthenticatedFetch: typeof fetch = original;
let installed = false;

function isLoopback(input: string | URL | Request): boolean {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  return /^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:|\/|$)/.test(url);
}

/**
 * Makes `fetch` to loopback send the run's token when the request has no Authorization header of
 * its own: the benchmarks and tests call Slipway as a user with SLIPWAY_TOKEN set would. Idempotent.
 */
export function authenticateLoopbackFetch(): void {
  if (installed) return;
  installed = true;
  const authorization = runAuthorization();
  globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
    if (!isLoopback(input)) return original(input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (!headers.has('authorization')) headers.set('authorization', authorization);
    return original(input, { ...init, headers });
  }) as typeof fetch;
}
