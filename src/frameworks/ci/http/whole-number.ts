/**
 * A route parameter or query value that must be a whole number (a build number, a queue item id,
 * a byte offset, a page size): decimal digits only, no sign, no leading zero, no exponent, no
 * blanks, and a safe integer. Anything else answers undefined, so that each API says its own
 * 400 or 404 with a message (issue 11, finding 7: `Number()` read `1e3`, ` 1` and `0x10`, and a
 * 16-digit build number past 2^53 reached the store and answered 500).
 *
 * Linear in the input, which is bounded first (MAX_SAFE_INTEGER has 16 digits).
 */
export function parseWholeNumber(raw: string): number | undefined {
  if (raw.length === 0 || raw.length > 16) return undefined;
  if (raw.length > 1 && raw.charCodeAt(0) === 0x30) return undefined;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}
