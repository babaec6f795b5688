// ---------------------------------------------------------------------------------------------
// Ids (Marathon's PathId): segments of lowercase letters, digits, dashes and dots; `.` and `..`
// resolved; leading and trailing slashes do not make segments.
//
// Every check here is a single pass over the text, with no regular expression: ids come from
// request bodies and URLs, and Marathon's patterns run by a backtracking engine take exponential
// time on inputs such as 42 slashes and a `!` (issue 11: 82 bytes blocked the event loop 33 s).
// ---------------------------------------------------------------------------------------------

/** Marathon's ID_PATH_SEGMENT_PATTERN (state/PathId.scala), quoted as is in its error message. */
export const ID_SEGMENT_PATTERN = '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$';

/** The `pathType` pattern of Marathon's AppDefinition.json, quoted as is in its error message. */
export const PATH_TYPE_PATTERN = '^(\\/?((\\.{2})|([a-z0-9][a-z0-9\\-.]*[a-z0-9]+)|([a-z0-9]*))($|\\/))+$';

/** The error Marathon gives for an id segment that breaks its rule. */
export const ID_SEGMENT_MESSAGE = `must fully match regular expression '${ID_SEGMENT_PATTERN}'`;

function isLowerAlnum(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
}

const DOT = 0x2e;
const DASH = 0x2d;

/**
 * Whether `s` matches Marathon's ID_SEGMENT_PATTERN as Java's `matches` does: `.`, `..`, or
 * labels separated by single dots, each of [a-z0-9] with inner dashes (not first, not last).
 * Linear in the length of `s`.
 */
export function isIdSegment(s: string): boolean {
  if (s === '.' || s === '..') return true;
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : DOT;
    if (c === DOT) {
      // An empty label, or one that starts or ends with a dash.
      if (i === start || s.charCodeAt(start) === DASH || s.charCodeAt(i - 1) === DASH) return false;
      start = i + 1;
    } else if (!isLowerAlnum(c) && c !== DASH) {
      return false;
    }
  }
  return true;
}

/**
 * Whether `s` matches the schema's `pathType` pattern (PATH_TYPE_PATTERN), decided in one pass:
 * the pattern splits at slashes, any number of which are allowed anywhere, and each non-empty
 * piece between them must be `..`, letters and digits only, or at least two characters of
 * [a-z0-9.-] that start and end with a letter or digit. (A lone `.` is not a piece it allows.)
 */
export function matchesPathType(s: string): boolean {
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    if (i < s.length && s.charCodeAt(i) !== 0x2f) continue;
    if (i > start && !isPathTypePiece(s, start, i)) return false;
    start = i + 1;
  }
  return true;
}

function isPathTypePiece(s: string, from: number, to: number): boolean {
  if (to - from === 2 && s.charCodeAt(from) === DOT && s.charCodeAt(from + 1) === DOT) return true;
  let onlyAlnum = true;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (isLowerAlnum(c)) continue;
    if (c !== DOT && c !== DASH) return false;
    onlyAlnum = false;
  }
  if (onlyAlnum) return true;
  return to - from >= 2 && isLowerAlnum(s.charCodeAt(from)) && isLowerAlnum(s.charCodeAt(to - 1));
}

export interface ParsedPath {
  absolute: boolean;
  /** The non-empty pieces between slashes, as given (`.` and `..` not yet resolved). */
  segments: string[];
}

/** Splits a path at its slashes; empty segments (`//`, leading and trailing slashes) are dropped, as Marathon's PathId does. */
export function parsePath(s: string): ParsedPath {
  return { absolute: s.startsWith('/'), segments: s.split('/').filter((p) => p !== '') };
}

/** Marathon's canonicalPath: relative paths hang under `base`; `.` is dropped, `..` climbs. */
export function canonical(p: ParsedPath, base: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of p.absolute ? p.segments : [...base, ...p.segments]) {
    if (s === '.') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return out;
}

export function toId(segments: readonly string[]): string {
  return `/${segments.join('/')}`;
}

/**
 * The longest id Slipway takes (characters of the canonical id). Marathon sets none, but an id
 * names task ids, sandbox directories (255 bytes per file name on Linux, with the instance
 * suffix) and the Location header of the answer: a 300 kB id was taken and answered with a header
 * no client reads.
 */
export const MAX_ID_LENGTH = 200;
export const ID_TOO_LONG_MESSAGE = `must be at most ${MAX_ID_LENGTH} characters long`;

/** The first segment of `s` that breaks Marathon's rule, or undefined when every one keeps it. */
export function badIdSegment(s: string): string | undefined {
  return parsePath(s).segments.find((seg) => !isIdSegment(seg));
}
