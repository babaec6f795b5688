import { Transform, type TransformCallback } from 'node:stream';

/**
 * How deep a JSON document may nest before it is refused unread (issue 11: V8's JSON.parse took
 * 353 ms on 2 MB of `[[[[...]]]]`, and a body limit alone does not bound that). Marathon's app and
 * group definitions, Mesos's TaskInfo and CI's job definitions nest well under 40.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * How many values (commas and colons outside strings, a linear proxy) a JSON document may hold
 * before it is refused unread: V8's JSON.parse of 4 MB holding 900k small objects took 300-360 ms
 * here, of 1.9M numbers 113 ms. A bulk of 1,000 Marathon apps holds ~30k; a Mesos ACCEPT of 500
 * tasks ~25k; 250k parse in ~15 ms.
 */
export const MAX_JSON_VALUES = 250_000;

/** A JSON text with more values than allowed: a 413 with the limit, before any parse. */
export class JsonTooLarge extends Error {
  readonly statusCode = 413;
  constructor(readonly maxValues: number) {
    super(`the JSON document holds more than ${maxValues} values`);
    this.name = 'JsonTooLarge';
  }
}

/** A JSON text nested deeper than allowed: a 400 with the limit, before any parse. */
export class JsonTooDeep extends Error {
  readonly statusCode = 400;
  constructor(readonly maxDepth: number) {
    super(`the JSON document is nested more than ${maxDepth} levels deep`);
    this.name = 'JsonTooDeep';
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * Counts the nesting and the values of a JSON text fed in pieces, in one linear pass over its bytes (UTF-8 or
 * UTF-16 code units: the bytes it looks at are all ASCII, and no multi-byte sequence contains
 * them). It does not validate: a malformed text is left to the parser, which refuses it in linear
 * time; this only stops the texts that are deep enough to make the parser slow.
 *
 * Contract: `feed` throws JsonTooDeep as soon as the depth passes `maxDepth`, JsonTooLarge as
 * soon as the values pass `maxValues`.
 */
export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private values = 0;

  constructor(
    readonly maxDepth = MAX_JSON_DEPTH,
    readonly maxValues = MAX_JSON_VALUES,
  ) {}

  feed(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string';
    const n = chunk.length;
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    let values = this.values;
    for (let i = 0; i < n; i++) {
      const c = text ? chunk.charCodeAt(i) : (chunk as Uint8Array)[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) inString = true;
      else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        if (++depth > this.maxDepth) throw new JsonTooDeep(this.maxDepth);
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
      else if (c === COMMA || c === COLON) {
        if (++values > this.maxValues) throw new JsonTooLarge(this.maxValues);
      }
    }
    this.values = values;
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
  }
}

/** Throws JsonTooDeep when `text` nests deeper than `maxDepth`; call it before JSON.parse on input from outside. */
export function assertJsonDepth(text: Uint8Array | string, maxDepth = MAX_JSON_DEPTH): void {
  new JsonDepthScanner(maxDepth).feed(text);
}

/** `JSON.parse` of input from outside, refusing deep nesting first (JsonTooDeep, a 400). */
export function parseJsonText(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  assertJsonDepth(text, maxDepth);
  return JSON.parse(text);
}

/**
 * A pass-through stream that fails with JsonTooDeep once what went through nests too deep: put in
 * front of a JSON body parser (Fastify's preParsing), it refuses a deep body while it arrives, so
 * that the parser never sees it.
 */
export function jsonDepthGuard(maxDepth = MAX_JSON_DEPTH): Transform {
  const scanner = new JsonDepthScanner(maxDepth);
  // One error only: the chunks that a pipe still writes after it are dropped, not refused again
  // (a second 'error' would find no listener once the reader has given up on the stream).
  let failed = false;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      if (failed) {
        done();
        return;
      }
      try {
        scanner.feed(chunk);
        done(null, chunk);
      } catch (e) {
        failed = true;
        // On a later turn: a pipe may feed the guard before its reader listens (Fastify attaches
        // its listeners after the preParsing hooks resolve), and an error then would go unheard.
        setImmediate(() => done(e as Error));
      }
    },
  });
}

/** How much of a refused body is drained when the route does not say its body limit. */
const DEFAULT_DRAIN_LIMIT = 4 * 1024 * 1024;

/** The part of a Fastify instance that guardJsonBodies needs (lib does not depend on Fastify's types). */
interface PreParsingHost {
  addHook(
    name: 'preParsing',
    hook: (request: { headers: Record<string, string | string[] | undefined>; routeOptions?: { bodyLimit?: number } }, reply: unknown, payload: NodeJS.ReadableStream) => Promise<NodeJS.ReadableStream>,
  ): unknown;
}

/**
 * Puts jsonDepthGuard in front of every JSON body of `app` (content types that name json): call
 * it before the routes are registered, so that every route, in every plugin scope, inherits it.
 * The guard keeps Fastify's own JSON parser (and its prototype-poisoning checks) and its body
 * limit, which it feeds with the bytes received (`receivedEncodedLength`, Fastify's contract for
 * a preParsing stream).
 */
export function guardJsonBodies(app: PreParsingHost, maxDepth = MAX_JSON_DEPTH): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const type = request.headers['content-type'];
    if (typeof type !== 'string' || !/json/i.test(type)) return payload;
    const guard = jsonDepthGuard(maxDepth) as Transform & { receivedEncodedLength: number };
    guard.receivedEncodedLength = 0;
    const limit = request.routeOptions?.bodyLimit ?? DEFAULT_DRAIN_LIMIT;
    payload.on('data', (chunk: Buffer | string) => {
      guard.receivedEncodedLength += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      if (refused && guard.receivedEncodedLength > limit) (payload as NodeJS.ReadableStream & { destroy(): void }).destroy();
    });
    payload.on('error', (e: Error) => guard.destroy(e));
    // A refused body is read to its end and dropped, up to the route's body limit: a connection
    // closed with unread bytes makes the kernel reset it, and the client loses the 400 in transit.
    let refused = false;
    guard.once('error', () => {
      refused = true;
      payload.unpipe(guard);
      payload.resume();
    });
    return payload.pipe(guard);
  });
}
