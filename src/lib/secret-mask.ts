/**
 * Masking secrets in logs, the way Jenkins's credentials binding does and with its lesson: a
 * build that prints a secret's base64 or URL-encoded form leaks it as surely as one that prints
 * the value. Every form of every value is replaced by MASK.
 *
 * Forms of a value v (each at most once, empty ones left out):
 *   - v itself;
 *   - base64 of v (standard, padded and not; URL-safe alphabet), and of v + "\n" (`echo $S | base64`);
 *   - URL-encoded: encodeURIComponent (JavaScript, curl's --data-urlencode of most characters),
 *     RFC 3986 strict (Python's quote(v, safe='')), and form encoding (space as `+`).
 *
 * Masking is a guard against accidents, not a boundary: a step that can read a secret can always
 * print it some other way (reversed, hex, one character per line). Base64 is matched only where
 * the value's encoding starts at a multiple of three bytes, i.e. where it was encoded on its own.
 */

export const MASK = '****';

/** Every form of `value` to mask, longest first (so the longest match at a position wins). */
export function secretForms(value: string): string[] {
  if (value === '') return [];
  const bytes = Buffer.from(value, 'utf8');
  const withNewline = Buffer.from(`${value}\n`, 'utf8');
  const forms = new Set<string>([
    value,
    bytes.toString('base64'),
    bytes.toString('base64').replace(/=+$/, ''),
    bytes.toString('base64url'),
    withNewline.toString('base64'),
    withNewline.toString('base64').replace(/=+$/, ''),
    encodeURIComponent(value),
    encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    new URLSearchParams({ v: value }).toString().slice(2),
  ]);
  forms.delete('');
  return [...forms].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
}

/** The forms of all `values`, longest first, without repeats. */
function allForms(values: Iterable<string>): string[] {
  const forms = new Set<string>();
  for (const v of values) for (const f of secretForms(v)) forms.add(f);
  return [...forms].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Masks whole pieces of text (a stateless mask: what a piece holds entirely). For a stream cut
 * into pieces, use SecretMasker, which also finds a value split across two pieces.
 */
export class SecretMask {
  /** Longest first: a regular expression's alternation takes the first alternative that matches. */
  readonly forms: readonly string[];
  readonly longest: number;
  readonly #pattern: RegExp | undefined;

  constructor(values: Iterable<string>) {
    this.forms = allForms(values);
    this.longest = this.forms[0]?.length ?? 0;
    this.#pattern = this.forms.length > 0 ? new RegExp(this.forms.map(escapeRegExp).join('|'), 'g') : undefined;
  }

  get empty(): boolean {
    return this.#pattern === undefined;
  }

  mask(text: string): string {
    if (this.#pattern === undefined) return text;
    return text.replace(this.#pattern, MASK);
  }

  /** A fresh copy of the pattern (a global RegExp carries state: one per scan). */
  pattern(): RegExp | undefined {
    return this.#pattern === undefined ? undefined : new RegExp(this.#pattern.source, 'g');
  }
}

/**
 * Masks a stream of text given in pieces (a step's log), where a value may be split across
 * pieces: `push` returns what can be shown now, holding back the shortest tail that may still
 * turn into a form of a secret (never more than the longest form, less one character, and
 * nothing when the tail cannot start one: a line that ends without a secret in view goes out
 * whole); `end` returns what is held, masked.
 *
 * Contract: the concatenation of every `push` and the `end` equals `new SecretMask(values)
 * .mask(whole text)` for every way of cutting the text, and no output ever holds a form of a
 * value, even split across two outputs.
 */
export class SecretMasker {
  readonly #mask: SecretMask;
  /** This masker's own copy (a global RegExp keeps its position between calls). */
  readonly #pattern: RegExp | undefined;
  #held = '';

  constructor(values: Iterable<string> | SecretMask) {
    this.#mask = values instanceof SecretMask ? values : new SecretMask(values);
    this.#pattern = this.#mask.pattern();
  }

  push(text: string): string {
    const pattern = this.#pattern;
    if (pattern === undefined) return text;
    const buf = this.#held + text;
    const hold = this.#holdFrom(buf);
    pattern.lastIndex = 0;
    let out = '';
    let pos = 0;
    for (let m = pattern.exec(buf); m !== null && m.index < hold; m = pattern.exec(buf)) {
      out += buf.slice(pos, m.index) + MASK;
      pos = m.index + m[0].length;
    }
    // A match found before `hold` may end past it: what it covered is not held again.
    const cut = Math.max(pos, hold);
    // Positions in [pos, hold) start no match: every form starting there ends inside `buf`.
    out += buf.slice(pos, cut);
    this.#held = buf.slice(cut);
    // A match that ended past `hold` may leave a tail that could start a form again.
    if (cut > hold && this.#held !== '') {
      const rest = this.#held;
      this.#held = '';
      out += this.push(rest);
    }
    return out;
  }

  end(): string {
    const rest = this.#mask.mask(this.#held);
    this.#held = '';
    return rest;
  }

  /** The first index of `buf` whose tail is a proper prefix of some form (buf.length when none). */
  #holdFrom(buf: string): number {
    const from = Math.max(0, buf.length - (this.#mask.longest - 1));
    let first = buf.length;
    for (const form of this.#mask.forms) {
      const start = Math.max(from, buf.length - (form.length - 1));
      const head = form.charCodeAt(0);
      for (let i = start; i < first; i++) {
        if (buf.charCodeAt(i) === head && isPrefixOf(form, buf, i)) {
          first = i;
          break;
        }
      }
    }
    return first;
  }
}

/** Whether `buf` from `i` to its end is a proper prefix of `form` (without copying either). */
function isPrefixOf(form: string, buf: string, i: number): boolean {
  const n = buf.length - i;
  if (n >= form.length) return false;
  for (let k = 0; k < n; k++) if (buf.charCodeAt(i + k) !== form.charCodeAt(k)) return false;
  return true;
}
