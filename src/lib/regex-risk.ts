/**
 * Whether a regular expression given by a user (a LIKE / UNLIKE placement constraint) may
 * backtrack catastrophically in JavaScript's backtracking engine, and why; undefined when it is
 * taken. Node has no linear-time engine, so such patterns are refused where they come in (issue
 * 11, finding 2): `(a+)+b` against a 30-character attribute value runs for minutes, on the event
 * loop of the server that places tasks.
 *
 * Conservative, by the pattern's shape (no matching is tried):
 * - no repeated group that holds a quantifier or an alternative (`(a+)+`, `(a|aa)*`, `(.*a){20}`):
 *   the nesting that makes backtracking exponential; a group repeated at most once (`?`, `{0,1}`)
 *   is fine;
 * - no back-references (`\1`, `\k<name>`): no automaton matches them;
 * - at most MAX_UNBOUNDED unbounded quantifiers in all (`a*a*a*a*b` backtracks in n^k);
 * - at most MAX_PATTERN_LENGTH characters.
 * What it refuses can be written otherwise (a character class instead of an alternative, one
 * quantifier instead of two); what it takes matches a value of n characters in O(n^MAX_UNBOUNDED)
 * at worst, which is fast for the short values placement compares (host names, attributes).
 */
export function regexBacktrackingRisk(source: string): string | undefined {
  if (source.length > MAX_PATTERN_LENGTH) return `is longer than ${MAX_PATTERN_LENGTH} characters`;
  /** For each open group: whether it holds a quantifier or an alternative so far. */
  const groups: { risky: boolean }[] = [];
  /** Whether the atom just read is a group that held a quantifier or an alternative. */
  let lastGroupRisky = false;
  let unbounded = 0;
  const quantified = () => {
    for (const g of groups) g.risky = true;
  };
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      if (/[1-9]/.test(next) || next === 'k') return 'uses a back-reference, which can backtrack without bound';
      i++;
      lastGroupRisky = false;
      continue;
    }
    if (c === '[') {
      // A class: its characters are members, not operators.
      let j = i + 1;
      if (source[j] === '^') j++;
      if (source[j] === ']') j++;
      for (; j < source.length && source[j] !== ']'; j++) if (source[j] === '\\') j++;
      i = j;
      lastGroupRisky = false;
      continue;
    }
    if (c === '(') {
      groups.push({ risky: false });
      lastGroupRisky = false;
      // (?: (?= (?! (?<= (?<! (?<name>: the group's kind, not a quantifier.
      if (source[i + 1] === '?') {
        i++;
        if (source[i + 1] === '<' && source[i + 2] !== '=' && source[i + 2] !== '!') {
          const close = source.indexOf('>', i);
          i = close < 0 ? source.length : close;
        } else if (source[i + 1] === '<') i += 2;
        else i++;
      }
      continue;
    }
    if (c === ')') {
      const g = groups.pop();
      lastGroupRisky = g?.risky ?? false;
      // What is inside a group is inside its parent too.
      if (lastGroupRisky) for (const parent of groups) parent.risky = true;
      continue;
    }
    if (c === '|') {
      const g = groups[groups.length - 1];
      if (g !== undefined) g.risky = true;
      lastGroupRisky = false;
      continue;
    }
    const q = quantifierAt(source, i);
    if (q !== undefined) {
      if (q.repeats && lastGroupRisky) return 'repeats a group that holds a quantifier or an alternative (as (a+)+ or (a|b)*), which can backtrack exponentially; use one quantifier, or a character class';
      if (q.unbounded && ++unbounded > MAX_UNBOUNDED) return `has more than ${MAX_UNBOUNDED} unbounded quantifiers (* + {n,}), which can backtrack polynomially`;
      quantified();
      i = q.end - 1;
      // A lazy or possessive-looking suffix belongs to the quantifier.
      if (source[q.end] === '?') i++;
      lastGroupRisky = false;
      continue;
    }
    lastGroupRisky = false;
  }
  return undefined;
}

export const MAX_PATTERN_LENGTH = 500;
export const MAX_UNBOUNDED = 3;

/** The quantifier at `i` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`), if any: whether it repeats (may match twice or more), whether it is unbounded, and where it ends. */
function quantifierAt(s: string, i: number): { repeats: boolean; unbounded: boolean; end: number } | undefined {
  const c = s[i];
  if (c === '*' || c === '+') return { repeats: true, unbounded: true, end: i + 1 };
  if (c === '?') return { repeats: false, unbounded: false, end: i + 1 };
  if (c !== '{') return undefined;
  const close = s.indexOf('}', i);
  if (close < 0) return undefined;
  const body = s.slice(i + 1, close);
  const m = /^(\d{1,6})(?:(,)(\d{0,6}))?$/.exec(body);
  if (m === null) return undefined; // A literal `{` (JavaScript reads it so outside the u flag).
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
  return { repeats: max >= 2, unbounded: max === Infinity, end: close + 1 };
}
