/**
 * The names of the secret store's secrets (src/auth/secret-registry.ts), which apps, CI jobs and
 * tasks reference: path-like (`db/password`, `team-a/registry`), segments of letters, digits, `.`,
 * `_`, `-`; a leading `/` (Marathon's `"source": "/db/password"`) names the same secret as without.
 */

const SEGMENT = '[A-Za-z0-9][A-Za-z0-9._-]*';
const NAME_PATTERN = new RegExp(`^${SEGMENT}(/${SEGMENT})*$`);
export const MAX_SECRET_NAME = 200;

/** The name a reference means (a leading `/` dropped), or why it is not a secret name. */
export function secretName(reference: string): { name: string } | { problem: string } {
  const name = reference.startsWith('/') ? reference.slice(1) : reference;
  if (name.length === 0 || name.length > MAX_SECRET_NAME || !NAME_PATTERN.test(name)) {
    return { problem: `'${reference.slice(0, 80)}' is not a secret name (segments of letters, digits, '.', '_', '-' separated by '/', at most ${MAX_SECRET_NAME} characters)` };
  }
  return { name };
}
