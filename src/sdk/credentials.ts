/**
 * The token an SDK client sends (issue 12): the one it was given, else `SLIPWAY_TOKEN` from the
 * environment (as kubectl and nomad take theirs), else none (the server then answers 401, unless
 * its operator grants anonymous requests a policy). The CLI resolves `--token`, the environment
 * and `<data-dir>/admin.token` before it makes a client (src/cli/options.ts).
 */
export function defaultToken(): string | undefined {
  const t = process.env['SLIPWAY_TOKEN'];
  return t !== undefined && t.trim() !== '' ? t.trim() : undefined;
}

/** The Authorization header of `token`, or none. */
export function authHeaders(token: string | undefined): Record<string, string> {
  return token !== undefined ? { Authorization: `Bearer ${token}` } : {};
}
