// Regular expressions that users give (LIKE / UNLIKE constraint values), and those of the JSON
// schemas the frameworks compile, run on V8's backtracking engine. Some patterns take time
// exponential in the length of the text they are tried on (`(a+)+$`, `(a|a)*`), others a high
// power of it (`.*.*.*.*x`). Node 20 has no linear-time engine without a flag or a native
// module, so the choice here is to refuse the dangerous shapes before any pattern is compiled,
// and to bound what a pattern is tried on:
//
// - at most MAX_PATTERN_LENGTH characters;
// - no backreferences (`\1`, `\k<name>`): they make matching NP-hard;
// - no repeated group (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that holds a quantifier or an
//   alternation: nested quantifiers are what makes backtracking exponential (star height 1);
// - at most MAX_UNBOUNDED_QUANTIFIERS unbounded quantifiers (`*`, `+`, `{n,}`, or `{n,m}` with
//   m > 16): with k of them in a row, a failing match tries up to n^k splits of the text;
// - a value longer than MAX_MATCHED_VALUE_LENGTH characters is never matched (hostnames are at
//   most 253; agent attributes are short), and each (pattern, value) is tried once and
//   remembered, so placing many tasks on the same agents tries each pair once.
//
// Within these bounds the worst case found (`.*.*.*x` on 255 characters) takes ~17 ms, once.

/** The longest LIKE / UNLIKE pattern accepted. */
export const MAX_PATTERN_LENGTH = 256;
/** How many unbounded quantifiers a pattern may have. */
export const MAX_UNBOUNDED_QUANTIFIERS = 3;
/** The longest value a pattern is tried on; longer ones never match. */
export const MAX_MATCHED_VALUE_LENGTH = 255;
/** A bounded repetition `{n,m}` with m above this counts as unbounded. */
const BOUNDED_REPEAT_LIMIT = 16;

interface GroupFrame {
  /** The group holds a quantifier (directly or in a group inside it). */
  quantified: boolean;
  /** The group holds an alternation (directly or in a group inside it). */
  alternation: boolean;
}

/** A quantifier at `i`: its length and how far it repeats, or undefined when there is none. */
function quantifierAt(p: string, i: number): { length: number; repeats: boolean; unbounded: boolean } | undefined {
  const c = p[i];
  let length: number;
  let repeats: boolean;
  let unbounded: boolean;
  if (c === '*' || c === '+') {
    length = 1;
    repeats = true;
    unbounded = true;
  } else if (c === '?') {
    length = 1;
    repeats = false;
    unbounded = false;
  } else if (c === '{') {
    // {n}, {n,}, {n,m}; anything else is a literal brace (without the u flag) or a syntax error.
    let j = i + 1;
    let min = '';
    while (j < p.length && p[j]! >= '0' && p[j]! <= '9') min += p[j++];
    if (min === '') return undefined;
    let max: string | undefined = min;
    if (p[j] === ',') {
      j++;
      max = '';
      while (j < p.length && p[j]! >= '0' && p[j]! <= '9') max += p[j++];
      if (max === '') max = undefined;
    }
    if (p[j] !== '}') return undefined;
    length = j + 1 - i;
    const top = max === undefined ? Infinity : Number(max);
    repeats = top > 1;
    unbounded = top > BOUNDED_REPEAT_LIMIT;
  } else {
    return undefined;
  }
  if (p[i + length] === '?') length++; // lazy: the same cost
  return { length, repeats, unbounded };
}

/**
 * Why `pattern` is refused (see the bounds above), or undefined when it is within them. One pass
 * over the pattern; a pattern that is not valid syntax is left for `new RegExp` to refuse.
 */
