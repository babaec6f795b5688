import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MASK, secretForms, SecretMask, SecretMasker } from './secret-mask.ts';

describe('secretForms', () => {
  it('has the value, its base64 (as `echo -n $S | base64` and `echo $S | base64` print it) and its URL-encoded forms', () => {
    const forms = secretForms('p@ss word/+!');
    for (const f of [
      'p@ss word/+!',
      Buffer.from('p@ss word/+!').toString('base64'),
      Buffer.from('p@ss word/+!\n').toString('base64'),
      encodeURIComponent('p@ss word/+!'),
      'p%40ss%20word%2F%2B%21',
      'p%40ss+word%2F%2B%21',
    ]) {
      assert.ok(forms.includes(f), `${f} in ${JSON.stringify(forms)}`);
    }
    assert.deepEqual(forms, [...forms].sort((a, b) => b.length - a.length || (a < b ? -1 : 1)));
    assert.deepEqual(secretForms(''), []);
  });
});

describe('SecretMask', () => {
  it('masks every form of every value in a piece of text', () => {
    const mask = new SecretMask(['s3cr3t-value', 'other one']);
    const text = `plain s3cr3t-value, b64 ${Buffer.from('s3cr3t-value').toString('base64')}, url ${encodeURIComponent('other one')}, form other+one, done`;
    assert.equal(mask.mask(text), `plain ${MASK}, b64 ${MASK}, url ${MASK}, form ${MASK}, done`);
    assert.equal(new SecretMask([]).mask('as is'), 'as is');
  });
});

describe('SecretMasker', () => {
  const secret = 'tok-3f9a71c2';

  it('finds a value split across pieces, holding back only what may still become one', () => {
    const m = new SecretMasker([secret]);
    assert.equal(m.push('token is tok-3f'), 'token is ');
    assert.equal(m.push('9a71c2 and then\n'), `${MASK} and then\n`);
    // A tail that cannot start a form goes out at once: a line is not held for no reason.
    assert.equal(m.push('waiting...'), 'waiting...');
    assert.equal(m.push('tok'), '');
    assert.equal(m.end(), 'tok');
  });

  it('passes text through untouched when there is nothing to mask', () => {
    const m = new SecretMasker([]);
    assert.equal(m.push('a'), 'a');
    assert.equal(m.end(), '');
  });

  it('gives, for every way of cutting the text, exactly the whole text masked, and never shows a form', () => {
    const alphabet = fc.constantFrom(...'ab3=+%/\n tok'.split(''));
    const value = fc.string({ unit: alphabet, minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 3 }), fc.array(fc.oneof(fc.string({ unit: alphabet, maxLength: 12 }), value), { maxLength: 12 }), fc.array(fc.nat(40), { maxLength: 10 }), (values, parts, cuts) => {
        const text = parts.join('');
        const whole = new SecretMask(values).mask(text);
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const m = new SecretMasker(values);
        let out = '';
        let at = 0;
        const outputs: string[] = [];
        for (const p of [...points, text.length]) {
          const piece = m.push(text.slice(at, p));
          outputs.push(piece);
          out += piece;
          at = p;
        }
        const rest = m.end();
        outputs.push(rest);
        out += rest;
        assert.equal(out, whole);
      }),
      { numRuns: 3000 },
    );
  });

  it('never lets a secret, its base64 or its URL-encoded form through, however the stream is cut', () => {
    const values = ['hunter2!', 'k=v&x y'];
    const forms = values.flatMap(secretForms);
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom(...forms), fc.string({ maxLength: 6 })), { maxLength: 8 }), fc.array(fc.nat(80), { maxLength: 8 }), (parts, cuts) => {
        const text = parts.join('');
        const m = new SecretMasker(values);
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        let out = '';
        let at = 0;
        for (const p of [...points, text.length]) {
          out += m.push(text.slice(at, p));
          at = p;
        }
        out += m.end();
        for (const v of values) assert.ok(!out.includes(v), `${JSON.stringify(v)} in ${JSON.stringify(out)}`);
        assert.ok(!out.includes(Buffer.from(values[0]!).toString('base64')));
        assert.ok(!out.includes(encodeURIComponent(values[1]!)));
      }),
      { numRuns: 2000 },
    );
  });
});
