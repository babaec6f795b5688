import { SlipwayError } from './errors.ts';

/**
 * Reading stored JSON documents back: the shape checks every `readX(doc)` of the owners of stored
 * documents is made of (a framework's `readBuild`, the master's `readTaskInfo`, ...). A store keeps
 * documents as their owner wrote them; what comes back from a database may still be from another
 * version of Slipway, or damaged, so it is checked before anything trusts its type.
 *
 * Contract of a reader built on it: it returns the document itself, typed, once every field its
 * type declares has been checked (required fields present, each of its JSON type; enumerations
 * one of their values; nested objects and arrays likewise), and throws `InvalidStoredDocument`
 * naming the document and the first field that does not match otherwise. Fields it does not know
 * are left as they are (a newer Slipway may add some). A document may carry `docVersion`, a whole
 * number (absent: 1); a reader refuses a version newer than it knows.
 *
 * Cheap on purpose, since stores read thousands of documents at load: one reader object and one
 * small path array per document, no copies, and the error's text (document name, field path) is
 * made only when one is thrown.
 */

/** A stored document that does not have the shape of its type (or is of a newer version). */
export class InvalidStoredDocument extends SlipwayError {
  readonly code = 'INVALID_STORED_DOCUMENT';
  /**
   * The server's own data is damaged: nothing the client can fix, and not a bug of the request
   * either; the part cannot serve that document until an operator repairs the store (503).
   */
  readonly status = 503;

  /** `document` names it (`build ci#3`), `field` is the path of the field (`steps[2].status`; '' for the whole). */
  constructor(
    readonly document: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(
      `stored ${document} cannot be read: ${field === '' ? 'the document' : field} ${problem} ` +
        '(written by another version of Slipway, or damaged)',
    );
  }
}

export type JsonObject = Record<string, unknown>;

/** The name of the version field a stored document may carry. */
export const DOC_VERSION_FIELD = 'docVersion';

export class DocumentReader {
  /** Where in the document the reader is (keys and indexes), for the field paths of errors. */
  private readonly at: (string | number)[] = [];

  /**
   * `kind` names the kind of document (`build`); `name` adds which one, as a string or as a
   * function of the document that is called only when an error is thrown (`ci#3`).
   */
  constructor(
    private readonly kind: string,
    private readonly doc: unknown,
    private readonly name?: string | ((doc: unknown) => string | undefined),
  ) {}

  /** The document, which must be a JSON object. */
  rootObject(): JsonObject {
    if (!isObject(this.doc)) this.fail('', expected('a JSON object', this.doc));
    return this.doc;
  }

  /** The document, which must be a JSON array. */
  rootArray(): unknown[] {
    if (!Array.isArray(this.doc)) this.fail('', expected('a JSON array', this.doc));
    return this.doc;
  }

  /**
   * The document's `docVersion` (absent: 1). Throws if it is not a whole number of at least 1, or
   * if it is above `newest`, the newest version this code reads.
   */
  version(o: JsonObject, newest: number): number {
    const v = o[DOC_VERSION_FIELD];
    if (v === undefined) return 1;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(DOC_VERSION_FIELD, expected('a whole number of at least 1', v));
    if (v > newest) this.fail(DOC_VERSION_FIELD, `is ${v}, and this Slipway reads versions up to ${newest} (written by a newer Slipway?)`);
    return v;
  }

  string(o: JsonObject, key: string): string {
    const v = o[key];
    if (typeof v !== 'string') this.fail(key, expected('a string', v));
    return v;
  }

  optString(o: JsonObject, key: string): string | undefined {
    const v = o[key];
    if (v !== undefined && typeof v !== 'string') this.fail(key, expected('a string if present', v));
    return v;
  }