export function patternHazard(pattern: string): string | undefined {
  if (pattern.length > MAX_PATTERN_LENGTH) return `is longer than ${MAX_PATTERN_LENGTH} characters`;
  const stack: GroupFrame[] = [{ quantified: false, alternation: false }];
  let unbounded = 0;
  let last: 'none' | 'atom' | GroupFrame = 'none';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    const top = stack[stack.length - 1]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if ((next >= '1' && next <= '9') || (next === 'k' && pattern[i + 2] === '<')) return 'uses a backreference (matching can take exponential time)';
      i += 2;
      last = 'atom';
      continue;
    }
    if (c === '[') {
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      while (i < pattern.length && pattern[i] !== ']') i += pattern[i] === '\\' ? 2 : 1;
      i++;
      last = 'atom';
      continue;
    }
    if (c === '(') {
      stack.push({ quantified: false, alternation: false });
      i++;
      if (pattern[i] === '?') {
        i++;
        if (pattern[i] === '<' && pattern[i + 1] !== '=' && pattern[i + 1] !== '!') {
          while (i < pattern.length && pattern[i] !== '>') i++;
          i++;
        } else {
          i += pattern[i] === '<' ? 2 : 1;
        }
      }
      last = 'none';
      continue;
    }
    if (c === ')') {
      // Unbalanced: not valid on its own, and wrapped as `^(?:...)$` it would escape the anchors.
      if (stack.length === 1) return "has an unbalanced ')'";
      const group = stack.pop()!;
      const parent = stack[stack.length - 1]!;
      parent.quantified ||= group.quantified;
      parent.alternation ||= group.alternation;
      last = group;
      i++;
      continue;
    }
    if (c === '|') {
      top.alternation = true;
      last = 'none';
      i++;
      continue;
    }
    const q = quantifierAt(pattern, i);
    if (q !== undefined) {
      if (q.repeats && typeof last === 'object' && (last.quantified || last.alternation)) {
        return 'repeats a group that holds a quantifier or an alternation (nested quantifiers can take exponential time)';
      }
      top.quantified = true;
      if (q.unbounded && ++unbounded > MAX_UNBOUNDED_QUANTIFIERS) {
        return `has more than ${MAX_UNBOUNDED_QUANTIFIERS} unbounded quantifiers (*, +, {n,}): matching time grows with that power of the value's length`;
      }
      last = 'none';
      i += q.length;
      continue;
    }
    last = 'atom';
    i++;
  }
  return undefined;
}

/** A compiled LIKE / UNLIKE pattern, matched against whole values. */
export interface ValuePattern {
  test(value: string): boolean;
}

/** Distinct values remembered per pattern (agents' attribute values: few). */
const MEMO_PER_PATTERN = 1024;
/** Compiled patterns remembered (the constraints of the declared apps and CI labels). */
const PATTERNS_KEPT = 1024;
const compiledPatterns = new Map<string, ValuePattern | undefined>();

/**
 * The pattern of a LIKE / UNLIKE value, anchored to match the whole value (Java's
 * `String.matches`, as Marathon does). Undefined when it does not compile or is refused by
 * `patternHazard` (a definition stored before these bounds existed, a CI label): constraints.ts
 * then has no agent meet the constraint, LIKE or UNLIKE.
 */
export function compileValuePattern(value: string): ValuePattern | undefined {
  if (compiledPatterns.has(value)) return compiledPatterns.get(value);
  let pattern: ValuePattern | undefined;
  if (patternHazard(value) === undefined) {
    try {
      new RegExp(value); // valid on its own, not only once wrapped
      const re = new RegExp(`^(?:${value})$`);
      const memo = new Map<string, boolean>();
      pattern = {
        test(v: string): boolean {
          if (v.length > MAX_MATCHED_VALUE_LENGTH) return false;
          let r = memo.get(v);
          if (r === undefined) {
            r = re.test(v);
            if (memo.size >= MEMO_PER_PATTERN) memo.clear();
            memo.set(v, r);
          }
          return r;
        },
      };
    } catch {
      pattern = undefined;
    }
  }
  if (compiledPatterns.size >= PATTERNS_KEPT) compiledPatterns.clear();
  compiledPatterns.set(value, pattern);
  return pattern;
}

/**
 * Why a LIKE / UNLIKE value is refused: not valid syntax, or outside the bounds above. Undefined
 * when it is accepted. The message starts with the value, quoted.
 */
export function constraintPatternProblem(value: string): string | undefined {
  const hazard = patternHazard(value);
  if (hazard !== undefined) return `'${value.length > 64 ? `${value.slice(0, 64)}...` : value}' is refused as a regular expression: it ${hazard}`;
  try {
    new RegExp(value);
  } catch {
    return `'${value}' is not a valid regular expression`;
  }
  return undefined;
}
