import assert from 'node:assert/strict';
import { InvalidStoredDocument } from './document-reader.ts';

/**
 * The checks every unit test of a `readX(doc)` makes (tests only): a good document, through JSON,
 * reads back equal; without any one of its required fields, or with any one field of another JSON
 * type, or as something else than an object, or of a newer `docVersion`, it throws
 * `InvalidStoredDocument` naming `kind` and the field. `good` should have every optional field
 * too, so that their types are checked as well; nested fields are the readers' own tests.
 */
export function assertReaderChecksEveryField<T>(
  read: (doc: unknown) => T,
  good: T,
  options: { kind: string; optional?: readonly string[] },
): void {
  const json = JSON.stringify(good);
  assert.deepEqual(read(JSON.parse(json)), good, 'a good document reads back equal');
  assert.deepEqual(read(JSON.parse(json)), JSON.parse(json));

  const fields = Object.keys(JSON.parse(json) as object);
  for (const key of fields) {
    if (!(options.optional ?? []).includes(key)) {
      const doc = JSON.parse(json) as Record<string, unknown>;
      delete doc[key];
      const e = failureOf(() => read(doc), `without ${key}`);
      assert.equal(e.field, key, e.message);
      assert.match(e.problem, /is missing/, e.message);
      assert.ok(e.document.startsWith(options.kind), e.message);
    }
    const doc = JSON.parse(json) as Record<string, unknown>;
    doc[key] = otherType(doc[key]);
    const e = failureOf(() => read(doc), `with ${key} of another type`);
    assert.ok(e.field === key || e.field.startsWith(`${key}.`) || e.field.startsWith(`${key}[`), `${key}: ${e.message}`);
    assert.ok(e.document.startsWith(options.kind), e.message);
  }

  for (const notAnObject of [null, 'text', 7, [JSON.parse(json)]]) {
    assert.equal(failureOf(() => read(notAnObject), `as ${JSON.stringify(notAnObject)}`).field, '');
  }
  const newer = { ...(JSON.parse(json) as object), docVersion: 1_000 };
  assert.equal(failureOf(() => read(newer), 'of a newer docVersion').field, 'docVersion');
  assert.deepEqual(read({ ...(JSON.parse(json) as object), docVersion: 1 }), { ...(JSON.parse(json) as object), docVersion: 1 });
}

/** The InvalidStoredDocument `read` throws. */
export function failureOf(read: () => unknown, what = 'the document'): InvalidStoredDocument {
  try {
    read();
  } catch (e) {
    assert.ok(e instanceof InvalidStoredDocument, `${what}: not an InvalidStoredDocument: ${String(e)}`);
    return e;
  }
  assert.fail(`${what}: read back without an error`);
}

/** A JSON value of another type than `v`. */
function otherType(v: unknown): unknown {
  return typeof v === 'string' ? 42 : 'not this';
}
