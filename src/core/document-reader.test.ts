import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DocumentReader, InvalidStoredDocument } from './document-reader.ts';

function failure(read: () => unknown): InvalidStoredDocument {
  try {
    read();
  } catch (e) {
    assert.ok(e instanceof InvalidStoredDocument, `not an InvalidStoredDocument: ${String(e)}`);
    return e;
  }
  assert.fail('expected the read to fail');
}

describe('DocumentReader', () => {
  it('names the document, computing its name only when it fails', () => {
    let named = 0;
    const nameOf = (doc: unknown) => {
      named++;
      return (doc as { id?: string }).id;
    };
    const good = new DocumentReader('thing', { id: 'x', n: 1 }, nameOf);
    assert.equal(good.number(good.rootObject(), 'n'), 1);
    assert.equal(named, 0);
    const bad = new DocumentReader('thing', { id: 'x', n: 'one' }, nameOf);
    const e = failure(() => bad.number(bad.rootObject(), 'n'));
    assert.equal(named, 1);
    assert.equal(e.document, 'thing x');
    assert.equal(e.field, 'n');
    assert.equal(e.code, 'INVALID_STORED_DOCUMENT');
    assert.match(e.message, /^stored thing x cannot be read: n must be a number, not "one"/);
  });

  it('says a field is missing, and what it should have been', () => {
    const r = new DocumentReader('thing', {});
    const e = failure(() => r.string(r.rootObject(), 'name'));
    assert.equal(e.field, 'name');
    assert.match(e.problem, /is missing \(it must be a string\)/);
  });

  it('gives the path of a field inside nested objects and arrays', () => {
    const doc = { steps: [{ name: 'a', env: { A: '1' } }, { name: 'b', env: { B: 2 } }] };
    const r = new DocumentReader('build', doc, 'ci#3');
    const e = failure(() =>
      r.objects(r.rootObject(), 'steps', (reader, s) => {
        reader.string(s, 'name');
        reader.stringRecord(s, 'env');
      }),
    );
    assert.equal(e.document, 'build ci#3');
    assert.equal(e.field, 'steps[1].env.B');
    const list = new DocumentReader('list', { xs: ['a', 3] });
    assert.equal(failure(() => list.strings(list.rootObject(), 'xs')).field, 'xs[1]');
    const nested = new DocumentReader('n', { a: { b: { c: null } } });
    assert.equal(failure(() => nested.nested(nested.rootObject(), 'a', (n, a) => n.nested(a, 'b', (m, b) => m.boolean(b, 'c')))).field, 'a.b.c');
    const root = new DocumentReader('resources', [{ name: 'cpus' }, 'x']);
    assert.equal(failure(() => root.rootObjects((reader, o) => reader.string(o, 'name'))).field, '[1]');
  });

  it('accepts absent optional fields and refuses present ones of the wrong type, null included', () => {
    const r = new DocumentReader('thing', { a: null });
    const o = r.rootObject();
    assert.equal(r.optString(o, 'b'), undefined);
    assert.equal(r.optNested(o, 'b', () => 1), undefined);
    assert.equal(failure(() => r.optString(o, 'a')).field, 'a');
  });

  it('checks enumerations, whole numbers and the root', () => {
    const r = new DocumentReader('thing', { s: 'c', n: 1.5 });
    const o = r.rootObject();
    assert.match(failure(() => r.oneOf(o, 's', new Set(['a', 'b']))).problem, /one of a, b, not "c"/);
    assert.equal(failure(() => r.integer(o, 'n')).field, 'n');
    for (const doc of [null, 'text', 3, [1]]) {
      const e = failure(() => new DocumentReader('thing', doc).rootObject());
      assert.equal(e.field, '');
      assert.match(e.message, /the document must be a JSON object/);
    }
  });

  it('reads docVersion as 1 when absent and refuses versions it does not know', () => {
    const read = (doc: unknown) => {
      const r = new DocumentReader('thing', doc);
      return r.version(r.rootObject(), 2);
    };
    assert.equal(read({}), 1);
    assert.equal(read({ docVersion: 2 }), 2);
    assert.match(failure(() => read({ docVersion: 3 })).problem, /is 3, and this Slipway reads versions up to 2/);
    assert.equal(failure(() => read({ docVersion: '1' })).field, 'docVersion');
    assert.equal(failure(() => read({ docVersion: 0 })).field, 'docVersion');
  });
});
