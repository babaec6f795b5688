import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Tokens kept as their SHA-256 digest, and compared in constant time. A digest in a database or
 * a checkpoint is of no use to whoever reads it (the token is random: 128 bits or more, so no
 * one tries its preimage), and comparing digests of equal length with `timingSafeEqual` takes
 * the same time wherever the given token differs, and whatever its length.
 */

/** The hex SHA-256 of `token`. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `given` is the token whose digest is `digest`, in time independent of where they differ. */
export function tokenMatches(given: string, digest: string): boolean {
  const expected = Buffer.from(digest, 'hex');
  const actual = createHash('sha256').update(given, 'utf8').digest();
  // A malformed digest (not 32 bytes of hex) matches nothing; its length is no secret.
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
