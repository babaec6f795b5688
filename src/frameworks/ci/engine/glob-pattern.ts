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
  return globMatcher(pattern).test(path);
}

/** Whether `text` holds any character with a glob meaning (else it names one path exactly). */
export function hasGlobSyntax(text: string): boolean {
  return /[*?[{\\]/.test(text);
}

/**
 * A compiled pattern. Matching is linear in the path for a given pattern (time O(path × pattern),
 * no backtracking): patterns and paths are user input (a pipeline's branch conditions and
 * artifacts, a branch name from a webhook), and the regular expression this once compiled to
 * backtracked catastrophically (issue 11, finding 2: `*a*a*a*a*a*a*b` took 18 s on 100 `a`s).
 */
export interface GlobMatcher {
  test(path: string): boolean;
}

const cache = new Map<string, GlobMatcher>();

/** The matcher of a pattern (compiled once per pattern text). */
export function globMatcher(pattern: string): GlobMatcher {
  let m = cache.get(pattern);
  if (m === undefined) {
    m = new GlobNfa(pattern);
    if (cache.size > 1_000) cache.clear();
    cache.set(pattern, m);
  }
  return m;
}

const SLASH = 0x2f;

/** One state of the automaton: reads one code unit that `accepts`, or moves on without reading (`split`), or matches. */
type State = { kind: 'read'; accepts: (c: number) => boolean; next: number } | { kind: 'split'; next: number[] } | { kind: 'match' };

/** The pieces of a pattern, as read left to right. */
type Atom =
  | { kind: 'one'; accepts: (c: number) => boolean }
  /** `*`: any run of code units but `/`. */
  | { kind: 'star' }
  /** `**` ending the pattern: anything, slashes included. */
  | { kind: 'anything' }
  /** `**\/`: zero or more segments, each followed by its slash. */
  | { kind: 'segments' }
  | { kind: 'choice'; alternatives: Atom[][] };

/**
 * Thompson's construction: the pattern becomes a nondeterministic automaton, and a path is run
 * through the set of its states at once (each state entered at most once per code unit), as RE2
 * does. Code units, not code points: as the regular expression without the `u` flag was.
 */
class GlobNfa implements GlobMatcher {
  private readonly states: State[] = [];
  private readonly start: number;
  /** The step at which each state was last added (no state twice in a set). */
  private readonly seen: Uint32Array;
  private step = 0;

  constructor(pattern: string) {
    this.states.push({ kind: 'match' });
    this.start = this.sequence(parse(pattern, 0, pattern.length), 0);
    this.seen = new Uint32Array(this.states.length);
  }

  test(path: string): boolean {
    let current = this.closure([this.start]);
    for (let i = 0; i < path.length && current.length > 0; i++) {
      const c = path.charCodeAt(i);
      const targets: number[] = [];
      for (const s of current) {
        const state = this.states[s] as State;
        if (state.kind === 'read' && state.accepts(c)) targets.push(state.next);
      }
      current = this.closure(targets);
    }
    return current.includes(0);
  }

  /** The states reached from `from` without reading: those that read, and the match. */
  private closure(from: number[]): number[] {
    const mark = ++this.step;
    const out: number[] = [];
    const stack = from.slice().reverse();
    while (stack.length > 0) {
      const s = stack.pop() as number;
      if (this.seen[s] === mark) continue;
      this.seen[s] = mark;
      const state = this.states[s] as State;
      if (state.kind === 'split') for (let k = state.next.length - 1; k >= 0; k--) stack.push(state.next[k] as number);
      else out.push(s);
    }
    return out;
  }

  private add(state: State): number {
    this.states.push(state);
    return this.states.length - 1;
  }

  /** The states of `atoms` followed by state `next`; answers the first. */
  private sequence(atoms: Atom[], next: number): number {
    let at = next;
    for (let i = atoms.length - 1; i >= 0; i--) at = this.atom(atoms[i] as Atom, at);
    return at;
  }

  private atom(a: Atom, next: number): number {
    switch (a.kind) {
      case 'one':
        return this.add({ kind: 'read', accepts: a.accepts, next });
      case 'star':
      case 'anything': {
        const loop: State = { kind: 'split', next: [] };
        const l = this.add(loop);
        const read = this.add({ kind: 'read', accepts: a.kind === 'star' ? notSlash : anyUnit, next: l });
        loop.next = [read, next];
        return l;
      }
      case 'segments': {
        // (?:[^/]*/)*: a loop of (a loop of non-slashes, then a slash).
        const outer: State = { kind: 'split', next: [] };
        const o = this.add(outer);
        const slash = this.add({ kind: 'read', accepts: isSlash, next: o });
        const inner: State = { kind: 'split', next: [] };
        const i = this.add(inner);
        const read = this.add({ kind: 'read', accepts: notSlash, next: i });
        inner.next = [read, slash];
        outer.next = [i, next];
        return o;
      }
      case 'choice':
        return this.add({ kind: 'split', next: a.alternatives.map((alt) => this.sequence(alt, next)) });
    }
  }
}

const notSlash = (c: number) => c !== SLASH;
const isSlash = (c: number) => c === SLASH;
const anyUnit = () => true;

/** Reads pattern p[from, to) into atoms. */
function parse(p: string, from: number, to: number): Atom[] {
  const out: Atom[] = [];
  let i = from;
  while (i < to) {
    const c = p[i] as string;
    if (c === '\\' && i + 1 < to) {
      out.push(literal(p.charCodeAt(i + 1)));
      i += 2;
    } else if (c === '*') {
      let j = i;
      while (j < to && p[j] === '*') j++;
      const wholeSegment = j - i >= 2 && (i === 0 || p[i - 1] === '/') && (j === p.length || p[j] === '/');
      if (wholeSegment && j === p.length) {
        out.push({ kind: 'anything' });
        i = j;
      } else if (wholeSegment) {
        out.push({ kind: 'segments' });
        i = j + 1;
      } else {
        out.push({ kind: 'star' });
        i = j;
      }
    } else if (c === '?') {
      out.push({ kind: 'one', accepts: notSlash });
      i++;
    } else if (c === '[') {
      const end = classEnd(p, i, to);
      if (end < 0) {
        out.push(literal(0x5b));
        i++;
      } else {
        out.push({ kind: 'one', accepts: charClass(p.slice(i + 1, end)) });
        i = end + 1;
      }
    } else if (c === '{') {
      const end = braceEnd(p, i, to);
      if (end < 0) {
        out.push(literal(0x7b));
        i++;
      } else {
        out.push({ kind: 'choice', alternatives: splitAlternatives(p, i + 1, end).map(([a, b]) => parse(p, a, b)) });
        i = end + 1;
      }
    } else {
      out.push(literal(p.charCodeAt(i)));
      i++;
    }
  }
  return out;
}

function literal(code: number): Atom {
  return { kind: 'one', accepts: (c) => c === code };
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

/** The test of a class body (between its brackets): members, `a-z` ranges, `\x` escapes; `!` or `^` first negates. Never a `/`. */
function charClass(body: string): (c: number) => boolean {
  let negate = false;
  let i = 0;
  if (body[0] === '!' || body[0] === '^') {
    negate = true;
    i = 1;
  }
  const ranges: [number, number][] = [];
  /** The code unit at `i`, an escape read as the character it escapes; and where the next one starts. */
  const unitAt = (k: number): [number, number] => (body[k] === '\\' && k + 1 < body.length ? [body.charCodeAt(k + 1), k + 2] : [body.charCodeAt(k), k + 1]);
  while (i < body.length) {
    const [lo, afterLo] = unitAt(i);
    if (body[afterLo] === '-' && afterLo + 1 < body.length) {
      const [hi, afterHi] = unitAt(afterLo + 1);
      ranges.push([lo, hi]);
      i = afterHi;
    } else {
      ranges.push([lo, lo]);
      i = afterLo;
    }
  }
  const member = (c: number) => ranges.some(([lo, hi]) => c >= lo && c <= hi);
  return negate ? (c) => c !== SLASH && !member(c) : (c) => c !== SLASH && member(c);
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
