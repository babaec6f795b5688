import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import fc from 'fast-check';
import { fastifyServerOptions } from './http-server-limits.ts';
import { assertJsonDepth, guardJsonBodies, JsonDepthScanner, JsonTooDeep, JsonTooLarge, MAX_JSON_DEPTH, MAX_JSON_VALUES, parseJsonText } from './json-depth.ts';

const nested = (n: number) => '['.repeat(n) + ']'.repeat(n);

describe('JsonDepthScanner', () => {
  it('takes the deepest allowed document and refuses one level more', () => {
    assert.ok(Array.isArray(parseJsonText(nested(MAX_JSON_DEPTH))));
    assert.throws(() => parseJsonText(nested(MAX_JSON_DEPTH + 1)), (e: unknown) => e instanceof JsonTooDeep && e.statusCode === 400 && /more than 64 levels/.test(e.message));
    assert.throws(() => assertJsonDepth('{"a":'.repeat(10) + '1' + '}'.repeat(10), 9), JsonTooDeep);
  });

  it('refuses a document of more values than allowed (commas and colons outside strings)', () => {
    const many = (n: number) => '[' + '0,'.repeat(n) + '0]';
    assert.doesNotThrow(() => parseJsonText(many(MAX_JSON_VALUES)));
    assert.throws(() => parseJsonText(many(MAX_JSON_VALUES + 1)), (e: unknown) => e instanceof JsonTooLarge && e.statusCode === 413);
    assert.doesNotThrow(() => parseJsonText(JSON.stringify({ s: ','.repeat(MAX_JSON_VALUES * 2) })), 'commas inside a string are no values');
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const inString = JSON.stringify({ s: '[[[[{{{{\\"[[[[' + '['.repeat(200) });
    assert.doesNotThrow(() => assertJsonDepth(inString, 2));
    // An escaped backslash ends the escape: the quote after it closes the string.
    assert.throws(() => assertJsonDepth('["\\\\"' + ',[[[]]]]', 3), JsonTooDeep);
  });

  it('reads the same whether the text comes whole or in pieces, bytes or characters', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 7 }), (value, max, cut) => {
        const text = JSON.stringify(value);
        const whole = (() => {
          try {
            assertJsonDepth(text, max);
            return true;
          } catch {
            return false;
          }
        })();
        const bytes = Buffer.from(text);
        const pieces = new JsonDepthScanner(max);
        let ok = true;
        try {
          for (let i = 0; i < bytes.length; i += cut) pieces.feed(bytes.subarray(i, i + cut));
        } catch {
          ok = false;
        }
        assert.equal(ok, whole, text);
        // Against the depth JSON.parse sees.
        const depth = (v: unknown): number => (typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0);
        assert.equal(whole, depth(JSON.parse(text)) <= max, text);
      }),
    );
  });
});

describe('guardJsonBodies', () => {
  async function app() {
    const a = Fastify(fastifyServerOptions({ bodyLimit: 1024 * 1024 }));
    guardJsonBodies(a);
    a.post('/echo', async (req) => ({ got: req.body }));
    await a.listen({ host: '127.0.0.1', port: 0 });
    const address = a.server.address();
    return { a, url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}` };
  }

  it('refuses a deep JSON body with a 400 that says why, and parses the others as before', async () => {
    const { a, url } = await app();
    try {
      const deep = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: nested(400_000) });
      assert.equal(deep.status, 400);
      assert.match(await deep.text(), /nested more than 64 levels deep/);
      const fine = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"a":[1,{"b":2}]}' });
      assert.equal(fine.status, 200);
      assert.deepEqual(await fine.json(), { got: { a: [1, { b: 2 }] } });
      // Fastify's own checks still apply behind the guard: the body limit, and prototype poisoning.
      const big = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ s: 'x'.repeat(2 * 1024 * 1024) }) });
      assert.equal(big.status, 413);
      const poison = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"__proto__":{"x":1}}' });
      assert.equal(poison.status, 400);
      const many = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[' + '{},'.repeat(300_000) + '{}]' });
      assert.equal(many.status, 413);
      assert.match(await many.text(), /more than 250000 values/);
      // Not JSON: the guard stays out of the way.
      const text = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: nested(1000) });
      assert.equal(text.status, 200);
    } finally {
      await a.close();
    }
  });
});