  /** A finite number. */
  number(o: JsonObject, key: string): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, expected('a number', v));
    return v;
  }

  optNumber(o: JsonObject, key: string): number | undefined {
    const v = o[key];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) this.fail(key, expected('a number if present', v));
    return v;
  }

  /** A whole number (a count, an index, a sequence number). */
  integer(o: JsonObject, key: string): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(key, expected('a whole number', v));
    return v;
  }

  optInteger(o: JsonObject, key: string): number | undefined {
    const v = o[key];
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v))) this.fail(key, expected('a whole number if present', v));
    return v;
  }

  boolean(o: JsonObject, key: string): boolean {
    const v = o[key];
    if (typeof v !== 'boolean') this.fail(key, expected('true or false', v));
    return v;
  }

  optBoolean(o: JsonObject, key: string): boolean | undefined {
    const v = o[key];
    if (v !== undefined && typeof v !== 'boolean') this.fail(key, expected('true or false if present', v));
    return v;
  }

  /** One of `values` (an enumeration). */
  oneOf<T extends string>(o: JsonObject, key: string, values: ReadonlySet<T>): T {
    const v = o[key];
    if (typeof v !== 'string' || !values.has(v as T)) this.fail(key, expected(`one of ${[...values].join(', ')}`, v));
    return v as T;
  }

  optOneOf<T extends string>(o: JsonObject, key: string, values: ReadonlySet<T>): T | undefined {
    return o[key] === undefined ? undefined : this.oneOf(o, key, values);
  }

  object(o: JsonObject, key: string): JsonObject {
    const v = o[key];
    if (!isObject(v)) this.fail(key, expected('a JSON object', v));
    return v;
  }

  optObject(o: JsonObject, key: string): JsonObject | undefined {
    const v = o[key];
    if (v !== undefined && !isObject(v)) this.fail(key, expected('a JSON object if present', v));
    return v;
  }

  array(o: JsonObject, key: string): unknown[] {
    const v = o[key];
    if (!Array.isArray(v)) this.fail(key, expected('an array', v));
    return v;
  }

  optArray(o: JsonObject, key: string): unknown[] | undefined {
    const v = o[key];
    if (v !== undefined && !Array.isArray(v)) this.fail(key, expected('an array if present', v));
    return v;
  }

  /** An array of strings. */
  strings(o: JsonObject, key: string): string[] {
    const a = this.array(o, key);
    for (let i = 0; i < a.length; i++) if (typeof a[i] !== 'string') this.failAt(key, i, expected('a string', a[i]));
    return a as string[];
  }

  optStrings(o: JsonObject, key: string): string[] | undefined {
    return o[key] === undefined ? undefined : this.strings(o, key);
  }

  /** An array of finite numbers. */
  numbers(o: JsonObject, key: string): number[] {
    const a = this.array(o, key);
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) this.failAt(key, i, expected('a number', v));
    }
    return a as number[];
  }

  optNumbers(o: JsonObject, key: string): number[] | undefined {
    return o[key] === undefined ? undefined : this.numbers(o, key);
  }

  /** An object whose every value is a string (a map of names to strings). */
  stringRecord(o: JsonObject, key: string): Record<string, string> {
    const r = this.object(o, key);
    for (const k in r) if (typeof r[k] !== 'string') this.failAt(key, k, expected('a string', r[k]));
    return r as Record<string, string>;
  }

  /** An object whose every value is a finite number. */
  numberRecord(o: JsonObject, key: string): Record<string, number> {
    const r = this.object(o, key);
    for (const k in r) {
      const v = r[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) this.failAt(key, k, expected('a number', v));
    }
    return r as Record<string, number>;
  }

  /**
   * Reads the object field `key` with `read`; errors inside name their fields below `key`. `read`
   * is given the reader, so that it can be a function defined once rather than a closure per call.
   */
  nested<T>(o: JsonObject, key: string, read: (r: DocumentReader, inner: JsonObject) => T): T {
    const inner = this.object(o, key);
    this.at.push(key);
    const result = read(this, inner);
    this.at.pop();
    return result;
  }

  optNested<T>(o: JsonObject, key: string, read: (r: DocumentReader, inner: JsonObject) => T): T | undefined {
    return o[key] === undefined ? undefined : this.nested(o, key, read);
  }

  /**
   * Reads the array field `key`, each element an object, with `read`; errors inside name their
   * fields as `key[i].field`. (A document that is itself an array: `rootObjects`.)
   */
  objects(o: JsonObject, key: string, read: (r: DocumentReader, element: JsonObject, index: number) => void): JsonObject[] {
    const a = this.array(o, key);
    this.at.push(key);
    this.eachObject(a, read);
    this.at.pop();
    return a as JsonObject[];
  }

  optObjects(o: JsonObject, key: string, read: (r: DocumentReader, element: JsonObject, index: number) => void): JsonObject[] | undefined {
    return o[key] === undefined ? undefined : this.objects(o, key, read);
  }

  /** The document as an array of objects, each read with `read` (errors name `[i].field`). */
  rootObjects(read: (r: DocumentReader, element: JsonObject, index: number) => void): JsonObject[] {
    const a = this.rootArray();
    this.eachObject(a, read);
    return a as JsonObject[];
  }

  /** Throws `InvalidStoredDocument` for the field `key` of where the reader is. */
  fail(key: string, problem: string): never {
    throw new InvalidStoredDocument(this.documentName(), this.pathOf(key), problem);
  }

  private eachObject(a: unknown[], read: (r: DocumentReader, element: JsonObject, index: number) => void): void {
    for (let i = 0; i < a.length; i++) {
      const element = a[i];
      if (!isObject(element)) this.fail(`[${i}]`, expected('a JSON object', element));
      this.at.push(i);
      read(this, element, i);
      this.at.pop();
    }
  }

  private failAt(key: string, index: string | number, problem: string): never {
    this.at.push(key);
    return this.fail(typeof index === 'number' ? `[${index}]` : index, problem);
  }

  private pathOf(key: string): string {
    let path = '';
    for (const part of this.at) path += typeof part === 'number' ? `[${part}]` : path === '' ? part : `.${part}`;
    if (key === '') return path;
    if (key.startsWith('[')) return path + key;
    return path === '' ? key : `${path}.${key}`;
  }

  private documentName(): string {
    let name: string | undefined;
    try {
      name = typeof this.name === 'function' ? this.name(this.doc) : this.name;
    } catch {
      name = undefined;
    }
    return name === undefined || name === '' ? this.kind : `${this.kind} ${name}`;
  }
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What is wrong with `v`, which should have been `what`. */
function expected(what: string, v: unknown): string {
  return v === undefined ? `is missing (it must be ${what.replace(/ if present$/, '')})` : `must be ${what}, not ${describe(v)}`;
}

/** A value in an error message: its JSON (cut short), or its type. */
function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const text = JSON.stringify(v);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
