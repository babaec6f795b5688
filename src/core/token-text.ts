import { randomBytes } from 'node:crypto';

/**
 * The text of a Slipway token: `slw_<id>_<secret>`, a public id of 12 hex digits and a secret of
 * 32 random bytes (base64url). One definition for the token registry (src/auth) and the runs that
 * choose their first token themselves (src/sim/bench-token.ts).
 */
export const TOKEN_PATTERN = /^slw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

/** A new token text, random. */
export function newTokenText(): string {
  return `slw_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
}
