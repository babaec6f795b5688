/**
 * Glob patterns over `/`-separated paths, for branch conditions (`release/*`) and artifact paths
 * (`dist/**\/*.tar.gz`). The syntax is that of Woodpecker's (doublestar) and of most CI tools:
 *
 *   *        any run of characters except `/` (dot files included)
 *   **       as a whole segment (`**\/x`, `a/**\/b`, `a/**`): zero or more segments; elsewhere as `*`
 *   ?        one character except `/`
 *   [abc] [a-z] [!a-z] [^a-z]   one character of (or not of) a set, never `/`
 *   {a,b}    one of the alternatives (they may hold globs, and nest)
 *   \x       the character x itself
 *
 * A pattern matches a whole path, not a part of it. A `[` or `{` that is never closed stands for
 * itself, so that every text is a valid pattern and matching never throws.
 */

/** Whether `path` matches the glob `pattern`. */
export function matchesGlob(path: string, pattern: string): boolean {
  return globRegExp(pattern).test(path);
}

/** Whether `text` holds any character with a glob meaning (else it names one path exactly). */
export function hasGlobSyntax(text: string): boolean {
  return /[*?[{\\]/.test(text);
}

const cache = new Map<string, RegExp>();

/** The pattern as an anchored regular expression (compiled once per pattern text). */
export function globRegExp(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re === undefined) {
    re = new RegExp(`^${compile(pattern, 0, pattern.length)}$`, 's');
    if (cache.size > 1_000) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}

/** Translates pattern[from, to) into regular-expression source. */
function compile(p: string, from: number, to: number): string {
  let out = '';
  let i = from;
  while (i < to) {
    const c = p[i] as string;
    if (c === '\\' && i + 1 < to) {
      out += escape(p[i + 1] as string);
      i += 2;
    } else if (c === '*') {
      let j = i;
      while (j < to && p[j] === '*') j++;
      const wholeSegment = j - i >= 2 && (i === 0 || p[i - 1] === '/') && (j === p.length || p[j] === '/');
      if (wholeSegment && j === p.length) {
        out += '.*';
        i = j;
      } else if (wholeSegment) {
        // `**/`: nothing, or any segments each followed by a slash.
        out += '(?:[^/]*/)*';
        i = j + 1;
      } else {
        out += '[^/]*';
        i = j;
      }
    } else if (c === '?') {
      out += '[^/]';
      i++;
    } else if (c === '[') {
      const end = classEnd(p, i, to);
      if (end < 0) {
        out += '\\[';
        i++;
      } else {
        out += charClass(p.slice(i + 1, end));
        i = end + 1;
      }
    } else if (c === '{') {
      const end = braceEnd(p, i, to);
      if (end < 0) {
        out += '\\{';
        i++;
      } else {
        const alternatives = splitAlternatives(p, i + 1, end).map(([a, b]) => compile(p, a, b));
        out += `(?:${alternatives.join('|')})`;
        i = end + 1;
      }
    } else {
      out += escape(c);
      i++;
    }
  }
  return out;
}

/** Index of the `]` closing the class opened at `open`, or -1. A `]` first in the class is a member. */
function classEnd(p: string, open: number, to: number): number {
  let i = open + 1;
  if (p[i] === '!' || p[i] === '^') i++;
  if (p[i] === ']') i++;
  for (; i < to; i++) {
    if (p[i] === '\\') i++;
    else if (p[i] === ']') return i;
  }
  return -1;
}

function charClass(body: string): string {
  let negate = false;
  let i = 0;
  if (body[0] === '!' || body[0] === '^') {
    negate = true;
    i = 1;
  }
  let members = '';
  for (; i < body.length; i++) {
    const c = body[i] as string;
    if (c === '\\' && i + 1 < body.length) {
      members += `\\${body[++i] as string}`;
    } else if (c === '-') {
      members += '-';
    } else {
      members += /[\]\\^[]/.test(c) ? `\\${c}` : c;
    }
  }
  // A path separator is never matched by a class, negated or not.
  return negate ? `[^/${members}]` : `(?!/)[${members}]`;
}

/** Index of the `}` closing the brace opened at `open` (nesting and escapes counted), or -1. */
function braceEnd(p: string, open: number, to: number): number {
  let depth = 0;
  for (let i = open; i < to; i++) {
    const c = p[i];
    if (c === '\\') i++;
    else if (c === '[') {
      const end = classEnd(p, i, to);
      if (end >= 0) i = end;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/** The [start, end) ranges of the top-level alternatives of a brace body p[from, to). */
function splitAlternatives(p: string, from: number, to: number): [number, number][] {
  const parts: [number, number][] = [];
  let depth = 0;
  let start = from;
  for (let i = from; i < to; i++) {
    const c = p[i];
    if (c === '\\') i++;
    else if (c === '[') {
      const end = classEnd(p, i, to);
      if (end >= 0) i = end;
    } else if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push([start, i]);
      start = i + 1;
    }
  }
  parts.push([start, to]);
  return parts;
}

function escape(c: string): string {
  return /[.*+?^${}()|[\]\\/-]/.test(c) ? `\\${c}` : c;
}
